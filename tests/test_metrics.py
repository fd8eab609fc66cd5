"""The metrics.json schema: versions, the writer's strictness, the reader's tolerance, the best-iteration rule."""

import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from siked import __version__
from siked.cli import app
from siked.evaluation import routing, sample_summary, summarize
from siked.metrics import (
    BEST_BY_VALIDATION,
    BEST_IS_LAST,
    SCHEMA_VERSION,
    EvalResult,
    Metrics,
    MetricsError,
    RoutingResult,
    StudentStats,
    TrainStats,
    choose_best,
    load_metrics,
    new_metrics,
    write_metrics,
)
from siked.records import Problem, Solution, Verdict


def old_metrics() -> dict:
    """A metrics.json as siked 0.1.0 wrote it, before schema versions were recorded."""
    result = {"total": 4, "correct": 1, "accuracy": 0.25, "by_strategy": {"cot": {"total": 4, "correct": 1, "accuracy": 0.25}},
              "strategy_distribution": {"cot": 1.0}, "by_status": {"ok": 4}}
    return {
        "run": {"out": "runs/x", "method": "siked", "teacher_backend": "reference", "reference_solutions": True,
                "student_model": "embedded:smollm2", "mixing": {"mode": "adaptive"}, "started": "2026-11-22T10:00:00",
                "finished": "2026-11-22T10:10:00", "wall_s": 600.0, "baselines": [], "routing": False},
        "teacher": {"backend": "reference", "strategy_counts": {"cot": 3}, "by_strategy": {"cot": {"kept": 3}}},
        "iterations": [
            {"iteration": 2, "train": {"examples": 3, "alpha": 0.5, "seconds": 1.0}, "eval": {"validation": result}},
            {"iteration": 1, "train": {"examples": 3, "alpha": 1.0}, "eval": {"validation": result},
             "kl_train_student": 0.1},
        ],
        "best_iteration": 1, "best_model": "iter1/model", "stopped": "max_iterations (2)", "baselines": {},
    }


def write(run_dir: Path, data: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(data))
    return run_dir


def test_a_run_written_before_versions_still_loads(tmp_path: Path) -> None:
    metrics = load_metrics(write(tmp_path / "run", old_metrics()))
    assert metrics.schema_version == 0
    assert [it.iteration for it in metrics.iterations] == [1, 2]
    assert metrics.best() == (metrics.iterations[0], True)
    assert metrics.teacher is not None and metrics.teacher.by_strategy["cot"].kept == 3


def test_a_newer_schema_is_refused_naming_the_version_that_wrote_it(tmp_path: Path) -> None:
    data = {**old_metrics(), "schema_version": SCHEMA_VERSION + 1, "siked_version": "9.9.0"}
    with pytest.raises(MetricsError) as info:
        load_metrics(write(tmp_path / "run", data))
    message = str(info.value)
    assert "metrics.json" in message and "9.9.0" in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message and f"up to {SCHEMA_VERSION}" in message


def test_the_reader_ignores_unknown_keys_but_the_writer_refuses_them(tmp_path: Path) -> None:
    data = old_metrics()
    data["iterations"][0]["train"]["from_the_future"] = 1
    data["shiny"] = {"new": True}
    metrics = load_metrics(write(tmp_path / "run", data))
    assert metrics.iterations[1].train is not None and metrics.iterations[1].train.alpha == 0.5
    with pytest.raises(ValidationError, match="from_the_future"):
        TrainStats(alpha=0.5, from_the_future=1)
    data["iterations"][0]["train"]["alpha"] = "lots"
    with pytest.raises(MetricsError, match=r"iterations\.0\.train\.alpha"):
        load_metrics(write(tmp_path / "run", data))


def test_written_metrics_carry_the_version_and_round_trip(tmp_path: Path) -> None:
    metrics = new_metrics(iterations=[{"iteration": 1, "train": {"alpha": 1.0}}], best_iteration=None)
    write_metrics(tmp_path / "metrics.json", metrics)
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["siked_version"] == __version__
    assert data["best_iteration"] is None and "stopped" not in data  # set-to-None stays, unset stays absent
    assert load_metrics(tmp_path).iterations[0].train == TrainStats(alpha=1.0)


def test_best_iteration_rule_is_the_earliest_highest_validation_accuracy() -> None:
    assert choose_best([("iter1", 0.5), ("iter2", 0.75), ("iter3", 0.75)]) == ("iter2", BEST_BY_VALIDATION)
    assert choose_best([("iter1", None), ("iter2", 0.0)]) == ("iter2", BEST_BY_VALIDATION)
    assert choose_best([("iter1", None)]) == ("iter1", BEST_IS_LAST)  # no validation set
    unrecorded = Metrics.read({**old_metrics(), "best_iteration": None})
    assert unrecorded.best() == (unrecorded.iterations[0], False)


def test_the_statistics_are_schema_records() -> None:
    verdicts = [Verdict(problem_id="a", strategy="cot", status="ok", correct=True),
                Verdict(problem_id="b", strategy="none", status="invalid", correct=False)]
    problems = [Problem(id=p, question="q", answer=1.0, answer_text="1", source="t", split="test") for p in "ab"]
    solutions = [Solution(problem_id="a", strategy="cot", solution="x")]
    assert EvalResult.model_validate(summarize(verdicts)).rate == 0.5
    assert StudentStats.model_validate(sample_summary(problems, solutions, verdicts)).solved_questions == 1
    assert RoutingResult.model_validate(routing(problems, {"cot": verdicts})).oracle_accuracy == 0.5


def test_cli_eval_of_an_unfinished_run_names_the_missing_file(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text("{}")
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--overview"])
    assert result.exit_code == 2
    assert "metrics.json does not exist" in result.output and "Traceback" not in result.output
    write(run_dir, old_metrics())
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--overview", "--json"])
    assert result.exit_code == 0, result.output
    overview = json.loads(result.output)
    assert [row["iteration"] for row in overview["iterations"]] == [1, 2]
    assert overview["best_model"] == "iter1/model" and overview["teacher"] == {"cot": 1.0}


def test_validation_curves_put_iterations_at_their_cumulative_steps_beside_baseline_checkpoints():
    from siked.metrics import Metrics, run_label, validation_curves

    metrics = Metrics.read({
        "run": {"method": "siked", "mixing": {"line": "biased", "mode": "all"}},
        "iterations": [
            {"iteration": 1, "train": {"steps": 10}, "eval": {"validation": {"total": 4, "correct": 1}}},
            {"iteration": 2, "train": {"steps": 12}, "eval": {"validation": {"total": 4, "correct": 3}}},
            {"iteration": 3, "train": {"steps": 8}},  # not evaluated yet: no point
        ],
        "baselines": {"pot": {"checkpoints": [{"step": 10, "validation": 0.5}, {"step": 22, "validation": 0.25}],
                              "chosen_step": 10}},
    })
    assert run_label(metrics.run) == "SIKeD biased all"
    curves = validation_curves(metrics)
    assert [(p.step, p.validation) for p in curves["SIKeD biased all"]] == [(10, 0.25), (22, 0.75)]
    assert [(p.step, p.validation) for p in curves["pot"]] == [(10, 0.5), (22, 0.25)]
    control = Metrics.read({"run": {"mixing": {"line": "unbiased", "mode": "teacher"}}, "iterations": []})
    assert run_label(control.run) == "teacher-only control (unbiased)" and validation_curves(control) == {}


def recorded_run() -> dict:
    """A manifest's stages as the loop records them: two iterations and a baseline with two snapshots."""
    def done(info: dict, started: str = "2026-11-22T10:00:00+00:00", finished: str = "2026-11-22T10:00:10+00:00"):
        return {"status": "done", "started": started, "finished": finished, "outputs": [], "info": info}

    def scores(validation: float) -> dict:
        return {"validation": {"total": 2, "correct": round(2 * validation), "accuracy": validation,
                               "strategy_distribution": {"cot": 0.5, "pot": 0.5}}}

    hf = {"backend": "hf", "backend_choice": "auto: vLLM is not installed"}
    mix = {"train": {"teacher_count": 6, "student_count": 2, "alpha": 0.75, "strategy_counts": {"cot": 5, "pot": 3}}}
    return {
        "data": done({"counts": {"train": 8, "validation": 2}}),
        "teacher": done({"stats": {"backend": "reference", "by_strategy": {"cot": {"kept": 4}, "pot": {"kept": 2}}}}),
        "iter1/mix": done(mix),
        "iter1/train": done({"steps": 2, "train_loss": 1.5, "examples": 8, "processes": 1, "seconds": 10.0}),
        "iter1/eval": done({"eval": scores(0.5), **hf}),
        "iter1/sample": done({"student": {"samples": 16, "correct": 3, "strategy_counts": {"cot": 6, "pot": 2},
                                          "by_mode": {"free": {"strategy_counts": {"cot": 6, "pot": 2}}}}, **hf}),
        "iter2/mix": done(mix),
        "iter2/train": done({"steps": 3}),
        "iter2/eval": done({"eval": scores(1.0), "backend": "vllm", "backend_choice": "generation.backend is vllm"},
                           finished="2026-11-22T10:05:00+00:00"),
        "baselines/pot/mix": done(mix),
        "baselines/pot/train": done({"steps": 5, "snapshots": [2, 5]}),
        "baselines/pot/step-2/eval": done({"eval": scores(0.5)}),
        "baselines/pot/step-5/eval": done({"eval": scores(0.5)}),
        "baselines/pot/eval": done({"eval": scores(0.5)}),
        "routing": {"status": "running", "started": "2026-11-22T10:06:00+00:00"},
        "later/kind-of-stage": done({"from": "a newer siked"}),
    }


def test_metrics_are_built_from_the_typed_stage_records_of_a_manifest(tmp_path: Path) -> None:
    from siked.config import SikedConfig
    from siked.metrics.results import build_metrics
    from siked.names import ModelName, StageName
    from siked.rundir import RunDir

    results = RunDir(tmp_path, {"created": "2026-11-22T09:59:00+00:00", "stages": recorded_run()}).results()
    pot = ModelName(baseline="pot")
    assert StageName.parse("routing") not in results.done and len(results.entries) == 15  # the unknown key left out
    assert results.iterations() == [ModelName(iteration=1), ModelName(iteration=2)]
    assert results.cumulative_steps(results.iterations()) == [2, 5]
    assert results.chosen_step(pot) == 2 and results.chosen(pot) == pot.snapshot(2)  # a tie: the earliest
    config = SikedConfig(loop={"baselines": ["pot"]})
    metrics = build_metrics(results, config, stopped="max_iterations (2)", disk=lambda model: (1.5, False),
                            now="2026-11-22T11:00:00+00:00")
    assert (metrics.best_iteration, metrics.best_model) == (2, "iter2/model")
    first, second = metrics.iterations
    assert first.train.steps == 2 and first.train.alpha == 0.75 and first.train.examples == 8
    assert first.generation_backend == {"eval": "hf", "sample": "hf"} and second.generation_backend == {"eval": "vllm"}
    # the mix's 5 cot, 3 pot against the free samples' 6, 2 over cot, l2m, pot, add-one smoothed
    assert first.kl_train_samples == pytest.approx(5 / 8 * math.log(5 / 8 / (7 / 11)) + 3 / 8 * math.log(3 / 8 / (3 / 11)))
    assert second.student is None and second.kl_train_samples is None
    assert first.disk_mb == 1.5 and first.merged_pruned is False
    assert metrics.run.generation_backend == "hf (auto: vLLM is not installed); vllm (generation.backend is vllm)"
    assert metrics.run.finished == "2026-11-22T10:05:00+00:00" and metrics.run.wall_s == 13 * 10 + 300  # iter2/eval took 5 minutes
    assert metrics.teacher.strategy_counts == {"cot": 4, "pot": 2}
    baseline = metrics.baselines["pot"]
    assert baseline.chosen_step == 2 and [c.model for c in baseline.checkpoints] == [
        "baselines/pot/model/snapshots/step-2", "baselines/pot/model/snapshots/step-5"]
    assert metrics.routing == {} and "routing" not in metrics.dump()
    write_metrics(tmp_path / "metrics.json", metrics)
    assert load_metrics(tmp_path) == metrics


def test_a_malformed_stage_entry_is_named_not_skipped(tmp_path: Path) -> None:
    from siked.rundir import RunDir, RunDirError

    stages = recorded_run()
    stages["iter1/train"]["outputs"] = 5
    with pytest.raises(RunDirError, match=r"manifest.json: stage 'iter1/train': outputs: Input should be a valid list"):
        RunDir(tmp_path, {"created": "2026-11-22T09:59:00+00:00", "stages": stages}).results()


def test_stage_records_and_metrics_blocks_stay_apart() -> None:
    """A `StageInfo` (the manifest's record of one stage, e.g. `TrainInfo`) is never a block of
    metrics.json, whose training block is `TrainStats` (the mix and the training joined)."""
    import typing

    from siked import metrics

    stage_records = {cls for cls in vars(metrics).values() if isinstance(cls, type) and issubclass(cls, metrics.StageInfo)}
    assert all(cls.__name__.endswith("Info") for cls in stage_records)

    def nested(model: type, seen: set[type]) -> set[type]:
        for field in model.model_fields.values():
            for kind in [field.annotation, *typing.get_args(field.annotation)]:
                for inner in [kind, *typing.get_args(kind)]:
                    if isinstance(inner, type) and issubclass(inner, metrics.Record) and inner not in seen:
                        seen.add(inner)
                        nested(inner, seen)
        return seen

    blocks = nested(Metrics, set())
    assert TrainStats in blocks and not blocks & stage_records
