"""TRL's `SFTConfig` from the `train` section: the fields siked sets, and `train.trainer_kwargs`
passed through after checking each key against SFTConfig's fields."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from siked.config import ConfigError, TrainConfig
from siked.student.models import bf16_supported, default_device


def use_bf16(train_cfg: TrainConfig) -> bool:
    return bf16_supported(default_device()) if train_cfg.bf16 is None else train_cfg.bf16


def training_dtype(train_cfg: TrainConfig) -> str:
    """The precision training computes in, which merged weights are saved in."""
    return "bfloat16" if use_bf16(train_cfg) else "float32"


def sft_config(out_dir: Path, train_cfg: TrainConfig, **overrides: Any) -> Any:
    """TRL's arguments from the train section; `overrides` (e.g. `report_to`, `run_name`) win."""
    import dataclasses

    import torch
    from trl import SFTConfig

    # transformers 5 renamed gradient_checkpointing; older releases only know the old name.
    fields = {f.name for f in dataclasses.fields(SFTConfig)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    settings = dict(
        **_sampling(train_cfg, fields),
        output_dir=str(out_dir / "checkpoints"),
        learning_rate=train_cfg.learning_rate,
        num_train_epochs=train_cfg.epochs,
        max_steps=train_cfg.max_steps,
        per_device_train_batch_size=train_cfg.per_device_batch_size,
        gradient_accumulation_steps=train_cfg.gradient_accumulation_steps,
        lr_scheduler_type="linear",
        warmup_steps=train_cfg.warmup_steps,
        weight_decay=train_cfg.weight_decay,
        # TRL refuses max_length with padding_free (it would not truncate); train_student truncates instead.
        max_length=None if train_cfg.padding_free else train_cfg.max_length,
        padding_free=train_cfg.padding_free,
        completion_only_loss=True,
        packing=False,
        bf16=use_bf16(train_cfg),
        use_cpu=not torch.cuda.is_available(),
        **{checkpointing: train_cfg.gradient_checkpointing},
        logging_steps=train_cfg.logging_steps,
        save_strategy="steps",
        save_steps=train_cfg.save_steps,
        save_total_limit=train_cfg.save_total_limit,
        seed=train_cfg.seed,
        data_seed=train_cfg.seed,
        report_to="none",
        disable_tqdm=True,
        dataset_num_proc=None,
    )
    passed = trainer_overrides(train_cfg, fields)
    try:
        return SFTConfig(**{**settings, **passed, **overrides})
    except (TypeError, ValueError) as exc:
        if not passed:
            raise
        raise ConfigError(f"train.trainer_kwargs: trl.SFTConfig refuses them: {exc}") from None


def _sampling(train_cfg: TrainConfig, fields: set[str]) -> dict[str, Any]:
    """The order of training examples; transformers 5 replaced `group_by_length` by a strategy name."""
    if "train_sampling_strategy" in fields:
        return {"train_sampling_strategy": "group_by_length" if train_cfg.group_by_length else "random"}
    return {"group_by_length": train_cfg.group_by_length}


MANAGED_FIELDS = {
    "output_dir": None, "learning_rate": "train.learning_rate", "num_train_epochs": "train.epochs",
    "max_steps": "train.max_steps", "per_device_train_batch_size": "train.per_device_batch_size",
    "gradient_accumulation_steps": "train.gradient_accumulation_steps", "warmup_steps": "train.warmup_steps",
    "weight_decay": "train.weight_decay", "max_length": "train.max_length", "bf16": "train.bf16",
    "gradient_checkpointing": "train.gradient_checkpointing",
    "activation_checkpointing": "train.gradient_checkpointing", "logging_steps": "train.logging_steps",
    "save_steps": "train.save_steps", "save_total_limit": "train.save_total_limit", "seed": "train.seed",
    "data_seed": "train.seed", "report_to": "tracking.report_to",
    "train_sampling_strategy": "train.group_by_length", "group_by_length": "train.group_by_length",
    "padding_free": "train.padding_free",
}
"""SFTConfig fields siked sets from a config field (None: from the output directory)."""


SFT_FIELDS = """import dataclasses, json, transformers, trl
from transformers import masking_utils
print(json.dumps({"fields": [f.name for f in dataclasses.fields(trl.SFTConfig)],
                  "transformers": transformers.__version__,
                  "packed_masks": hasattr(masking_utils, "find_packed_sequence_indices")}))"""


def check_train_settings(train_cfg: TrainConfig, in_child: bool = False) -> None:
    """Fail before any stage runs on a `train.trainer_kwargs` key SFTConfig would not take, or on
    `train.padding_free` where transformers cannot keep packed examples apart. With `in_child`,
    the installed trl and transformers are read in a child process, so that this one never
    imports torch."""
    if not train_cfg.trainer_kwargs and not train_cfg.padding_free:
        return
    if in_child:
        import json
        import subprocess
        import sys

        found = subprocess.run([sys.executable, "-c", SFT_FIELDS], capture_output=True, text=True, check=False)
        if found.returncode != 0:
            raise ConfigError("train.trainer_kwargs / train.padding_free cannot be checked: trl or transformers "
                              f"does not import ({found.stderr.strip()[-300:]})")
        installed = json.loads(found.stdout)
        fields, version, packed_masks = set(installed["fields"]), installed["transformers"], installed["packed_masks"]
    else:
        # heavy: only when pass-through keys or padding-free are asked for
        import dataclasses

        import transformers
        from transformers import masking_utils
        from trl import SFTConfig

        fields = {f.name for f in dataclasses.fields(SFTConfig)}
        version = transformers.__version__
        packed_masks = hasattr(masking_utils, "find_packed_sequence_indices")
    trainer_overrides(train_cfg, fields)
    if train_cfg.padding_free and not packed_masks:
        raise ConfigError(f"train.padding_free: transformers {version} would let packed examples attend to each "
                          "other; upgrade transformers (verified with 5.25) or set it to false")


def trainer_overrides(train_cfg: TrainConfig, fields: set[str]) -> dict[str, Any]:
    """`train.trainer_kwargs`, checked against SFTConfig's `fields`: each key must be one of them and
    not one that siked sets from its own config."""
    for key in train_cfg.trainer_kwargs:
        where = f"train.trainer_kwargs.{key}"
        if key in MANAGED_FIELDS:
            source = MANAGED_FIELDS[key]
            raise ConfigError(f"{where}: siked sets it " + (
                f"from {source}; set that instead" if source else "itself (checkpoints go under --out)"))
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: not a field of trl.SFTConfig / transformers.TrainingArguments{hint}")
    return dict(train_cfg.trainer_kwargs)
