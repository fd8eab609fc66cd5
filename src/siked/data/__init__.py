"""Math word problem datasets as `Problem` records.

Every loader reads either the Hugging Face hub id users normally load (or a local directory laid
out like that hub repository) or the raw files of the original release:

    load_problems("gsm8k", "test")                                  # hub openai/gsm8k
    load_problems("gsm8k", "test", data_file="data/gsm8k/test.jsonl")
    load_problems("jsonl", "train", data_file="mine.jsonl", question_field="q", answer_field="a")

Options are loader keywords (`hub_id=` for every hub-backed loader; see each module).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siked.data import asdiv, gsm8k, gsm_symbolic, jsonl, multiarith, svamp
from siked.data.common import DataError
from siked.data.numbers import parse_gold
from siked.data.splits import split_validation
from siked.records import Problem
from siked.registry import Registry

if TYPE_CHECKING:
    from siked.config import DatasetSpec

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetInfo",
    "load_problems",
    "load_spec",
    "parse_data_spec",
    "parse_gold",
    "split_validation",
]


@dataclass(frozen=True)
class DatasetInfo:
    """One registered dataset: its loader, a one-line description and where it comes from."""

    name: str
    description: str
    loader: Callable[..., list[Problem]]
    splits: tuple[str, ...]
    hub_id: str | None = None
    raw_files: str | None = None


DATASETS: Registry[DatasetInfo] = Registry("dataset")
"""Dataset name -> its `DatasetInfo`; a new dataset joins with `DATASETS.register(name, DatasetInfo(...))`."""
for _info in (
        DatasetInfo(
            "gsm8k",
            "GSM8K grade-school math with worked solutions and socratic sub-questions",
            gsm8k.load,
            ("train", "test"),
            gsm8k.HUB_ID,
            "train.jsonl, test.jsonl (+ *_socratic.jsonl)",
        ),
        DatasetInfo(
            "gsm8k_socratic",
            "GSM8K, failing unless the socratic sub-questions are available",
            functools.partial(gsm8k.load, require_socratic=True),
            ("train", "test"),
            gsm8k.HUB_ID,
            "train_socratic.jsonl, test_socratic.jsonl",
        ),
        DatasetInfo(
            "svamp",
            "SVAMP one-step problems with varied structure (raw file: 1000, as split test)",
            svamp.load,
            ("train", "test"),
            svamp.HUB_ID,
            svamp.RAW_FILE,
        ),
        DatasetInfo(
            "asdiv",
            "ASDiv diverse elementary problems (non-numeric answers kept, ungraded)",
            asdiv.load,
            ("validation", "test"),
            asdiv.HUB_ID,
            asdiv.RAW_FILE,
        ),
        DatasetInfo(
            "multiarith",
            "MultiArith multi-step arithmetic (raw file: 600, as split test)",
            multiarith.load,
            ("train", "test"),
            multiarith.HUB_ID,
            multiarith.RAW_FILE,
        ),
        DatasetInfo(
            "gsm_symbolic",
            "GSM8K-style templates generated offline by reasoning-gym (seeded)",
            gsm_symbolic.load,
            ("train", "test"),
        ),
        DatasetInfo(
            "jsonl",
            "any JSON Lines file; options question_field, answer_field, id_field, solution_field",
            jsonl.load,
            ("any",),
            raw_files="--data-file PATH",
        ),
):
    DATASETS.register(_info.name, _info)


def _known() -> str:
    return ", ".join(DATASETS)


def parse_data_spec(spec: str) -> tuple[str, str]:
    """`"gsm8k:test"` -> `("gsm8k", "test")`."""
    name, sep, split = spec.strip().partition(":")
    if not sep or not name or not split or ":" in split:
        raise DataError(
            f"dataset spec {spec!r} is not NAME:SPLIT (e.g. gsm8k:test); known names: {_known()}"
        )
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} in {spec!r}; known: {_known()}")
    return name, split


def _check_options(info: DatasetInfo, options: dict[str, Any]) -> None:
    accepted = [
        parameter.name
        for parameter in inspect.signature(info.loader).parameters.values()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(
            f"dataset {info.name!r} has no option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted) or 'none'}"
        )


def load_problems(
    name: str,
    split: str,
    data_file: str | Path | None = None,
    limit: int | None = None,
    **options: Any,
) -> list[Problem]:
    """The problems of one dataset split, the first `limit` of them when given.

    `data_file` is a raw file of the original release, a directory holding one, or a local
    directory laid out like the hub repository; None loads from the hub.
    """
    info = DATASETS.get(name)
    if info is None:
        raise DataError(f"unknown dataset {name!r}; known: {_known()}")
    if limit is not None and limit < 0:
        raise DataError(f"limit must be a positive number of problems, got {limit}")
    _check_options(info, options)
    path = Path(data_file).expanduser() if data_file is not None else None
    problems = info.loader(split, path, limit, **options)
    _check_unique_ids(problems)
    return problems


def load_spec(spec: DatasetSpec) -> list[Problem]:
    """Load a config's dataset entry (`data.train`, each of `data.evaluation`)."""
    options: dict[str, Any] = {} if spec.templates is None else {"templates": spec.templates}
    if spec.per_template is not None:
        options["per_template"] = spec.per_template
    return load_problems(spec.name, spec.split, spec.file, spec.limit, **options)


def _check_unique_ids(problems: list[Problem]) -> None:
    seen: set[str] = set()
    for problem in problems:
        if problem.id in seen:
            raise DataError(f"problem id {problem.id!r} occurs more than once")
        seen.add(problem.id)
