"""Supervised fine-tuning of the student with TRL's SFTTrainer and a PEFT LoRA (or all weights).

Each example is a prompt-completion pair: the student prompt (Alpaca-style or chat template)
and the tagged target `[cot]: ...`; TRL appends EOS and computes the loss on the completion only.

`init="previous"` folds the previous iteration's LoRA into its base weights and trains a fresh
LoRA on top (the paper); `init="base"` starts again from the original model.

The output directory is what the generation backends load:

    out_dir/siked_student.json   manifest (written last: its presence marks a finished run)
    out_dir/adapter/             the LoRA adapter and tokenizer (LoRA runs)
    out_dir/base/                previous iteration's merged weights, in the training dtype (init=previous only)
    out_dir/merged/              this run's adapter merged, for vLLM (written by `generation.backend: auto`)
    out_dir/model/               full weights and tokenizer (full fine-tuning)
    out_dir/train_log.jsonl      the trainer's log (loss, learning rate, tokens) per step
    out_dir/checkpoints/         resumable checkpoints while training (removed when done)
    out_dir/train_fingerprint.json  data, previous iteration and settings the checkpoints come
                                 from; a rerun with other inputs refuses to resume from them

Multi-GPU: run under `accelerate launch` (configs/accelerate/, docs/multi-gpu.md); the
trainer picks up the distributed setup, and only the main process writes files.
"""

from __future__ import annotations

import hashlib
import json
import resource
import runpy
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from siked.config import ConfigError, SikedConfig, TrainConfig
from siked.errors import SikedError, one_line
from siked.io import RecordError, iter_jsonl, write_json
from siked.ranks import is_main_process
from siked.records import Problem, Solution
from siked.rundir import RunDirError, file_sha256
from siked.strategies import strategy_names, student_prompt, student_target
from siked.student.models import (
    EMBEDDED_PREFIX,
    MANIFEST,
    ModelError,
    StudentSource,
    default_device,
    keep_freed_memory,
    load_tokenizer,
    locate_model,
    save_merged,
    write_manifest,
)
from siked.student.snapshots import snapshot_callback
from siked.student.trainer_args import check_train_settings, sft_config, training_dtype


class TrainDataError(SikedError, ValueError):
    """Training data that cannot be used; the message names the file, line or field."""


FINGERPRINT = "train_fingerprint.json"
"""What the checkpoints in an output directory were trained from (data, previous, settings)."""
OPERATIONAL_TRAIN_FIELDS = ("logging_steps", "save_steps", "save_total_limit", "resume", "gradient_checkpointing",
                            "padding_free", "attn_implementation")
"""`train` fields that do not change the trained weights: they may differ when resuming."""


@dataclass(frozen=True)
class TrainExample:
    question: str
    strategy: str
    solution: str


TrainRecords = Sequence[tuple[Problem, Solution] | Solution | TrainExample] | Path | str


@dataclass
class TrainResult:
    model_dir: Path
    """What `Student.load` / `load_model` take: the output directory."""
    adapter_dir: Path | None
    """The LoRA adapter (None for full fine-tuning)."""
    base_model: str
    """The full weights the adapter sits on (hub id, folder, or `embedded:` name)."""
    steps: int
    train_loss: float
    """Mean training loss over the run (the trainer's `train_loss`)."""
    losses: list[float] = field(default_factory=list)
    """Logged loss per logging step, in order."""
    train_tokens: int = 0
    """Tokens (prompt and completion, no padding) the trainer processed, all processes together."""
    runtime_s: float = 0.0
    tokens_per_s: float = 0.0
    peak_memory_mb: float = 0.0
    """Peak GPU memory allocated, or on CPU the process's peak resident memory."""
    examples: int = 0
    resumed_from: str | None = None
    """The checkpoint this run resumed from, if any."""
    processes: int = 1
    """Training processes (more than one under `accelerate launch` / torchrun)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("model_dir", "adapter_dir"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data


# --- data -------------------------------------------------------------------------------------


def _question_map(questions: Mapping[str, str] | Sequence[Problem] | None) -> dict[str, str]:
    if questions is None:
        return {}
    if isinstance(questions, Mapping):
        return dict(questions)
    return {p.id: p.question for p in questions}


def _check_strategy(strategy: str, where: str) -> None:
    if strategy not in strategy_names():
        known = ", ".join(strategy_names())
        raise TrainDataError(f"{where}: strategy {strategy!r} is not one the student can learn ({known})")


def read_examples(
    path: Path | str, questions: Mapping[str, str] | Sequence[Problem] | None = None
) -> list[TrainExample]:
    """Read a solutions JSONL (`problem_id`, `strategy`, `solution`, optional `question`).

    Records without `question` take it from `questions` (by problem id).
    """
    path = Path(path)
    if not path.is_file():
        raise TrainDataError(f"training data file {path} does not exist")
    lookup = _question_map(questions)
    examples = []
    try:
        for number, record in iter_jsonl(path):
            examples.append(_example_from_record(record, lookup, f"{path}:{number}"))
    except RecordError as exc:  # a line that is not JSON, or not a JSON object
        raise TrainDataError(str(exc)) from None
    if not examples:
        raise TrainDataError(f"training data file {path} holds no examples")
    return examples


def _example_from_record(record: dict[str, Any], lookup: dict[str, str], where: str) -> TrainExample:
    for key in ("problem_id", "strategy", "solution"):
        if not isinstance(record.get(key), str):
            raise TrainDataError(f"{where}: field {key!r} is missing or not a string")
    question = record.get("question") or lookup.get(record["problem_id"])
    if not question:
        raise TrainDataError(
            f"{where}: no question for problem {record['problem_id']!r}: the record has no "
            "'question' field and the given question set does not contain that id "
            "(pass the questions, e.g. --questions NAME:SPLIT)"
        )
    _check_strategy(record["strategy"], where)
    return TrainExample(question=question, strategy=record["strategy"], solution=record["solution"])


def examples_from_solutions(
    solutions: Sequence[Solution], questions: Mapping[str, str] | Sequence[Problem]
) -> list[TrainExample]:
    lookup = _question_map(questions)
    examples = []
    for index, solution in enumerate(solutions):
        where = f"solution {index} (problem {solution.problem_id!r})"
        question = lookup.get(solution.problem_id)
        if question is None:
            raise TrainDataError(f"{where}: its problem is not among the given questions")
        _check_strategy(solution.strategy, where)
        examples.append(TrainExample(question, solution.strategy, solution.solution))
    return examples


def sft_records(examples: Sequence[TrainExample], prompt_style: str, tokenizer: Any,
                strategies: Sequence[str]) -> list[dict[str, str]]:
    """TRL's prompt-completion format, the prompt listing `strategies` (the run's taught ones); the
    completion is the tagged target (TRL adds EOS)."""
    return [
        {
            "prompt": student_prompt(ex.question, style=prompt_style, tokenizer=tokenizer, strategies=strategies),
            "completion": student_target(ex.strategy, ex.solution),
        }
        for ex in examples
    ]


def truncated(dataset: Any, max_length: int, mode: str = "keep_start") -> Any:
    """TRL's tokenized dataset as TRL prepares it when it pads, which it does not when `padding_free`
    is set: every per-token column cut to `max_length` (its first tokens, or its last with TRL's
    `truncation_mode="keep_end"`), and the examples left without a completion token dropped, as
    they carry no loss."""
    windows = {"keep_start": slice(None, max_length), "keep_end": slice(-max_length, None)}
    if mode not in windows:
        raise ConfigError(f"train.trainer_kwargs.truncation_mode: {mode!r} is not one of {sorted(windows)}")
    window = windows[mode]

    def cut(row: dict[str, Any]) -> dict[str, Any]:
        length = len(row["input_ids"])
        return {key: value[window] for key, value in row.items()
                if isinstance(value, list) and len(value) == length}

    def has_target(row: dict[str, Any]) -> bool:
        if "labels" in row:
            return any(label != -100 for label in row["labels"])
        return "completion_mask" not in row or any(row["completion_mask"])

    if max(len(ids) for ids in dataset["input_ids"]) <= max_length:
        return dataset
    return dataset.map(cut, desc="Truncating train dataset").filter(has_target, desc="Dropping examples cut to their prompt")


def train_fingerprint(
    examples: Sequence[TrainExample], base_model: str, previous: Path | str | None,
    train_cfg: TrainConfig, prompt_style: str, strategies: Sequence[str],
) -> dict[str, Any]:
    """The data, starting weights, prompt and hyper-parameters that decide what a training run computes."""
    data = json.dumps([[ex.question, ex.strategy, ex.solution] for ex in examples]).encode()
    previous_manifest = Path(previous) / MANIFEST if previous is not None else None
    settings = train_cfg.model_dump(mode="json")
    for name in OPERATIONAL_TRAIN_FIELDS:
        settings.pop(name, None)
    settings.get("launcher", {}).pop("main_process_port", None)  # where the processes meet, not what they compute
    return {
        "examples": len(examples),
        "examples_sha256": hashlib.sha256(data).hexdigest(),
        "base_model": base_reference(base_model),
        "previous": str(Path(previous).resolve()) if previous is not None else None,
        "previous_sha256": file_sha256(previous_manifest)
        if previous_manifest is not None and previous_manifest.is_file() else None,
        "prompt_style": prompt_style,
        "strategies": list(strategies),
        "train": settings,
    }


def check_resumable(out_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse an output directory whose checkpoints come from another run's inputs. A merged base
    alone is only derived data (the previous iteration merged): one not recorded for these inputs
    is removed, and merged again from `previous`."""
    state = [name for name in ("checkpoints", "base") if (out_dir / name).exists()]
    if not state:
        return
    try:
        recorded = json.loads((out_dir / FINGERPRINT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, dict) and "strategies" not in recorded:  # its prompt listed every registered one
        recorded["strategies"] = strategy_names()
    if recorded == fingerprint:
        return
    if state == ["base"]:
        if is_main_process():
            shutil.rmtree(out_dir / "base")
        return
    if not isinstance(recorded, dict):
        diffs = [f"{out_dir / FINGERPRINT} is missing or unreadable"]
    else:
        diffs = [
            f"{key}: was {_short(recorded.get(key))}, now {_short(fingerprint.get(key))}"
            for key in sorted(set(recorded) | set(fingerprint)) if recorded.get(key) != fingerprint.get(key)
        ]
    raise RunDirError(
        f"{out_dir} holds {' and '.join(state)} of a training run on other inputs, so it cannot be "
        f"resumed ({'; '.join(diffs)}); pick another --out or delete {out_dir}"
    )


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v!r}" for k, v in value.items()) + "}"
    return repr(value)


# --- model ------------------------------------------------------------------------------------


def _distributed_state() -> Any:
    """accelerate's process state (one process, or all of those `accelerate launch` started).

    Made before the trainer's arguments, which reset it and make it again the same way.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _main_process_first() -> Any:
    return _distributed_state().main_process_first()


def base_reference(spec: str) -> str:
    """How the manifest names the base: `embedded:` names and hub ids as given, paths absolute."""
    if spec.startswith(EMBEDDED_PREFIX):
        return spec
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def starting_point(
    base_model: str, out_dir: Path, train_cfg: TrainConfig, previous: Path | str | None
) -> tuple[str, str]:
    """(folder or hub id to load, manifest reference of it) for this run's full weights."""
    if previous is not None and train_cfg.init == "previous":
        source = locate_model(previous)
        if source.adapter is None:
            return source.base, base_reference(source.base)
        merged = out_dir / "base"
        with _main_process_first():
            if not (merged / "config.json").is_file():
                save_merged(source, merged, training_dtype(train_cfg))
        return str(merged), "base"
    with _main_process_first():  # one process converts an embedded/GGUF model
        source = locate_model(base_model)
    if source.adapter is not None:
        raise ModelError(
            f"base model {base_model!r} is a trained adapter; pass it as the previous iteration "
            "(previous=..., init=previous) or give the original model"
        )
    return source.base, base_reference(base_model)


def lora_config(train_cfg: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=train_cfg.lora_r,
        lora_alpha=train_cfg.lora_alpha,
        lora_dropout=train_cfg.lora_dropout,
        target_modules=list(train_cfg.lora_target_modules),
        bias="none",
    )


def prepare_model(start: str, train_cfg: TrainConfig) -> Any:
    """The model the trainer optimises: float32 weights, with a fresh LoRA unless full fine-tuning.

    A fresh LoRA starts with B = 0, so before training it computes exactly what `start` does.
    """
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    try:
        kernel = {"attn_implementation": train_cfg.attn_implementation} if train_cfg.attn_implementation else {}
        model = AutoModelForCausalLM.from_pretrained(start, dtype="float32", **kernel)
    except Exception as exc:
        named = f" with train.attn_implementation={train_cfg.attn_implementation!r}" if kernel else ""
        raise ModelError(f"cannot load model {start!r} for training{named}: {type(exc).__name__}: "
                         f"{one_line(exc)}") from exc
    if train_cfg.full_finetune:
        return model
    return get_peft_model(model, lora_config(train_cfg))


# --- training ---------------------------------------------------------------------------------


def _examples(
    records: TrainRecords, questions: Mapping[str, str] | Sequence[Problem] | None
) -> list[TrainExample]:
    if isinstance(records, (str, Path)):
        return read_examples(records, questions)
    examples = []
    solutions = []
    for index, record in enumerate(records):
        if isinstance(record, TrainExample):
            examples.append(record)
        elif isinstance(record, Solution):
            solutions.append(record)
        elif isinstance(record, tuple) and len(record) == 2:
            problem, solution = record
            examples += examples_from_solutions([solution], {problem.id: problem.question})
        else:
            raise TrainDataError(f"training record {index}: unsupported type {type(record).__name__}")
    if solutions:
        if questions is None:
            raise TrainDataError("training solutions need their questions (questions=...)")
        examples += examples_from_solutions(solutions, questions)
    if not examples:
        raise TrainDataError("no training examples: the training set is empty")
    return examples


def _callbacks(trainer: Any, progress: bool, console: Any) -> None:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        from siked.student.progress import RichTrainProgress  # imports transformers

        trainer.add_callback(RichTrainProgress(console))


def _latest_checkpoint(directory: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(directory)) if directory.is_dir() else None


def _peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_student(
    records: TrainRecords,
    config: SikedConfig | None = None,
    out_dir: Path | str = "student",
    *,
    previous: Path | str | None = None,
    base_model: str | None = None,
    questions: Mapping[str, str] | Sequence[Problem] | None = None,
    max_steps: int | None = None,
    console: Any = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    trainer_args: Mapping[str, Any] | None = None,
    snapshot_at: Sequence[int] | None = None,
) -> TrainResult:
    """Fine-tune the student on tagged solutions and write a loadable output directory.

    `records`: (problem, solution) pairs, `TrainExample`s, `Solution`s (with `questions`), or
    a solutions JSONL path (records carry `question`, or take it from `questions`).
    `config`: its `train` and `student` sections are used; `base_model` defaults to
    `config.student.model`. `previous`: the last iteration's output directory, used when
    `config.train.init` is previous. `max_steps` overrides `config.train.max_steps`.
    `callbacks`: extra `transformers.TrainerCallback`s. `trainer_args`: SFTConfig fields that
    override the config's (the loop's tracking passes `report_to` and `run_name`). `snapshot_at`:
    write loadable snapshots (`siked.student.snapshots`) at these steps, every epoch's end and the
    end; None writes none.
    """
    if previous is not None and not Path(previous).is_dir():  # before the seconds of importing trl
        raise ModelError(f"previous iteration {previous} is not a directory (give a `siked train` output directory)")
    from datasets import Dataset
    from trl import SFTTrainer

    config = config or SikedConfig()
    train_cfg = config.train
    if max_steps is not None:
        train_cfg = train_cfg.model_copy(update={"max_steps": max_steps})
    if train_cfg.padding_free:
        check_train_settings(train_cfg)  # refuses padding-free rows that transformers would let mix
    out_dir = Path(out_dir)
    examples = _examples(records, questions)
    out_dir.mkdir(parents=True, exist_ok=True)
    if default_device() == "cpu":
        keep_freed_memory()
    strategies = config.teacher.strategies
    fingerprint = train_fingerprint(examples, base_model or config.student.model, previous, train_cfg,
                                    config.student.prompt_style, strategies)
    _distributed_state()  # before the trainer's arguments (see there)
    check_resumable(out_dir, fingerprint)
    if is_main_process():
        (out_dir / MANIFEST).unlink(missing_ok=True)  # a finished run's marker; this one is not finished
        write_json(out_dir / FINGERPRINT, fingerprint)
    # The previous iteration is merged before the trainer's arguments exist: under DeepSpeed
    # ZeRO-3 they make from_pretrained shard the weights, which merging cannot work on.
    start, base_ref = starting_point(base_model or config.student.model, out_dir, train_cfg, previous)
    args = sft_config(out_dir, train_cfg, **(trainer_args or {}))  # before loading the trained model: ZeRO-3 needs it first
    tokenizer = load_tokenizer(StudentSource(spec=start, base=start))
    model = prepare_model(start, train_cfg)
    dataset = Dataset.from_list(sft_records(examples, config.student.prompt_style, tokenizer, strategies))
    if snapshot_at is not None:
        kind = "full" if train_cfg.full_finetune else "lora"
        snapshot_base = str((out_dir / base_ref).resolve()) if base_ref == "base" else base_ref
        callbacks = [*callbacks, snapshot_callback(
            out_dir, snapshot_at, tokenizer, is_main=is_main_process(),
            manifest=lambda step: _manifest(kind, snapshot_base, config, train_cfg, previous, {"steps": step}))]
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=list(callbacks))
    if train_cfg.padding_free:
        trainer.train_dataset = truncated(trainer.train_dataset, train_cfg.max_length, args.truncation_mode)
    _callbacks(trainer, progress, console)
    checkpoint = _latest_checkpoint(out_dir / "checkpoints") if train_cfg.resume else None
    if checkpoint and console is not None:
        console.print(f"resuming from {checkpoint}")
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    runtime = time.perf_counter() - started
    result = _finish(trainer, out_dir, train_cfg, config, base_ref, previous, output, runtime,
                     examples=len(examples), resumed_from=checkpoint)
    return result


def _finish(
    trainer: Any,
    out_dir: Path,
    train_cfg: TrainConfig,
    config: SikedConfig,
    base_ref: str,
    previous: Path | str | None,
    output: Any,
    runtime: float,
    examples: int,
    resumed_from: str | None,
) -> TrainResult:
    kind = "full" if train_cfg.full_finetune else "lora"
    weights_dir = out_dir / ("model" if kind == "full" else "adapter")
    trainer.save_model(str(weights_dir))
    history = trainer.state.log_history
    # The last count is this process's (a resumed run restarts counting; older entries are restored).
    tokens = next((int(e["num_tokens"]) for e in reversed(history) if "num_tokens" in e), 0)
    result = TrainResult(
        model_dir=out_dir,
        adapter_dir=weights_dir if kind == "lora" else None,
        base_model=base_ref,
        steps=trainer.state.global_step,
        train_loss=float(output.training_loss),
        losses=[float(e["loss"]) for e in history if "loss" in e],
        train_tokens=tokens,
        runtime_s=runtime,
        tokens_per_s=tokens / runtime if runtime > 0 else 0.0,
        peak_memory_mb=_peak_memory_mb(),
        examples=examples,
        resumed_from=resumed_from,
        processes=trainer.args.world_size,
    )
    if is_main_process():
        trainer.processing_class.save_pretrained(str(weights_dir))
        with (out_dir / "train_log.jsonl").open("w", encoding="utf-8") as handle:
            for entry in history:
                handle.write(json.dumps(entry) + "\n")
        write_manifest(out_dir, _manifest(kind, base_ref, config, train_cfg, previous, result.to_json()))
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return result


def _manifest(kind: str, base_ref: str, config: SikedConfig, train_cfg: TrainConfig,
              previous: Path | str | None, result: dict[str, Any]) -> dict[str, Any]:
    """What a trained folder (or a snapshot of one) records: what to load, the prompt it learned
    (its style and the strategies it lists) and how it was trained."""
    return {
        "format": 1,
        "kind": kind,
        "base_model": base_ref if kind == "lora" else None,
        "adapter": "adapter" if kind == "lora" else None,
        "model": "model" if kind == "full" else None,
        "prompt_style": config.student.prompt_style,
        "strategies": list(config.teacher.strategies),
        "dtype": training_dtype(train_cfg),
        "init": train_cfg.init,
        "previous": str(Path(previous).resolve()) if previous is not None else None,
        "train": train_cfg.model_dump(mode="json"),
        "result": result,
    }


def is_trained(out_dir: Path | str) -> bool:
    """True when `out_dir` holds a finished training run."""
    return (Path(out_dir) / MANIFEST).is_file()


def main(argv: list[str] | None = None) -> None:
    """`python -m siked.student.train ...` = `siked train ...` (for `accelerate launch`).

    Runs the CLI module as a program, as `python -m siked.cli train ...` would: the training code
    does not import the command line that drives it."""
    sys.argv = ["siked.student.train", "train", *(sys.argv[1:] if argv is None else argv)]
    runpy.run_module("siked.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
