"""The SIKeD loop (`siked run`): teacher data -> train -> evaluate -> sample -> mix -> train ...

Every step is a stage of the run directory (see `siked.rundir`): its artifacts are written
atomically before the manifest marks it done, so rerunning the same command resumes at the
first unfinished stage and a finished stage is never redone.
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
from siked.evaluation import (
    decode_and_grade,
    distribution_from_counts,
    kl_divergence,
    open_student,
    routing,
    sample_summary,
    summarize,
)
from siked.io import read_jsonl, write_json, write_jsonl
from siked.mixing import correct_solutions, mix
from siked.records import Problem, Solution, Verdict
from siked.rundir import RunDir, now
from siked.student.models import release_freed_memory
from siked.tracking import Tracker, iteration_scalars

VALIDATION = "validation"


@dataclass
class Datasets:
    train: list[Problem]
    validation: list[Problem]
    evaluation: dict[str, list[Problem]]

    def eval_sets(self) -> dict[str, list[Problem]]:
        """Validation first: it decides the best iteration."""
        return {VALIDATION: self.validation, **self.evaluation}


def spec_key(spec: DatasetSpec) -> str:
    return f"{spec.name}:{spec.split}"


def file_key(key: str) -> str:
    return key.replace(":", "-").replace("/", "_")


def backend_info(student: tuple[Any, Any]) -> dict[str, str]:
    """Which generation backend a stage ran, and why (`generation.backend: auto` decides)."""
    backend = student[1]
    return {"backend": backend.name, "backend_choice": backend.choice}


class Loop:
    """One `siked run`: holds the config, the run directory and the shared grader."""

    def __init__(self, config: SikedConfig, console: Console | None = None):
        self.config = config
        self.console = console or Console(stderr=True)
        self.tracker = Tracker(config.tracking.report_to, config.tracking.project, Path(config.out))
        self.run = RunDir.open(config)
        (self.run.path / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        self.grader: Any = None
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
        return Datasets(train=train, validation=validation, evaluation=read)

    def teacher(self, problems: list[Problem]) -> list[Solution]:
        from siked.teachers import teach

        out_dir = self.path("teacher")

        def run_teacher() -> tuple[list[Path], dict[str, Any]]:
            result = teach(self.config, problems, out_dir, console=self.console)
            return [out_dir / "teacher.jsonl", out_dir / "teacher_stats.json"], {"stats": result.stats}

        self.stage("teacher", run_teacher)
        return read_jsonl(out_dir / "teacher.jsonl", Solution)

    # -- the student ----------------------------------------------------------------------

    def train(self, name: str, records: list[Solution], problems: list[Problem],
              previous: Path | None, max_steps: int | None = None) -> tuple[Path, dict[str, Any]]:
        from siked.student import train_student

        model_dir = self.path(name, "model")

        def run_training() -> tuple[list[Path], dict[str, Any]]:
            by_id = {p.id: p for p in problems}
            pairs = [(by_id[r.problem_id], r) for r in records]
            with self.tracker.training(name) as trainer_args:
                result = train_student(pairs, self.config, model_dir, previous=previous, max_steps=max_steps,
                                       console=self.console, trainer_args=trainer_args)
            info = {"examples": len(records), "steps": result.steps, "train_loss": result.train_loss,
                    "tokens_per_s": result.tokens_per_s}
            return [model_dir], info

        info = self.stage(f"{name}/train", run_training)
        return model_dir, info

    def generate_and_grade(self, student: Any, problems: list[Problem], *, greedy: bool,
                           mode: str = "free", samples: int = 1) -> tuple[list[Solution], list[Verdict]]:
        return decode_and_grade(student, problems, self.config, self.grader, greedy=greedy, mode=mode,
                                samples=samples, console=self.console)

    def evaluate(self, name: str, model_dir: Path, sets: dict[str, list[Problem]]) -> dict[str, Any]:
        def run_eval() -> tuple[list[Path], dict[str, Any]]:
            outputs, summaries = [], {}
            with open_student(model_dir, self.config) as student:
                for key, problems in sets.items():
                    if problems:
                        outputs.append(self.evaluate_set(name, key, student, problems, summaries))
            return outputs, {"eval": summaries, **backend_info(student)}

        return self.stage(f"{name}/eval", run_eval)["eval"]

    def evaluate_set(self, name: str, key: str, student: Any, problems: list[Problem],
                     summaries: dict[str, Any]) -> Path:
        solutions, verdicts = self.generate_and_grade(student, problems, greedy=True)
        path = self.path(name, "eval", f"{file_key(key)}.jsonl")
        write_jsonl(path, [{**s.model_dump(mode="json"), "verdict": v.model_dump(mode="json")}
                           for s, v in zip(solutions, verdicts, strict=True)])
        summaries[key] = summarize(verdicts)
        self.console.print(f"  {name} {key}: accuracy {summaries[key]['accuracy']:.1%}")
        return path

    def sample(self, name: str, model_dir: Path, problems: list[Problem]) -> list[Solution]:
        """The student's own solutions on the training questions; returns the correct ones."""
        samples_path = self.path(name, "samples.jsonl")
        verdicts_path = self.path(name, "sample_verdicts.jsonl")

        def run_sampling() -> tuple[list[Path], dict[str, Any]]:
            with open_student(model_dir, self.config) as student:
                solutions, verdicts = self.generate_and_grade(
                    student, problems, greedy=False, samples=self.config.generation.samples
                )
            write_jsonl(samples_path, solutions)
            write_jsonl(verdicts_path, verdicts)
            return [samples_path, verdicts_path], {"student": sample_summary(problems, solutions, verdicts),
                                                   **backend_info(student)}

        self.stage(f"{name}/sample", run_sampling)
        return correct_solutions(read_jsonl(samples_path, Solution), read_jsonl(verdicts_path, Verdict))

    def mix(self, name: str, teacher: list[Solution], student_correct: list[Solution]) -> list[Solution]:
        path = self.path(name, "train.jsonl")
        cfg = self.config.mixing

        def run_mix() -> tuple[list[Path], dict[str, Any]]:
            mixed = mix(teacher, student_correct, cfg.mode, cfg.granularity, cfg.max_per_strategy, cfg.priority)
            write_jsonl(path, mixed.records)
            return [path], {"train": {"teacher_count": mixed.teacher_count, "student_count": mixed.student_count,
                                      "alpha": mixed.alpha, "strategy_counts": mixed.strategy_counts}}

        self.stage(f"{name}/mix", run_mix)
        return read_jsonl(path, Solution)

    # -- the whole run --------------------------------------------------------------------

    def iterate(self, data: Datasets, teacher: list[Solution]) -> None:
        loop = self.config.loop
        previous: Path | None = None
        student_correct: list[Solution] = []
        best_accuracy, non_improving = -1.0, 0
        for iteration in range(1, loop.max_iterations + 1):
            name = f"iter{iteration}"
            records = self.mix(name, teacher, student_correct) if iteration > 1 else self.mix(name, teacher, [])
            init_from = previous if self.config.train.init == "previous" else None
            model_dir, _ = self.train(name, records, data.train, init_from)
            accuracy = self.evaluate(name, model_dir, data.eval_sets()).get(VALIDATION, {}).get("accuracy", 0.0)
            if accuracy > best_accuracy:
                best_accuracy, non_improving = accuracy, 0
            else:
                non_improving += 1
            if iteration == loop.max_iterations:
                self.stopped = f"max_iterations ({loop.max_iterations})"
                break
            if loop.patience and non_improving >= loop.patience:
                self.stopped = f"patience: no better validation accuracy for {non_improving} iteration(s)"
                break
            student_correct = self.sample(name, model_dir, data.train)
            previous = model_dir

    def baseline(self, method: str, data: Datasets, teacher: list[Solution], max_steps: int | None) -> None:
        name = f"baselines/{method}"
        records = teacher if method == "combined" else [t for t in teacher if t.strategy == method]
        path = self.path(name, "train.jsonl")
        if not self.run.is_done(f"{name}/mix"):
            self.stage(f"{name}/mix", lambda: ([path], {"train": {
                "teacher_count": write_jsonl(path, records), "student_count": 0, "alpha": 1.0,
                "strategy_counts": dict(sorted(Counter(r.strategy for r in records).items()))}}))
        model_dir, _ = self.train(name, records, data.train, None, max_steps=max_steps)
        self.evaluate(name, model_dir, data.eval_sets())

    def execute(self) -> Path:
        try:
            return self.execute_stages()
        finally:
            self.tracker.close()

    def execute_stages(self) -> Path:
        from siked.grading import Grader
        from siked.sandbox import SandboxPool

        data = self.datasets()
        teacher = self.teacher(data.train)
        loop = self.config.loop
        with SandboxPool.from_config(self.config.sandbox) as sandbox:
            self.grader = Grader.from_config(self.config, sandbox)
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
        model_dir = self.path(best, "model")

        def run_routing() -> tuple[list[Path], dict[str, Any]]:
            from siked.strategies import strategy_names

            table = {}
            with open_student(model_dir, self.config) as student:
                for key, problems in data.evaluation.items():
                    forced = {name: self.generate_and_grade(student, problems, greedy=True, mode=name)[1]
                              for name in strategy_names()}
                    table[key] = routing(problems, forced)
            path = self.path("routing.json")
            write_json(path, table)
            return [path], {"model": best, **backend_info(student)}

        self.stage("routing", run_routing)

    # -- metrics --------------------------------------------------------------------------

    def iteration_names(self) -> list[str]:
        stages = self.run.manifest["stages"]
        names = sorted({s.split("/")[0] for s in stages if s.startswith("iter")}, key=lambda n: int(n[4:]))
        if self.config.loop.method != "siked" and f"baselines/{self.config.loop.method}/eval" in stages:
            return [f"baselines/{self.config.loop.method}"]
        return names

    def best_iteration(self) -> str | None:
        """The iteration with the best validation accuracy (the earliest on ties); never test."""
        scored = [(self.run.info(f"{n}/eval").get("eval", {}).get(VALIDATION, {}).get("accuracy"), n)
                  for n in self.iteration_names()]
        scored = [(acc, n) for acc, n in scored if acc is not None]
        if not scored:
            return None
        best = max(acc for acc, _ in scored)
        return next(n for acc, n in scored if acc == best)

    def total_steps(self) -> int | None:
        steps = [self.run.info(f"{n}/train").get("steps") for n in self.iteration_names()]
        return sum(s for s in steps if s) or None

    def backends_used(self) -> str | None:
        """The generation backends that sampling and evaluation ran on, with why, e.g.
        `vllm (auto: vLLM is installed and ...)`; None before any such stage."""
        used = {(e["info"]["backend"], e["info"].get("backend_choice") or "")
                for e in self.run.manifest["stages"].values() if "backend" in e.get("info", {})}
        return "; ".join(f"{name} ({why})" if why else name for name, why in sorted(used)) or None

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
            entry["generation_backend"] = {stage: info(f"{name}/{stage}")["backend"] for stage in ("eval", "sample")
                                           if "backend" in info(f"{name}/{stage}")}
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
        best = self.best_iteration()
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
                "generation_backend": self.backends_used(),
            },
            "teacher": {**teacher_stats, "strategy_counts": {
                name: stats.get("kept", 0) for name, stats in teacher_stats.get("by_strategy", {}).items()}},
            "iterations": iterations,
            "best_iteration": self.iteration_names().index(best) + 1 if best else None,
            "best_model": f"{best}/model" if best else None,
            "stopped": self.stopped,
            "baselines": baselines,
        }
        routing_path = self.path("routing.json")
        if routing_path.exists():
            metrics["routing"] = json.loads(routing_path.read_text(encoding="utf-8"))
        return metrics


def run(config: SikedConfig, console: Console | None = None) -> Path:
    """Run (or resume) SIKeD as configured; returns the run directory."""
    return Loop(config, console).execute()
