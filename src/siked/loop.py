"""The SIKeD loop (`siked run`): teacher data -> train -> evaluate -> sample -> mix -> train ...

Every step is a stage of the run directory (see `siked.rundir`): its artifacts are written
atomically before the manifest marks it done, so rerunning the same command resumes at the
first unfinished stage and a finished stage is never redone. The heavy stages (teacher, training,
evaluation, sampling, routing) run in child processes (see `siked.stages`): this process never
imports torch, and each stage's memory is handed back when its child exits.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from siked.config import DatasetSpec, LauncherConfig, SikedConfig, dump_config
from siked.data import load_spec, split_validation
from siked.data.splits import split_validation_by_template
from siked.evaluation import kl_add_one
from siked.io import read_jsonl, write_jsonl
from siked.metrics import (
    METRICS_FILE,
    VALIDATION,
    Baseline,
    Checkpoint,
    DataInfo,
    EvalInfo,
    Iteration,
    Metrics,
    MixInfo,
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
    write_metrics,
)
from siked.mixing import correct_solutions, mix, select_teacher
from siked.records import Problem, Solution, Verdict
from siked.rundir import RunDir, eval_file, file_key, now
from siked.runlock import LOCK_FILE, run_lock
from siked.stages import StageRequest, run_stage
from siked.strategies import FREE
from siked.student.models import PRUNED, disk_bytes, prune_merged
from siked.student.snapshots import snapshot_dir
from siked.student.trainer_args import check_train_settings
from siked.tracking import Tracker, iteration_scalars

Info = TypeVar("Info", bound=StageInfo)


@dataclass
class Datasets:
    train: list[Problem]
    validation: list[Problem]
    evaluation: dict[str, list[Problem]]
    paths: dict[str, Path]
    """Where each set is in the run directory (keys: train, validation and the evaluation keys)."""

    def eval_sets(self) -> dict[str, list[Problem]]:
        """Validation first: it decides the best iteration."""
        return {VALIDATION: self.validation, **self.evaluation}


def spec_key(spec: DatasetSpec) -> str:
    return f"{spec.name}:{spec.split}"


class Loop:
    """One `siked run`: holds the config, the run directory and the shared grader."""

    def __init__(self, config: SikedConfig, console: Console | None = None):
        # before the run directory records a config that cannot train (in a child: trl imports torch)
        check_train_settings(config.train, in_child=config.loop.stage_processes)
        self.config = config
        self.console = console or Console(stderr=True)
        self.tracker = Tracker(config.tracking.report_to, config.tracking.project, Path(config.out))
        self.run = RunDir.open(config)
        if self.run.swept:
            self.console.print(f"note: removed {len(self.run.swept)} half-written file(s) of the interrupted run "
                               f"(e.g. {self.run.swept[0].relative_to(self.run.path)})", markup=False, highlight=False,
                               soft_wrap=True)
        (self.run.path / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        self.stopped: str | None = None
        """Why the iterations ended (set by `iterate`)."""

    # -- stage plumbing ---------------------------------------------------------------

    def stage(self, name: str, kind: type[Info], body: Callable[[], tuple[list[Path], Info]]) -> Info:
        """Run `body` unless the stage is done; returns the stage's recorded info."""
        if self.run.is_done(name):
            return self.recorded(name, kind)
        self.console.print(f"[bold cyan]stage[/] {name}")
        self.run.start(name)
        started = time.monotonic()
        outputs, info = body()
        info.seconds = round(time.monotonic() - started, 2)
        self.run.finish(name, outputs, info.dump())
        self.track(name)
        return info

    def heavy(self, name: str, kind: type[Info], body: str, args: dict[str, Any],
              launcher: LauncherConfig | None = None) -> Info:
        """Run a heavy stage (the `body` registered in `siked.stage_worker`) in its own process, or in
        this one when `loop.stage_processes` is false; returns its recorded info."""
        request = StageRequest(stage=name, kind=body, config=self.config.model_dump(mode="json"), args=args)

        def run_body() -> tuple[list[Path], Info]:
            if self.config.loop.stage_processes:
                outputs, info = run_stage(request, self.path(name), launcher=launcher, console=self.console)
            else:
                from siked.stage_worker import run_request
                from siked.student.models import release_freed_memory

                outputs, info = run_request(request, self.console)
                release_freed_memory()
            return [Path(p) for p in outputs], kind.read(info)

        return self.stage(name, kind, run_body)

    def recorded(self, name: str, kind: type[Info]) -> Info:
        """The info stage `name` recorded (empty if it has not run)."""
        return kind.read(self.run.info(name))

    def track(self, stage: str) -> None:
        """Send an iteration's metrics to the trackers once its evaluation (or sampling) is done."""
        name, _, step = stage.rpartition("/")
        names = self.iteration_names()
        if not self.tracker.report_to or step not in ("eval", "sample") or name not in names:
            return
        metrics = self.metrics()
        index = names.index(name)
        self.tracker.log(index + 1, iteration_scalars(metrics.iterations[index], metrics.teacher))

    def path(self, *parts: str) -> Path:
        return self.run.stage_path(*parts)

    # -- data and teacher -------------------------------------------------------------

    def datasets(self) -> Datasets:
        data = self.config.data
        paths = {"train": self.path("data", "train.jsonl"), VALIDATION: self.path("data", "validation.jsonl")}
        for spec in data.evaluation:
            paths[spec_key(spec)] = self.path("data", f"eval-{file_key(spec_key(spec))}.jsonl")

        def load() -> tuple[list[Path], DataInfo]:
            split = split_validation_by_template if data.validation_by_template else split_validation
            train, validation = split(load_spec(data.train), data.validation_fraction, data.split_seed)
            write_jsonl(paths["train"], train)
            write_jsonl(paths[VALIDATION], validation)
            counts = {"train": len(train), VALIDATION: len(validation)}
            for spec in data.evaluation:
                problems = load_spec(spec)
                write_jsonl(paths[spec_key(spec)], problems)
                counts[spec_key(spec)] = len(problems)
            return list(paths.values()), DataInfo(counts=counts)

        self.stage("data", DataInfo, load)
        read = {key: read_jsonl(path, Problem) for key, path in paths.items()}
        train = read.pop("train")
        validation = read.pop(VALIDATION)
        return Datasets(train=train, validation=validation, evaluation=read, paths=paths)

    def teacher(self, data: Datasets) -> list[Solution]:
        out_dir = self.path("teacher")
        self.heavy("teacher", TeacherInfo, "teach", {"problems": str(data.paths["train"]), "out_dir": str(out_dir)})
        return read_jsonl(out_dir / "teacher.jsonl", Solution)

    # -- the student ----------------------------------------------------------------------

    def train(self, name: str, data: Datasets, previous: Path | None,
              max_steps: int | None = None, snapshot_at: list[int] | None = None) -> tuple[Path, TrainInfo]:
        """Train on `name`/train.jsonl (the mix) under `train.launcher`."""
        model_dir = self.path(name, "model")
        stage = f"{name}/train"
        if self.run.is_done(stage):
            return model_dir, self.recorded(stage, TrainInfo)
        args = {"data": str(self.path(name, "train.jsonl")), "questions": str(data.paths["train"]),
                "out_dir": str(model_dir), "previous": str(previous) if previous else None, "max_steps": max_steps}
        if snapshot_at is not None:
            args["snapshot_at"] = snapshot_at
        with self.tracker.training(name, child_process=self.config.loop.stage_processes) as trainer_args:
            info = self.heavy(stage, TrainInfo, "train", {**args, "trainer_args": trainer_args},
                              launcher=self.config.train.launcher)
        return model_dir, info

    def evaluate(self, name: str, model_dir: Path, data: Datasets, validation_only: bool = False) -> EvalInfo:
        """Greedy decoding of every evaluation set (validation first), the student choosing its strategy."""
        sets = {key: {"problems": str(data.paths[key]), "out": str(eval_file(self.path(name), key))}
                for key, problems in data.eval_sets().items() if problems and (key == VALIDATION or not validation_only)}
        return self.heavy(f"{name}/eval", EvalInfo, "evaluate", {"model": str(model_dir), "name": name, "sets": sets})

    def sample(self, name: str, model_dir: Path, data: Datasets) -> list[Solution]:
        """The student's own solutions on the training questions (as `mixing.line` samples); returns the correct ones."""
        samples_path = self.path(name, "samples.jsonl")
        verdicts_path = self.path(name, "sample_verdicts.jsonl")
        self.heavy(f"{name}/sample", SampleInfo, "sample", {
            "model": str(model_dir), "problems": str(data.paths["train"]),
            "samples": str(samples_path), "verdicts": str(verdicts_path)})
        return correct_solutions(read_jsonl(samples_path, Solution), read_jsonl(verdicts_path, Verdict))

    def mix(self, name: str, teacher: list[Solution], student_correct: list[Solution], *,
            first_iteration: bool = False) -> None:
        """Write `name`/train.jsonl, what the training stage reads."""
        path = self.path(name, "train.jsonl")
        cfg = self.config.mixing

        def run_mix() -> tuple[list[Path], MixInfo]:
            mixed = mix(teacher, student_correct, cfg.mode, cfg.line, cfg.max_per_strategy, cfg.priority,
                        first_iteration=first_iteration)
            write_jsonl(path, mixed.records)
            train = TrainStats(teacher_count=mixed.teacher_count, student_count=mixed.student_count,
                               alpha=mixed.alpha, strategy_counts=mixed.strategy_counts)
            if mixed.fallback:
                train.fallback = mixed.fallback
                self.console.print(f"  {name} mix: {mixed.fallback}")
            return [path], MixInfo(train=train)

        self.stage(f"{name}/mix", MixInfo, run_mix)

    # -- the whole run --------------------------------------------------------------------

    def iterate(self, data: Datasets, teacher: list[Solution]) -> None:
        loop = self.config.loop
        previous: Path | None = None
        student_correct: list[Solution] = []
        best_accuracy, non_improving = -1.0, 0
        for iteration in range(1, loop.max_iterations + 1):
            name = f"iter{iteration}"
            self.mix(name, teacher, student_correct, first_iteration=iteration == 1)
            init_from = previous if self.config.train.init == "previous" else None
            model_dir, _ = self.train(name, data, init_from)
            scores = self.evaluate(name, model_dir, data).eval
            accuracy = (scores[VALIDATION].accuracy or 0.0) if VALIDATION in scores else 0.0
            if accuracy > best_accuracy:
                best_accuracy, non_improving = accuracy, 0
            else:
                non_improving += 1
            if iteration == loop.max_iterations:
                self.stopped = f"max_iterations ({loop.max_iterations})"
                break
            if loop.patience and data.validation and non_improving >= loop.patience:
                self.stopped = f"patience: no better validation accuracy for {non_improving} iteration(s)"
                break
            if self.config.mixing.mode != "teacher":  # the control trains on no student data
                student_correct = self.sample(name, model_dir, data)
            previous = model_dir

    def baseline(self, method: str, data: Datasets, teacher: list[Solution]) -> None:
        """Train one baseline under `loop.budget`, evaluate its snapshots on validation and its chosen
        one (SIKeD's rule) on every set."""
        name = f"baselines/{method}"
        records = select_teacher(teacher, self.config.mixing.max_per_strategy,
                                 None if method == "combined" else [method])
        path = self.path(name, "train.jsonl")
        if not self.run.is_done(f"{name}/mix"):
            self.stage(f"{name}/mix", MixInfo, lambda: ([path], MixInfo(train=TrainStats(
                teacher_count=write_jsonl(path, records), student_count=0, alpha=1.0,
                strategy_counts=dict(sorted(Counter(r.strategy for r in records).items()))))))
        siked_steps = self.cumulative_steps() if method != self.config.loop.method else []
        budget = siked_steps[-1] if siked_steps and self.config.loop.budget == "equal_steps" else None
        model_dir, info = self.train(name, data, None, max_steps=budget, snapshot_at=siked_steps)
        if data.validation and info.snapshots:
            for step in info.snapshots:
                self.evaluate(f"{name}/step-{step}", snapshot_dir(model_dir, step), data, validation_only=True)
            model_dir = snapshot_dir(model_dir, self.chosen_step(name))
        self.evaluate(name, model_dir, data)

    def checkpoints(self, name: str) -> list[Checkpoint]:
        """A baseline's snapshots with their validation accuracy (those evaluated so far)."""
        info = self.recorded(f"{name}/train", TrainInfo)
        points = []
        for step in info.snapshots:
            scores = self.recorded(f"{name}/step-{step}/eval", EvalInfo).eval
            if VALIDATION in scores:
                points.append(Checkpoint(step=step, validation=scores[VALIDATION].rate,
                                         model=f"{name}/model/snapshots/step-{step}"))
        return points

    def chosen_step(self, name: str) -> int | None:
        """The snapshot step of baseline `name` that validation chose (SIKeD's rule); None without any."""
        return choose_best([(c.step, c.validation) for c in self.checkpoints(name)])[0]

    def cumulative_steps(self) -> list[int]:
        """SIKeD's optimizer steps at the end of each iteration, summed over iterations."""
        steps, total = [], 0
        for name in self.iteration_names():
            total += self.recorded(f"{name}/train", TrainInfo).steps or 0
            steps.append(total)
        return [s for s in steps if s]

    def execute(self) -> Path:
        try:
            return self.execute_stages()
        finally:
            self.tracker.close()

    def execute_stages(self) -> Path:
        data = self.datasets()
        teacher = self.teacher(data)
        loop = self.config.loop
        if loop.stop_after == "teacher":
            self.console.print("stopped after the teacher stage (loop.stop_after)")
            return self.run.path
        if loop.method == "siked":
            self.iterate(data, teacher)
        else:
            self.baseline(loop.method, data, teacher)
        for method in loop.baselines:
            if method != loop.method:
                self.baseline(method, data, teacher)
        if loop.routing:
            self.route(data)
        if loop.keep_merged == "last":
            self.prune_merged()
        write_metrics(self.path(METRICS_FILE), self.metrics())
        if loop.report:
            from siked.report import write_report  # matplotlib: only when a report is asked for

            md, html = write_report(self.run.path)
            self.console.print(f"[bold green]report[/] {html}\n       {md}")
        return self.run.path

    def route(self, data: Datasets) -> None:
        best = self.best_iteration()
        if best is None:
            return
        # validation too: whether a task leaves room for strategy choice is decided there, not on test
        sets = {key: str(path) for key, path in data.paths.items() if key != "train" and
                (key != VALIDATION or data.validation)}
        self.heavy("routing", RoutingInfo, "route", {"model": str(self.chosen_model(best)), "model_name": best,
                                                     "sets": sets, "out": str(self.path("routing.json"))})

    def chosen_model(self, name: str) -> Path:
        """The model folder `name` reports: an iteration's model, or a baseline's chosen snapshot."""
        model_dir = self.path(name, "model")
        if name.startswith("baselines/"):
            chosen = self.chosen_step(name)
            if chosen is not None:
                return snapshot_dir(model_dir, chosen)
        return model_dir

    def prune_merged(self) -> None:
        """`loop.keep_merged: last`: delete the merged weights of every model but the chosen and the last."""
        names = self.iteration_names()
        keep = {self.best_iteration(), names[-1] if names else None}
        models = [*names, *(f"baselines/{m}" for m in self.config.loop.baselines)]
        why = f"kept: {', '.join(sorted(k for k in keep if k))}"
        folders = [self.path(name, "model") for name in models if name not in keep]
        for method in self.config.loop.baselines:  # the snapshots' serving copies, but the chosen one's
            chosen = self.chosen_step(f"baselines/{method}")
            folders += [snapshot_dir(self.path(f"baselines/{method}", "model"), c.step)
                        for c in self.checkpoints(f"baselines/{method}") if c.step != chosen]
        freed = sum(prune_merged(folder, why) for folder in folders if folder.is_dir())
        if freed:
            self.console.print(f"  merged weights of earlier models deleted (loop.keep_merged=last): "
                               f"{freed / 2**20:.0f} MB freed")

    # -- metrics --------------------------------------------------------------------------

    def iteration_names(self) -> list[str]:
        stages = self.run.manifest["stages"]
        names = sorted({s.split("/")[0] for s in stages if s.startswith("iter")}, key=lambda n: int(n[4:]))
        if self.config.loop.method != "siked" and f"baselines/{self.config.loop.method}/eval" in stages:
            return [f"baselines/{self.config.loop.method}"]
        return names

    def best_iteration(self) -> str | None:
        return self.best_choice()[0]

    def best_choice(self) -> tuple[str | None, str | None]:
        """(the chosen iteration, the rule that chose it); see `siked.metrics.choose_best`."""
        evaluated = [n for n in self.iteration_names() if self.run.is_done(f"{n}/eval")]
        results = {n: self.recorded(f"{n}/eval", EvalInfo).eval for n in evaluated}
        return choose_best([(n, r[VALIDATION].accuracy if VALIDATION in r else None) for n, r in results.items()])

    def backends_used(self) -> str | None:
        """The generation backends that sampling and evaluation ran on, with why, e.g.
        `vllm (auto: vLLM is installed and ...)`; None before any such stage."""
        used = {(e["info"]["backend"], e["info"].get("backend_choice") or "")
                for e in self.run.manifest["stages"].values() if e.get("info", {}).get("backend")}
        return "; ".join(f"{name} ({why})" if why else name for name, why in sorted(used)) or None

    def working_time(self) -> tuple[float, str | None]:
        """Seconds spent in stages (over every resume; not the time between a crash and its
        resume) and when the last stage finished."""
        seconds, last = 0.0, None
        for entry in self.run.manifest["stages"].values():
            if entry.get("status") == "done" and entry.get("started") and entry.get("finished"):
                started, finished = (datetime.fromisoformat(entry[k]) for k in ("started", "finished"))
                seconds += (finished - started).total_seconds()
                last = max(last or entry["finished"], entry["finished"])
        return seconds, last

    def train_stats(self, name: str) -> TrainStats:
        """The mix and the training of `name`, in one record."""
        mixed = self.recorded(f"{name}/mix", MixInfo).train.dump()
        trained = self.recorded(f"{name}/train", TrainInfo).model_dump(mode="json", exclude_unset=True,
                                                                       exclude={"snapshots"})
        return TrainStats(**{**mixed, **trained})

    def iteration_metrics(self, index: int, name: str) -> Iteration:
        train = self.train_stats(name)
        train.examples = (train.teacher_count or 0) + (train.student_count or 0)
        entry = Iteration(iteration=index, train=train, eval=self.recorded(f"{name}/eval", EvalInfo).eval)
        sampled = self.recorded(f"{name}/sample", SampleInfo)
        if sampled.student:
            entry.student = sampled.student
        evaluated = self.recorded(f"{name}/eval", EvalInfo)
        entry.generation_backend = {stage: info.backend for stage, info in (("eval", evaluated), ("sample", sampled))
                                    if info.backend}
        folder = self.path(name)
        entry.disk_mb = round(disk_bytes(folder) / 2**20, 1)
        entry.merged_pruned = (folder / "model" / PRUNED).is_file()
        taught = self.config.teacher.strategies
        if sampled.student and FREE in sampled.student.by_mode:
            entry.kl_train_samples = kl_add_one(train.strategy_counts, sampled.student.by_mode[FREE].strategy_counts,
                                                taught)
        if VALIDATION in entry.eval:  # the greedy choices: every iteration has them, the last included
            validation = entry.eval[VALIDATION]
            chosen = {name: round(share * validation.total) for name, share in validation.strategy_distribution.items()}
            entry.kl_train_validation = kl_add_one(train.strategy_counts, chosen, taught)
        return entry

    def baseline_metrics(self, method: str) -> Baseline:
        name = f"baselines/{method}"
        return Baseline(train=self.train_stats(name), eval=self.recorded(f"{name}/eval", EvalInfo).eval,
                        checkpoints=self.checkpoints(name), chosen_step=self.chosen_step(name),
                        budget=self.config.loop.budget)

    def metrics(self) -> Metrics:
        teacher_stats = self.recorded("teacher", TeacherInfo).stats
        names = self.iteration_names()
        best, best_rule = self.best_choice()
        wall_s, finished = self.working_time()
        baselines = [m for m in self.config.loop.baselines if m != self.config.loop.method]
        lone = [self.config.loop.method] if self.config.loop.method != "siked" else []  # its checkpoints
        routing_path = self.path("routing.json")
        optional = {"routing": json.loads(routing_path.read_text(encoding="utf-8"))} if routing_path.exists() else {}
        return new_metrics(
            run=RunInfo(
                out=str(self.run.path), method=self.config.loop.method, seed=self.config.seed,
                teacher_backend=self.config.teacher.backend,
                reference_solutions=self.config.teacher.backend == "reference",
                student_model=self.config.student.model, mixing=self.config.mixing.model_dump(mode="json"),
                started=self.run.manifest["created"], finished=finished or now(), wall_s=round(wall_s, 1),
                baselines=baselines, routing=self.config.loop.routing,
                validation_fraction=self.config.data.validation_fraction,
                generation_backend=self.backends_used(),
            ),
            teacher=TeacherStats(**teacher_stats.dump(), strategy_counts={
                name: stats.kept or 0 for name, stats in teacher_stats.by_strategy.items()}),
            iterations=[self.iteration_metrics(index, name) for index, name in enumerate(names, start=1)],
            best_iteration=names.index(best) + 1 if best else None,
            best_model=str(self.chosen_model(best).relative_to(self.run.path)) if best else None,
            best_rule=best_rule,
            stopped=self.stopped,
            baselines={method: self.baseline_metrics(method) for method in baselines + lone},
            **optional,
        )


def run(config: SikedConfig, console: Console | None = None) -> Path:
    """Run (or resume) SIKeD as configured, holding the run directory's lock; returns the run directory."""
    console = console or Console(stderr=True)
    out = Path(config.out)
    created = not out.exists()
    try:
        with run_lock(out, note=lambda line: console.print(line, markup=False, highlight=False)):
            return Loop(config, console).execute()
    except BaseException:
        lock = out / LOCK_FILE
        if created and lock.is_file() and [p.name for p in out.iterdir()] == [LOCK_FILE]:
            lock.unlink()  # refused before any stage (a bad config): leave no run directory behind
            out.rmdir()
        raise
