"""What the LLM teachers share: planning requests around the cache and reading solutions back."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from siked.config import TeacherConfig
from siked.records import Problem, Solution
from siked.strategies import get_strategy
from siked.teachers.base import Ledger, Request, SolveContext, Teacher, TeacherError, stable_seed
from siked.teachers.cache import CompletionLog, completion_key

SampleKeys = dict[tuple[str, str], list[str]]
"""(problem id, strategy) -> the cache key of each sample index."""


class LLMTeacher(Teacher):
    """A teacher that samples a language model; completions go through the durable cache."""

    uses_llm = True

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__(config)
        self.log_ledger = Ledger()
        """What the completions used by the last `solve` cost, over every run that wrote the log."""

    @property
    def endpoint(self) -> str:
        """chat: the prompt as few-shot chat turns; completions: one plain few-shot prompt. A
        registered backend's comes from `teacher.options.endpoint`."""
        return str(self.config.options.get("endpoint", "chat"))

    @abstractmethod
    def generate(self, requests: list[Request], log: CompletionLog) -> None:
        """Send `requests` and put every reply into `log` as it arrives (durable before returning).

        Raise `TeacherError` when requests fail for good, after recording what did arrive.
        """

    def sample_key(self, problem: Problem, strategy: str, sample_index: int) -> str:
        config = self.config
        return completion_key(
            backend=self.backend,
            model=self.model_name,
            endpoint=self.endpoint,
            problem=problem,
            strategy=strategy,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            seed=config.seed,
            sample_index=sample_index,
        )

    def sample_keys(self, problems: Sequence[Problem], strategies: Sequence[str], samples: int) -> SampleKeys:
        return {
            (problem.id, name): [self.sample_key(problem, name, i) for i in range(samples)]
            for problem in problems
            for name in strategies
        }

    def plan(self, problems: Sequence[Problem], strategies: Sequence[str], keys: SampleKeys, log: CompletionLog) -> list[Request]:
        """One request per (problem, strategy) for the sample indices the log does not hold yet."""
        requests = []
        for problem in problems:
            for name in strategies:
                sample_keys = keys[problem.id, name]
                missing = [i for i, key in enumerate(sample_keys) if key not in log]
                if missing:
                    requests.append(self.make_request(problem, name, missing, [sample_keys[i] for i in missing]))
        return requests

    def make_request(self, problem: Problem, strategy_name: str, indices: list[int], keys: list[str]) -> Request:
        strategy = get_strategy(strategy_name)
        chat = self.endpoint == "chat"
        return Request(
            problem_id=problem.id,
            strategy=strategy_name,
            sample_indices=indices,
            keys=keys,
            prompt=None if chat else strategy.teacher_prompt(problem.question),
            messages=strategy.teacher_messages(problem.question) if chat else None,
            stop=strategy.stop,
            seed=self.request_seed(problem.id, strategy_name, indices[0]),
        )

    def request_seed(self, problem_id: str, strategy: str, first_index: int) -> int:
        """The seed of a request starting at `first_index`; for one sample, that sample's own seed."""
        return stable_seed(self.config.seed, problem_id, strategy, first_index)

    def solve(self, problems: Sequence[Problem], context: SolveContext) -> list[Solution]:
        if context.log_path is None:
            raise TeacherError(f"the {self.backend} teacher needs a completion log path")
        keys = self.sample_keys(problems, context.strategies, context.samples)
        total = sum(len(sample_keys) for sample_keys in keys.values())
        progress, task = context.progress, None
        if progress is not None:
            task = progress.add_task(f"teacher {self.backend} completions", total=total)

        def advance(count: int) -> None:
            if progress is not None and task is not None:
                progress.advance(task, count)

        with CompletionLog(
            Path(context.log_path), backend=self.backend, model=self.model_name,
            ledger=context.ledger, on_completions=advance,
        ) as log:
            if log.torn_tail_bytes:
                context.say(
                    f"completion log {log.path}: dropped a torn last line "
                    f"({log.torn_tail_bytes} bytes) left by an interrupted run"
                )
            self._count_cached(keys, context, log)
            cached = sum(entry.cached_completions for entry in context.ledger.by_strategy.values())
            advance(cached)
            if cached:
                context.say(f"teacher cache {log.path}: {cached} of {total} completions already there")
            requests = self.plan(problems, context.strategies, keys, log)
            if requests:
                self.generate(requests, log)
            self.log_ledger = log.ledger_of([key for sample_keys in keys.values() for key in sample_keys])
            return self._gather(problems, context.strategies, keys, log)

    def _count_cached(self, keys: SampleKeys, context: SolveContext, log: CompletionLog) -> None:
        for (_, name), sample_keys in keys.items():
            context.ledger.of(name).cached_completions += sum(key in log for key in sample_keys)

    def _gather(
        self, problems: Sequence[Problem], strategies: Sequence[str], keys: SampleKeys, log: CompletionLog
    ) -> list[Solution]:
        solutions = []
        for problem in problems:
            for name in strategies:
                strategy = get_strategy(name)
                for index, key in enumerate(keys[problem.id, name]):
                    entry = log.get(key)
                    if entry is None:
                        continue  # a request that failed for good (allowed by max_failed_requests)
                    solutions.append(
                        Solution(
                            problem_id=problem.id,
                            strategy=name,
                            solution=strategy.clean(entry.text),
                            origin=self.origin,
                            sample_index=index,
                            truncated=entry.finish_reason == "length",
                        )
                    )
        return solutions
