"""Length-grouped training batches (`train.group_by_length`): the same examples with the same
losses, only in another order, and with less padding."""

from __future__ import annotations

from pathlib import Path

import pytest

from siked.config import SikedConfig
from siked.data import load_problems
from siked.student import TrainExample
from siked.student.trainer_args import sft_config
from siked.teachers.reference import BUILDERS


def mixed_length_examples(count: int) -> list[TrainExample]:
    """gsm_symbolic problems with reference solutions of every strategy: lengths vary threefold."""
    problems = load_problems("gsm_symbolic", "train", limit=count)
    strategies = list(BUILDERS)
    examples = []
    for i, problem in enumerate(problems):
        strategy = strategies[i % len(strategies)]
        solution = BUILDERS[strategy](problem)
        if solution is not None:
            examples.append(TrainExample(problem.question, strategy, solution))
    return examples


def test_the_option_reaches_the_trainer_arguments(tmp_path: Path) -> None:
    config = SikedConfig()
    assert config.train.group_by_length is True
    assert sft_config(tmp_path, config.train).train_sampling_strategy == "group_by_length"
    config.train.group_by_length = False
    assert sft_config(tmp_path, config.train).train_sampling_strategy == "random"


def _batches(grouped: bool, model, tokenizer, examples, tmp_path: Path, padding_free: bool = False) -> list[dict]:
    from datasets import Dataset
    from trl import SFTTrainer

    from siked.student.train import sft_records, truncated

    config = SikedConfig()
    config.train = config.train.model_copy(
        update={"group_by_length": grouped, "padding_free": padding_free, "bf16": False, "max_length": 320})
    args = sft_config(tmp_path / str(grouped), config.train)
    dataset = Dataset.from_list(sft_records(examples, config.student.prompt_style, tokenizer, config.teacher.strategies))
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    if padding_free:  # as train_student does
        trainer.train_dataset = truncated(trainer.train_dataset, config.train.max_length)
    return list(trainer.get_train_dataloader())


def _per_example_losses(model, batches: list[dict]) -> tuple[dict[tuple[int, ...], float], int, int]:
    """Each example's mean completion loss keyed by its tokens, and the real and padded token counts."""
    import torch

    losses: dict[tuple[int, ...], float] = {}
    real = padded = 0
    with torch.no_grad():
        for batch in batches:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            token_loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].transpose(1, 2).float(), labels, ignore_index=-100, reduction="none")
            mask = labels != -100
            for row in range(len(labels)):
                key = tuple(batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist())
                assert key not in losses  # every example once per epoch
                losses[key] = float(token_loss[row][mask[row]].mean())
            real += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
    return losses, real, padded


@pytest.mark.slow
def test_grouping_only_reorders_examples_and_cuts_padding(model_cache: Path, tmp_path: Path) -> None:
    from siked.student import load_model

    model, tokenizer = load_model("embedded:smollm2", dtype="float32", device="cpu")
    model.eval()
    examples = mixed_length_examples(16)
    random_losses, real, random_padded = _per_example_losses(model, _batches(False, model, tokenizer, examples, tmp_path))
    grouped_losses, grouped_real, grouped_padded = _per_example_losses(
        model, _batches(True, model, tokenizer, examples, tmp_path))
    assert len(random_losses) == len(examples) and set(grouped_losses) == set(random_losses)
    for key, loss in random_losses.items():
        assert grouped_losses[key] == pytest.approx(loss, abs=2e-4)
    assert grouped_real == real
    assert grouped_padded < random_padded  # the point: fewer positions computed on padding
