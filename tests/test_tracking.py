"""Experiment tracking: the loop's metrics and the trainer's logs reach TensorBoard and W&B files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from siked.config import ConfigError, load_config
from siked.tracking import Tracker, TrackingError, check_installed, iteration_scalars

ENTRY = {
    "iteration": 2,
    "train": {"teacher_count": 6, "student_count": 2, "alpha": 0.75, "steps": 2, "train_loss": 1.5,
              "strategy_counts": {"cot": 4, "pot": 4}},
    "eval": {"validation": {"accuracy": 0.5, "strategy_distribution": {"cot": 0.5, "pot": 0.5}},
             "gsm_symbolic:test": {"accuracy": 0.25, "strategy_distribution": {"cot": 1.0}}},
    "student": {"samples": 8, "correct": 3, "questions": 4, "solved_questions": 1, "strategy_counts": {"pot": 8}},
    "kl_train_samples": 0.1,
    "kl_train_validation": 0.2,
}


def event_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_iteration_scalars_flatten_every_loop_metric():
    scalars = iteration_scalars(ENTRY, {"cost": 0.25, "prompt_tokens": 100, "completion_tokens": None})
    assert scalars["eval/validation/accuracy"] == 0.5
    assert scalars["eval/gsm_symbolic:test/accuracy"] == 0.25
    assert scalars["eval/validation/choice/pot"] == 0.5
    assert scalars["mix/alpha"] == 0.75
    assert scalars["mix/share/cot"] == 0.5
    assert scalars["student/solved_share"] == 0.25
    assert scalars["student/choice/pot"] == 1.0
    assert scalars["kl/train_samples"] == 0.1 and scalars["kl/train_validation"] == 0.2
    assert scalars["teacher/cost"] == 0.25 and scalars["teacher/prompt_tokens"] == 100
    assert "teacher/completion_tokens" not in scalars  # unknown cost/tokens are left out, not zero


def test_report_to_field_accepts_one_name_and_refuses_none_with_a_tracker():
    assert load_config(None, ["tracking.report_to=tensorboard"]).tracking.report_to == ["tensorboard"]
    assert load_config(None, []).tracking.report_to == ["none"]
    with pytest.raises(ConfigError, match="tracking.report_to"):
        load_config(None, ["tracking.report_to=[none, wandb]"])
    with pytest.raises(ConfigError, match="tracking.report_to"):
        load_config(None, ["tracking.report_to=[mlflow]"])


def test_missing_tracker_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    with pytest.raises(TrackingError) as info:
        check_installed(["tensorboard", "wandb"])
    assert str(info.value) == "tracking.report_to: wandb is not installed; install the extra: pip install 'siked[tracking]'"
    # the loop refuses before any work: no run directory is made
    from siked.loop import run

    config = load_config(None, [f"out={tmp_path / 'run'}", "tracking.report_to=[wandb]"])
    with pytest.raises(TrackingError, match=r"siked\[tracking\]"):
        run(config)
    assert not (tmp_path / "run").exists()


def test_missing_tracker_cli_error(tmp_path: Path):
    script = (
        "import sys; sys.modules['wandb'] = None\n"
        "from siked.cli import app\n"
        f"app(['run', '--out', {str(tmp_path / 'run')!r}, '--set', 'tracking.report_to=[wandb]'])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: tracking.report_to: wandb is not installed; install the extra: pip install 'siked[tracking]'"
    )


def test_loop_metrics_read_back_with_tensorboard(tmp_path: Path):
    pytest.importorskip("tensorboard", reason="the tracking extra is not installed")
    tracker = Tracker(["tensorboard"], "siked", tmp_path / "run")
    tracker.log(1, {"eval/validation/accuracy": 0.25, "mix/alpha": 1.0})
    tracker.log(2, iteration_scalars(ENTRY, {}))
    tracker.close()
    scalars = event_scalars(tmp_path / "run" / "tracking" / "loop")
    assert scalars["eval/validation/accuracy"] == [(1, 0.25), (2, 0.5)]
    assert scalars["mix/alpha"] == [(1, 1.0), (2, 0.75)]
    assert scalars["student/solved_share"] == [(2, 0.25)]


def wandb_records(run_file: Path) -> list[bytes]:
    """The records of a W&B run file: a 7-byte header, then 32 KiB blocks of chunks, each chunk
    a 7-byte header (CRC32, little-endian length, type: 1 full, 2 first, 3 middle, 4 last)."""
    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, position, block = [], b"", 7, 32768
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            records.append(pending)
    return records


def wandb_history(run_file: Path) -> list[dict]:
    """The `history` rows of an offline W&B run file, parsed with wandb's own protobuf schema."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for data in wandb_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def test_loop_metrics_in_wandb_offline_run_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("wandb", reason="the tracking extra is not installed")
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = Tracker(["wandb"], "siked-test", tmp_path / "myrun")
    for iteration in (1, 2):  # what the loop does: a training stage, then the iteration's metrics
        with tracker.training(f"iter{iteration}"):
            assert wandb.run is not None and wandb.run.name == f"myrun/iter{iteration}"
            wandb.log({"train/loss": 3.0 - iteration})  # what the transformers callback does
        assert wandb.run is None
        tracker.log(iteration, {"eval/validation/accuracy": iteration / 4})
    tracker.close()
    runs = wandb_runs(tmp_path / "myrun" / "tracking" / "wandb")
    assert set(runs) == {"myrun/iter1", "myrun/iter2", "myrun/loop"}
    assert {group for group, _ in runs.values()} == {"myrun"}
    assert [r["train/loss"] for r in runs["myrun/iter2"][1]] == [1.0]
    assert [(r["iteration"], r["eval/validation/accuracy"]) for r in runs["myrun/loop"][1]] == [(1, 0.25), (2, 0.5)]


def wandb_runs(root: Path) -> dict[str, tuple[str, list[dict]]]:
    """display name -> (group, history rows) of the offline W&B runs under `root`; a run resumed
    offline has one folder per opening, read in order."""
    from wandb.proto import wandb_internal_pb2

    runs: dict[str, tuple[str, list[dict]]] = {}
    for run_file in sorted(root.glob("offline-run-*/run-*.wandb"), key=lambda p: (p.stat().st_mtime, p.name)):
        name = group = ""
        for data in wandb_records(run_file):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            if record.WhichOneof("record_type") == "run":
                name, group = record.run.display_name, record.run.run_group
        runs[name] = (group, runs.get(name, ("", []))[1] + wandb_history(run_file))
    return runs


@pytest.mark.slow
def test_tiny_run_reports_trainer_logs_and_loop_metrics(tiny_run: Path):
    tracking = tiny_run / "tracking"
    for stage in ("iter1", "iter2"):  # the trainer's own per-step logs, one log dir per stage
        trainer = event_scalars(tracking / stage)
        assert [step for step, _ in trainer["train/loss"]] == [1, 2]
    loop = event_scalars(tracking / "loop")
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for entry in metrics["iterations"]:
        step = entry["iteration"]
        for key, summary in entry["eval"].items():
            assert (step, pytest.approx(summary["accuracy"])) in loop[f"eval/{key}/accuracy"]
        assert (step, pytest.approx(entry["train"]["alpha"])) in loop["mix/alpha"]
        assert (step, pytest.approx(entry["kl_train_validation"], abs=1e-6)) in loop["kl/train_validation"]
    student = metrics["iterations"][0]["student"]
    assert loop["student/solved_share"] == [(1, pytest.approx(student["solved_questions"] / student["questions"]))]
    if not (tracking / "wandb").is_dir():
        pytest.skip("wandb is not installed: only TensorBoard was checked")
    runs = wandb_runs(tracking / "wandb")
    assert set(runs) == {"run/iter1", "run/iter2", "run/loop"}
    assert {group for group, _ in runs.values()} == {"run"}  # grouped under the siked run
    assert [row["train/loss"] is not None for row in runs["run/iter1"][1] if "train/loss" in row] == [True, True]
    accuracy = [(r["iteration"], r["eval/validation/accuracy"]) for r in runs["run/loop"][1]
                if "eval/validation/accuracy" in r]
    assert [step for step, _ in accuracy] == [1, 1, 2]  # after iteration 1's eval, its sampling, iteration 2's eval


TRACKIO_SCRIPT = """
import json, sys
from pathlib import Path
from siked.tracking import Tracker
from trackio.sqlite_storage import SQLiteStorage

tracker = Tracker(["trackio"], "siked-test", Path(sys.argv[1]))
tracker.log(1, {"eval/validation/accuracy": 0.25})
tracker.log(2, {"eval/validation/accuracy": 0.5})
tracker.close()
logs = SQLiteStorage.get_logs("siked-test", "myrun/loop")
print(json.dumps([(row["step"], row["eval/validation/accuracy"]) for row in logs]))
"""


def test_loop_metrics_in_trackio_local_store(tmp_path: Path):
    pytest.importorskip("trackio", reason="the tracking extra is not installed")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio")}  # read at import: a process of its own
    result = subprocess.run([sys.executable, "-c", TRACKIO_SCRIPT, str(tmp_path / "myrun")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [[1, 0.25], [2, 0.5]]
    assert list((tmp_path / "trackio").glob("*.db"))


def test_training_stage_gets_its_own_log_dir_and_run_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("tensorboard", reason="the tracking extra is not installed")
    from siked.config import TrainConfig
    from siked.student.train import sft_config

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    tracker = Tracker(["tensorboard"], "siked", tmp_path / "myrun")
    with tracker.training("baselines/combined") as trainer_args:
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "myrun" / "tracking" / "baselines-combined")
        args = sft_config(tmp_path / "model", TrainConfig(), **trainer_args)
        assert args.report_to == ["tensorboard"] and args.run_name == "myrun/baselines-combined"
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ  # restored after the stage
    untracked = Tracker(["none"], "siked", tmp_path / "other")
    with untracked.training("iter1") as trainer_args:
        assert sft_config(tmp_path / "model", TrainConfig(), **trainer_args).report_to == []


def test_a_training_stage_in_a_child_process_gets_its_trackers_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """With stages as processes the loop opens no W&B run for the stage: the child's callback does,
    from the WANDB_* variables it inherits (project, the siked run as group, files under tracking/)."""
    wandb = pytest.importorskip("wandb", reason="the tracking extra is not installed")
    for key in ("TENSORBOARD_LOGGING_DIR", "WANDB_PROJECT", "WANDB_RUN_GROUP", "WANDB_DIR", "WANDB_JOB_TYPE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_PROJECT", "someone-elses")
    tracker = Tracker(["tensorboard", "wandb"], "siked-test", tmp_path / "myrun")
    with tracker.training("iter2", child_process=True) as trainer_args:
        assert wandb.run is None
        assert os.environ["WANDB_PROJECT"] == "siked-test" and os.environ["WANDB_RUN_GROUP"] == "myrun"
        assert os.environ["WANDB_DIR"] == str(tmp_path / "myrun" / "tracking")
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "myrun" / "tracking" / "iter2")
        assert trainer_args["run_name"] == "myrun/iter2"
    assert os.environ["WANDB_PROJECT"] == "someone-elses"  # restored after the stage
    assert "WANDB_RUN_GROUP" not in os.environ and "TENSORBOARD_LOGGING_DIR" not in os.environ
