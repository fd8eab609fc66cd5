"""The template rule of docs/results.md's experiment 2, as code: a seeded draw that looks at no result.

    python scripts/draw_templates.py [--seed 2026] [--each 4] [--train 16] [--test 40]

Pools come from the reference teacher's PoT on *training* problems (docs/gsm-symbolic.md, measured by
scripts/reference_templates.py on the first 200 training problems of every template): "PoT-teachable"
templates have a correct and honest program on at least 90% of them; the others (a missing program,
or one that hard-codes numbers the question does not hold) are "PoT-unteachable". The draw takes
`--each` templates from each pool in the order of one seeded permutation per pool (teachable first,
from the same generator), skipping a template that cannot supply `--train` training and `--test` test
problems (its question space is too small): a property of the generator, not of any result.
"""

from __future__ import annotations

import argparse

import numpy as np

from siked.data import DataError, load_problems
from siked.data.gsm_symbolic import known_templates

# Correct-and-honest PoT on fewer than 90% of 200 training problems (docs/gsm-symbolic.md's table).
POT_UNTEACHABLE = (2, 4, 17, 27, 36, 49, 53, 60, 66, 81, 82, 83, 84, 85)


def supplies(template: int, train: int, test: int) -> bool:
    try:
        for split, count in (("train", train), ("test", test)):
            load_problems("gsm_symbolic", split, None, None, templates=[template], per_template=count)
    except DataError:
        return False
    return True


def draw(seed: int, each: int, train: int, test: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    teachable = sorted(set(known_templates()) - set(POT_UNTEACHABLE))
    pools = [rng.permutation(teachable).tolist(), rng.permutation(sorted(POT_UNTEACHABLE)).tolist()]
    chosen = []
    for order in pools:
        picked = []
        for template in order:
            if len(picked) == each:
                break
            if supplies(template, train, test):
                picked.append(template)
        chosen.append(sorted(picked))
    return chosen[0], chosen[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--each", type=int, default=4)
    parser.add_argument("--train", type=int, default=16)
    parser.add_argument("--test", type=int, default=40)
    args = parser.parse_args()
    teachable, unteachable = draw(args.seed, args.each, args.train, args.test)
    print(f"PoT-teachable: {teachable}\nPoT-unteachable: {unteachable}\ntemplates: {sorted(teachable + unteachable)}")


if __name__ == "__main__":
    main()
