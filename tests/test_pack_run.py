"""scripts/pack_run.py: the files a run's tables come from, compressed, readable where the run is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_script
from siked.io import iter_jsonl


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_pack_keeps_tables_inputs_compressed_and_leaves_models_out(tmp_path: Path) -> None:
    run, dest = tmp_path / "run", tmp_path / "packed"
    rows = "".join(json.dumps({"problem_id": f"p{i}", "correct": i % 2 == 0}) + "\n" for i in range(50))
    for name in ("iter1/eval/test.jsonl", "baselines/combined/step-8/eval/validation.jsonl",
                 "data/validation.jsonl", "saturation-cot.jsonl"):
        write(run / name, rows)
    write(run / "metrics.json", '{"iterations": []}')
    write(run / "config.yaml", "seed: 0\n")
    write(run / "iter1/model/adapter/weights.bin", "weights")
    write(run / "teacher/teacher.jsonl", rows)
    write(run / "iter1/train.jsonl", rows)

    load_script("pack_run").pack(run, dest)
    packed = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert packed == ["baselines/combined/step-8/eval/validation.jsonl.gz", "config.yaml", "data/validation.jsonl.gz",
                      "iter1/eval/test.jsonl.gz", "metrics.json", "saturation-cot.jsonl.gz"]
    # read through the plain name, as siked and the report scripts ask for it
    assert list(iter_jsonl(dest / "iter1/eval/test.jsonl")) == list(iter_jsonl(run / "iter1/eval/test.jsonl"))
    assert (dest / "iter1/eval/test.jsonl.gz").stat().st_size < len(rows) / 3

    before = {name: (dest / name).read_bytes() for name in packed}
    load_script("pack_run").pack(run, dest)
    assert {name: (dest / name).read_bytes() for name in packed} == before  # no timestamp inside

    (run / "iter1/eval/test.jsonl").unlink()  # the run redone without that file: the packed copy goes too
    load_script("pack_run").pack(run, dest)
    assert not (dest / "iter1/eval/test.jsonl.gz").exists()


def test_pack_refuses_an_unfinished_run(tmp_path: Path) -> None:
    write(tmp_path / "run/config.yaml", "seed: 0\n")
    with pytest.raises(SystemExit, match="has no metrics.json"):
        load_script("pack_run").pack(tmp_path / "run", tmp_path / "packed")
