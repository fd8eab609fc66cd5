"""Every command fails cleanly on bad input: one `error:` line naming the file, line, field,
server or model, exit status 2, no traceback (the CLI handles `SikedError` once).

Each case runs the real CLI in a subprocess (`python -m siked.cli`) with no network
(HF_HUB_OFFLINE) and, for the unreachable server, a port on 127.0.0.1 that nothing listens on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from siked.errors import SikedError

UNKNOWN_MODEL = "nosuch-org/nosuch-model"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Bad input files, shared by the cases."""
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "bad.jsonl").write_text('{"problem_id": "x", "strategy": "cot"\n')
    (root / "badrows.jsonl").write_text('{"question": "What is 1+1?", "answer": "2"}\nnot json\n')
    (root / "badvalue.yaml").write_text("teacher:\n  samples: zero\n")
    (root / "badyaml.yaml").write_text("teacher: [\n")
    (root / "sol.jsonl").write_text(json.dumps(
        {"problem_id": "a", "strategy": "cot", "solution": "The answer is 2.", "question": "1+1?"}) + "\n")
    (root / "unfinished").mkdir()
    (root / "unfinished" / "manifest.json").write_text('{"version": 1}')
    (root / "corrupt").mkdir()
    (root / "corrupt" / "manifest.json").write_text('{"version": 1}')
    (root / "corrupt" / "metrics.json").write_text('{"iterations": [')
    return root


def siked(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "siked.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def error_line(result: subprocess.CompletedProcess, details: bool = False) -> str:
    """The one `error:` line; unless `details`, nothing follows it."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    if not details:
        assert errors[0] == len(lines) - 1, result.stderr
    return lines[errors[0]]


PORT = closed_port()
SERVER = f"http://127.0.0.1:{PORT}/v1"

CASES = {
    # command: [(bad input, arguments, what the error line must say)]
    "data": [
        ("missing file", ["data", "jsonl:test", "--data-file", "nope.jsonl"], "nope.jsonl: no such file"),
        ("malformed row", ["data", "jsonl:test", "--data-file", "badrows.jsonl"], "badrows.jsonl:2: not valid JSON"),
        ("unknown dataset", ["data", "nosuch:test"], "unknown dataset 'nosuch'"),
    ],
    "grade": [
        ("missing file", ["grade", "nope.jsonl", "--data", "gsm_symbolic:test"], "nope.jsonl: no such file"),
        ("malformed row", ["grade", "bad.jsonl", "--data", "gsm_symbolic:test"], "bad.jsonl:1: not valid JSON"),
        ("wrong config value", ["grade", "sol.jsonl", "--data", "gsm_symbolic:test", "--set", "grading.rel_tol=-1"],
         "grading.rel_tol: Input should be greater than 0 (got -1)"),
    ],
    "teach": [
        ("missing config file", ["teach", "nocfg.yaml"], "config file nocfg.yaml does not exist"),
        ("wrong config value", ["teach", "badvalue.yaml"], "invalid config (badvalue.yaml): teacher.samples: Input should be a valid integer"),
        ("config not YAML", ["teach", "badyaml.yaml"], "config file badyaml.yaml is not valid YAML: "),
        ("unknown config field", ["teach", "--set", "teacher.nosuch=1"], "teacher.nosuch: Extra inputs are not permitted"),
        ("missing teacher file", ["teach", "--teacher", "file", "--set", "teacher.file.path=nope.jsonl", "--limit", "2",
                                  "--out", "t_missing"], "nope.jsonl: no such file"),
        ("malformed teacher file", ["teach", "--teacher", "file", "--set", "teacher.file.path=bad.jsonl", "--limit", "2",
                                    "--out", "t_malformed"], "bad.jsonl:1: not valid JSON"),
        ("missing data file", ["teach", "--data", "jsonl:train", "--data-file", "nope.jsonl"], "nope.jsonl: no such file"),
    ],
    "train": [
        ("missing data file", ["train", "--data", "nope.jsonl", "--out", "tr1"], "training data file nope.jsonl does not exist"),
        ("malformed row", ["train", "--data", "bad.jsonl", "--out", "tr2"], "bad.jsonl:1: not valid JSON"),
        ("wrong config value", ["train", "--data", "sol.jsonl", "--out", "tr3", "--set", "train.lora_r=0"], "train.lora_r"),
        ("unknown model", ["train", "--data", "sol.jsonl", "--out", "tr4", "--model", UNKNOWN_MODEL],
         f"cannot load the tokenizer of model '{UNKNOWN_MODEL}'"),
        ("missing previous", ["train", "--data", "sol.jsonl", "--out", "tr5", "--previous", "nope"],
         "previous iteration nope is not a directory"),
    ],
    "sample": [
        ("unknown model", ["sample", "--model", UNKNOWN_MODEL, "--data", "gsm_symbolic:test", "--limit", "1", "--out", "s.jsonl"],
         f"cannot load the tokenizer of model '{UNKNOWN_MODEL}'"),
        ("missing GGUF", ["sample", "--model", "./nope.gguf", "--data", "gsm_symbolic:test", "--limit", "1", "--out", "s.jsonl"],
         "model './nope.gguf' not found"),
        ("missing data file", ["sample", "--data", "jsonl:test", "--data-file", "nope.jsonl", "--out", "s.jsonl"], "nope.jsonl: no such file"),
        ("wrong config value", ["sample", "--data", "gsm_symbolic:test", "--out", "s.jsonl", "--set", "generation.top_p=2"],
         "generation.top_p: Input should be less than or equal to 1"),
    ],
    "run": [
        ("wrong config value", ["run", "--set", "mixing.mode=nosuch", "--out", "r1"], "mixing.mode: Input should be"),
        ("missing data file", ["run", "--set", "data.train.name=jsonl", "--set", "data.train.file=nope.jsonl", "--out", "r2"],
         "nope.jsonl: no such file"),
        ("malformed data file", ["run", "--set", "data.train.name=jsonl", "--set", "data.train.file=badrows.jsonl",
                                 "--out", "r3"], "badrows.jsonl:2: not valid JSON"),
        ("missing teacher file", ["run", "--set", "teacher.backend=file", "--set", "teacher.file.path=nope.jsonl", "--out", "r4"],
         "nope.jsonl: no such file"),
        ("no training question left", ["run", "--set", "data.train.limit=2", "--out", "r5"],
         "data.train: all 2 problems loaded went to validation (data.validation_fraction 0.5)"),
    ],
    "eval": [
        ("unknown model", ["eval", UNKNOWN_MODEL, "--data", "gsm_symbolic:test", "--limit", "1"],
         f"cannot load the tokenizer of model '{UNKNOWN_MODEL}'"),
        ("unfinished run", ["eval", "unfinished"], "unfinished/metrics.json does not exist"),
        ("corrupt metrics", ["eval", "corrupt"], "corrupt/metrics.json cannot be read"),
        ("missing data file", ["eval", UNKNOWN_MODEL, "--data", "jsonl:test", "--data-file", "nope.jsonl"], "nope.jsonl: no such file"),
    ],
    "report": [
        ("missing run", ["report", "nope_run"], "run directory nope_run does not exist"),
        ("corrupt metrics", ["report", "corrupt"], "corrupt/metrics.json is not valid JSON"),
    ],
    "compare": [
        ("missing run", ["compare", "nope_run", "corrupt"], "run directory nope_run does not exist"),
    ],
}


@pytest.mark.parametrize(
    ("args", "expected"),
    [pytest.param(args, expected, id=f"{command}: {label}") for command, cases in CASES.items()
     for label, args, expected in cases],
)
def test_bad_input_is_one_error_line_and_exit_2(work: Path, args: list[str], expected: str) -> None:
    assert expected in error_line(siked(work, *args))


@pytest.mark.parametrize("command", ["teach", "run"])
def test_an_unreachable_teacher_server_is_one_error_line(work: Path, command: str) -> None:
    settings = ["--set", "teacher.backend=openai", "--set", f"teacher.openai.base_url={SERVER}", "--set", "teacher.openai.model=m",
                "--set", "teacher.openai.max_retries=0", "--out", f"unreachable_{command}"]
    if command == "teach":
        settings += ["--limit", "1"]
    line = error_line(siked(work, command, *settings), details=True)  # the failed requests follow it
    assert f"request(s) to {SERVER}/chat/completions failed for good" in line


def test_an_unknown_model_inside_the_loop_keeps_the_finished_stages(work: Path) -> None:
    result = siked(work, "run", "--set", f"student.model={UNKNOWN_MODEL}", "--out", "run_unknown_model")
    assert f"cannot load the tokenizer of model '{UNKNOWN_MODEL}'" in error_line(result)
    manifest = json.loads((work / "run_unknown_model" / "manifest.json").read_text())
    assert manifest["stages"]["teacher"]["status"] == "done"
    assert (work / "run_unknown_model" / manifest["stages"]["teacher"]["outputs"][0]).is_file()


def test_every_project_error_is_a_siked_error() -> None:
    from siked.config import ConfigError
    from siked.data import DataError
    from siked.evaluation import EvaluationError
    from siked.export import ExportError
    from siked.io import RecordError
    from siked.report import ReportError
    from siked.rundir import RunDirError
    from siked.sandbox import SandboxError
    from siked.student import ModelError, TrainDataError
    from siked.teachers import TeacherError
    from siked.tracking import TrackingError

    for error in (ConfigError, DataError, EvaluationError, RecordError, ReportError, RunDirError, SandboxError,
                  ModelError, TrainDataError, TeacherError, ExportError, TrackingError):
        assert issubclass(error, SikedError), error


def test_the_error_module_is_light() -> None:
    heavy = ("torch", "transformers", "datasets", "matplotlib", "sympy", "httpx", "siked.config")
    code = f"import sys, siked.errors; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
