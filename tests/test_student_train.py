"""Fine-tuning the real embedded student on GSM8K-derived [cot] targets (a few CPU steps)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siked.cli import app
from siked.config import GenerationConfig, SikedConfig
from siked.records import Problem, Solution
from siked.student import (
    ModelError,
    Student,
    TrainDataError,
    TrainExample,
    TrainResult,
    load_model,
    locate_model,
    read_examples,
    train_student,
)
from siked.student.models import MANIFEST
from siked.student.train import prepare_model, sft_records, starting_point
from siked.student.trainer_args import training_dtype

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def cot_target(worked: str) -> str:
    """A GSM8K worked solution as a CoT target: calculator annotations out, a final answer line."""
    body, answer = worked.split("####")
    return re.sub(r"<<[^>]*>>", "", body).strip() + f"\nThe answer is {answer.strip()}."


@pytest.fixture(scope="module")
def gsm8k_examples() -> list[TrainExample]:
    """The four shortest of the first 400 GSM8K training problems (short sequences train fast)."""
    path = DATA / "gsm8k" / "train.jsonl"
    if not path.is_file():
        pytest.skip(f"GSM8K training data not found at {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:400]]
    rows.sort(key=lambda r: len(r["question"]) + len(r["answer"]))
    return [TrainExample(r["question"], "cot", cot_target(r["answer"])) for r in rows[:4]]


def tiny_config(**train: object) -> SikedConfig:
    """Overfit a few examples quickly: short sequences, one batch per step, a high learning rate."""
    cfg = SikedConfig()
    settings = dict(max_length=224, per_device_batch_size=4, gradient_accumulation_steps=1,
                    learning_rate=2e-3, warmup_steps=0, save_steps=1000)
    cfg.train = cfg.train.model_copy(update={**settings, **train})
    return cfg


@pytest.fixture(scope="module")
def trained(model_cache: Path, gsm8k_examples: list[TrainExample], tmp_path_factory) -> TrainResult:
    out = tmp_path_factory.mktemp("student") / "iteration-1"
    return train_student(gsm8k_examples, tiny_config(), out, max_steps=6, progress=False)


@pytest.mark.slow
def test_loss_falls_and_the_output_directory_is_complete(trained: TrainResult) -> None:
    assert trained.steps == 6
    assert len(trained.losses) == 6
    assert trained.losses[-1] < 0.5 * trained.losses[0]
    assert trained.train_tokens > 0 and trained.tokens_per_s > 0
    out = trained.model_dir
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["kind"] == "lora" and manifest["base_model"] == "embedded:smollm2"
    assert manifest["prompt_style"] == "alpaca"
    assert manifest["strategies"] == ["cot", "l2m", "pot"]  # the taught ones its prompt listed
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert trained.adapter_dir == out / "adapter"
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["loss"] for e in logged if "loss" in e] == trained.losses
    assert not (out / "checkpoints").exists()  # removed once the run is saved


@pytest.mark.slow
def test_trained_adapter_reloads_and_writes_the_tag_format(
    trained: TrainResult, gsm8k_examples: list[TrainExample]
) -> None:
    problems = [
        Problem(id=f"train/{i}", question=ex.question, answer=None, answer_text="", source="gsm8k", split="train")
        for i, ex in enumerate(gsm8k_examples)
    ]
    cfg = GenerationConfig(max_new_tokens=10, eval_max_new_tokens=10, dtype="float32", device="cpu")
    with Student.load(trained.model_dir, SikedConfig(generation=cfg), progress=False) as student:
        solutions = student.generate(problems, greedy=True).solutions
    assert [s.strategy for s in solutions] == ["cot"] * len(problems)
    for solution, example in zip(solutions, gsm8k_examples, strict=True):
        assert example.solution.startswith(solution.solution.split()[0])  # the memorised opening word


@pytest.mark.slow
def test_merge_then_new_lora_equals_base_plus_adapter_then_trains_on_top(
    trained: TrainResult, gsm8k_examples: list[TrainExample], tmp_path: Path
) -> None:
    import torch

    cfg = tiny_config(init="previous")
    out = tmp_path / "iteration-2"
    start, ref = starting_point("embedded:smollm2", out, cfg.train, trained.model_dir)
    assert (start, ref) == (str(out / "base"), "base")
    fresh = prepare_model(start, cfg.train).eval()
    dtype = training_dtype(cfg.train)  # the merged base is saved in it: bfloat16 where the CPU has AMX
    assert json.loads((out / "base" / "config.json").read_text())["dtype"] == dtype
    # The adapter folded in at float32, then rounded to the training dtype once, as siked loads it.
    with_adapter, tokenizer = load_model(trained.model_dir, dtype=dtype, device="cpu", merge=True)
    with_adapter.float()
    base, _ = load_model("embedded:smollm2", dtype="float32", device="cpu")
    ids = tokenizer(gsm8k_examples[0].question, return_tensors="pt")
    with torch.no_grad():
        merged_logits = fresh(**ids).logits
        adapter_logits = with_adapter(**ids).logits
        base_logits = base(**ids).logits
    assert torch.allclose(merged_logits, adapter_logits, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(base_logits, adapter_logits, atol=1e-2)  # the adapter does change the model

    result = train_student(gsm8k_examples, cfg, out, previous=trained.model_dir, max_steps=1, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["base_model"] == "base" and manifest["previous"] == str(trained.model_dir.resolve())
    source = locate_model(out)
    assert source.base == str(out / "base") and source.adapter == out / "adapter"
    assert result.steps == 1


def test_init_base_starts_from_the_original_model(trained: TrainResult, tmp_path: Path) -> None:
    cfg = tiny_config(init="base")
    start, ref = starting_point("embedded:smollm2", tmp_path, cfg.train, trained.model_dir)
    assert ref == "embedded:smollm2"
    assert start == locate_model("embedded:smollm2").base
    with pytest.raises(ModelError, match="is a trained adapter"):
        starting_point(str(trained.model_dir), tmp_path, cfg.train, None)


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_checkpoint(
    model_cache: Path, gsm8k_examples: list[TrainExample], tmp_path: Path
) -> None:
    from transformers import TrainerCallback

    class StopAfterSecondSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise _Interrupt

    cfg = tiny_config(save_steps=1, per_device_batch_size=2)
    examples = gsm8k_examples[:2]
    out = tmp_path / "resumable"
    with pytest.raises(_Interrupt):
        train_student(examples, cfg, out, max_steps=3, progress=False, callbacks=[StopAfterSecondSave()])
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    assert not (out / MANIFEST).exists()

    result = train_student(examples, cfg, out, max_steps=3, progress=False)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-2")
    assert result.steps == 3
    assert (out / MANIFEST).is_file() and not (out / "checkpoints").exists()


@pytest.mark.slow
def test_full_finetuning_writes_loadable_weights(
    model_cache: Path, gsm8k_examples: list[TrainExample], tmp_path: Path
) -> None:
    cfg = tiny_config(full_finetune=True, per_device_batch_size=1, learning_rate=1e-5)
    out = tmp_path / "full"
    result = train_student(gsm8k_examples[:1], cfg, out, max_steps=1, progress=False)
    assert result.adapter_dir is None and result.steps == 1
    source = locate_model(out)
    assert source.base == str(out / "model") and source.adapter is None
    model, _ = load_model(out, dtype="float32", device="cpu")
    assert sum(p.numel() for p in model.parameters()) > 100_000_000


def test_training_data_errors_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(TrainDataError, match="empty"):
        train_student([], SikedConfig(), tmp_path / "out")
    with pytest.raises(TrainDataError, match="does not exist"):
        read_examples(tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(TrainDataError, match="holds no examples"):
        read_examples(empty)
    rows = tmp_path / "rows.jsonl"
    good = {"problem_id": "p1", "strategy": "cot", "solution": "1 + 1 = 2. The answer is 2.", "question": "1+1?"}
    rows.write_text(json.dumps(good) + "\n" + json.dumps({**good, "question": None, "problem_id": "p2"}) + "\n")
    with pytest.raises(TrainDataError, match=r"rows\.jsonl:2: no question for problem 'p2'"):
        read_examples(rows)
    assert [e.question for e in read_examples(rows, {"p2": "2+2?"})] == ["1+1?", "2+2?"]
    rows.write_text(json.dumps({**good, "strategy": "none"}) + "\n")
    with pytest.raises(TrainDataError, match=r"rows\.jsonl:1: strategy 'none'"):
        read_examples(rows)
    rows.write_text("{broken\n")
    with pytest.raises(TrainDataError, match=r"rows\.jsonl:1: not valid JSON"):
        read_examples(rows)
    with pytest.raises(TrainDataError, match="not among the given questions"):
        train_student([Solution(problem_id="x", strategy="cot", solution="s")], SikedConfig(), tmp_path / "o",
                      questions={})


def test_prompt_completion_records_in_both_styles(model_cache: Path) -> None:
    from siked.student.models import load_tokenizer

    tokenizer = load_tokenizer(locate_model("embedded:smollm2"))
    example = TrainExample("What is 2 + 3?", "pot", "answer = 2 + 3")
    [alpaca] = sft_records([example], "alpaca", tokenizer, ["cot", "l2m", "pot"])
    assert alpaca["prompt"].endswith("### Response:\n") and "What is 2 + 3?" in alpaca["prompt"]
    assert alpaca["completion"] == "[pot]: answer = 2 + 3"  # EOS is appended by TRL
    [chat] = sft_records([example], "chat", tokenizer, ["cot", "l2m", "pot"])
    assert chat["prompt"].endswith("<|im_start|>assistant\n")
    assert chat["completion"] == alpaca["completion"]


def test_cli_train_reports_records_without_questions(tmp_path: Path) -> None:
    data = tmp_path / "teacher.jsonl"
    data.write_text(json.dumps({"problem_id": "gsm8k/train/9", "strategy": "cot", "solution": "x"}) + "\n")
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "teacher.jsonl:1: no question for problem 'gsm8k/train/9'" in result.output
    assert "--questions" in result.output


def test_module_entry_point_is_the_train_command() -> None:
    done = subprocess.run([sys.executable, "-m", "siked.student.train", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--max-steps" in done.stdout and "--previous" in done.stdout


@pytest.mark.slow
def test_two_process_data_parallel_run_merges_once_and_reports_once(
    model_cache: Path, trained: TrainResult, gsm8k_examples: list[TrainExample], tmp_path: Path
) -> None:
    """What `accelerate launch` does on GPUs, on CPU: two processes (gloo DDP) started by torchrun."""
    import os

    data = tmp_path / "teacher.jsonl"
    data.write_text("".join(
        json.dumps({"problem_id": f"p{i}", "strategy": e.strategy, "solution": e.solution, "question": e.question})
        + "\n" for i, e in enumerate(gsm8k_examples)))
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "siked.cli", "train",
               "--data", str(data), "--out", str(out), "--previous", str(trained.model_dir), "--max-steps", "1",
               "--json", "--set", "train.max_length=224", "--set", "train.per_device_batch_size=1",
               "--set", "train.gradient_accumulation_steps=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("{")]  # the main process only
    result = json.loads(line)
    assert result["steps"] == 1 and result["base_model"] == "base"
    assert result["train_tokens"] > 224  # both processes' batches counted
    assert (out / "base" / "config.json").is_file() and (out / MANIFEST).is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no second merge left behind


def test_trainer_kwargs_reach_sftconfig_and_bad_keys_are_named(tmp_path: Path) -> None:
    from siked.config import ConfigError, load_config
    from siked.student.train import sft_config

    config = load_config(None, ["train.trainer_kwargs={lr_scheduler_type: cosine, max_grad_norm: 0.5}"])
    args = sft_config(tmp_path, config.train)
    assert getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type) == "cosine" and args.max_grad_norm == 0.5
    assert args.learning_rate == config.train.learning_rate  # the rest as siked sets it

    for kwargs, message in [
        ({"lr_sheduler_type": "cosine"}, "train.trainer_kwargs.lr_sheduler_type: not a field of trl.SFTConfig"
                                         r"[^\n]*did you mean 'lr_scheduler_type'"),
        ({"learning_rate": 1e-3}, "train.trainer_kwargs.learning_rate: siked sets it from train.learning_rate"),
        ({"output_dir": "/tmp/x"}, "train.trainer_kwargs.output_dir: siked sets it itself"),
        ({"train_sampling_strategy": "sequential"},
         "train.trainer_kwargs.train_sampling_strategy: siked sets it from train.group_by_length"),
        ({"lr_scheduler_type": "sideways"}, "train.trainer_kwargs: trl.SFTConfig refuses them"),
    ]:
        config.train.trainer_kwargs = kwargs
        with pytest.raises(ConfigError, match=message):
            sft_config(tmp_path, config.train)


def test_cli_run_refuses_an_unknown_trainer_kwarg_before_any_stage(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--out", str(out), "--set", "train.trainer_kwargs={warmup_ratioo: 0.1}"])
    assert result.exit_code == 2, result.output
    assert "train.trainer_kwargs.warmup_ratioo: not a field" in result.output and "warmup_ratio" in result.output
    assert not out.exists()  # nothing ran, no run directory holds the bad config
