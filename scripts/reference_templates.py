"""Per-template check of the reference teacher's PoT on gsm_symbolic (chooses `data.*.templates`).

    python scripts/reference_templates.py [--problems 200] [--templates 10,14,16] [--json OUT]

For each reasoning-gym template: how many of its first N training problems get a PoT program, how
many of those the real grader and sandbox mark correct, and how many correct programs are not
honest: they hold a number that is neither in the question (nor its `N%` as `N/100`) nor a common
constant, or that an earlier line already computed (a hard-coded intermediate result). Templates
whose question space is smaller than N are reported as such. Training problems only.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

from siked.data import DataError, load_problems
from siked.data.gsm_symbolic import known_templates
from siked.grading import Grader
from siked.sandbox import SandboxPool
from siked.teachers.reference import reference_pot
from siked.teachers.worked_steps import evaluate, question_numbers

CONSTANTS = {0.25, 0.5, 0.75, 1, 2, 3, 4, 5, 6, 7, 10, 12, 24, 30, 52, 60, 100, 365, 1000}
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")


def dishonest_numbers(question: str, program: str) -> list[str]:
    """Numbers of `program` that do not come from the question, a constant or a variable."""
    given = set(question_numbers(question))
    given |= {round(number / 100, 10) for number in given}
    variables: dict[str, float] = {}
    found = []
    for line in program.split("\n"):
        name, _, expression = line.partition(" = ")
        for text in NUMBER.findall(expression):
            value = float(text)
            if value in given:
                continue
            if value in variables.values():
                found.append(f"computed {text}")
            elif value not in CONSTANTS:
                found.append(f"foreign {text}")
        substituted = re.sub(r"[A-Za-z_]\w*", lambda m: repr(variables.get(m.group(), float("nan"))), expression)
        result = evaluate(substituted)
        if result is not None:
            variables[name] = round(result, 10)
    return found


def template_row(template: int, count: int, grader: Grader) -> dict:
    try:
        problems = load_problems("gsm_symbolic", "train", limit=count, templates=[template])
    except DataError as exc:
        return {"template": template, "error": str(exc)}
    written = [(p, "pot", program) for p in problems if (program := reference_pot(p)) is not None]
    verdicts = grader.grade_many(written)
    reasons: Counter[str] = Counter()
    dishonest = 0
    for (problem, _, program), verdict in zip(written, verdicts, strict=True):
        if verdict.correct:
            found = dishonest_numbers(problem.question, program)
            dishonest += bool(found)
            reasons.update(found)
    return {"template": template, "problems": len(problems), "pot_written": len(written),
            "pot_correct": sum(v.correct for v in verdicts), "pot_dishonest": dishonest,
            "examples": reasons.most_common(3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--templates", default=None, help="Comma-separated (default: every template).")
    parser.add_argument("--json", default=None, help="Also write the rows to this file.")
    args = parser.parse_args()
    templates = [int(t) for t in args.templates.split(",")] if args.templates else list(known_templates())
    rows = []
    with SandboxPool(workers=2) as pool:
        grader = Grader(sandbox=pool)
        for template in templates:
            row = template_row(template, args.problems, grader)
            rows.append(row)
            print(json.dumps(row), flush=True)
    honest = [r["template"] for r in rows if r.get("pot_correct") == r.get("problems") and not r.get("pot_dishonest")]
    print(f"PoT written, correct and honest on every problem: {len(honest)} templates: {honest}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
