"""`siked export model`: one iteration's student as a `transformers` folder with a model card.

Adapter export (default): OUT holds the LoRA adapter and tokenizer (PEFT format); where the adapter
sits on local weights (the embedded student, or the previous iteration merged in) they are copied
to OUT/base and `adapter_config.json` points at them. `--merge`: OUT holds the adapter folded into
the base weights, a plain model folder. Either loads with `AutoModelForCausalLM.from_pretrained(OUT)`.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siked.evaluation import wilson_interval
from siked.export.common import ExportError, RunArtifacts, base_license, output_folder, yaml_header
from siked.metrics import Iteration
from siked.names import ModelName
from siked.strategies.format import student_instruction, student_prompt
from siked.student.models import attach_adapter, load_tokenizer, locate_model
from siked.student.train import is_trained

EMBEDDED_ORIGINS = {"embedded:smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""The Hub model each embedded student was quantised from (its GGUF is what siked trains)."""


@dataclass
class ModelExport:
    out: Path
    iteration: str
    """The run's stage name, e.g. iter2."""
    kind: str
    """adapter, merged or full."""
    seconds: float = 0.0


def choose_iteration(artifacts: RunArtifacts, iteration: str) -> tuple[str, Iteration]:
    """(stage name, its metrics entry) for `best` or an iteration number."""
    metrics = artifacts.metrics
    entries = metrics.iterations
    method = metrics.run.method or "siked"
    names = ([ModelName(iteration=i) for i in range(1, len(entries) + 1)] if method == "siked"
             else [ModelName(baseline=method)])
    if iteration == "best":
        index = metrics.best_iteration
        if not index:
            raise ExportError(f"{artifacts.path / 'metrics.json'}: the run has chosen no model yet (no evaluated iteration)")
    elif iteration.isdigit() and 1 <= int(iteration) <= len(names):
        index = int(iteration)
    else:
        raise ExportError(f"--iteration {iteration!r}: expected best or 1..{len(names)} (the run's iterations)")
    name = names[index - 1]
    if not is_trained(artifacts.path / name.weights):
        raise ExportError(f"{artifacts.path / name.weights} holds no finished training run")
    return str(name), entries[index - 1]


def export_model(run_dir: Path | str, out: Path | str, iteration: str = "best", merge: bool = False) -> ModelExport:
    """Write iteration `iteration` (a number or `best`) of the run's student under `out` (a new folder)."""
    started = time.perf_counter()
    artifacts = RunArtifacts.open(run_dir)
    name, entry = choose_iteration(artifacts, iteration)
    source = locate_model(artifacts.path / name / "model")
    final = Path(out).resolve()
    kind = "full" if source.adapter is None else ("merged" if merge else "adapter")
    with output_folder(final) as staging:
        if kind == "full":
            shutil.copytree(source.base, staging, dirs_exist_ok=True)
        elif kind == "merged":
            write_merged(source, staging)
        else:
            write_adapter(source, staging, final)
        card = model_card(artifacts, name, entry, kind, source.manifest or {})
        (staging / "README.md").write_text(card, encoding="utf-8")
    return ModelExport(out=final, iteration=name, kind=kind, seconds=time.perf_counter() - started)


def write_merged(source: Any, staging: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source.base, dtype="float32")
    model = attach_adapter(model, source.adapter, merge=True)
    model.save_pretrained(staging)
    load_tokenizer(source).save_pretrained(staging)


def write_adapter(source: Any, staging: Path, final: Path) -> None:
    shutil.copytree(source.adapter, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("training_args.bin"))
    base_ref = source.base
    if Path(source.base).is_dir():  # local weights travel with the adapter
        shutil.copytree(source.base, staging / "base")
        base_ref = str(final / "base")
    config_path = staging / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_ref
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def eval_table(entry: Iteration) -> list[str]:
    lines = ["| evaluation set | accuracy | correct / total | 95% Wilson interval |", "|---|---|---|---|"]
    for key, block in entry.eval.items():
        low, high = wilson_interval(block.correct, block.total)
        lines.append(f"| {key} | {block.accuracy or 0:.1%} | {block.correct} / {block.total} | {low:.1%} – {high:.1%} |")
    return lines


def usage(kind: str, style: str) -> str:
    load = {
        "adapter": "from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                   "base = AutoModelForCausalLM.from_pretrained(\"PATH/base\")  # or the base model named above\n"
                   "model = PeftModel.from_pretrained(base, \"PATH\").merge_and_unload()\n",
    }.get(kind, "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                "model = AutoModelForCausalLM.from_pretrained(\"PATH\")\n")
    prompt = ('prompt = tokenizer.apply_chat_template([{"role": "user", "content": INSTRUCTION + "\\n\\n" + question}],\n'
              '                                       tokenize=False, add_generation_prompt=True)\n'
              if style == "chat" else "prompt = TEMPLATE.format(question=question)\n")
    return ("```python\n" + load + "tokenizer = AutoTokenizer.from_pretrained(\"PATH\")\n" + prompt +
            "ids = tokenizer(prompt, return_tensors=\"pt\")\n"
            "out = model.generate(**ids, max_new_tokens=512, do_sample=False)\n"
            "print(tokenizer.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True))  # [pot]: ...\n```\n")


def model_card(artifacts: RunArtifacts, name: str, entry: Iteration, kind: str, manifest: dict[str, Any]) -> str:
    config, metrics = artifacts.config, artifacts.metrics
    taught = manifest.get("strategies") or config.teacher.strategies  # what its prompt lists
    student = config.student.model
    base_id = EMBEDDED_ORIGINS.get(student, student)
    data_licenses = artifacts.data_licenses()
    header = yaml_header({
        "base_model": base_id,
        "library_name": "peft" if kind == "adapter" else "transformers",
        "license": base_license(student),
        "pipeline_tag": "text-generation",
        "language": ["en"],
        "tags": ["siked", "math", "reasoning", "distillation", *(["lora"] if kind == "adapter" else [])],
    })
    alphas = ", ".join(f"{it.iteration}: {it.train.alpha if it.train and it.train.alpha is not None else float('nan'):.2f}"
                       for it in metrics.iterations)
    stats = artifacts.teacher_stats
    lines = [
        header,
        f"# SIKeD student `{artifacts.path.name}` / {name}\n",
        "A small math-reasoning student trained with SIKeD (self-guided iterative knowledge distillation): "
        "it picks a strategy (chain of thought, least-to-most, or a Python program) and solves the problem "
        "with it. Exported by `siked export model`.\n",
        "## Training\n",
        f"- base model: `{student}`" + (f" (the GGUF build of `{base_id}`)" if base_id != student else ""),
        f"- exported: `{kind}` weights of {name} (the run's chosen model: "
        f"{(metrics.best_model or '?').removesuffix('/model')}, by {metrics.best_rule or 'validation accuracy'}); "
        f"stopped: {metrics.stopped}",
        f"- method: `{config.loop.method}`, mixing `{config.mixing.mode}` on the {config.mixing.line} line; "
        f"iterations: {len(metrics.iterations)}, teacher share alpha per iteration: {alphas}",
        f"- training: LoRA r={config.train.lora_r}, alpha={config.train.lora_alpha}, init={config.train.init}, "
        f"learning rate {config.train.learning_rate}" if not config.train.full_finetune else "- training: all weights",
        f"- teacher: `{config.teacher.backend}` `{stats.model or config.teacher.model_name}`; strategies "
        f"{', '.join(config.teacher.strategies)}" + (f" ({stats.notice})" if stats.notice else ""),
        f"- data: `{config.data.train.name}:{config.data.train.split}` (limit {config.data.train.limit}), "
        f"{config.data.validation_fraction:.0%} held out for validation",
        "\n## Evaluation (greedy)\n",
        *eval_table(entry),
        "\n## Prompt and output format\n",
        f"Prompt style: `{manifest.get('prompt_style', config.student.prompt_style)}`. The instruction:\n",
        f"> {student_instruction(taught)}\n",
        "The completion starts with the chosen strategy's tag: `[cot]: ...`, `[l2m]: ...` or `[pot]: ...`; "
        "a `[pot]` solution is a Python program whose result is the variable `answer` (run it to get the "
        "answer). Append a tag to the prompt (e.g. `[pot]:`) to force a strategy.\n",
    ]
    if config.student.prompt_style == "alpaca":
        template = student_prompt("{question}", strategies=taught).replace(student_instruction(taught), "INSTRUCTION")
        lines += ["The Alpaca-style template (INSTRUCTION is the text above):\n", "```text\n" + template + "\n```\n"]
    lines += [
        "## Usage\n", usage(kind, config.student.prompt_style),
        "## Licences\n",
        f"- base model `{base_id}`: {base_license(student)}",
        *(f"- data `{name_}`: {lic}" for name_, lic in data_licenses.items()),
        "",
    ]
    return "\n".join(lines)
