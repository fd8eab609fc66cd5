"""Pushing an exported folder to the Hugging Face Hub (or the endpoint `HF_ENDPOINT` names)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from siked.export.common import ExportError


def push_folder(folder: Path, repo_id: str, repo_type: Literal["dataset", "model"], private: bool = False) -> str:
    """Create `repo_id` if needed and upload `folder` in one commit; returns the commit URL.

    The token comes from `HF_TOKEN` or `huggingface-cli login`, the endpoint from `HF_ENDPOINT`.
    """
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if repo_id.count("/") != 1:
        raise ExportError(f"--push-to-hub {repo_id!r}: expected OWNER/NAME")
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                   commit_message="Upload from siked export")
    except (HfHubHTTPError, httpx.HTTPError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"--push-to-hub {repo_id}: {first} (endpoint {api.endpoint}; the folder is kept at {folder})") from None
    return commit.commit_url
