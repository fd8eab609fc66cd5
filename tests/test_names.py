"""Model and stage names as types: their text is the run directory's layout, their parts are fields."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from siked.names import DATA, ROUTING, TEACHER, ModelName, StageName


@pytest.mark.parametrize(("text", "step", "iteration", "baseline", "snapshot"), [
    ("data", "data", None, None, None),
    ("teacher", "teacher", None, None, None),
    ("routing", "routing", None, None, None),
    ("iter1/mix", "mix", 1, None, None),
    ("iter12/train", "train", 12, None, None),
    ("iter3/sample", "sample", 3, None, None),
    ("baselines/combined/eval", "eval", None, "combined", None),
    ("baselines/pot/step-36/eval", "eval", None, "pot", 36),
])
def test_a_stage_name_round_trips_with_its_iteration_as_a_field(
        text: str, step: str, iteration: int | None, baseline: str | None, snapshot: int | None) -> None:
    name = StageName.parse(text)
    assert str(name) == text and StageName.parse(str(name)) == name
    assert name.step == step
    model = name.model
    if model is None:
        assert iteration is None and baseline is None
    else:
        assert (model.iteration, model.baseline, model.step) == (iteration, baseline, snapshot)
        assert model.stage(step) == name and hash(model.stage(step)) == hash(name)


def test_names_are_built_from_their_fields_and_are_their_text_in_json() -> None:
    iteration = ModelName(iteration=2)
    assert str(iteration.stage("eval")) == "iter2/eval" and iteration.weights == "iter2/model"
    snapshot = ModelName(baseline="pot").snapshot(36)
    assert str(snapshot) == "baselines/pot/step-36"
    assert snapshot.weights == "baselines/pot/model/snapshots/step-36"
    assert [str(s) for s in (DATA, TEACHER, ROUTING)] == ["data", "teacher", "routing"]

    class Holder(BaseModel):
        stage: StageName
        model: ModelName

    held = Holder(stage=snapshot.stage("eval"), model=iteration)
    assert json.loads(held.model_dump_json()) == {"stage": "baselines/pot/step-36/eval", "model": "iter2"}
    assert Holder.model_validate_json(held.model_dump_json()) == held


def test_iterations_sort_by_number_before_baselines() -> None:
    names = [ModelName.parse(t) for t in ("baselines/pot", "iter10", "iter2", "baselines/cot", "iter1")]
    assert [str(n) for n in sorted(names)] == ["iter1", "iter2", "iter10", "baselines/cot", "baselines/pot"]


@pytest.mark.parametrize(("text", "why"), [
    ("iter0/train", "not a model name"),
    ("iter/train", "not a model name"),
    ("iter1/teach", "Input should be 'data'"),
    ("train", "not a stage of a model"),
    ("iter1/teacher", "not a stage of the run as a whole"),
    ("baselines/pot/step-x/eval", "not a model name"),
    ("baselines//eval", "not a model name"),
])
def test_a_text_that_names_no_stage_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        StageName.parse(text)


def test_a_model_is_an_iteration_or_a_baseline_and_only_a_baseline_has_snapshots() -> None:
    with pytest.raises(ValueError, match="an iteration or a baseline"):
        ModelName(iteration=1, baseline="pot")
    with pytest.raises(ValueError, match="an iteration or a baseline"):
        ModelName()
    with pytest.raises(ValueError, match="only a baseline has snapshots"):
        ModelName(iteration=1, step=3)
