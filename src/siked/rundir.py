"""The run directory: a manifest of stages, atomic artifact writes, and safe resumption.

A stage is done when the manifest says so; its outputs were written (atomically) before the
manifest was updated, so a `kill -9` anywhere loses at most the stage in flight. Rerunning with
the same config resumes at the first unfinished stage; a different config is refused.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from siked.config import SikedConfig
from siked.io import write_json

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
TRACKED_LIBRARIES = ("siked", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "vllm")


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def config_fingerprint(config: SikedConfig) -> dict[str, Any]:
    """The config fields that decide a run's results (the run directory and trackers excluded)."""
    data = config.model_dump(mode="json")
    data.pop("out", None)
    data.pop("tracking", None)
    if not data["train"]["trainer_kwargs"]:  # unused: runs from before the field existed still resume
        del data["train"]["trainer_kwargs"]
    return data


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_hashes(config: SikedConfig) -> dict[str, str]:
    specs = [config.data.train, *config.data.evaluation]
    files = [s.file for s in specs if s.file is not None]
    if config.teacher.file is not None:
        files.append(config.teacher.file)
    return {str(f): file_sha256(Path(f)) for f in files if Path(f).is_file()}


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        diffs = []
        for key in sorted(set(old) | set(new)):
            diffs += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return diffs
    return [] if old == new else [f"{prefix.rstrip('.')}: run has {old!r}, now {new!r}"]


class RunDir:
    """A run directory and its manifest."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, config: SikedConfig) -> RunDir:
        """Create the run directory, or resume it if it was started with the same config."""
        path = Path(config.out)
        manifest_path = path / MANIFEST
        fingerprint = config_fingerprint(config)
        if manifest_path.exists():
            manifest = cls._load(manifest_path)
            diffs = _differences(manifest["config"], fingerprint)
            if diffs:
                listed = "\n  ".join(diffs[:10])
                raise RunDirError(
                    f"{path} holds a run started with a different config; refusing to mix the two.\n"
                    f"  {listed}\n"
                    f"Choose a new run directory (--out), or rerun with the original config to resume."
                )
            run = cls(path, manifest)
            run.manifest["resumed"] = run.manifest.get("resumed", 0) + 1
            run.save()
            return run
        if path.exists() and any(path.iterdir()):
            raise RunDirError(
                f"{path} exists and is not a siked run directory (no {MANIFEST}); choose another --out"
            )
        manifest = {
            "version": MANIFEST_VERSION,
            "created": now(),
            "config": fingerprint,
            "config_sha256": _digest(fingerprint),
            "inputs": input_hashes(config),
            "libraries": library_versions(),
            "stages": {},
        }
        run = cls(path, manifest)
        run.save()
        return run

    @staticmethod
    def _load(manifest_path: Path) -> dict[str, Any]:
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunDirError(
                f"{manifest_path} is corrupt ({exc}); move it away to start a new run there, "
                f"or choose another --out"
            ) from None
        missing = [k for k in ("version", "config", "stages") if not isinstance(manifest, dict) or k not in manifest]
        if missing:
            raise RunDirError(f"{manifest_path} is corrupt: missing {', '.join(missing)}")
        if manifest["version"] != MANIFEST_VERSION:
            raise RunDirError(f"{manifest_path} has version {manifest['version']}; this siked reads {MANIFEST_VERSION}")
        return manifest

    def save(self) -> None:
        write_json(self.path / MANIFEST, self.manifest)

    def stage_path(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def is_done(self, stage: str) -> bool:
        entry = self.manifest["stages"].get(stage)
        if not entry or entry.get("status") != "done":
            return False
        return all((self.path / out).exists() for out in entry.get("outputs", []))

    def info(self, stage: str) -> dict[str, Any]:
        return self.manifest["stages"].get(stage, {}).get("info", {})

    def start(self, stage: str) -> None:
        self.manifest["stages"][stage] = {"status": "running", "started": now()}
        self.save()

    def finish(self, stage: str, outputs: Iterable[Path], info: dict[str, Any] | None = None) -> None:
        entry = self.manifest["stages"][stage]
        entry.update(
            status="done",
            finished=now(),
            outputs=[str(Path(o).relative_to(self.path)) for o in outputs],
            info=info or {},
        )
        self.save()
