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
from pathlib import Path
from typing import Any

from rich.console import Console

from siked.config import DatasetSpec, SikedConfig, dump_config
from siked.evaluation import distribution_from_counts, kl_divergence
from siked.io import read_jsonl, write_json, write_jsonl
from siked.mixing import correct_solutions, mix, select_teacher
from siked.records import Problem, Solution, Verdict
from siked.rundir import RunDir, now
from siked.stages import StageRequest, run_stage
from siked.student.models import release_freed_memory
from siked.tracking import Tracker, iteration_scalars

VALIDATION = "validation"


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


def file_key(key: str) -> str:
    return key.replace(":", "-").replace("/", "_")


class Loop:
    """One `siked run`: holds the config, the run directory and the shared grader."""

    def __init__(self, config: SikedConfig, console: Console | None = None):
        self.config = config
        self.console = console or Console(stderr=True)
        self.tracker = Tracker(config.tracking.report_to, config.tracking.project, Path(config.out))
        self.run = RunDir.open(config)
        (self.run.path / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        self.stopped: str | None = None
        """Why the iterations ended (set by `iterate`)."""

    # -- stage plumbing ---------------------------------------------------------------

    def stage(self, name: str, body: Callable[[], tuple[list[Path], dict[str, Any]]]) -> dict[str, Any]:
        """Run `body` unless the stage is done; returns the stage's recorded info."""
        if self.run.is_done(name):
            return self.run.info(name)
        self.console.print(f"[bold cyan]stage[/] {name}")
        self.run.start(name)
        started = time.monotonic()
        outputs, info = body()
        info["seconds"] = round(time.monotonic() - started, 2)
        self.run.finish(name, outputs, info)
        release_freed_memory()
        self.track(name)
        return info

    def heavy(self, name: str, kind: str, args: dict[str, Any], launcher: Any = None) -> dict[str, Any]:
        """Run a heavy stage (a body of `siked.stage_worker`) in its own process, or in this one
        when `loop.stage_processes` is false; returns its recorded info."""
        request = StageRequest(stage=name, kind=kind, config=self.config.model_dump(mode="json"), args=args)

        def body() -> tuple[list[Path], dict[str, Any]]:
            if self.config.loop.stage_processes:
                return run_stage(request, self.path(name), launcher=launcher, console=self.console)
            from siked.stage_worker import run_request

            outputs, info = run_request(request, self.console)
            return [Path(p) for p in outputs], info

        return self.stage(name, body)

    def track(self, stage: str) -> None:
        """Send an iteration's metrics to the trackers once its evaluation (or sampling) is done."""
        name, _, step = stage.rpartition("/")
        names = self.iteration_names()
        if not self.tracker.report_to or step not in ("eval", "sample") or name not in names:
            return
        metrics = self.metrics()
        index = names.index(name)
        self.tracker.log(index + 1, iteration_scalars(metrics["iterations"][index], metrics["teacher"]))

    def path(self, *parts: str) -> Path:
        return self.run.stage_path(*parts)

    # -- data and teacher -------------------------------------------------------------

    def datasets(self) -> Datasets:
        from siked.data import load_spec, split_validation

        data = self.config.data
        paths = {"train": self.path("data", "train.jsonl"), VALIDATION: self.path("data", "validation.jsonl")}
        for spec in data.evaluation:
            paths[spec_key(spec)] = self.path("data", f"eval-{file_key(spec_key(spec))}.jsonl")

        def load() -> tuple[list[Path], dict[str, Any]]:
            train, validation = split_validation(load_spec(data.train), data.validation_fraction, data.split_seed)
            write_jsonl(paths["train"], train)
            write_jsonl(paths[VALIDATION], validation)
            counts = {"train": len(train), VALIDATION: len(validation)}
            for spec in data.evaluation:
                problems = load_spec(spec)
                write_jsonl(paths[spec_key(spec)], problems)
                counts[spec_key(spec)] = len(problems)
            return list(paths.values()), {"counts": counts}

        self.stage("data", load)
        read = {key: read_jsonl(path, Problem) for key, path in paths.items()}
        train = read.pop("train")
        validation = read.pop(VALIDATION)
        return Datasets(train=train, validation=validation, evaluation=read, paths=paths)

    def teacher(self, data: Datasets) -> list[Solution]:
        out_dir = self.path("teacher")
        self.heavy("teacher", "teach", {"problems": str(data.paths["train"]), "out_dir": str(out_dir)})
        return read_jsonl(out_dir / "teacher.jsonl", Solution)

    # -- the student ----------------------------------------------------------------------

    def train(self, name: str, data: Datasets, previous: Path | None,
              max_steps: int | None = None) -> tuple[Path, dict[str, Any]]:
        """Train on `name`/train.jsonl (the mix) under `train.launcher`."""
        model_dir = self.path(name, "model")
        stage = f"{name}/train"
        if self.run.is_done(stage):
            return model_dir, self.run.info(stage)
        args = {"data": str(self.path(name, "train.jsonl")), "questions": str(data.paths["train"]),
                "out_dir": str(model_dir), "previous": str(previous) if previous else None, "max_steps": max_steps}
        with self.tracker.training(name, child_process=self.config.loop.stage_processes) as trainer_args:
            info = self.heavy(stage, "train", {**args, "trainer_args": trainer_args},
                              launcher=self.config.train.launcher)
        return model_dir, info

    def evaluate(self, name: str, model_dir: Path, data: Datasets) -> dict[str, Any]:
        sets = {key: {"problems": str(data.paths[key]), "out": str(self.path(name, "eval", f"{file_key(key)}.jsonl"))}
                for key, problems in data.eval_sets().items() if problems}
        return self.heavy(f"{name}/eval", "evaluate", {"model": str(model_dir), "name": name, "sets": sets})["eval"]

    def sample(self, name: str, model_dir: Path, data: Datasets) -> list[Solution]:
        """The student's own solutions on the training questions (`loop.sample_mode`); returns the correct ones."""
        samples_path = self.path(name, "samples.jsonl")
        verdicts_path = self.path(name, "sample_verdicts.jsonl")
        self.heavy(f"{name}/sample", "sample", {"model": str(model_dir), "problems": str(data.paths["train"]),
                                                "samples": str(samples_path), "verdicts": str(verdicts_path)})
        return correct_solutions(read_jsonl(samples_path, Solution), read_jsonl(verdicts_path, Verdict))

    def mix(self, name: str, teacher: list[Solution], student_correct: list[Solution], *,
            first_iteration: bool = False) -> None:
        """Write `name`/train.jsonl, what the training stage reads."""
        path = self.path(name, "train.jsonl")
        cfg = self.config.mixing

        def run_mix() -> tuple[list[Path], dict[str, Any]]:
            mixed = mix(teacher, student_correct, cfg.mode, cfg.granularity, cfg.max_per_strategy, cfg.priority,
                        first_iteration=first_iteration)
            write_jsonl(path, mixed.records)
            train = {"teacher_count": mixed.teacher_count, "student_count": mixed.student_count,
                     "alpha": mixed.alpha, "strategy_counts": mixed.strategy_counts}
            if mixed.fallback:
                train["fallback"] = mixed.fallback
                self.console.print(f"  {name} mix: {mixed.fallback}")
            return [path], {"train": train}

        self.stage(f"{name}/mix", run_mix)

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
            accuracy = self.evaluate(name, model_dir, data).get(VALIDATION, {}).get("accuracy", 0.0)
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
            student_correct = self.sample(name, model_dir, data)
            previous = model_dir

    def baseline(self, method: str, data: Datasets, teacher: list[Solution], max_steps: int | None) -> None:
        name = f"baselines/{method}"
        records = select_teacher(teacher, self.config.mixing.max_per_strategy,
                                 None if method == "combined" else [method])
        path = self.path(name, "train.jsonl")
        if not self.run.is_done(f"{name}/mix"):
            self.stage(f"{name}/mix", lambda: ([path], {"train": {
                "teacher_count": write_jsonl(path, records), "student_count": 0, "alpha": 1.0,
                "strategy_counts": dict(sorted(Counter(r.strategy for r in records).items()))}}))
        model_dir, _ = self.train(name, data, None, max_steps=max_steps)
        self.evaluate(name, model_dir, data)

    def execute(self) -> Path:
        try:
            return self.execute_stages()
        finally:
            self.tracker.close()

    def execute_stages(self) -> Path:
        data = self.datasets()
        teacher = self.teacher(data)
        loop = self.config.loop
        if loop.method == "siked":
            self.iterate(data, teacher)
        else:
            self.baseline(loop.method, data, teacher, None)
        budget = self.total_steps()
        for method in loop.baselines:
            if method != loop.method:
                self.baseline(method, data, teacher, budget)
        if loop.routing:
            self.route(data)
        metrics = self.metrics()
        write_json(self.path("metrics.json"), metrics)
        if loop.report:
            from siked.report import write_report

            md, html = write_report(self.run.path)
            self.console.print(f"[bold green]report[/] {html}\n       {md}")
        return self.run.path

    def route(self, data: Datasets) -> None:
        best = self.best_iteration()
        if best is None:
            return
        sets = {key: str(data.paths[key]) for key in data.evaluation}
        self.heavy("routing", "route", {"model": str(self.path(best, "model")), "model_name": best, "sets": sets,
                                        "out": str(self.path("routing.json"))})

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
        """(the chosen iteration, the rule that chose it); see `choose_best`."""
        evaluated = [n for n in self.iteration_names() if self.run.is_done(f"{n}/eval")]
        return choose_best([(n, self.run.info(f"{n}/eval").get("eval", {}).get(VALIDATION, {}).get("accuracy"))
                            for n in evaluated])

    def total_steps(self) -> int | None:
        steps = [self.run.info(f"{n}/train").get("steps") for n in self.iteration_names()]
        return sum(s for s in steps if s) or None

    def working_time(self) -> tuple[float, str | None]:
        """Seconds spent in stages (over every resume; not the time between a crash and its
        resume) and when the last stage finished."""
        from datetime import datetime

        seconds, last = 0.0, None
        for entry in self.run.manifest["stages"].values():
            if entry.get("status") == "done" and entry.get("started") and entry.get("finished"):
                started, finished = (datetime.fromisoformat(entry[k]) for k in ("started", "finished"))
                seconds += (finished - started).total_seconds()
                last = max(last or entry["finished"], entry["finished"])
        return seconds, last

    def metrics(self) -> dict[str, Any]:
        info = self.run.info
        teacher_stats = info("teacher").get("stats", {})
        iterations = []
        for index, name in enumerate(self.iteration_names(), start=1):
            train = {**info(f"{name}/mix").get("train", {}), **info(f"{name}/train")}
            train["examples"] = train.get("teacher_count", 0) + train.get("student_count", 0)
            entry: dict[str, Any] = {"iteration": index, "train": train, "eval": info(f"{name}/eval").get("eval", {})}
            student = info(f"{name}/sample").get("student")
            if student:
                entry["student"] = student
            train_dist = distribution_from_counts(train.get("strategy_counts", {}))
            # The student's greedy choices on the validation questions: recorded for every iteration,
            # the last included (which samples nothing), so the KL is comparable across iterations.
            chosen = entry["eval"].get(VALIDATION, {}).get("strategy_distribution")
            if train_dist and chosen:
                entry["kl_train_student"] = kl_divergence(train_dist, chosen)
            iterations.append(entry)
        best, best_rule = self.best_choice()
        wall_s, finished = self.working_time()
        baselines = {
            method: {"train": {**info(f"baselines/{method}/mix").get("train", {}), **info(f"baselines/{method}/train")},
                     "eval": info(f"baselines/{method}/eval").get("eval", {})}
            for method in self.config.loop.baselines if method != self.config.loop.method
        }
        metrics: dict[str, Any] = {
            "run": {
                "out": str(self.run.path), "method": self.config.loop.method,
                "teacher_backend": self.config.teacher.backend,
                "reference_solutions": self.config.teacher.backend == "reference",
                "student_model": self.config.student.model,
                "mixing": self.config.mixing.model_dump(mode="json"),
                "started": self.run.manifest["created"], "finished": finished or now(), "wall_s": round(wall_s, 1),
                "baselines": [m for m in self.config.loop.baselines if m != self.config.loop.method],
                "routing": self.config.loop.routing,
                "validation_fraction": self.config.data.validation_fraction,
            },
            "teacher": {**teacher_stats, "strategy_counts": {
                name: stats.get("kept", 0) for name, stats in teacher_stats.get("by_strategy", {}).items()}},
            "iterations": iterations,
            "best_iteration": self.iteration_names().index(best) + 1 if best else None,
            "best_model": f"{best}/model" if best else None,
            "best_rule": best_rule,
            "stopped": self.stopped,
            "baselines": baselines,
        }
        routing_path = self.path("routing.json")
        if routing_path.exists():
            metrics["routing"] = json.loads(routing_path.read_text(encoding="utf-8"))
        return metrics


BEST_BY_VALIDATION = "highest validation accuracy (earliest on ties)"
BEST_IS_LAST = "last iteration (no validation set: data.validation_fraction is 0)"


def choose_best(scores: list[tuple[str, float | None]]) -> tuple[str | None, str | None]:
    """(iteration, rule) among evaluated iterations in order, given each one's validation accuracy.

    The highest validation accuracy wins, the earliest on ties; test sets never choose. Where no
    iteration has a validation accuracy (no validation set), the last evaluated iteration is the model.
    """
    scored = [(acc, n) for n, acc in scores if acc is not None]
    if scored:
        best = max(acc for acc, _ in scored)
        return next(n for acc, n in scored if acc == best), BEST_BY_VALIDATION
    if scores:
        return scores[-1][0], BEST_IS_LAST
    return None, None


def run(config: SikedConfig, console: Console | None = None) -> Path:
    """Run (or resume) SIKeD as configured; returns the run directory."""
    return Loop(config, console).execute()
