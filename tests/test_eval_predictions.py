"""`siked eval --out`: one prediction per question; `siked eval RUN`: the run's own evaluation sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siked.cli import app
from siked.config import dump_config, load_config
from siked.data import load_spec
from siked.io import read_jsonl, write_jsonl
from siked.predictions import differences_from_run, run_evaluation_sets, spec_key
from siked.records import Prediction, Problem

TEMPLATES = [10, 43, 50]
RUN_SET = f"data.evaluation=[{{name: gsm_symbolic, split: test, templates: {TEMPLATES}, limit: 2}}]"
SMALL = ["generation.eval_max_new_tokens=8", "generation.dtype=float32", "sandbox.workers=1"]


def fake_run(run_dir: Path, model: Path | None = None) -> Path:
    """A run directory as `siked eval` reads it: manifest, metrics naming the chosen model, config.yaml
    and the copy of its evaluation set in data/."""
    config = load_config(None, [RUN_SET, *SMALL, f"out={run_dir}"])
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"stages": {}}))
    (run_dir / "metrics.json").write_text(json.dumps({"iterations": [], "best_model": "iter1/model"}))
    (run_dir / "config.yaml").write_text(dump_config(config))
    write_jsonl(run_dir / "data" / "eval-gsm_symbolic-test.jsonl", load_spec(config.data.evaluation[0]))
    if model is not None:
        (run_dir / "iter1").mkdir()
        (run_dir / "iter1" / "model").symlink_to(model, target_is_directory=True)
    return run_dir


def test_a_runs_sets_come_from_its_data_copies_or_else_its_own_specs(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path / "run")
    copy = run_dir / "data" / "eval-gsm_symbolic-test.jsonl"
    problems = read_jsonl(copy, Problem)
    write_jsonl(copy, problems[:1])  # what the run wrote is what is evaluated
    assert run_evaluation_sets(run_dir) == {"gsm_symbolic:test": problems[:1]}
    copy.unlink()
    drawn = run_evaluation_sets(run_dir)["gsm_symbolic:test"]
    assert drawn == problems and {p.meta.get("template") for p in drawn} <= set(TEMPLATES)
    all_templates = load_spec(load_config(None, ["data.evaluation=[{name: gsm_symbolic, split: test, limit: 2}]"])
                              .data.evaluation[0])
    assert drawn != all_templates


def test_a_set_of_the_run_drawn_otherwise_is_named_with_how(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path / "run")
    spec = load_config(None, ["data.evaluation=[{name: gsm_symbolic, split: test}]"]).data.evaluation[0]
    (line,) = differences_from_run(run_dir, [spec])
    assert line.startswith(f"gsm_symbolic:test here draws from all templates; the run's used {TEMPLATES}; "
                           "here all problems are kept; the run kept the first 2")
    same = load_config(None, [RUN_SET]).data.evaluation[0]
    other = load_config(None, ["data.evaluation=[{name: gsm_symbolic, split: train}]"]).data.evaluation[0]
    assert differences_from_run(run_dir, [same, other]) == [] and spec_key(other) == "gsm_symbolic:train"


def test_eval_warns_before_evaluating_a_set_the_run_drew_otherwise(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path / "run")  # its chosen model is missing: the warning comes before loading it
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--data", "gsm_symbolic:test", "--limit", "1"])
    lines = result.output.splitlines()
    assert lines[0].startswith("warning: gsm_symbolic:test here draws from all templates; the run's used "
                               "[10, 43, 50]; here the first 1 problems are kept; the run kept the first 2")
    assert result.exit_code == 2 and lines[-1].startswith("error: model ")


@pytest.mark.slow
def test_eval_writes_one_prediction_per_question_and_reevaluates_the_runs_own_sets(model_cache: Path,
                                                                                   tmp_path: Path) -> None:
    from siked.student.models import locate_model

    run_dir = fake_run(tmp_path / "run", Path(locate_model("embedded:smollm2").base))
    out = tmp_path / "predictions.jsonl"
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    rows = read_jsonl(out, Prediction)
    asked = read_jsonl(run_dir / "data" / "eval-gsm_symbolic-test.jsonl", Problem)
    assert list(summary) == ["gsm_symbolic:test"] and summary["gsm_symbolic:test"]["total"] == len(asked) == 2
    assert [(r.problem_id, r.question, r.gold) for r in rows] == [(p.id, p.question, p.answer) for p in asked]
    assert all(r.set == "gsm_symbolic:test" and r.solution and r.status for r in rows)
    assert sum(r.correct for r in rows) == summary["gsm_symbolic:test"]["correct"]
    assert all(len(r.solution.split()) <= 8 for r in rows)  # the run's config: at most 8 new tokens

