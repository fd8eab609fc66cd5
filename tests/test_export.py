"""`siked export data|model` on a finished tiny run: the outputs load with `datasets`,
`transformers` and PEFT, reproduce the run, and push to a local stand-in of the Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from siked.io import read_jsonl
from siked.records import Problem, Solution

pytestmark = pytest.mark.slow


def siked(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siked.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def card(path: Path) -> tuple[dict, str]:
    _, header, body = path.read_text(encoding="utf-8").split("---\n", 2)
    return yaml.safe_load(header), body


@pytest.fixture(scope="module")
def data_export(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "data"
    result = siked("export", "data", str(tiny_run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    return out


def test_export_data_loads_with_datasets(tiny_run: Path, data_export: Path):
    from datasets import load_dataset

    teacher = load_dataset(str(data_export), "teacher", split="train")
    kept = read_jsonl(tiny_run / "teacher" / "teacher.jsonl", Solution)
    assert len(teacher) == len(kept)
    for column in ("prompt", "completion", "messages", "strategy", "source", "problem_id", "verdict", "correct"):
        assert column in teacher.column_names
    first = teacher[0]
    assert first["completion"].startswith(f"[{first['strategy']}]: ")
    assert "### Response:" in first["prompt"] and first["question"] in first["prompt"]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][1]["content"] == first["completion"]
    assert set(teacher["source"]) == {"teacher"} and set(teacher["verdict"]) == {"ok"} and all(teacher["correct"])

    samples = load_dataset(str(data_export), "teacher_samples", split="train")
    assert len(samples) >= len(teacher) and None not in samples["verdict"]

    mix = load_dataset(str(data_export), "mix")
    assert sorted(mix) == ["iter1", "iter2"]
    for name in ("iter1", "iter2"):
        records = read_jsonl(tiny_run / name / "train.jsonl", Solution)
        assert len(mix[name]) == len(records)
        assert mix[name]["source"].count("student") == sum(r.origin.startswith("student") for r in records)
        assert set(mix[name]["iteration"]) == {int(name[4:])}
        assert all(mix[name]["correct"])  # the mix holds only solutions that were graded correct
    assert set(mix["iter1"]["source"]) == {"teacher"}

    metadata, body = card(data_export / "README.md")
    assert {c["config_name"] for c in metadata["configs"]} == {"teacher", "teacher_samples", "mix"}
    assert metadata["license"] == "apache-2.0"  # gsm_symbolic only
    for text in ("backend: `reference`", "## Prompts", "## Filter", "## Solve rates", "| cot |", "adaptive"):
        assert text in body


def test_export_data_pushes_to_a_local_hub(tiny_run: Path, tmp_path: Path):
    from hub_stand_in import HubStandIn

    out = tmp_path / "pushed"
    with HubStandIn() as hub:
        result = siked("export", "data", str(tiny_run), "--out", str(out), "--push-to-hub", "me/siked-data",
                       env={"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_standin"})
        assert result.returncode == 0, result.stderr
        assert f"pushed to {hub.url}/datasets/me/siked-data/commit/" in result.stderr
        files = hub.repos[("dataset", "me/siked-data")]
        local = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert files == local and "teacher/train.parquet" in files
        assert {auth for _, _, auth in hub.requests} == {"Bearer hf_standin"}
        assert hub.cards and all(card["configs"][0]["config_name"] == "teacher" for card in hub.cards)


def test_export_bad_inputs_are_one_line_errors(tiny_run: Path, data_export: Path, tmp_path: Path):
    result = siked("export", "data", str(tmp_path), "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path} is not a siked run directory (no manifest.json)"
    result = siked("export", "data", str(tiny_run), "--out", str(data_export))
    assert result.stderr.strip() == f"error: --out {data_export} exists and is not empty; choose a new folder"
    result = siked("export", "model", str(tiny_run), "--iteration", "7", "--out", str(tmp_path / "m"))
    assert result.stderr.strip() == "error: --iteration '7': expected best or 1..2 (the run's iterations)"
    assert not (tmp_path / "m").exists()
    result = siked("export", "data", str(tiny_run), "--out", str(tmp_path / "d"), "--push-to-hub", "no-owner")
    assert result.returncode == 2 and "expected OWNER/NAME" in result.stderr
    assert (tmp_path / "d" / "README.md").is_file()  # the export itself is kept


def greedy_answers(model, tokenizer, run_dir: Path, problems: list[Problem]) -> list[tuple[str, str]]:
    """The run's own greedy decoding (siked's HF backend) with a model loaded from outside siked."""
    from siked.config import load_config
    from siked.student.generate import HFBackend, Student, stop_strings
    from siked.student.models import StudentSource

    config = load_config(run_dir / "config.yaml")
    style = config.student.prompt_style
    backend = HFBackend(model, tokenizer, config.generation, stop_strings(style))
    student = Student(StudentSource(spec="export", base="export"), backend, config.generation, style,
                      strategies=config.teacher.strategies, progress=False)
    solutions = student.generate(problems, greedy=True).solutions
    return [(s.strategy, s.solution) for s in solutions]


def run_answers(run_dir: Path, iteration: str, problems: list[Problem]) -> list[tuple[str, str]]:
    rows = {r["problem_id"]: r for r in map(json.loads, (run_dir / iteration / "eval" / "validation.jsonl").open())}
    return [(rows[p.id]["strategy"], rows[p.id]["solution"]) for p in problems]


def test_export_model_merged_loads_with_transformers_and_reproduces_the_run(
    tiny_run: Path, tmp_path: Path, model_cache: Path
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from siked.student.models import resolve_dtype

    out = tmp_path / "merged"
    result = siked("export", "model", str(tiny_run), "--merge", "--out", str(out))
    assert result.returncode == 0, result.stderr
    best = json.loads((tiny_run / "metrics.json").read_text())["best_model"].removesuffix("/model")
    assert not (out / "adapter_config.json").exists() and (out / "config.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(out, dtype=resolve_dtype("auto", "cpu")).eval()
    problems = read_jsonl(tiny_run / "data" / "validation.jsonl", Problem)
    assert greedy_answers(model, AutoTokenizer.from_pretrained(out), tiny_run, problems) == run_answers(
        tiny_run, best, problems)

    metadata, body = card(out / "README.md")
    assert metadata["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert metadata["library_name"] == "transformers" and metadata["license"] == "apache-2.0"
    for text in ("method: `siked`, mixing `adaptive`", "95% Wilson interval", "| validation |",
                 "[pot]", "### Response:", "## Licences", "data `gsm_symbolic`: apache-2.0", "teacher: `reference`"):
        assert text in body, text


def test_export_model_adapter_loads_with_peft_and_reproduces_the_run(
    tiny_run: Path, tmp_path: Path, model_cache: Path
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from siked.student.models import cast_weights, resolve_dtype

    out = tmp_path / "adapter"
    result = siked("export", "model", str(tiny_run), "--iteration", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(out / "base")  # iteration 1 merged in, shipped along
    dtype = resolve_dtype("auto", "cpu")
    base = AutoModelForCausalLM.from_pretrained(out / "base", dtype="float32")
    # as siked evaluates: fold the adapter in at float32, then cast the weights (not RoPE's buffers)
    model = cast_weights(PeftModel.from_pretrained(base, str(out)).merge_and_unload(), dtype).eval()
    problems = read_jsonl(tiny_run / "data" / "validation.jsonl", Problem)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert greedy_answers(model, tokenizer, tiny_run, problems) == run_answers(tiny_run, "iter2", problems)
    # transformers alone follows adapter_config.json to the base and attaches the adapter
    direct = AutoModelForCausalLM.from_pretrained(out, dtype="float32")
    assert direct.peft_config and "default" in direct.peft_config
    assert card(out / "README.md")[0]["library_name"] == "peft"
