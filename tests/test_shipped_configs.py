"""Every preset under configs/ loads and validates, and the experiment runs the embedded default's task."""

from pathlib import Path

import pytest

from conftest import load_script
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


def test_experiment_2_at_gpu_size_is_the_cpu_design_on_the_rules_draw():
    """configs/exp2-gpu*.yaml differ from the CPU experiment in size only: the same pre-registered
    loop, mixing and schedule, and templates the written rule draws (scripts/draw_templates.py)."""
    configs = CONFIGS[0].parent
    cpu, gpu = load_config(configs / "exp2.yaml"), load_config(configs / "exp2-gpu.yaml")
    pilot = load_config(configs / "exp2-gpu-pilot.yaml")
    assert gpu.loop == cpu.loop and gpu.mixing == cpu.mixing
    assert gpu.train.trainer_kwargs == cpu.train.trainer_kwargs == pilot.train.trainer_kwargs
    assert pilot.loop.method == "combined" and pilot.loop.routing and not pilot.data.evaluation
    assert pilot.data.train == gpu.data.train and pilot.student == gpu.student
    held_out = gpu.data.evaluation[0]
    assert held_out.templates == gpu.data.train.templates and held_out.split == "test"

    draw = load_script("draw_templates")
    teachable, unteachable = draw.draw(2026, each=8, train=gpu.data.train.per_template, test=held_out.per_template)
    assert sorted(teachable + unteachable) == gpu.data.train.templates
    assert set(unteachable) <= set(draw.POT_UNTEACHABLE) and len(teachable) == len(unteachable) == 8
