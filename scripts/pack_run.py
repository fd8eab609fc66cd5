"""Copy the files a run's tables come from into a folder to commit, JSONL compressed.

    python scripts/pack_run.py RUN DEST

DEST gets the run's config.yaml, metrics.json, manifest.json and routing.json as they are, and every
graded evaluation file (`**/eval/*.jsonl`), the run's question sets (`data/*.jsonl`) and any
`saturation-*.jsonl` as `.jsonl.gz` at the same relative path; models, teacher data and training
mixes stay out. siked reads `x.jsonl` from `x.jsonl.gz` where only that exists, so `siked compare`
and the scripts of docs/results.md read DEST as they read RUN. Compression is byte-stable (no
timestamp), so packing a run again changes nothing that did not change.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

AS_IS = ("config.yaml", "metrics.json", "manifest.json", "routing.json")
COMPRESSED = ("**/eval/*.jsonl", "data/*.jsonl", "saturation-*.jsonl")


def pack(run: Path, dest: Path) -> list[Path]:
    if not (run / "metrics.json").is_file():
        raise SystemExit(f"pack_run: {run} has no metrics.json (not a finished run)")
    for stale in dest.rglob("*.jsonl.gz") if dest.is_dir() else []:
        stale.unlink()  # a file the run no longer has must not outlive a repack
    written = []
    for name in AS_IS:
        if (run / name).is_file():
            dest.mkdir(parents=True, exist_ok=True)
            written.append(Path(shutil.copyfile(run / name, dest / name)))
    for pattern in COMPRESSED:
        for source in sorted(run.glob(pattern)):
            target = dest / source.relative_to(run).with_name(source.name + ".gz")
            target.parent.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as raw, target.open("wb") as out:
                with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as packed:
                    shutil.copyfileobj(raw, packed)
            written.append(target)
    return written


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    written = pack(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{len(written)} files, {sum(p.stat().st_size for p in written) / 1024:.0f} KiB in {sys.argv[2]}")


if __name__ == "__main__":
    main()
