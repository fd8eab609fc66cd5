"""Padding-free training batches (`train.padding_free`): each micro-batch is one row of
concatenated examples whose position ids restart at every example, and no example attends to
another, so every example's loss is what it is in a padded batch."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from siked.config import ConfigError, SikedConfig
from siked.student.trainer_args import check_train_settings, sft_config, trainer_overrides
from test_train_grouping import _batches, _per_example_losses, mixed_length_examples


def test_the_option_reaches_the_trainer_and_the_pass_through_names_it(tmp_path: Path) -> None:
    config = SikedConfig()
    assert config.train.padding_free is False
    args = sft_config(tmp_path, config.train)
    assert args.padding_free is False and args.max_length == config.train.max_length
    config.train.padding_free = True
    args = sft_config(tmp_path, config.train)
    assert args.padding_free is True and args.max_length is None  # siked truncates, TRL would refuse
    config.train.trainer_kwargs = {"padding_free": True}
    with pytest.raises(ConfigError, match="train.trainer_kwargs.padding_free: siked sets it from train.padding_free"):
        trainer_overrides(config.train, {"padding_free"})


def test_a_transformers_that_would_let_packed_examples_mix_is_refused(monkeypatch, tmp_path: Path) -> None:
    from transformers import masking_utils

    from siked.student.train import train_student

    monkeypatch.delattr(masking_utils, "find_packed_sequence_indices")
    config = SikedConfig()
    config.train.padding_free = True
    with pytest.raises(ConfigError, match="train.padding_free: transformers .* would let packed examples attend"):
        train_student([], config, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written
    with pytest.raises(ConfigError, match="train.padding_free: transformers"):
        check_train_settings(config.train)  # what `siked run` checks before its first stage


def test_the_installed_transformers_is_checked_in_a_child_as_the_loop_does() -> None:
    config = SikedConfig()
    config.train.padding_free = True
    check_train_settings(config.train, in_child=True)  # transformers 5.25 keeps packed examples apart
    config.train.trainer_kwargs = {"padding_free": True}
    with pytest.raises(ConfigError, match="trainer_kwargs.padding_free: siked sets it"):
        check_train_settings(config.train, in_child=True)


def test_truncation_cuts_every_per_token_column_and_keeps_the_rest() -> None:
    from datasets import Dataset

    from siked.student.train import truncated

    dataset = Dataset.from_list([
        {"input_ids": list(range(10)), "completion_mask": [0] * 3 + [1] * 7, "source": "a"},
        {"input_ids": [1, 2, 3], "completion_mask": [0, 1, 1], "source": "b"},
    ])
    cut = truncated(dataset, 4)
    assert cut["input_ids"] == [[0, 1, 2, 3], [1, 2, 3]]
    assert cut["completion_mask"] == [[0, 0, 0, 1], [0, 1, 1]]
    assert cut["source"] == ["a", "b"]
    assert truncated(dataset, 10) is dataset
    assert truncated(dataset, 2)["source"] == ["b"]  # the first is cut to its prompt: no loss left


def test_truncation_reads_trl_labels_and_keeps_the_end_when_asked() -> None:
    from datasets import Dataset

    from siked.student.train import truncated

    dataset = Dataset.from_list([  # TRL 1.x folds the completion mask into labels (-100: no loss)
        {"input_ids": list(range(6)), "labels": [-100] * 2 + [2, 3, 4, 5]},
        {"input_ids": list(range(6)), "labels": [-100] * 5 + [5]},
        {"input_ids": [7, 8], "labels": [-100, 8]},
    ])
    kept = truncated(dataset, 3)
    assert kept["input_ids"] == [[0, 1, 2], [7, 8]]  # the second keeps only prompt tokens: dropped
    assert kept["labels"] == [[-100, -100, 2], [-100, 8]]
    end = truncated(dataset, 3, "keep_end")
    assert end["input_ids"] == [[3, 4, 5], [3, 4, 5], [7, 8]]
    assert end["labels"] == [[3, 4, 5], [-100, -100, 5], [-100, 8]]
    with pytest.raises(ConfigError, match="train.trainer_kwargs.truncation_mode: 'keep_middle' is not one of"):
        truncated(dataset, 3, "keep_middle")


def _packed_losses(model, batches: list[dict], restart_positions: bool = True) -> dict[tuple[int, ...], float]:
    """Each example's mean completion loss in padding-free rows, split where positions restart."""
    import torch

    losses: dict[tuple[int, ...], float] = {}
    with torch.no_grad():
        for batch in batches:
            assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
            ids, positions = batch["input_ids"][0], batch["position_ids"][0]
            if not restart_positions:  # the control: one long sequence, examples attend to each other
                positions = torch.arange(len(ids))
            logits = model(input_ids=ids[None], position_ids=positions[None], use_cache=False).logits[0]
            token_loss = torch.nn.functional.cross_entropy(
                logits[:-1].float(), batch["labels"][0][1:], ignore_index=-100, reduction="none")
            starts = [*(batch["position_ids"][0] == 0).nonzero().flatten().tolist(), len(ids)]
            for start, end in pairwise(starts):
                labels = batch["labels"][0][start + 1:end]
                mask = labels != -100
                losses[tuple(ids[start:end].tolist())] = float(token_loss[start:end - 1][mask].mean())
    return losses


@pytest.mark.slow
def test_packed_rows_give_every_example_its_padded_loss(model_cache: Path, tmp_path: Path) -> None:
    from siked.student import load_model

    model, tokenizer = load_model("embedded:smollm2", dtype="float32", device="cpu")
    model.eval()
    examples = mixed_length_examples(8)
    padded, _, _ = _per_example_losses(model, _batches(False, model, tokenizer, examples, tmp_path))
    packed_batches = _batches(False, model, tokenizer, examples, tmp_path / "packed", padding_free=True)
    assert all(batch["input_ids"].shape[0] == 1 for batch in packed_batches)
    assert sum(batch["input_ids"].numel() for batch in packed_batches) == sum(len(key) for key in padded)
    packed = _packed_losses(model, packed_batches)
    assert set(packed) == set(padded)
    for key, loss in padded.items():
        assert packed[key] == pytest.approx(loss, abs=2e-4)
    # The check can fail: with positions that do not restart, later examples see earlier ones.
    leaky = _packed_losses(model, packed_batches, restart_positions=False)
    assert max(abs(leaky[key] - padded[key]) for key in padded) > 0.05


@pytest.mark.slow
def test_a_padding_free_step_equals_a_padded_one_with_truncation(model_cache: Path, tmp_path: Path, monkeypatch) -> None:
    """At max length 200 six of the eight examples are cut and two lose their whole completion."""
    import siked.student.train as train_module
    from siked.student import train_student

    cut_sizes = []

    def counted(dataset, max_length, mode="keep_start"):
        kept = real_truncated(dataset, max_length, mode)
        cut_sizes.append((len(dataset), len(kept), max(len(ids) for ids in kept["input_ids"])))
        return kept

    real_truncated = train_module.truncated
    monkeypatch.setattr(train_module, "truncated", counted)
    examples = mixed_length_examples(8)
    config = SikedConfig()
    losses = {}
    for padding_free in (False, True):
        config.train = config.train.model_copy(update={
            "padding_free": padding_free, "per_device_batch_size": 8, "gradient_accumulation_steps": 1,
            "bf16": False, "group_by_length": False, "max_length": 200, "warmup_steps": 0})
        result = train_student(examples, config, tmp_path / str(padding_free), max_steps=1, progress=False)
        losses[padding_free] = result.losses[0]
    assert cut_sizes == [(8, 6, 200)]  # the padding-free path truncated, as TRL does for the padded one
    assert losses[True] == pytest.approx(losses[False], abs=1e-4)


def test_the_attention_kernel_reaches_the_trained_model_and_a_bad_one_names_the_field(model_cache: Path) -> None:
    from siked.student.models import ModelError, locate_model
    from siked.student.train import prepare_model

    base = locate_model("embedded:smollm2").base
    config = SikedConfig()
    config.train.attn_implementation = "eager"
    assert prepare_model(base, config.train).config._attn_implementation == "eager"
    config.train.attn_implementation = "no_such_kernel"
    with pytest.raises(ModelError, match=r"train.attn_implementation='no_such_kernel'"):
        prepare_model(base, config.train)
