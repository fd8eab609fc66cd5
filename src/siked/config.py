"""One typed configuration for every siked command, loaded from YAML with `--set key=value` overrides.

Each concern has its own section (a pydantic model); every knob is one documented field.
Unknown keys are errors, so a typo in a YAML file or an override never passes silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from siked.config_student import GenerationConfig as GenerationConfig
from siked.config_student import LauncherConfig as LauncherConfig
from siked.config_student import Section as Section
from siked.config_student import StudentConfig as StudentConfig
from siked.config_student import TrainConfig as TrainConfig
from siked.config_student import check_names as check_names
from siked.config_student import refuse_old_key as refuse_old_key
from siked.config_teacher import FileTeacherConfig as FileTeacherConfig
from siked.config_teacher import LocalTeacherConfig as LocalTeacherConfig
from siked.config_teacher import OpenAITeacherConfig as OpenAITeacherConfig
from siked.config_teacher import TeacherConfig as TeacherConfig
from siked.config_teacher import nest_flat_teacher
from siked.data import DATASETS, gsm_symbolic
from siked.data.common import DataError
from siked.errors import SikedError
from siked.plugins import load_plugins
from siked.strategies import FREE
from siked.strategies.registry import STRATEGIES

CHECKED_BY_PARENT = {"checked_by_parent": True}
"""Validation context of a config the `siked run` process already validated (a stage child's): checks
that only read the world (reasoning-gym's templates: a 3 s import) are not repeated in every child."""


class DatasetSpec(Section):
    """One dataset split: `name:split`, optionally read from a local file instead of the hub."""

    name: str
    """Loader name: gsm8k, gsm8k_socratic, svamp, asdiv, multiarith, gsm_symbolic, jsonl, or a dataset
    registered in `siked.data.DATASETS` (docs/extending.md)."""
    split: str = "test"
    """Split of the dataset: train or test (a loader may know others)."""
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

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        return check_names([name], DATASETS)[0]

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, templates: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if templates is None or (info.context or {}).get("checked_by_parent"):
            return templates
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
    """Which questions the run trains on, validates on and is evaluated on."""

    train: DatasetSpec = DatasetSpec(name="gsm_symbolic", split="train", limit=64)
    """Training questions: the teacher solves them, the student samples on them."""
    evaluation: list[DatasetSpec] = [DatasetSpec(name="gsm_symbolic", split="test", limit=32)]
    """Evaluation sets (the paper: GSM8K test, SVAMP, ASDiv, MultiArith)."""
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of training question ids held out for validation (the paper holds out 10%). The best
    iteration is the one with the highest validation accuracy; with 0 there is no validation set,
    so `loop.patience` does not apply and the last iteration is the chosen model."""
    split_seed: int = 0
    """Seed of the validation hold-out (which training questions are held out)."""
    validation_by_template: bool = False
    """Hold out `validation_fraction` of every gsm_symbolic template's questions (the same number of
    each when the templates are balanced, `per_template`), instead of each question by its own draw."""


class SandboxConfig(Section):
    """The sandbox that runs program-of-thought solutions."""

    workers: int | None = Field(default=None, ge=1)
    """Programs run at once; None = number of CPU cores. There are this many warm worker processes of
    each kind: without sympy, for the programs that do not name it, and with it for the others."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Wall-clock limit per program; the worker is killed and replaced past it."""
    cpu_s: int = Field(default=10, ge=1)
    """CPU-time limit per program (seconds)."""
    memory_mb: int = Field(default=1024, ge=64)
    """Address-space limit of each program's process."""
    max_output_bytes: int = Field(default=65536, ge=1024)
    """Output a program may print before it is cut off."""


class GradingConfig(Section):
    """How an answer is compared with the gold answer."""

    rel_tol: float = Field(default=1e-4, gt=0)
    """Relative tolerance of numeric equality."""
    use_math_verify: bool = True
    """Fall back to math-verify for symbolic answers (run under a time limit)."""
    math_verify_timeout_s: float = Field(default=2.0, gt=0)
    """Time limit of one math-verify comparison."""


LINES = ("unbiased", "biased", "paper")
DEFAULT_PRIORITY = ["pot", "cot", "l2m"]


class MixingConfig(Section):
    """How each iteration's training data is made from the teacher's and the student's solutions."""

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
    """What each training mix takes: at most N teacher and N student solutions per question and
    strategy (the authors: 1), from the teacher data `teacher.keep_per_strategy` kept. SIKeD and every
    baseline use the same teacher selection (`siked.mixing.select_teacher`)."""
    priority: list[str] = DEFAULT_PRIORITY
    """biased line only: the strategy order of its one-solution-per-question choice. The authors
    ran three: [pot, cot, l2m], [cot, pot, l2m] and [l2m, pot, cot]."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        return refuse_old_key(data, "granularity", "mixing.granularity was replaced by mixing.line (unbiased: "
                              "per strategy, with forced samples; biased and paper: per question, with free samples)")

    @model_validator(mode="after")
    def _priority_only_for_biased(self) -> MixingConfig:
        if "priority" in self.model_fields_set and self.line != "biased" and self.priority != DEFAULT_PRIORITY:
            raise ValueError(f"mixing.priority applies to mixing.line=biased only, not {self.line!r}")
        return self

    @property
    def sampling(self) -> str:
        """How the student samples its training questions on this line: forced or free."""
        return "forced" if self.line == "unbiased" else FREE


class LoopConfig(Section):
    """The run: its method, iterations, baselines and stages."""

    method: str = "siked"
    """siked: the self-guided iterations; combined: one pass on every strategy's teacher data;
    a strategy (cot, l2m, pot or a registered one): one pass on that strategy's teacher data
    (single-strategy distillation)."""
    max_iterations: int = Field(default=3, ge=1)
    """SIKeD iterations at most (each: mix, train, evaluate, sample)."""
    patience: int = Field(default=1, ge=0)
    """Stop after this many iterations without a better validation accuracy (0: never; unused
    without a validation set)."""
    baselines: list[str] = []
    """Baselines (combined or a strategy, as in `method`) trained in the same run from the same teacher data (`loop.budget`). Each is evaluated
    on validation at checkpoints (the cumulative steps of every SIKeD iteration and every epoch's
    end) and its reported model is the checkpoint chosen by SIKeD's rule (`siked.metrics.choose_best`)."""
    budget: Literal["own_epochs", "equal_steps"] = "own_epochs"
    """The baselines' training budget. own_epochs: `train.epochs` epochs over each baseline's own
    data (the authors' rule: 3 epochs for every method); equal_steps: SIKeD's total optimizer steps
    over all its iterations, so single-strategy baselines see their fewer examples more often."""

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        return check_names([method], STRATEGIES, also=("siked", "combined"), kind="method")[0]

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, baselines: list[str]) -> list[str]:
        return check_names(baselines, STRATEGIES, also=("combined",), kind="baseline")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        return refuse_old_key(data, "sample_mode", "loop.sample_mode was replaced by mixing.line (unbiased "
                              "samples with each strategy forced; biased and paper sample freely)")

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
    stop_after: Literal["teacher"] | None = None
    """Stop once this stage is done; rerunning without it resumes there (teacher: make the teacher
    data now, e.g. where the teacher's server is, and train later). None: run to the end."""
    stage_processes: bool = True
    """Run each heavy stage (teacher, training, evaluation, sampling, routing) in its own child
    process, which hands back all its CPU and GPU memory when it exits; false runs them inside the
    `siked run` process (for a debugger)."""


class TrackingConfig(Section):
    """Experiment trackers the run reports to."""

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
    """Every setting of siked, one section per concern."""

    out: Path = Path("runs/default")
    """Run directory: every stage's artifacts, the manifest, the report."""
    plugins: list[str] = []
    """Modules imported before anything is looked up by name, in every process of the run: each may
    register strategies, datasets or teacher backends (docs/extending.md). Installed distributions'
    `siked.plugins` entry points are imported too, without being listed here."""
    seed: int = 0
    """The run's seed: training (LoRA initialisation, data order), the student's sampling and an LLM
    teacher's requests. `train.seed`, `generation.seed` or `teacher.seed`, where given, override it
    for their stage; otherwise they take this value."""
    data: DataConfig = DataConfig()
    """Training, validation and evaluation questions."""
    sandbox: SandboxConfig = SandboxConfig()
    """Where programs run."""
    grading: GradingConfig = GradingConfig()
    """Answer comparison."""
    teacher: TeacherConfig = TeacherConfig()
    """The teacher and its solutions."""
    student: StudentConfig = StudentConfig()
    """The student model."""
    train: TrainConfig = TrainConfig()
    """Fine-tuning."""
    generation: GenerationConfig = GenerationConfig()
    """The student's decoding."""
    mixing: MixingConfig = MixingConfig()
    """Each iteration's training data."""
    loop: LoopConfig = LoopConfig()
    """The run's method, iterations and stages."""
    tracking: TrackingConfig = TrackingConfig()
    """Experiment tracking."""

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


def load_config(path: Path | str | None = None, overrides: list[str] | None = None, *,
                recorded: bool = False) -> SikedConfig:
    """Read a YAML config (or the embedded default when `path` is None) and apply overrides; its
    `plugins` are imported before it is validated, since validation looks names up. `recorded`: the
    file is a run directory's config.yaml, which an earlier siked may have written with the teacher's
    flat keys: they are read into their sections instead of refused."""
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
        if recorded and isinstance(tree.get("teacher"), dict):
            tree["teacher"] = nest_flat_teacher(tree["teacher"])
    for text in overrides or []:
        apply_override(tree, *parse_override(text))
        origin += f" + --set {text}"
    plugins = tree.get("plugins")
    if not isinstance(plugins, list) or not all(isinstance(name, str) for name in plugins):
        raise ConfigError(f"invalid config ({origin}): plugins: expected a list of module names (got {plugins!r})")
    load_plugins(plugins)
    try:
        return SikedConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin)) from None


def dump_config(config: SikedConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
