"""scripts/exp2_pilot_report.py reads the plateau E* by docs/results.md's pre-registered rule."""

from __future__ import annotations

import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def report():
    return load_script("exp2_pilot_report")


def curve(*values: float) -> list[tuple[int, float]]:
    return list(enumerate(values, start=1))


def test_the_best_of_eight_before_the_eighth_reads_epochs_one_to_eight(report) -> None:
    # epoch 5 is best; epoch 3's 56 is within 3 points of every later one (58.5 at most), epoch 2's is not
    e_star, how = report.read_plateau(curve(27, 50, 56, 57, 58.5, 58, 57, 56, 70, 70, 70, 70))
    assert e_star == 3 and how == "best of epochs 1-8: 58.5% at epoch 5"  # epochs 9-12 are not read


def test_an_eighth_epoch_that_is_best_needs_twelve(report) -> None:
    rising = (27, 50, 56, 57, 58, 59, 60, 62)
    e_star, how = report.read_plateau(curve(*rising))
    assert e_star is None and "the rule reads epochs 1-12, and this pilot has validated epochs [1" in how
    e_star, how = report.read_plateau(curve(*rising, 63, 66.5, 66, 65))
    # 62 and 63 are more than 3 points below epoch 10's 66.5; nothing later beats 66.5
    assert e_star == 10 and how.endswith("the 8th is best, so the rule reads epochs 1-12")
    assert report.read_plateau(curve(*rising, 63, 64, 65, 65))[0] == 8  # 60 -> 65 is +5, 62 -> 65 only +3


def test_an_eighth_epoch_tied_with_an_earlier_one_is_not_the_best(report) -> None:
    e_star, how = report.read_plateau(curve(27, 50, 56, 62, 58, 59, 60, 62))
    assert e_star == 4 and "at epoch 4" in how


def test_a_missing_epoch_is_said_not_guessed(report) -> None:
    e_star, how = report.read_plateau([(1, 27), (2, 50), (4, 56), (5, 57), (6, 58), (7, 59), (8, 60), (9, 60)])
    assert e_star is None and how.startswith("E* not read: the pilot has validated epochs [1, 2, 4")
