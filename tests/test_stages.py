"""Stages as child processes: the runner, its log, its errors, the worker and the launcher command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from siked.config import LauncherConfig, load_config
from siked.io import write_jsonl
from siked.names import TEACHER, ModelName, StageName
from siked.stage_requests import StageArgs, StageRequest, TeachArgs, TrainArgs, read_request
from siked.stages import (
    ERROR,
    LOG,
    PARENT_ENV,
    REQUEST,
    RESULT,
    StageError,
    failure_message,
    launch_command,
    run_child,
    run_stage,
)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_child_output_reaches_the_console_and_is_appended_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "stage" / LOG
    console = io.StringIO()
    run_child(python("import sys; print('to stdout'); print('to stderr', file=sys.stderr)"), "s1", log, console)
    run_child(python("print('second attempt')"), "s1", log, console)
    assert "to stdout" in console.getvalue() and "to stderr" in console.getvalue()
    text = log.read_text()
    assert text.index("to stdout") < text.index("second attempt")  # appended, not overwritten
    assert text.count("=== ") == 2 and "stage s1:" in text


def test_a_failing_child_names_the_stage_quotes_its_last_line_and_points_at_the_log(tmp_path: Path) -> None:
    log = tmp_path / LOG
    code = "import sys; print('working'); sys.exit('ValueError: bad row 7 in x.jsonl')"
    with pytest.raises(StageError) as caught:
        run_child(python(code), "iter2/sample", log, io.StringIO())
    message = str(caught.value)
    assert message.startswith("stage iter2/sample failed (exit status 1): ValueError: bad row 7 in x.jsonl")
    assert str(log) in message and "\n" not in message


def test_a_killed_child_says_which_signal(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"stage iter1/train was killed by SIGKILL \(out of memory\?\)"):
        run_child(python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), "iter1/train",
                  tmp_path / LOG, io.StringIO())


def test_the_child_knows_its_parent_and_progress_bars_stay_off_a_pipe(tmp_path: Path) -> None:
    console = io.StringIO()
    code = f"import os; print(os.environ['{PARENT_ENV}'], os.environ.get('TTY_COMPATIBLE'))"
    run_child(python(code), "s", tmp_path / LOG, console)
    assert console.getvalue().split() == [str(os.getpid()), "None"]


def test_launch_command_plain_and_under_accelerate(tmp_path: Path) -> None:
    request = tmp_path / REQUEST
    assert launch_command(request, LauncherConfig()) == [sys.executable, "-m", "siked.stage_worker", str(request)]
    two = launch_command(request, LauncherConfig(num_processes=2, main_process_port=29123))
    assert two[:5] == [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2"]
    assert "--multi_gpu" in two and two[two.index("--main_process_port") + 1] == "29123"
    assert two[-3:] == ["-m", "siked.stage_worker", str(request)]
    ddp = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "ddp.yaml"
    with_file = launch_command(request, LauncherConfig(num_processes=4, accelerate_config=ddp))
    assert with_file[with_file.index("--config_file") + 1] == str(ddp) and "--multi_gpu" not in with_file
    with pytest.raises(StageError, match=r"train.launcher.accelerate_config: .*nope.yaml does not exist"):
        launch_command(request, LauncherConfig(num_processes=2, accelerate_config=tmp_path / "nope.yaml"))


def test_launcher_fields_are_validated() -> None:
    from siked.config import ConfigError

    with pytest.raises(ConfigError, match="train.launcher.num_processes"):
        load_config(None, ["train.launcher.num_processes=0"])
    config = load_config(None, ["train.launcher.num_processes=2", "train.launcher.main_process_port=29511"])
    assert config.train.launcher.num_processes == 2 and config.loop.stage_processes is True


def problems_file(path: Path, count: int = 3) -> Path:
    from siked.data import load_problems

    write_jsonl(path, load_problems("gsm_symbolic", "train", limit=count))
    return path


def test_a_real_stage_runs_in_a_child_and_hands_back_its_outputs(tmp_path: Path) -> None:
    """The reference teacher (no model) as a stage: request in, outputs and info out, log kept."""
    config = load_config(None, ["teacher.strategies=[cot, pot]"])
    problems = problems_file(tmp_path / "train.jsonl")
    stage_dir = tmp_path / "teacher"
    request = StageRequest(TEACHER, config, TeachArgs(problems=problems, out_dir=stage_dir))
    console = io.StringIO()
    outputs, info = run_stage(request, stage_dir, console=type("C", (), {"file": console})())
    assert outputs == [stage_dir / "teacher.jsonl", stage_dir / "teacher_stats.json"]
    assert all(p.is_file() for p in outputs)
    assert info.stats.problems == 3 and info.stats.kept == 6 and set(info.stats.by_strategy) == {"cot", "pot"}
    written = json.loads((stage_dir / REQUEST).read_text())
    assert (written["stage"], written["kind"], written["args"]) == ("teacher", "teach", {
        "problems": str(problems), "out_dir": str(stage_dir)})
    assert json.loads((stage_dir / RESULT).read_text())["info"] == info.dump()
    assert (stage_dir / LOG).read_text().startswith("=== ")


def test_a_stage_that_fails_in_its_child_quotes_the_error(tmp_path: Path) -> None:
    config = load_config(None, [])
    stage_dir = tmp_path / "iter1" / "train"
    request = StageRequest(ModelName(iteration=1).stage("train"), config, TrainArgs(
        data=tmp_path / "missing.jsonl", questions=tmp_path / "q.jsonl", out_dir=tmp_path / "iter1" / "model"))
    with pytest.raises(StageError) as caught:
        run_stage(request, stage_dir, console=type("C", (), {"file": io.StringIO()})())
    message = str(caught.value)
    assert message.startswith("stage iter1/train failed (exit status ")
    assert "missing.jsonl" in message and str(stage_dir / LOG) in message
    assert not (stage_dir / RESULT).exists()


def test_the_worker_rejects_an_unreadable_request_and_an_unknown_kind(tmp_path: Path) -> None:
    bad = tmp_path / REQUEST
    bad.write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "siked.stage_worker", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and f"stage request {bad} cannot be read" in done.stderr
    bad.write_text(json.dumps({"stage": "iter1/eval", "kind": "nope", "config": {}, "args": {}}))
    done = subprocess.run([sys.executable, "-m", "siked.stage_worker", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "stage iter1/eval: unknown kind 'nope'" in done.stderr


def test_a_child_stops_when_the_loop_that_started_it_is_gone() -> None:
    loop = subprocess.Popen(python("import time; time.sleep(600)"))
    code = "from siked.stage_worker import watch_parent; watch_parent(); import time; time.sleep(600)"
    child = subprocess.Popen(python(code), env={**os.environ, PARENT_ENV: str(loop.pid)})
    try:
        time.sleep(1)
        assert child.poll() is None  # the loop is alive: the child works on
        loop.kill()
        loop.wait()
        assert child.wait(timeout=20) == 3
    finally:
        for process in (loop, child):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_run_resumes_with_stages_in_process_or_another_port_but_not_other_training_processes(tmp_path: Path) -> None:
    from siked.rundir import RunDir, RunDirError

    out = f"out={tmp_path / 'run'}"
    RunDir.open(load_config(None, [out]))
    RunDir.open(load_config(None, [out, "loop.stage_processes=false", "train.launcher.main_process_port=29333"]))
    with pytest.raises(RunDirError, match="train.launcher.num_processes: run has 1, now 2"):
        RunDir.open(load_config(None, [out, "train.launcher.num_processes=2"]))


def test_the_workers_own_error_is_shown_once_by_the_loop_and_kept_in_the_log(tmp_path: Path) -> None:
    bad = tmp_path / REQUEST
    bad.write_text(json.dumps({"stage": "teacher", "kind": "nope", "config": {}, "args": {}}))
    console = io.StringIO()
    with pytest.raises(StageError, match=r"^stage teacher failed \(exit status 2\): stage teacher: unknown kind 'nope'.* -- full log"):
        run_child([sys.executable, "-m", "siked.stage_worker", str(bad)], "teacher", tmp_path / LOG, console,
                  error_file=tmp_path / ERROR)
    assert "unknown kind" not in console.getvalue()  # the child left it to the loop
    assert "error: stage teacher: unknown kind 'nope'" in (tmp_path / LOG).read_text()


def test_a_multi_line_stage_error_keeps_its_details_after_the_line_naming_the_stage(tmp_path: Path) -> None:
    (tmp_path / LOG).write_text("")
    message = failure_message("teacher", 2, tmp_path / LOG, "2 request(s) failed for good\n  first: refused")
    first, detail = message.splitlines()
    assert first.startswith("stage teacher failed (exit status 2): 2 request(s) failed for good -- full log: ")
    assert detail == "  first: refused"


def test_a_training_checkpoint_resumes_on_another_port_but_not_on_other_processes() -> None:
    from siked.config import TrainConfig
    from siked.student.train import TrainExample, train_fingerprint

    examples = [TrainExample("What is 1+1?", "cot", "1+1=2. The answer is 2.")]

    def fingerprint(**launcher: object) -> dict:
        cfg = TrainConfig(launcher=LauncherConfig(**launcher))
        return train_fingerprint(examples, "embedded:smollm2", None, cfg, "alpaca", ["cot", "l2m", "pot"])

    assert fingerprint(main_process_port=29501) == fingerprint(main_process_port=29777) == fingerprint()
    assert fingerprint(num_processes=2) != fingerprint()


# --- the typed requests: one model per kind, validated where the loop builds it and where the worker reads it


def train_request(tmp_path: Path) -> StageRequest:
    return StageRequest(ModelName(baseline="pot").stage("train"), load_config(None, []), TrainArgs(
        data=tmp_path / "train.jsonl", questions=tmp_path / "q.jsonl", out_dir=tmp_path / "model", max_steps=4,
        snapshot_at=[2, 4]))


def test_a_request_reads_back_as_the_loop_built_it(tmp_path: Path) -> None:
    from siked.stage_worker import request_kinds

    request = train_request(tmp_path)
    request.write(tmp_path / REQUEST)
    again = read_request(tmp_path / REQUEST, request_kinds())
    assert again == request and isinstance(again.args, TrainArgs)
    assert again.stage.model == ModelName(baseline="pot") and again.args.snapshot_at == [2, 4]


@pytest.mark.parametrize(("change", "refusal"), [
    ({"out_dir": None}, "args.out_dir: Input is not a valid path"),
    ({"max_steps": "many"}, "args.max_steps: Input should be a valid integer"),
    ({"max_step": 4}, "args.max_step: Extra inputs are not permitted"),
], ids=["null", "mistyped", "misspelt"])
def test_the_worker_refuses_a_request_with_a_bad_argument_naming_the_field(
        tmp_path: Path, change: dict, refusal: str) -> None:
    from siked.stage_worker import request_kinds

    data = train_request(tmp_path).to_json()
    data["args"].update(change)
    (tmp_path / REQUEST).write_text(json.dumps(data))
    with pytest.raises(StageError) as caught:
        read_request(tmp_path / REQUEST, request_kinds())
    message = str(caught.value)
    assert message.startswith(f"stage baselines/pot/train: {tmp_path / REQUEST} does not match the train request: ")
    assert refusal in message and "\n" not in message and "pydantic.dev" not in message


def test_a_request_missing_an_argument_is_one_error_line_from_the_worker(tmp_path: Path) -> None:
    data = train_request(tmp_path).to_json()
    del data["args"]["out_dir"]
    (tmp_path / REQUEST).write_text(json.dumps(data))
    with pytest.raises(StageError) as caught:
        run_child([sys.executable, "-m", "siked.stage_worker", str(tmp_path / REQUEST)], "baselines/pot/train",
                  tmp_path / LOG, io.StringIO(), error_file=tmp_path / ERROR)
    assert str(caught.value).startswith(
        "stage baselines/pot/train failed (exit status 2): stage baselines/pot/train: "
        f"{tmp_path / REQUEST} does not match the train request: args.out_dir: Field required -- full log: ")


def test_the_loop_cannot_build_a_request_with_a_bad_argument(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_steps"):
        TrainArgs(data=tmp_path, questions=tmp_path, out_dir=tmp_path, max_steps=0)
    with pytest.raises(ValidationError, match="epochs"):
        TrainArgs(data=tmp_path, questions=tmp_path, out_dir=tmp_path, epochs=2)


def test_a_request_names_a_stage_the_run_directory_knows(tmp_path: Path) -> None:
    from siked.stage_worker import request_kinds

    data = train_request(tmp_path).to_json()
    data["stage"] = "iteration1/train"
    (tmp_path / REQUEST).write_text(json.dumps(data))
    with pytest.raises(StageError, match=r"stage 'iteration1/train': .*'iteration1' is not a model name"):
        read_request(tmp_path / REQUEST, request_kinds())


def test_each_kind_answers_with_its_record_and_a_body_answering_otherwise_is_refused(tmp_path: Path) -> None:
    from siked.metrics import EvalInfo, RoutingInfo, SampleInfo, StageInfo, TeacherInfo, TrainInfo
    from siked.stage_worker import STAGE_KINDS, run_request, stage_body

    answers = {kind: entry.args.info for kind, entry in STAGE_KINDS.items()}
    assert answers == {"teach": TeacherInfo, "train": TrainInfo, "evaluate": EvalInfo, "sample": SampleInfo,
                       "route": RoutingInfo}

    class Odd(StageArgs[TrainInfo]):
        kind = "odd-answer"

    stage_body(Odd)(lambda request, console: ([], StageInfo()))
    try:
        with pytest.raises(StageError, match="its odd-answer body answered with StageInfo, not the TrainInfo"):
            run_request(StageRequest(StageName.parse("iter1/train"), load_config(None, []), Odd()), None)
    finally:
        STAGE_KINDS.pop("odd-answer")
