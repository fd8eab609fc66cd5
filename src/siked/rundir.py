"""The run directory: a manifest of stages, atomic artifact writes, and safe resumption.

A stage is done when the manifest says so; its outputs were written (atomically) before the
manifest was updated, so a `kill -9` anywhere loses at most the stage in flight. Rerunning with
the same config resumes at the first unfinished stage. A config that differs in a field that changes
results, or an input file that changed, is refused; operational settings (`OPERATIONAL_FIELDS`:
batch sizes, workers, timeouts, ...) may change and are recorded per invocation.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from siked.config import SikedConfig
from siked.config_teacher import nest_flat_teacher
from siked.errors import SikedError, fields_message, one_line
from siked.io import write_json
from siked.metrics import StageInfo
from siked.metrics.results import RunResults, StageEntry
from siked.names import StageName
from siked.runlock import LOCK_FILE

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
TRACKED_LIBRARIES = ("siked", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "vllm")


class RunDirError(SikedError, RuntimeError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def file_key(key: str) -> str:
    """A dataset key (`gsm8k:test`, `validation`) as a file name."""
    return key.replace(":", "-").replace("/", "_")


def eval_file(model_folder: Path, key: str) -> Path:
    """Where a model folder (`iter2`, `baselines/combined`) keeps its graded outputs on one evaluation set."""
    return model_folder / "eval" / f"{file_key(key)}.jsonl"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


OPERATIONAL_FIELDS: tuple[str, ...] = (
    "plugins",  # they make names known; the names a run uses are in its config
    "loop.stop_after",
    "generation.batch_size",
    "generation.device",
    "generation.gpu_memory_utilization",
    "generation.tensor_parallel_size",
    "generation.data_parallel_size",
    "sandbox.workers",
    "teacher.cache",
    "teacher.openai.concurrency",
    "teacher.openai.request_timeout_s",
    "teacher.openai.max_retries",
    "teacher.openai.backoff_base_s",
    "teacher.openai.backoff_max_s",
    "teacher.openai.max_failed_requests",
    "teacher.openai.api_key_env",
    "teacher.openai.price_prompt_per_mtok",
    "teacher.openai.price_completion_per_mtok",
    "teacher.local.batch_size",
    "teacher.local.tensor_parallel_size",
    "train.logging_steps",
    "train.save_steps",
    "train.save_total_limit",
    "train.resume",
    "train.gradient_checkpointing",
    "train.padding_free",
    "train.attn_implementation",
    "train.launcher.main_process_port",
    "loop.report",
    "loop.stage_processes",
    "loop.keep_merged",
)
"""Settings that change how a run executes but not what it computes: they may differ on resume
(a smaller batch after running out of memory, more sandbox workers) and are recorded per
invocation in the manifest's `invocations`. Every other field must match to resume."""


def _split_operational(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(results-changing fields, operational fields) of a dumped config.

    The `tracking` section is operational as a whole: it changes what is logged, not what is computed.
    """
    results = json.loads(json.dumps(data))
    operational: dict[str, Any] = {}
    if "tracking" in results:
        operational["tracking"] = results.pop("tracking")
    for dotted in OPERATIONAL_FIELDS:
        *sections, key = dotted.split(".")
        node: Any = results
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:
            operational[dotted] = node.pop(key)
    return results, operational


def config_fingerprint(config: SikedConfig) -> dict[str, Any]:
    """The config fields that decide a run's results (operational ones and the directory excluded)."""
    data = config.model_dump(mode="json")
    data.pop("out", None)
    results = _split_operational(data)[0]
    if not results["train"]["trainer_kwargs"]:  # unused: runs from before the field existed still resume
        del results["train"]["trainer_kwargs"]
    return results


def operational_settings(config: SikedConfig) -> dict[str, Any]:
    """The operational fields (`OPERATIONAL_FIELDS`) of `config`, by dotted name."""
    return _split_operational(config.model_dump(mode="json"))[1]


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_files(config: SikedConfig) -> list[Path]:
    """The files a run reads its data and teacher solutions from."""
    specs = [config.data.train, *config.data.evaluation]
    files = [Path(s.file) for s in specs if s.file is not None]
    if config.teacher.file.path is not None:
        files.append(Path(config.teacher.file.path))
    return files


def input_hashes(config: SikedConfig) -> dict[str, str]:
    return {str(f): file_sha256(f) for f in input_files(config) if f.is_file()}


def check_inputs(recorded: dict[str, str], path: Path) -> None:
    """Refuse to resume when an input file the run started from is gone or changed."""
    for name, digest in recorded.items():
        file = Path(name)
        if not file.is_file():
            raise RunDirError(
                f"input file {file} of the run in {path} no longer exists; restore it to resume, "
                "or choose a new run directory (--out)"
            )
        now_digest = file_sha256(file)
        if now_digest != digest:
            raise RunDirError(
                f"input file {file} changed since the run in {path} started (sha256 {digest[:12]}... "
                f"then, {now_digest[:12]}... now); restore it to resume, or choose a new run directory (--out)"
            )


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


STAGING_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}$")
"""How `siked.io.atomic_path` and `atomic_directory` name a file or folder until it is renamed into place."""
LOCK_FREE_WRITES = ("report.md", "report.html", "plots", "tracking")
"""What others write without the run's lock: `siked report` its report, the trackers their logs."""


def stale_staging(path: Path) -> list[Path]:
    """Files and folders that a writer killed mid-write left in the run directory, never renamed into
    place; only the lock's holder may call this (no other writer is alive then)."""
    found = []
    for folder, dirs, files in os.walk(path):
        here = Path(folder)
        if here == path:
            dirs[:] = [d for d in dirs if d not in LOCK_FREE_WRITES]
        for name in [*dirs, *files]:
            match = STAGING_NAME.match(name)
            if match and not (here == path and match["target"] in LOCK_FREE_WRITES):
                found.append(here / name)
        dirs[:] = [d for d in dirs if not STAGING_NAME.match(d)]
    return found


def remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _invocation(config: SikedConfig) -> dict[str, Any]:
    return {"started": now(), "operational": operational_settings(config), "libraries": library_versions()}


class RunDir:
    """A run directory and its manifest."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest
        self.swept: list[Path] = []
        """Half-written files of an interrupted invocation, removed when this one opened the run."""

    @classmethod
    def open(cls, config: SikedConfig) -> RunDir:
        """Create the run directory, or resume it if it was started with the same config; the caller
        holds the run's lock (`siked.runlock`), so what an earlier writer left half-written is removed."""
        path = Path(config.out)
        manifest_path = path / MANIFEST
        fingerprint = config_fingerprint(config)
        if manifest_path.exists():
            manifest = cls._load(manifest_path)
            # Manifests written before the split hold the operational fields too, and those written
            # before the teacher's per-backend sections its flat keys.
            recorded = {**manifest["config"], "teacher": nest_flat_teacher(manifest["config"].get("teacher", {}))}
            diffs = _differences(_split_operational(recorded)[0], fingerprint)
            if diffs:
                listed = "\n  ".join(diffs[:10])
                raise RunDirError(
                    f"{path} holds a run started with a different config; refusing to mix the two.\n"
                    f"  {listed}\n"
                    f"Choose a new run directory (--out), or rerun with the original config to resume."
                )
            check_inputs(manifest.get("inputs", {}), path)
            run = cls(path, manifest)
            run.swept = stale_staging(path)
            remove(run.swept)
            run.manifest["config"] = fingerprint
            run.manifest["resumed"] = run.manifest.get("resumed", 0) + 1
            run.manifest.setdefault("invocations", []).append(_invocation(config))
            run.save()
            return run
        # a first manifest cut short by a kill
        leftovers = [entry for entry in path.iterdir() if STAGING_NAME.match(entry.name)] if path.exists() else []
        if path.exists() and any(entry.name != LOCK_FILE and entry not in leftovers for entry in path.iterdir()):
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
            "invocations": [_invocation(config)],
            "stages": {},
        }
        run = cls(path, manifest)
        run.swept = leftovers
        remove(leftovers)
        run.save()
        return run

    @staticmethod
    def _load(manifest_path: Path) -> dict[str, Any]:
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunDirError(
                f"{manifest_path} is corrupt ({one_line(exc)}); move it away to start a new run there, "
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

    def is_done(self, stage: StageName) -> bool:
        entry = self.manifest["stages"].get(str(stage))
        if not entry or entry.get("status") != "done":
            return False
        return all((self.path / out).exists() for out in entry.get("outputs", []))

    def results(self) -> RunResults:
        """What the stages recorded, typed (stage keys this siked does not name are left out)."""
        entries = {}
        for key, entry in self.manifest["stages"].items():
            try:
                stage = StageName.parse(key)
            except ValueError:
                continue
            try:
                entries[stage] = StageEntry.read(entry)
            except ValidationError as exc:
                raise RunDirError(f"{self.path / MANIFEST}: stage {key!r}: {fields_message(exc)}") from None
        return RunResults(path=self.path, created=self.manifest.get("created", ""), entries=entries,
                          done=frozenset(stage for stage in entries if self.is_done(stage)))

    def start(self, stage: StageName) -> None:
        self.manifest["stages"][str(stage)] = {"status": "running", "started": now()}
        self.save()

    def finish(self, stage: StageName, outputs: Iterable[Path], info: StageInfo) -> None:
        entry = self.manifest["stages"][str(stage)]
        entry.update(
            status="done",
            finished=now(),
            outputs=[str(Path(o).relative_to(self.path)) for o in outputs],
            info=info.dump(),
        )
        self.save()
