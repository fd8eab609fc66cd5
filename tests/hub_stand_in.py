"""A local stand-in of the Hugging Face Hub's upload API on 127.0.0.1, for push tests.

It answers what `HfApi.create_repo` and the plain (non-Xet) `upload_folder` send: repo creation,
the README metadata check, the preupload check (every file goes inline, "regular"), and the NDJSON commit, whose files it
keeps in memory. Run clients with HF_ENDPOINT at `url` and HF_HUB_DISABLE_XET=1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


class HubStandIn:
    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], dict[str, bytes]] = {}
        self.cards: list[dict] = []
        """The README metadata blocks it validated."""
        self.requests: list[tuple[str, str, str | None]] = []
        """(method, path, Authorization header) of every request."""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                hub.requests.append(("POST", self.path, self.headers.get("Authorization")))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    return self.create(json.loads(body))
                if path == "/api/validate-yaml":  # the README's metadata must be a YAML mapping
                    return self.validate(json.loads(body)["content"])
                match = re.fullmatch(r"/api/(model|dataset|space)s/([^/]+/[^/]+)/(preupload|commit)/([^/]+)", path)
                if not match or (match[1], match[2]) not in hub.repos:
                    return self.reply(404, {"error": f"no route or repo for {path}"})
                if match[3] == "preupload":
                    files = json.loads(body)["files"]
                    return self.reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False} for f in files]})
                return self.commit(match[1], match[2], body)

            def validate(self, content: str) -> None:
                parts = content.split("---\n", 2)
                metadata = yaml.safe_load(parts[1]) if content.startswith("---\n") and len(parts) == 3 else None
                if not isinstance(metadata, dict):
                    return self.reply(400, {"errors": [{"message": "README.md has no YAML metadata block"}]})
                hub.cards.append(metadata)
                self.reply(200, {"errors": [], "warnings": []})

            def create(self, request: dict) -> None:
                kind = request.get("type") or "model"
                repo_id = f"{request.get('organization') or 'user'}/{request['name']}"
                if (kind, repo_id) in hub.repos:
                    return self.reply(409, {"error": "You already created this repo"})
                hub.repos[(kind, repo_id)] = {}
                self.reply(200, {"url": f"{hub.url}/{PREFIX[kind]}{repo_id}"})

            def commit(self, kind: str, repo_id: str, body: bytes) -> None:
                files = hub.repos[(kind, repo_id)]
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] != "header":
                        return self.reply(400, {"error": f"stand-in only takes inline files, got {item['key']}"})
                oid = hashlib.sha1(body).hexdigest()
                self.reply(200, {"commitUrl": f"{hub.url}/{PREFIX[kind]}{repo_id}/commit/{oid}", "commitOid": oid})

        return Handler
