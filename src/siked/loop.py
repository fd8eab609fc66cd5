"""The SIKeD loop (`siked run`): teacher data -> train -> evaluate -> sample -> mix -> train ...

Every step is a stage of the run directory (see `siked.rundir`), named by a `siked.names.StageName`:
its artifacts are written atomically before the manifest marks it done, so rerunning the same command
resumes at the first unfinished stage and a finished stage is never redone. The heavy stages (teacher,
training, evaluation, sampling, routing) run in child processes (see `siked.stages`), each asked with
its kind's typed request (`siked.stage_requests`): this process never imports torch, and each stage's
memory is handed back when its child exits. What the stages recorded is read back typed
(`siked.metrics.results`), and metrics.json is built from it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from siked.config import DatasetSpec, LauncherConfig, SikedConfig, dump_config
from siked.data import DataError, load_spec, split_validation
from siked.data.splits import split_validation_by_template
from siked.io import read_jsonl, write_jsonl
from siked.metrics import (
    METRICS_FILE,
    VALIDATION,
    DataInfo,
    EvalInfo,
    Metrics,
    MixInfo,
    TrainInfo,
    TrainStats,
    write_metrics,
)
from siked.metrics.results import ROUTING_FILE, STAGE_INFO, Info, RunResults, build_metrics
from siked.mixing import correct_solutions, mix, select_teacher
from siked.names import DATA, ROUTING, TEACHER, ModelName, StageName
from siked.records import Problem, Solution, Verdict
from siked.rundir import RunDir, eval_file, file_key, now
from siked.runlock import LOCK_FILE, run_lock
from siked.stage_requests import (
    EvalSet,
    EvaluateArgs,
    RouteArgs,
    SampleArgs,
    StageArgs,
    StageError,
    StageRequest,
    TeachArgs,
    TrainArgs,
)
from siked.stages import run_stage
from siked.student.models import PRUNED, disk_bytes, prune_merged
from siked.student.trainer_args import check_train_settings
from siked.tracking import Tracker, iteration_scalars


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
    """One `siked run`: holds the config, the run directory and the trackers."""

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

    def stage(self, name: StageName, body: Callable[[], tuple[list[Path], Info]]) -> None:
        """Run the light stage `body` here, unless the stage is done."""
        if not self.run.is_done(name):
            started = self.begin(name)
            self.finish(name, *body(), started)

    def heavy(self, name: StageName, args: StageArgs[Info], launcher: LauncherConfig | None = None) -> Info:
        """Run a heavy stage (its kind's body in `siked.stage_worker`) in its own process, or in this one
        when `loop.stage_processes` is false, unless it is done; returns its recorded info."""
        if STAGE_INFO[name.step] is not args.info:
            raise StageError(f"stage {name}: a {args.kind} request answers with {args.info.__name__}, "
                             f"but the manifest keeps {STAGE_INFO[name.step].__name__} for {name.step} stages")
        if self.run.is_done(name):
            return self.results().read(name, args.info)  # type: ignore[return-value]
        request, started = StageRequest(stage=name, config=self.config, args=args), self.begin(name)
        if self.config.loop.stage_processes:
            outputs, info = run_stage(request, self.folder(name), launcher=launcher, console=self.console)
        else:
            from siked.stage_worker import run_request
            from siked.student.models import release_freed_memory

            outputs, info = run_request(request, self.console)
            release_freed_memory()
        self.finish(name, outputs, info, started)
        return info

    def begin(self, name: StageName) -> float:
        self.console.print(f"[bold cyan]stage[/] {name}")
        self.run.start(name)
        return time.monotonic()

    def finish(self, name: StageName, outputs: list[Path], info: Info, started: float) -> None:
        info.seconds = round(time.monotonic() - started, 2)
        self.run.finish(name, outputs, info)
        self.track(name)

    def results(self) -> RunResults:
        """What the stages recorded so far."""
        return self.run.results()

    def track(self, stage: StageName) -> None:
        """Send an iteration's metrics to the trackers once its evaluation (or sampling) is done."""
        if not self.tracker.report_to or stage.step not in ("eval", "sample"):
            return
        results = self.results()
        models = results.reported_models(self.config.loop.method)
        if stage.model in models:
            metrics, index = self.metrics(results), models.index(stage.model)
            self.tracker.log(index + 1, iteration_scalars(metrics.iterations[index], metrics.teacher))

    def path(self, *parts: str) -> Path:
        return self.run.stage_path(*parts)

    def folder(self, name: ModelName | StageName) -> Path:
        """A model's or a stage's folder in the run directory."""
        return self.run.path / str(name)

    def weights(self, model: ModelName) -> Path:
        return self.run.path / model.weights

    # -- data and teacher -------------------------------------------------------------

    def datasets(self) -> Datasets:
        data = self.config.data
        paths = {"train": self.path("data", "train.jsonl"), VALIDATION: self.path("data", "validation.jsonl")}
        for spec in data.evaluation:
            paths[spec_key(spec)] = self.path("data", f"eval-{file_key(spec_key(spec))}.jsonl")

        def load() -> tuple[list[Path], DataInfo]:
            split = split_validation_by_template if data.validation_by_template else split_validation
            loaded = load_spec(data.train)
            train, validation = split(loaded, data.validation_fraction, data.split_seed)
            if loaded and not train:
                raise DataError(f"data.train: all {len(loaded)} problems loaded went to validation "
                                f"(data.validation_fraction {data.validation_fraction}): raise data.train.limit "
                                "or lower data.validation_fraction")
            write_jsonl(paths["train"], train)
            write_jsonl(paths[VALIDATION], validation)
            counts = {"train": len(train), VALIDATION: len(validation)}
            for spec in data.evaluation:
                problems = load_spec(spec)
                write_jsonl(paths[spec_key(spec)], problems)
                counts[spec_key(spec)] = len(problems)
            return list(paths.values()), DataInfo(counts=counts)

        self.stage(DATA, load)
        read = {key: read_jsonl(path, Problem) for key, path in paths.items()}
        train = read.pop("train")
        validation = read.pop(VALIDATION)
        return Datasets(train=train, validation=validation, evaluation=read, paths=paths)

    def teacher(self, data: Datasets) -> list[Solution]:
        out_dir = self.folder(TEACHER)
        self.heavy(TEACHER, TeachArgs(problems=data.paths["train"], out_dir=out_dir))
        return read_jsonl(out_dir / "teacher.jsonl", Solution)

    # -- the student ----------------------------------------------------------------------

    def train(self, model: ModelName, data: Datasets, previous: Path | None,
              max_steps: int | None = None, snapshot_at: list[int] | None = None) -> tuple[Path, TrainInfo]:
        """Train `model` on its train.jsonl (the mix) under `train.launcher`."""
        model_dir, stage = self.weights(model), model.stage("train")
        if self.run.is_done(stage):
            return model_dir, self.results().train(model)
        with self.tracker.training(str(model), child_process=self.config.loop.stage_processes) as trainer_args:
            args = TrainArgs(data=self.folder(model) / "train.jsonl", questions=data.paths["train"], out_dir=model_dir,
                             previous=previous, max_steps=max_steps, trainer_args=trainer_args, snapshot_at=snapshot_at)
            return model_dir, self.heavy(stage, args, launcher=self.config.train.launcher)

    def evaluate(self, model: ModelName, model_dir: Path, data: Datasets, validation_only: bool = False) -> EvalInfo:
        """Greedy decoding of every evaluation set (validation first), the student choosing its strategy."""
        sets = {key: EvalSet(problems=data.paths[key], out=eval_file(self.folder(model), key))
                for key, problems in data.eval_sets().items() if problems and (key == VALIDATION or not validation_only)}
        return self.heavy(model.stage("eval"), EvaluateArgs(model=model_dir, sets=sets))

    def sample(self, model: ModelName, data: Datasets) -> list[Solution]:
        """The student's own solutions on the training questions (as `mixing.line` samples); returns the correct ones."""
        args = SampleArgs(model=self.weights(model), problems=data.paths["train"],
                          solutions_out=self.folder(model) / "samples.jsonl",
                          verdicts_out=self.folder(model) / "sample_verdicts.jsonl")
        self.heavy(model.stage("sample"), args)
        return correct_solutions(read_jsonl(args.solutions_out, Solution), read_jsonl(args.verdicts_out, Verdict))

    def mix(self, model: ModelName, teacher: list[Solution], student_correct: list[Solution], *,
            first_iteration: bool = False) -> None:
        """Write `model`'s train.jsonl, what its training stage reads."""
        path = self.folder(model) / "train.jsonl"
        cfg = self.config.mixing

        def run_mix() -> tuple[list[Path], MixInfo]:
            mixed = mix(teacher, student_correct, cfg.mode, cfg.line, cfg.max_per_strategy, cfg.priority,
                        first_iteration=first_iteration)
            write_jsonl(path, mixed.records)
            train = TrainStats(teacher_count=mixed.teacher_count, student_count=mixed.student_count,
                               alpha=mixed.alpha, strategy_counts=mixed.strategy_counts)
            if mixed.fallback:
                train.fallback = mixed.fallback
                self.console.print(f"  {model} mix: {mixed.fallback}")
            return [path], MixInfo(train=train)

        self.stage(model.stage("mix"), run_mix)

    # -- the whole run --------------------------------------------------------------------

    def iterate(self, data: Datasets, teacher: list[Solution]) -> None:
        loop = self.config.loop
        previous: Path | None = None
        student_correct: list[Solution] = []
        best_accuracy, non_improving = -1.0, 0
        for iteration in range(1, loop.max_iterations + 1):
            model = ModelName(iteration=iteration)
            self.mix(model, teacher, student_correct, first_iteration=iteration == 1)
            init_from = previous if self.config.train.init == "previous" else None
            model_dir, _ = self.train(model, data, init_from)
            scores = self.evaluate(model, model_dir, data).eval
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
                student_correct = self.sample(model, data)
            previous = model_dir

    def baseline(self, method: str, data: Datasets, teacher: list[Solution]) -> None:
        """Train one baseline under `loop.budget`, evaluate its snapshots on validation and its chosen
        one (SIKeD's rule) on every set."""
        model = ModelName(baseline=method)
        records = select_teacher(teacher, self.config.mixing.max_per_strategy,
                                 None if method == "combined" else [method])
        path = self.folder(model) / "train.jsonl"
        self.stage(model.stage("mix"), lambda: ([path], MixInfo(train=TrainStats(
            teacher_count=write_jsonl(path, records), student_count=0, alpha=1.0,
            strategy_counts=dict(sorted(Counter(r.strategy for r in records).items()))))))
        results = self.results()
        siked_steps = (results.cumulative_steps(results.reported_models(self.config.loop.method))
                       if method != self.config.loop.method else [])
        budget = siked_steps[-1] if siked_steps and self.config.loop.budget == "equal_steps" else None
        model_dir, info = self.train(model, data, None, max_steps=budget, snapshot_at=siked_steps)
        if data.validation and info.snapshots:
            for step in info.snapshots:
                self.evaluate(model.snapshot(step), self.weights(model.snapshot(step)), data, validation_only=True)
            model_dir = self.weights(self.results().chosen(model))
        self.evaluate(model, model_dir, data)

    def execute(self) -> Path:
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
            self.report()
        return self.run.path

    def report(self) -> None:
        from siked.report import write_report  # matplotlib: only when a report is asked for

        md, html = write_report(self.run.path)
        self.console.print(f"[bold green]report[/] {html}\n       {md}")

    def route(self, data: Datasets) -> None:
        results = self.results()
        best = results.best_choice(results.reported_models(self.config.loop.method))[0]
        if best is None:
            return
        # validation too: whether a task leaves room for strategy choice is decided there, not on test
        sets = {key: path for key, path in data.paths.items() if key != "train" and (key != VALIDATION or data.validation)}
        self.heavy(ROUTING, RouteArgs(model=self.weights(results.chosen(best)), model_name=best, sets=sets,
                                      out=self.path(ROUTING_FILE)))

    def prune_merged(self) -> None:
        """`loop.keep_merged: last`: delete the merged weights of every model but the chosen and the last."""
        results = self.results()
        names = results.reported_models(self.config.loop.method)
        keep = {results.best_choice(names)[0], names[-1] if names else None}
        baselines = [ModelName(baseline=method) for method in self.config.loop.baselines]
        why = f"kept: {', '.join(sorted(str(k) for k in keep if k))}"
        models = [m for m in dict.fromkeys([*names, *baselines]) if m not in keep]
        for baseline in baselines:  # the snapshots' serving copies, but the chosen one's
            chosen = results.chosen_step(baseline)
            models += [baseline.snapshot(c.step) for c in results.checkpoints(baseline) if c.step != chosen]
        freed = sum(prune_merged(self.weights(m), why) for m in models if self.weights(m).is_dir())
        if freed:
            self.console.print(f"  merged weights of earlier models deleted (loop.keep_merged=last): "
                               f"{freed / 2**20:.0f} MB freed")

    # -- metrics --------------------------------------------------------------------------

    def metrics(self, results: RunResults | None = None) -> Metrics:
        return build_metrics(results or self.results(), self.config, stopped=self.stopped, disk=self.disk_use,
                             now=now())

    def disk_use(self, model: ModelName) -> tuple[float, bool]:
        """A model's folder when the run ends: MB on disk (model, merged weights, samples), and whether
        its merged weights were deleted (`loop.keep_merged: last`)."""
        folder = self.folder(model)
        return round(disk_bytes(folder) / 2**20, 1), (folder / "model" / PRUNED).is_file()


def run(config: SikedConfig, console: Console | None = None) -> Path:
    """Run (or resume) SIKeD as configured, holding the run directory's lock; returns the run directory."""
    console = console or Console(stderr=True)
    out = Path(config.out)
    created = not out.exists()
    try:
        with run_lock(out, note=lambda line: console.print(line, markup=False, highlight=False)):
            loop = Loop(config, console)
            try:
                return loop.execute()
            finally:
                loop.tracker.close()
    except BaseException:
        lock = out / LOCK_FILE
        if created and lock.is_file() and [p.name for p in out.iterdir()] == [LOCK_FILE]:
            lock.unlink()  # refused before any stage (a bad config): leave no run directory behind
            out.rmdir()
        raise
