"""Every preset under configs/ loads and validates, and the experiment runs the embedded default's task."""

from pathlib import Path

import pytest

from siked.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_preset_validates(path):
    config = load_config(path)
    assert config.out.parts[0] == "runs"  # no preset writes outside runs/


def test_the_experiment_is_the_embedded_default_task_with_more_held_out_problems():
    embedded, experiment = load_config(None), load_config(CONFIGS[0].parent / "experiment-templates.yaml")
    assert experiment.data.train == embedded.data.train
    assert experiment.data.validation_fraction == embedded.data.validation_fraction
    assert experiment.train == embedded.train and experiment.generation == embedded.generation
    held_out = experiment.data.evaluation[0]
    assert held_out.templates == embedded.data.train.templates and held_out.limit >= 300
    assert set(experiment.loop.baselines) == {"combined", "cot", "l2m", "pot"}
