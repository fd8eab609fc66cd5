"""The schema of a run's `metrics.json` and of the info each loop stage records in the manifest.

The loop writes through these records and every reader (the report, `siked eval RUN`, `siked
compare`) reads through them, so the two cannot drift apart. The shared names (the validation set,
the marker of an untagged student output) and the rule that picks the best iteration live here.

Two kinds of record: a `StageInfo` (`TrainInfo`, `EvalInfo`, ...) is one stage's result as the
manifest keeps it, what the stage or its child process returned; `Metrics` and the blocks it nests
(`TrainStats`, `EvalResult`, `RunInfo`, ...) are metrics.json, which the loop builds from those
(`TrainStats` from the `mix` stage's `MixInfo` and the `train` stage's `TrainInfo`).

Versions: `schema_version` 1 is the first versioned layout; a file without the field was written
before versions were recorded (siked 0.1.0), has the same layout and loads as version 0. A file
from a newer schema is refused with a message naming the version and the siked that wrote it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from siked import __version__
from siked.errors import SikedError, one_line
from siked.io import write_json
from siked.names import ModelName

SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
VALIDATION = "validation"
"""The evaluation set the loop selects the best iteration on; every other set is test only."""
NO_STRATEGY = "none"
"""Strategy name of a student output that carries no known `[tag]:` (graded `invalid`)."""

T = TypeVar("T")
R = TypeVar("R", bound="Record")


class MetricsError(SikedError, ValueError):
    """A metrics.json that cannot be read; the message names the file (and the field)."""


class Record(BaseModel):
    # A writer cannot add a key the schema does not name (a typo fails where it is made); a reader
    # drops keys it does not know (`read`), so a newer writer's additions do not stop a report.
    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        """JSON-ready, with only the keys that were set (absent stays absent, None stays null)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def read(cls: type[R], data: Any) -> R:
        """Validate recorded data, ignoring keys this schema does not name."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            unknown = [err["loc"] for err in exc.errors() if err["type"] == "extra_forbidden"]
            if not unknown:
                raise
        data = copy.deepcopy(data)
        for loc in unknown:
            _drop(data, loc)
        return cls.model_validate(data)


def _drop(data: Any, loc: tuple[str | int, ...]) -> None:
    for part in loc[:-1]:
        data = data[part]
    data.pop(loc[-1], None)


# -- evaluation, training and sampling results -------------------------------------------------


class Score(Record):
    total: int = 0
    correct: int = 0
    accuracy: float | None = None

    @property
    def rate(self) -> float | None:
        """The recorded accuracy, else correct / total."""
        if self.accuracy is not None:
            return self.accuracy
        return self.correct / self.total if self.total else None


class EvalResult(Score):
    """The student's greedy results on one evaluation set."""

    by_strategy: dict[str, Score] = {}
    """Results on the questions where the student chose each strategy."""
    strategy_distribution: dict[str, float] = {}
    """Share of questions on which the student chose each strategy (`none`: no readable tag)."""
    by_status: dict[str, int] = {}
    truncated: int | None = None
    """Outputs cut by the generation token limit (None in older runs)."""


class TrainStats(Record):
    """The metrics record of one training run (metrics.json's `train`, of an iteration or a baseline):
    its mix (the `mix` stage's counts and alpha) and its optimisation (the `train` stage's
    `TrainInfo`: steps, loss, throughput), joined by the loop. Two records, not one, because the two
    stages record separately: the training child knows its steps but not the mix it was given, and a
    resumed run reads each stage's own record back from the manifest."""

    examples: int | None = None
    teacher_count: int | None = None
    student_count: int | None = None
    alpha: float | None = None
    """Share of teacher examples in the training mix."""
    strategy_counts: dict[str, int] = {}
    fallback: str | None = None
    """Why the mix holds teacher data its mixing mode would not give (iteration 1, nothing solved)."""
    train_loss: float | None = None
    steps: int | None = None
    tokens_per_s: float | None = None
    processes: int | None = None
    """How many training processes ran (`train.launcher.num_processes`)."""
    seconds: float | None = None


class StudentStats(Record):
    """The student's own samples on the training questions after an iteration."""

    samples: int | None = None
    correct: int | None = None
    questions: int | None = None
    solved_questions: int | None = None
    strategy_counts: dict[str, int] = {}
    """The strategies of the free samples (all samples when nothing was free)."""
    by_mode: dict[str, StudentStats] = {}
    """The same per sampling pass (free, or a forced strategy: `mixing.line`)."""


class RoutingGroup(Record):
    """Each strategy forced on every question of a group of questions (a set, or one template of it)."""

    questions: int | None = None
    oracle_accuracy: float | None = None
    """Accuracy if the best strategy were picked for every question (an upper bound)."""
    best_single_accuracy: float | None = None
    best_single_strategy: str | None = None
    """The strategy with the highest forced accuracy (the first by name on ties)."""
    oracle_gap: float | None = None
    """oracle_accuracy - best_single_accuracy: what choosing a strategy per question can add at most
    over always using the best one (0: nothing left for routing)."""
    forced_accuracy: dict[str, float] = {}

    def gap(self) -> float | None:
        """The oracle gap; computed from the two accuracies for records written before it was."""
        if self.oracle_gap is not None:
            return self.oracle_gap
        if self.oracle_accuracy is None or self.best_single_accuracy is None:
            return None
        return self.oracle_accuracy - self.best_single_accuracy


class RoutingResult(RoutingGroup):
    """Each strategy forced on every question of one evaluation set."""

    by_template: dict[str, RoutingGroup] = {}
    """The same per template (gsm_symbolic's generator, else the problems' source)."""
    solved_by: dict[str, int] = {}
    only_by: dict[str, int] = {}
    per_question: dict[str, list[str]] = {}


# -- the teacher ---------------------------------------------------------------------------------


class TeacherStrategyStats(Record):
    attempted: int | None = None
    correct: int | None = None
    kept: int | None = None
    solve_rate: float | None = None
    samples: int | None = None
    correct_samples: int | None = None
    sample_accuracy: float | None = None
    statuses: dict[str, int] = {}


class TeacherStats(Record):
    """`teacher_stats.json`, and the `teacher` block of metrics.json (plus `strategy_counts`)."""

    backend: str | None = None
    model: str | None = None
    origin: str | None = None
    reference_solutions: bool | None = None
    problems: int | None = None
    problems_without_numeric_gold: int | None = None
    strategies: list[str] = []
    samples_per_question: int | None = None
    keep_per_strategy: int | None = None
    by_strategy: dict[str, TeacherStrategyStats] = {}
    oracle_coverage: float | None = None
    """Share of training questions solved by at least one strategy."""
    questions_solved: int | None = None
    kept: int | None = None
    kept_share: dict[str, float] = {}
    requests: int | None = None
    failed_requests: int | None = None
    retries: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_completions: int | None = None
    cost: float | None = None
    ledger: dict[str, Any] = {}
    ledger_all_runs: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    notice: str | None = None
    files: dict[str, str] = {}
    canonical_form: dict[str, int] = {}
    """Kept solutions rewritten into their strategy's canonical form, and left as written."""
    strategy_counts: dict[str, int] = {}
    """Kept solutions per strategy (metrics.json only)."""


# -- what each stage records in the manifest (`seconds` is added by the loop to every stage) ------


class StageInfo(Record):
    seconds: float | None = None


class DataInfo(StageInfo):
    counts: dict[str, int] = {}


class TeacherInfo(StageInfo):
    stats: TeacherStats = TeacherStats()


class MixInfo(StageInfo):
    train: TrainStats = TrainStats()


class TrainInfo(StageInfo):
    """The `train` stage's result, as the manifest keeps it (what its child returns); not a metrics
    block: the loop joins it with the mix's into the `TrainStats` that metrics.json holds."""

    examples: int | None = None
    steps: int | None = None
    train_loss: float | None = None
    tokens_per_s: float | None = None
    processes: int | None = None
    snapshots: list[int] = []
    """Steps of the loadable snapshots the training wrote (baselines: for the choice on validation)."""


class GenerationStageInfo(StageInfo):
    """A stage in which the student generates (evaluation, sampling, routing)."""

    backend: str | None = None
    """The generation backend it ran on: hf or vllm."""
    backend_choice: str | None = None
    """Why that backend (`generation.backend`, or what `auto` found)."""


class EvalInfo(GenerationStageInfo):
    eval: dict[str, EvalResult] = {}


class SampleInfo(GenerationStageInfo):
    student: StudentStats | None = None


class RoutingInfo(GenerationStageInfo):
    model: str | None = None


# -- metrics.json --------------------------------------------------------------------------------


class Iteration(Record):
    iteration: int
    train: TrainStats | None = None
    eval: dict[str, EvalResult] = {}
    student: StudentStats | None = None
    kl_train_student: float | None = None
    """Runs before the sampled KL: KL(mix || greedy validation choices) smoothed with 1e-6 (not written now)."""
    kl_train_samples: float | None = None
    """The paper's KL(P_train || P_SM): P_train the mix's strategy shares, P_SM the strategies of the
    student's free samples after this iteration's training, add-one smoothed (`siked.evaluation.kl_smoothed`);
    None where the student sampled no free pass (the unbiased line forces every strategy) or not at all."""
    kl_train_validation: float | None = None
    """KL(P_train || the student's greedy strategy choices on the validation questions), add-one smoothed."""
    generation_backend: dict[str, str] = {}
    """The backend each generating stage of the iteration ran on, e.g. {eval: vllm, sample: vllm}."""
    disk_mb: float | None = None
    """Disk the iteration's folder uses when the run ends (model, merged weights, samples), in MB."""
    merged_pruned: bool | None = None
    """Its merged weights were deleted at the end of the run (`loop.keep_merged: last`)."""


class Checkpoint(Record):
    """One model on a validation curve: its cumulative optimizer steps and validation accuracy."""

    step: int
    validation: float | None = None
    model: str | None = None
    """Its folder in the run directory (`iter2/model`, `baselines/pot/model/snapshots/step-36`)."""


class Baseline(Record):
    train: TrainStats | None = None
    eval: dict[str, EvalResult] = {}
    """The chosen checkpoint's results."""
    checkpoints: list[Checkpoint] = []
    """Every snapshot's validation accuracy, in step order (empty in runs before snapshots)."""
    chosen_step: int | None = None
    """The checkpoint chosen on validation by SIKeD's rule (`choose_best`)."""
    budget: str | None = None
    """`loop.budget` it trained under: own_epochs or equal_steps."""


class RunInfo(Record):
    out: str | None = None
    method: str | None = None
    seed: int | None = None
    teacher_backend: str | None = None
    reference_solutions: bool | None = None
    """True: the teacher data are the datasets' own worked solutions, not an LLM's."""
    student_model: str | None = None
    mixing: dict[str, Any] = {}
    started: str | None = None
    finished: str | None = None
    wall_s: float | None = None
    baselines: list[str] | None = None
    """Baselines the run was configured to train (None: not recorded, as in older runs)."""
    routing: bool | None = None
    """Whether the run was configured to run the routing analysis (None: not recorded)."""
    validation_fraction: float | None = None
    """0: the run held out no validation set (the last iteration is the model)."""
    generation_backend: str | None = None
    """The backends the student's sampling and evaluation ran on, and why (None: not recorded)."""


class Metrics(Record):
    schema_version: int = 0
    """0: written before versions were recorded (same layout as 1)."""
    siked_version: str | None = None
    run: RunInfo = RunInfo()
    teacher: TeacherStats | None = None
    iterations: list[Iteration]
    best_iteration: int | None = None
    """1-based number of the iteration chosen on validation (`choose_best`)."""
    best_model: str | None = None
    best_rule: str | None = None
    """The rule that chose the best iteration (None in older runs: validation accuracy)."""
    stopped: str | None = None
    baselines: dict[str, Baseline] = {}
    routing: dict[str, RoutingResult] = {}

    def best(self) -> tuple[Iteration | None, bool]:
        """The recorded best iteration (and True), else the highest validation accuracy so far (and False)."""
        by_number = {it.iteration: it for it in self.iterations}
        if self.best_iteration in by_number:
            return by_number[self.best_iteration], True
        validated = [(it, it.eval[VALIDATION].rate) for it in self.iterations if VALIDATION in it.eval]
        return choose_best([(it, rate) for it, rate in validated if rate is not None])[0], False


BEST_BY_VALIDATION = "highest validation accuracy (earliest on ties)"
BEST_IS_LAST = "last iteration (no validation set: data.validation_fraction is 0)"


def choose_best(scores: Sequence[tuple[T, float | None]]) -> tuple[T | None, str | None]:
    """The best-iteration rule: (iteration, the rule that chose it) among evaluated iterations in order,
    given each one's validation accuracy.

    The highest validation accuracy wins, the earliest on ties; test sets never choose. Where no
    iteration has a validation accuracy (no validation set), the last evaluated iteration is the model.
    """
    scored = [(accuracy, item) for item, accuracy in scores if accuracy is not None]
    if scored:
        highest = max(accuracy for accuracy, _ in scored)
        return next(item for accuracy, item in scored if accuracy == highest), BEST_BY_VALIDATION
    if scores:
        return scores[-1][0], BEST_IS_LAST
    return None, None


def run_label(run: RunInfo) -> str:
    """How a run's own model is named: `SIKeD unbiased adaptive`, `teacher-only control (unbiased)`,
    or a lone baseline's method."""
    if run.method and run.method != "siked":
        return run.method
    mode, line = run.mixing.get("mode", ""), run.mixing.get("line")
    if mode == "teacher":
        return f"teacher-only control ({line})" if line else "teacher-only control"
    return " ".join(part for part in ("SIKeD", line, mode) if part)


def validation_curves(metrics: Metrics) -> dict[str, list[Checkpoint]]:
    """Validation accuracy against cumulative optimizer steps: the run's own iterations (one point
    each) and every baseline's snapshots; models without a validation result are left out."""
    points, total = [], 0
    for it in metrics.iterations:
        total += (it.train.steps or 0) if it.train else 0
        if VALIDATION in it.eval and total:
            points.append(Checkpoint(step=total, validation=it.eval[VALIDATION].rate,
                                     model=ModelName(iteration=it.iteration).weights))
    curves = {run_label(metrics.run): points} if points else {}
    for method, baseline in metrics.baselines.items():
        if baseline.checkpoints:
            curves[method] = list(baseline.checkpoints)
    return curves


def new_metrics(**fields: Any) -> Metrics:
    """Metrics as the current writer records them (stamped with this schema and siked version)."""
    return Metrics(schema_version=SCHEMA_VERSION, siked_version=__version__, **fields)


def write_metrics(path: Path, metrics: Metrics) -> None:
    write_json(path, metrics.dump())


def load_metrics(run_dir: Path) -> Metrics:
    """Read and check RUN_DIR/metrics.json; every problem is a MetricsError naming the file."""
    if not run_dir.exists():
        raise MetricsError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise MetricsError(f"run directory {run_dir} is not a directory")
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise MetricsError(f"{path} does not exist (the run has not written any metrics yet; "
                           "rerun `siked run` to resume it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MetricsError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricsError(f"{path} cannot be read: {one_line(exc)}") from None
    check_version(path, data)
    try:
        metrics = Metrics.read(data)
    except ValidationError as exc:
        problems = [f"  {'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()]
        raise MetricsError("\n".join([f"{path} does not match the metrics schema:", *problems])) from None
    metrics.iterations.sort(key=lambda it: it.iteration)
    return metrics


def check_version(path: Path, data: Any) -> None:
    version = data.get("schema_version", 0) if isinstance(data, dict) else 0
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        writer = data.get("siked_version") or "unknown"
        raise MetricsError(
            f"{path} was written by siked {writer} with metrics schema version {version}; this siked "
            f"({__version__}) reads schema versions up to {SCHEMA_VERSION}: upgrade siked to read it"
        )
