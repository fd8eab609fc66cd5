"""Experiment 2's sample-count rule (docs/results.md): the share of training questions solved by the
first k of n samples, per forced strategy, and the coverage of (question, strategy) pairs.

    python scripts/exp2_saturation.py RUN/saturation-cot.jsonl RUN/saturation-l2m.jsonl ...

Each file is a `siked sample --strategy S --samples 10` output (its verdicts beside it, as
`<name>.verdicts.jsonl`). Prints one row per k and the smallest k whose pair coverage is within
2 points of k = n (the rule's threshold), or n when none is.
"""

from __future__ import annotations

import sys
from pathlib import Path

from siked.io import read_jsonl
from siked.records import Solution, Verdict


def first_solved(path: Path) -> dict[str, int]:
    """Problem id -> the smallest sample index that is correct (absent: never solved)."""
    solutions = read_jsonl(path, Solution)
    verdicts = read_jsonl(path.with_suffix(".verdicts.jsonl"), Verdict)
    first: dict[str, int] = {}
    for solution, verdict in zip(solutions, verdicts, strict=True):
        if verdict.correct:
            first[solution.problem_id] = min(first.get(solution.problem_id, 10**9), solution.sample_index)
    return first


def main(paths: list[str]) -> None:
    by_file = {Path(p).stem: first_solved(Path(p)) for p in paths}
    questions = {s.problem_id for p in paths for s in read_jsonl(Path(p), Solution)}
    n = 1 + max(s.sample_index for p in paths for s in read_jsonl(Path(p), Solution))
    pairs = len(questions) * len(by_file)  # (question, strategy): the unit the unbiased line keeps
    print("| k | " + " | ".join(by_file) + " | (question, strategy) pairs |")
    print("|---" * (len(by_file) + 2) + "|")
    coverage = {}
    for k in range(1, n + 1):
        solved = [sum(i < k for i in first.values()) for first in by_file.values()]
        coverage[k] = sum(solved) / pairs
        print(f"| {k} | " + " | ".join(f"{100 * c / len(questions):.1f}%" for c in solved)
              + f" | {100 * coverage[k]:.1f}% |")
    chosen = next(k for k in range(1, n + 1) if coverage[n] - coverage[k] <= 0.02)
    print(f"\n{len(questions)} questions x {len(by_file)} strategies, n = {n}; the rule's k: {chosen}")


if __name__ == "__main__":
    main(sys.argv[1:])
