"""The teacher's section of the config: what every backend shares, then one section per built-in
backend (`teacher.openai`, `teacher.local`, `teacher.file`) and `teacher.options` for a registered one.

    teacher:
      backend: openai
      strategies: [cot, l2m, pot]
      samples: 10
      openai: {base_url: http://127.0.0.1:8000/v1, model: meta-llama/Llama-3.3-70B-Instruct}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from siked.config_student import Section, check_names, refuse_old_key
from siked.registry import TEACHER_BACKENDS
from siked.strategies.registry import STRATEGIES

Endpoint = Literal["chat", "completions"]


class OpenAITeacherConfig(Section):
    """`teacher.backend: openai`: an OpenAI-compatible server (vLLM, SGLang, llama.cpp, a hosted API)."""

    base_url: str | None = None
    """The server, e.g. http://127.0.0.1:8000/v1 (required)."""
    model: str | None = None
    """Model name as served; None: the first one the server lists at `GET /models`."""
    endpoint: Endpoint = "chat"
    """chat: few-shot turns to /chat/completions (the server's chat template); completions: one plain
    few-shot prompt to /completions."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself is never stored)."""
    concurrency: int = Field(default=16, ge=1)
    """Requests in flight at once."""
    multi_sample: Literal["auto", "n", "separate"] = "auto"
    """How the K samples of a prompt are asked for. n: one request with `n`; separate: one seeded
    request per sample; auto: `n`, switching to separate when the server returns fewer choices or rejects `n`."""
    max_retries: int = Field(default=8, ge=0)
    """Retries of one request (429, 5xx, timeouts, dropped connections, malformed JSON)."""
    backoff_base_s: float = Field(default=1.0, gt=0)
    """The first retry waits about this long, doubling each retry (with jitter)."""
    backoff_max_s: float = Field(default=60.0, gt=0)
    """Longest backoff between retries (a server's Retry-After is honoured beyond it)."""
    request_timeout_s: float = Field(default=120.0, gt=0)
    """Seconds one request may take before it is retried."""
    max_failed_requests: int = Field(default=0, ge=0)
    """Requests allowed to fail for good before the run stops (their samples are missing)."""
    price_prompt_per_mtok: float | None = None
    """Price per million prompt tokens, for the cost in the ledger (None: no cost shown)."""
    price_completion_per_mtok: float | None = None
    """Price per million completion tokens, for the cost in the ledger (None: no cost shown)."""


class LocalTeacherConfig(Section):
    """`teacher.backend: hf` (a transformers model, CPU or GPU) or `vllm` (the offline vLLM engine, GPUs,
    extra `siked[vllm]`): a model run inside the teacher stage's process."""

    model: str | None = None
    """Hub id or local directory (required); hf also takes a .gguf file or `embedded:smollm2`."""
    endpoint: Endpoint = "chat"
    """chat: few-shot turns through the model's chat template; completions: one plain few-shot prompt."""
    batch_size: int = Field(default=64, ge=1)
    """Prompts per generation call; each call's completions are saved before the next."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """vllm only: GPUs one model is split over."""


class FileTeacherConfig(Section):
    """`teacher.backend: file`: solutions generated elsewhere, one JSON object a line."""

    path: Path | None = None
    """The solutions file, JSON Lines (required)."""
    fields: dict[str, str] = {}
    """Where `problem_id`, `strategy` and `solution` are in each line (dotted paths for nested objects),
    e.g. {"problem_id": "id", "solution": "output.text"}; a value `=cot` is a constant. Unnamed ones are
    read from the field of their own name."""


BACKEND_SECTIONS: dict[str, str | None] = {
    "openai": "openai", "vllm": "local", "hf": "local", "file": "file", "reference": None,
}
"""Each built-in backend and the section it reads its own settings from (None: it has none)."""

MOVED: dict[str, str] = {
    **{key: f"openai.{key}" for key in (
        "base_url", "api_key_env", "concurrency", "multi_sample", "max_retries", "backoff_base_s",
        "backoff_max_s", "request_timeout_s", "max_failed_requests", "price_prompt_per_mtok",
        "price_completion_per_mtok")},
    "batch_size": "local.batch_size",
    "tensor_parallel_size": "local.tensor_parallel_size",
    "file": "file.path",
    "file_fields": "file.fields",
}
"""The teacher's flat keys before the per-backend sections, and where each is now. `model` and
`endpoint` went to the backend's section (`moved_to`)."""


def moved_to(key: str, backend: Any) -> str:
    """Where the old flat `teacher.<key>` is now, for `backend`."""
    if key in MOVED:
        return MOVED[key]
    section = BACKEND_SECTIONS.get(backend) if isinstance(backend, str) else None
    return f"{section}.{key}" if section in ("openai", "local") else f"openai.{key} or teacher.local.{key}"


def flat_keys(teacher: Any) -> list[str]:
    """The keys of a raw teacher section that are old flat ones (`file` only when it is not a section)."""
    if not isinstance(teacher, dict):
        return []
    old = [*MOVED, "model", "endpoint"]
    section = (dict, FileTeacherConfig)  # raw, or as assignment validation passes it
    return [key for key in teacher if key in old and not (key == "file" and isinstance(teacher[key], section))]


def nest_flat_teacher(teacher: dict[str, Any]) -> dict[str, Any]:
    """A teacher section that an earlier siked recorded with flat keys (a run's manifest or config.yaml),
    in today's layout, as a config with the same settings dumps it; others are returned unchanged."""
    moved = flat_keys(teacher)
    if not moved:
        return teacher
    nested = {key: value for key, value in teacher.items() if key not in moved}
    sections = {"openai": OpenAITeacherConfig, "local": LocalTeacherConfig, "file": FileTeacherConfig}
    for name, section in sections.items():
        given = nested.get(name)
        nested[name] = dict(given) if isinstance(given, dict) else section().model_dump(mode="json")
    home = "openai" if teacher.get("backend") == "openai" else "local"  # of `model` and `endpoint`
    for key in moved:
        section, _, field = MOVED.get(key, f"{home}.{key}").partition(".")
        nested[section][field] = teacher[key]
    nested.setdefault("options", {})
    return nested


class TeacherConfig(Section):
    """The teacher: which backend writes solutions in which strategies, and how many. The settings of
    the LLM backends (openai, vllm, hf, and registered ones deriving from `LLMTeacher`) apply to each
    sample; the backend's own settings are in its section."""

    backend: str = "reference"
    """openai: an OpenAI-compatible server (`teacher.openai`); vllm: the offline vLLM engine and hf: a
    local transformers model (`teacher.local`); file: pre-generated solutions (`teacher.file`);
    reference: the dataset's own worked solutions turned into every strategy (no LLM, no settings); or
    a backend registered in `siked.registry.TEACHER_BACKENDS` (`teacher.options`)."""
    strategies: list[str] = ["cot", "l2m", "pot"]
    """Strategies the teacher writes and the student learns: cot, l2m, pot, or registered ones. The
    student's prompt lists exactly these, in this order."""
    samples: int = Field(default=10, ge=1)
    """K samples per question and strategy (the paper: 10)."""
    keep_per_strategy: int = Field(default=1, ge=1)
    """What the teacher stage keeps: at most N distinct correct solutions per question and strategy in
    teacher.jsonl (the paper: 1). `mixing.max_per_strategy` is how many of them each training mix takes."""
    temperature: float = Field(default=0.7, ge=0)
    """LLM backends: sampling temperature."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """LLM backends: nucleus-sampling mass (1: off)."""
    max_tokens: int = Field(default=512, ge=1)
    """LLM backends: token limit of each completion (a completion cut by it is never kept)."""
    seed: int = 0
    """LLM backends: seed of the requests; defaults to the run's `seed`."""
    cache: Path | None = None
    """LLM backends: the completion log and cache (JSON Lines); None: `teacher_completions.jsonl` in
    the teacher stage's output directory."""
    openai: OpenAITeacherConfig = OpenAITeacherConfig()
    """Settings of the openai backend."""
    local: LocalTeacherConfig = LocalTeacherConfig()
    """Settings of the hf and vllm backends."""
    file: FileTeacherConfig = FileTeacherConfig()
    """Settings of the file backend."""
    options: dict[str, Any] = {}
    """Settings of a registered backend, passed to it as given (its `self.config.options`; its
    documentation names them). An `LLMTeacher` takes its model name from `model` and its prompt form
    from `endpoint` (chat or completions, default chat). Refused for the built-in backends."""

    @field_validator("backend")
    @classmethod
    def _registered(cls, backend: str) -> str:
        return check_names([backend], TEACHER_BACKENDS)[0]

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, strategies: list[str]) -> list[str]:
        return check_names(strategies, STRATEGIES)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        moved = flat_keys(data)
        if not moved:
            return data
        where = ", ".join(f"teacher.{key} is now teacher.{moved_to(key, data.get('backend'))}" for key in moved)
        return refuse_old_key(data, moved[0], f"{where} (each backend's settings have their own section)")

    @model_validator(mode="after")
    def _options_for_registered_backends(self) -> TeacherConfig:
        if self.options and self.backend in BACKEND_SECTIONS:
            section = BACKEND_SECTIONS[self.backend]
            own = f"its settings are teacher.{section}" if section else "it has no settings"
            raise ValueError(f"teacher.options is for registered backends, not {self.backend!r}: {own}")
        return self

    @property
    def model_name(self) -> str | None:
        """The model the backend's settings name (None: they name none)."""
        section = BACKEND_SECTIONS.get(self.backend, "options")
        if section in ("openai", "local"):
            return getattr(self, section).model
        if section == "file":
            return self.file.path.name if self.file.path else None
        model = self.options.get("model") if section == "options" else None
        return str(model) if model is not None else None
