"""Hold out a validation share of the training questions, decided per question id."""

from __future__ import annotations

import hashlib

from siked.records import Problem


def id_score(problem_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the id and the seed."""
    digest = hashlib.sha256(f"{seed}\x00{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_validation_by_template(
    problems: list[Problem], fraction: float, seed: int
) -> tuple[list[Problem], list[Problem]]:
    """(train, validation) with the same share held out of every template (`meta["template"]`):
    the round(fraction * n) lowest-scoring ids of each template's n problems. Problems without a
    template form one group. Both lists keep the input order."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    groups: dict[object, list[Problem]] = {}
    for problem in problems:
        groups.setdefault(problem.meta.get("template"), []).append(problem)
    held_out = set()
    for group in groups.values():
        ranked = sorted(group, key=lambda p: id_score(p.id, seed))
        held_out |= {p.id for p in ranked[:round(fraction * len(group))]}
    return ([p for p in problems if p.id not in held_out], [p for p in problems if p.id in held_out])


def split_validation(
    problems: list[Problem], fraction: float, seed: int
) -> tuple[list[Problem], list[Problem]]:
    """(train, validation): a problem is held out when its id's score is below `fraction`.

    Membership depends only on the id and the seed, not on the order of `problems` or on how many
    were loaded, so a run with a larger `limit` keeps the same validation questions. Both lists
    keep the input order. When the rule holds out nothing from a set of two or more problems (tiny
    sets), the problem with the lowest score is held out, so a positive fraction always gives a
    validation set.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0 or not problems:
        return list(problems), []
    scores = {problem.id: id_score(problem.id, seed) for problem in problems}
    held_out = {problem_id for problem_id, score in scores.items() if score < fraction}
    if not held_out and len(scores) > 1:
        held_out = {min(scores, key=scores.__getitem__)}
    train = [problem for problem in problems if problem.id not in held_out]
    validation = [problem for problem in problems if problem.id in held_out]
    return train, validation
