"""A run's stage results, typed, and the metrics.json built from them.

`RunDir.results()` reads the manifest into `RunResults`: each stage's info record, typed by its step
(`STAGE_INFO`) and keyed by its `StageName`. The loop decides from them (the iterations that ran, the
best one, a baseline's chosen snapshot, SIKeD's cumulative steps) and `build_metrics` turns them into
`Metrics`; nothing reads a manifest dict or cuts a stage name's text apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from siked.config import SikedConfig
from siked.evaluation import kl_add_one
from siked.metrics import (
    VALIDATION,
    Baseline,
    Checkpoint,
    DataInfo,
    EvalInfo,
    GenerationStageInfo,
    Iteration,
    Metrics,
    MixInfo,
    Record,
    RoutingInfo,
    RunInfo,
    SampleInfo,
    StageInfo,
    TeacherInfo,
    TeacherStats,
    TrainInfo,
    TrainStats,
    choose_best,
    new_metrics,
)
from siked.names import TEACHER, ModelName, StageName
from siked.strategies import FREE

ROUTING_FILE = "routing.json"
STAGE_INFO: dict[str, type[StageInfo]] = {
    "data": DataInfo, "teacher": TeacherInfo, "routing": RoutingInfo,
    "mix": MixInfo, "train": TrainInfo, "eval": EvalInfo, "sample": SampleInfo,
}
"""The info record each step's stages keep in the manifest."""
Info = TypeVar("Info", bound=StageInfo)
DiskUse = Callable[[ModelName], tuple[float, bool]]
"""A model's folder on disk: (MB it uses, whether its merged weights were pruned)."""


class StageEntry(Record):
    """One stage's entry in the manifest."""

    status: str | None = None
    started: str | None = None
    finished: str | None = None
    outputs: list[str] = []
    info: dict[str, Any] = {}


@dataclass(frozen=True)
class RunResults:
    """What a run's stages recorded, typed."""

    path: Path
    created: str
    entries: Mapping[StageName, StageEntry]
    done: frozenset[StageName]
    """Finished stages whose outputs are all in place."""

    def read(self, stage: StageName, kind: type[Info]) -> Info:
        """The record `stage` keeps (an empty one before it finished)."""
        entry = self.entries.get(stage)
        return kind.read(entry.info) if entry is not None else kind()

    def info(self, stage: StageName) -> StageInfo:
        return self.read(stage, STAGE_INFO[stage.step])

    def teacher(self) -> TeacherInfo:
        return self.read(TEACHER, TeacherInfo)

    def mix(self, model: ModelName) -> MixInfo:
        return self.read(model.stage("mix"), MixInfo)

    def train(self, model: ModelName) -> TrainInfo:
        return self.read(model.stage("train"), TrainInfo)

    def eval(self, model: ModelName) -> EvalInfo:
        return self.read(model.stage("eval"), EvalInfo)

    def sample(self, model: ModelName) -> SampleInfo:
        return self.read(model.stage("sample"), SampleInfo)

    # -- what the loop decides from -----------------------------------------------------------

    def iterations(self) -> list[ModelName]:
        """The iterations with any stage recorded, in order."""
        return sorted({s.model for s in self.entries if s.model is not None and s.model.iteration is not None})

    def reported_models(self, method: str) -> list[ModelName]:
        """The models metrics.json reports as iterations: SIKeD's, or a lone baseline's one model."""
        lone = ModelName(baseline=method) if method != "siked" else None
        if lone is not None and lone.stage("eval") in self.entries:
            return [lone]
        return self.iterations()

    def best_choice(self, models: list[ModelName]) -> tuple[ModelName | None, str | None]:
        """(the chosen model among `models`, the rule that chose it); see `siked.metrics.choose_best`."""
        evaluated = [m for m in models if m.stage("eval") in self.done]
        return choose_best([(m, self.validation_accuracy(m)) for m in evaluated])

    def validation_accuracy(self, model: ModelName) -> float | None:
        scores = self.eval(model).eval
        return scores[VALIDATION].accuracy if VALIDATION in scores else None

    def checkpoints(self, baseline: ModelName) -> list[Checkpoint]:
        """A baseline's snapshots with their validation accuracy (those evaluated so far)."""
        points = []
        for step in self.train(baseline).snapshots:
            snapshot = baseline.snapshot(step)
            scores = self.eval(snapshot).eval
            if VALIDATION in scores:
                points.append(Checkpoint(step=step, validation=scores[VALIDATION].rate, model=snapshot.weights))
        return points

    def chosen_step(self, baseline: ModelName) -> int | None:
        """The snapshot step of `baseline` that validation chose (SIKeD's rule); None without any."""
        return choose_best([(c.step, c.validation) for c in self.checkpoints(baseline)])[0]

    def chosen(self, model: ModelName) -> ModelName:
        """The model `model` reports: an iteration itself, a baseline its chosen snapshot (if any)."""
        step = self.chosen_step(model) if model.baseline is not None and not model.is_snapshot else None
        return model.snapshot(step) if step is not None else model

    def cumulative_steps(self, models: list[ModelName]) -> list[int]:
        """The optimizer steps at the end of each of `models`, summed over them."""
        steps, total = [], 0
        for model in models:
            total += self.train(model).steps or 0
            steps.append(total)
        return [s for s in steps if s]

    # -- what metrics.json reports of the run -------------------------------------------------

    def backends_used(self) -> str | None:
        """The generation backends the student's stages ran on, with why, e.g.
        `vllm (auto: vLLM is installed and ...)`; None before any such stage."""
        infos = [self.info(stage) for stage in self.entries]
        used = {(i.backend, i.backend_choice or "") for i in infos if isinstance(i, GenerationStageInfo) and i.backend}
        return "; ".join(f"{name} ({why})" if why else name for name, why in sorted(used)) or None

    def working_time(self) -> tuple[float, str | None]:
        """Seconds spent in stages (over every resume; not the time between a crash and its
        resume) and when the last stage finished."""
        seconds, last = 0.0, None
        for entry in self.entries.values():
            if entry.status == "done" and entry.started and entry.finished:
                started, finished = datetime.fromisoformat(entry.started), datetime.fromisoformat(entry.finished)
                seconds += (finished - started).total_seconds()
                last = max(last or entry.finished, entry.finished)
        return seconds, last

    def train_stats(self, model: ModelName) -> TrainStats:
        """The mix and the training of `model`, in one record."""
        trained = self.train(model).model_dump(mode="json", exclude_unset=True, exclude={"snapshots"})
        return TrainStats(**{**self.mix(model).train.dump(), **trained})

    def routing(self) -> dict[str, Any] | None:
        """The routing stage's table (routing.json), None where it has not run."""
        path = self.path / ROUTING_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def iteration_metrics(results: RunResults, index: int, model: ModelName, taught: list[str],
                      disk: DiskUse) -> Iteration:
    train = results.train_stats(model)
    train.examples = (train.teacher_count or 0) + (train.student_count or 0)
    evaluated, sampled = results.eval(model), results.sample(model)
    entry = Iteration(iteration=index, train=train, eval=evaluated.eval)
    if sampled.student:
        entry.student = sampled.student
    entry.generation_backend = {step: info.backend for step, info in (("eval", evaluated), ("sample", sampled))
                                if info.backend}
    entry.disk_mb, entry.merged_pruned = disk(model)
    if sampled.student and FREE in sampled.student.by_mode:
        entry.kl_train_samples = kl_add_one(train.strategy_counts, sampled.student.by_mode[FREE].strategy_counts,
                                            taught)
    if VALIDATION in entry.eval:  # the greedy choices: every iteration has them, the last included
        validation = entry.eval[VALIDATION]
        chosen = {name: round(share * validation.total) for name, share in validation.strategy_distribution.items()}
        entry.kl_train_validation = kl_add_one(train.strategy_counts, chosen, taught)
    return entry


def baseline_metrics(results: RunResults, baseline: ModelName, budget: str) -> Baseline:
    return Baseline(train=results.train_stats(baseline), eval=results.eval(baseline).eval,
                    checkpoints=results.checkpoints(baseline), chosen_step=results.chosen_step(baseline),
                    budget=budget)


def run_info(results: RunResults, config: SikedConfig, now: str) -> RunInfo:
    wall_s, finished = results.working_time()
    loop = config.loop
    return RunInfo(
        out=str(results.path), method=loop.method, seed=config.seed, teacher_backend=config.teacher.backend,
        reference_solutions=config.teacher.backend == "reference", student_model=config.student.model,
        mixing=config.mixing.model_dump(mode="json"), started=results.created, finished=finished or now,
        wall_s=round(wall_s, 1), baselines=[m for m in loop.baselines if m != loop.method], routing=loop.routing,
        validation_fraction=config.data.validation_fraction, generation_backend=results.backends_used(),
    )


def teacher_stats(results: RunResults) -> TeacherStats:
    stats = results.teacher().stats
    return TeacherStats(**stats.dump(), strategy_counts={name: s.kept or 0 for name, s in stats.by_strategy.items()})


def build_metrics(results: RunResults, config: SikedConfig, *, stopped: str | None, disk: DiskUse,
                  now: str) -> Metrics:
    """metrics.json of the run as its stages recorded it; `disk` measures each iteration's folder."""
    loop = config.loop
    models = results.reported_models(loop.method)
    best, best_rule = results.best_choice(models)
    reported = [m for m in loop.baselines if m != loop.method] + ([loop.method] if loop.method != "siked" else [])
    routing = results.routing()
    return new_metrics(
        run=run_info(results, config, now),
        teacher=teacher_stats(results),
        iterations=[iteration_metrics(results, index, model, config.teacher.strategies, disk)
                    for index, model in enumerate(models, start=1)],
        best_iteration=models.index(best) + 1 if best else None,
        best_model=results.chosen(best).weights if best else None,
        best_rule=best_rule,
        stopped=stopped,
        baselines={method: baseline_metrics(results, ModelName(baseline=method), loop.budget) for method in reported},
        **({"routing": routing} if routing is not None else {}),
    )
