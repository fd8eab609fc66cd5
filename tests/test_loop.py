"""End to end: the SIKeD loop with the real embedded student, tiny sizes, and resumption."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_RUN
from siked.config import load_config
from siked.evaluation import kl_add_one
from siked.io import read_jsonl
from siked.loop import run
from siked.records import Solution

pytestmark = pytest.mark.slow

TINY = [*TINY_RUN, "loop.baselines=[combined]", "loop.budget=equal_steps"]


def stage_times(run_dir: Path) -> dict[str, str]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {name: s.get("finished") for name, s in manifest["stages"].items() if s["status"] == "done"}


def test_two_iterations_end_to_end_then_rerun_redoes_nothing(tmp_path: Path):
    config = load_config(None, [f"out={tmp_path / 'run'}", *TINY])
    run_dir = run(config)
    assert not (run_dir / "iter1" / "train" / "log.txt").exists()  # stage_processes=false: no child, no log
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [it["iteration"] for it in metrics["iterations"]] == [1, 2]
    first, second = metrics["iterations"]
    assert first["train"]["alpha"] == 1.0 and first["train"]["student_count"] == 0
    assert set(first["eval"]) == {"validation", "gsm_symbolic:test"}
    assert first["student"]["samples"] == 2 * metrics_train_questions(run_dir)
    # adaptive mixing: teacher data exactly for the questions the student did not solve
    teacher = read_jsonl(run_dir / "teacher" / "teacher.jsonl", Solution)
    mixed = read_jsonl(run_dir / "iter2" / "train.jsonl", Solution)
    solved = {s.problem_id for s in mixed if s.origin.startswith("student")}
    expected = [t for t in teacher if t.problem_id not in solved]
    assert sorted((t.problem_id, t.strategy) for t in mixed if not t.origin.startswith("student")) == sorted(
        (t.problem_id, t.strategy) for t in expected
    )
    assert second["train"]["teacher_count"] == len(expected)
    assert metrics["best_iteration"] in (1, 2)
    assert metrics["stopped"] == "max_iterations (2)"
    kept = {name: sum(1 for t in teacher if t.strategy == name) for name in ("cot", "l2m", "pot")}
    assert metrics["teacher"]["strategy_counts"] == kept
    for entry in metrics["iterations"]:  # KL against the validation choices, the last iteration's too
        validation = entry["eval"]["validation"]
        choices = {k: round(v * validation["total"]) for k, v in validation["strategy_distribution"].items()}
        assert entry["kl_train_validation"] == pytest.approx(kl_add_one(entry["train"]["strategy_counts"], choices,
                                                                        ["cot", "l2m", "pot"]))
    # the paper's KL: against the strategies of the free samples (iteration 1 sampled; the last does not)
    assert first["kl_train_samples"] == pytest.approx(kl_add_one(
        first["train"]["strategy_counts"], first["student"]["by_mode"]["free"]["strategy_counts"], ["cot", "l2m", "pot"]))
    assert "kl_train_samples" not in second
    combined = metrics["baselines"]["combined"]
    assert combined["train"]["steps"] == 4 and combined["budget"] == "equal_steps"  # SIKeD's: 2 x 2 steps
    # evaluated on validation at SIKeD's cumulative steps, reported at the checkpoint validation chose
    assert [c["step"] for c in combined["checkpoints"]] == [2, 4]
    scores = [(c["step"], c["validation"]) for c in combined["checkpoints"]]
    best = max(score for _, score in scores)
    assert combined["chosen_step"] == next(step for step, score in scores if score == best)
    assert combined["eval"]["validation"]["accuracy"] == pytest.approx(best)
    assert (run_dir / "baselines" / "combined" / "model" / "snapshots" / "step-2" / "siked_student.json").is_file()
    assert (run_dir / "report.html").exists() and (run_dir / "report.md").exists()

    before = stage_times(run_dir)
    run(config)
    assert stage_times(run_dir) == before
    again = json.loads((run_dir / "metrics.json").read_text())
    assert again["run"]["wall_s"] == metrics["run"]["wall_s"] > 0  # time in stages, not this rerun's
    assert again["run"]["finished"] == metrics["run"]["finished"]


def metrics_train_questions(run_dir: Path) -> int:
    return sum(1 for _ in (run_dir / "data" / "train.jsonl").open())


def test_changed_config_mid_run_is_refused(tmp_path: Path):
    config = load_config(None, [f"out={tmp_path / 'run'}", *TINY])
    from siked.rundir import RunDir, RunDirError

    RunDir.open(config)
    changed = load_config(None, [f"out={tmp_path / 'run'}", *TINY, "mixing.mode=all"])
    with pytest.raises(RunDirError, match="mixing.mode"):
        run(changed)


def test_best_iteration_is_chosen_on_validation_else_the_last_one():
    from siked.metrics import BEST_BY_VALIDATION, BEST_IS_LAST, choose_best

    assert choose_best([("iter1", 0.5), ("iter2", 0.75), ("iter3", 0.75)]) == ("iter2", BEST_BY_VALIDATION)
    assert choose_best([("iter1", None), ("iter2", None)]) == ("iter2", BEST_IS_LAST)
    assert choose_best([]) == (None, None)
    assert "last iteration" in BEST_IS_LAST and "validation_fraction" in BEST_IS_LAST


# The "done when": tiny limits on the embedded default, through the real command.
DONE_WHEN = [
    "data.train.limit=8",
    "data.evaluation=[{name: gsm_symbolic, split: test, limit: 2}]",
    "train.max_steps=2",
    "train.max_length=192",
    "train.gradient_accumulation_steps=1",
    "generation.samples=1",
    "generation.max_new_tokens=16",
    "generation.eval_max_new_tokens=16",
    "loop.max_iterations=2",
    "loop.patience=0",
    "loop.stage_processes=false",  # each stage in this process: the same artifacts, half the time
]


def siked(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siked.cli", *args], capture_output=True, text=True, timeout=3600)


def run_command(out: Path, *settings: str) -> dict:
    args = ["run", "--out", str(out)]
    for item in [*DONE_WHEN, *settings]:
        args += ["--set", item]
    result = siked(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


LONG = pytest.mark.long
"""A mode whose mixing rule tests/test_mixing.py checks on records: the whole run, wiring included,
runs with `pytest -m long`, not in CI (its 30 minutes hold the runs every default takes)."""


@LONG
def test_student_mode_run_finishes_with_teacher_data_first_and_as_fallback(tmp_path: Path):
    out = tmp_path / "student"
    metrics = run_command(out, "mixing.mode=student")
    first, second = (entry["train"] for entry in metrics["iterations"])
    assert first["teacher_count"] > 0 and first["student_count"] == 0 and first["alpha"] == 1.0
    assert first["fallback"].startswith("iteration 1")
    assert second["examples"] > 0
    if second["student_count"]:  # the student's own correct solutions only
        assert second["teacher_count"] == 0 and "fallback" not in second
    else:  # it solved nothing: teacher data again, and the report says so
        assert second["teacher_count"] == first["teacher_count"] and "solved no training question" in second["fallback"]
        assert "solved no training question" in (out / "report.md").read_text()
    assert metrics["stopped"] == "max_iterations (2)"


def test_run_without_validation_picks_the_last_iteration_routes_and_evaluates(tmp_path: Path):
    from siked.metrics import BEST_IS_LAST

    out = tmp_path / "noval"
    metrics = run_command(out, "data.validation_fraction=0", "loop.routing=true", "mixing.line=unbiased",
                          "teacher.strategies=[cot, pot]")
    assert (out / "data" / "validation.jsonl").read_text() == ""
    assert [entry["iteration"] for entry in metrics["iterations"]] == [1, 2]
    assert all("validation" not in entry["eval"] for entry in metrics["iterations"])
    assert metrics["best_iteration"] == 2 and metrics["best_model"] == "iter2/model"
    assert metrics["best_rule"] == BEST_IS_LAST
    assert f"(chosen by {BEST_IS_LAST})" in (out / "report.md").read_text()
    routing = json.loads((out / "routing.json").read_text())
    assert routing["gsm_symbolic:test"]["questions"] == 2
    assert set(routing["gsm_symbolic:test"]["forced_accuracy"]) == {"cot", "pot"}  # the taught strategies only
    # the unbiased line: one forced pass per taught strategy; adaptive per (question, strategy) fills exactly the unsolved pairs
    by_mode = metrics["iterations"][0]["student"]["by_mode"]
    assert set(by_mode) == {"cot", "pot"} and by_mode["pot"]["strategy_counts"] == {"pot": metrics_train_questions(out)}
    assert "kl_train_samples" not in metrics["iterations"][0]  # no free pass: no P_SM
    teacher = read_jsonl(out / "teacher" / "teacher.jsonl", Solution)
    mixed = read_jsonl(out / "iter2" / "train.jsonl", Solution)
    solved = {(s.problem_id, s.strategy) for s in mixed if s.origin.startswith("student")}
    assert sorted((t.problem_id, t.strategy) for t in mixed if t.origin.startswith("teacher")) == sorted(
        (t.problem_id, t.strategy) for t in teacher if (t.problem_id, t.strategy) not in solved)

    evaluated = siked("eval", str(out), "--data", "gsm_symbolic:test", "--limit", "2", "--json", "--routing",
                      "--set", "generation.eval_max_new_tokens=16")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    summary = json.loads(evaluated.stdout)["gsm_symbolic:test"]
    assert summary["total"] == 2 and 0 <= summary["truncated"] <= 2
    assert set(summary["routing"]["forced_accuracy"]) == {"cot", "pot"}


@LONG
def test_biased_line_keeps_one_solution_per_question_and_own_epochs_baselines_choose_on_validation(tmp_path: Path):
    out = tmp_path / "biased"
    metrics = run_command(out, "mixing.line=biased", "mixing.priority=[l2m, pot, cot]", "train.max_steps=-1",
                          "train.epochs=1", "loop.baselines=[pot]", "loop.budget=own_epochs")
    assert metrics["run"]["mixing"]["line"] == "biased"
    for name in ("iter1", "iter2"):
        mixed = read_jsonl(out / name / "train.jsonl", Solution)
        assert len({s.problem_id for s in mixed}) == len(mixed)  # one solution per question
    teacher = read_jsonl(out / "teacher" / "teacher.jsonl", Solution)
    rank = {"l2m": 0, "pot": 1, "cot": 2}
    first = read_jsonl(out / "iter1" / "train.jsonl", Solution)
    for record in first:  # iteration 1: the teacher's highest-priority strategy of each question
        assert rank[record.strategy] == min(rank[t.strategy] for t in teacher if t.problem_id == record.problem_id)
    assert set(metrics["iterations"][0]["student"]["by_mode"]) == {"free"}
    pot = metrics["baselines"]["pot"]
    pot_examples = sum(1 for t in teacher if t.strategy == "pot")
    assert pot["budget"] == "own_epochs" and pot["train"]["steps"] == -(-pot_examples // 2)  # one epoch, batch 2
    assert pot["checkpoints"] and pot["chosen_step"] in [c["step"] for c in pot["checkpoints"]]
    report = (out / "report.md").read_text()
    assert "| Method | SIKeD biased adaptive |" in report and "biased line, adaptive mixing" in report


@LONG
def test_teacher_only_control_repeats_the_iterations_on_teacher_data(tmp_path: Path):
    out = tmp_path / "control"
    metrics = run_command(out, "mixing.mode=teacher")
    assert [entry["train"]["alpha"] for entry in metrics["iterations"]] == [1.0, 1.0]
    assert all(entry["train"]["student_count"] == 0 for entry in metrics["iterations"])
    assert (out / "iter2" / "train.jsonl").read_text() == (out / "iter1" / "train.jsonl").read_text()
    manifest = json.loads((out / "manifest.json").read_text())["stages"]
    assert "iter1/sample" not in manifest  # nothing of the student's is trained on: no sampling stage
    base = json.loads((out / "iter2" / "model" / "siked_student.json").read_text())
    assert base["init"] == "previous" and base["previous"]  # the same restarts as SIKeD
    assert "teacher-only control" in (out / "report.md").read_text()
