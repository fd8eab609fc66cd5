import sys
from pathlib import Path

import pytest

from siked.config import ConfigError, SikedConfig, dump_config, load_config


def test_embedded_default_is_valid_and_offline():
    config = load_config()
    assert config.teacher.backend == "reference"
    assert config.data.train.name == "gsm_symbolic"
    assert config.student.model == "embedded:smollm2"


def test_yaml_merges_over_defaults_and_overrides_win(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  samples: 3\n  temperature: 0.2\ntrain:\n  lora_r: 8\n")
    config = load_config(path, ["teacher.samples=5", "data.train.limit=7", "mixing.mode=all"])
    assert config.teacher.samples == 5
    assert config.teacher.temperature == 0.2
    assert config.teacher.backend == "reference"  # untouched default survives the merge
    assert config.train.lora_r == 8
    assert config.data.train.limit == 7
    assert config.mixing.mode == "all"


def test_override_value_is_parsed_as_yaml():
    config = load_config(None, ["teacher.strategies=[cot, pot]", "train.bf16=false"])
    assert config.teacher.strategies == ["cot", "pot"]
    assert config.train.bf16 is False


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("teacher.smaples=4", "teacher.smaples"),
        ("teacher.samples=0", "teacher.samples"),
        ("mixing.mode=sometimes", "mixing.mode"),
        ("teacher.samples", "key=value"),
        ("teacher.samples.x=1", "teacher.samples"),
        ("data.train.templates=[1, 32]", "data.train.templates: Value error, unknown template(s) [32]"),
        ("data.evaluation=[{name: svamp, split: test, templates: [1]}]",
         "data.evaluation.0.templates: Value error, only gsm_symbolic has templates"),
    ],
)
def test_bad_overrides_name_the_field(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert fragment in str(info.value)


def test_templates_reach_the_loader_and_the_problems():
    from siked.data import load_spec

    config = load_config(None, ["data.train.templates=[3, 10]", "data.train.limit=6"])
    problems = load_spec(config.data.train)
    assert len(problems) == 6 and {p.meta["template"] for p in problems} == {3, 10}


def test_bad_files_name_the_file(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("teacher: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("teacher:\n  backend: gpt\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml[\s\S]*teacher.backend"):
        load_config(wrong)


def test_dump_round_trips(tmp_path: Path):
    config = load_config(None, ["teacher.samples=2", "out=/tmp/x"])
    path = tmp_path / "dumped.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config
    assert isinstance(load_config(path), SikedConfig)


REPO = Path(__file__).resolve().parents[1]


def test_line_defaults_to_the_authors_unbiased_and_the_measured_presets_sample_freely():
    assert SikedConfig().mixing.line == "unbiased" and SikedConfig().mixing.sampling == "forced"
    assert load_config().mixing.line == "paper" and load_config().mixing.sampling == "free"
    for name in ("experiment-gsm8k.yaml", "cpu-gsm8k.yaml", "cpu-templates.yaml"):
        config = load_config(REPO / "configs" / name)
        assert config.mixing.line == "paper"
        assert config.generation.eval_max_new_tokens == config.generation.max_new_tokens


def test_budget_defaults_to_the_authors_own_epochs_and_the_recorded_experiment_keeps_equal_steps():
    assert SikedConfig().loop.budget == "own_epochs"
    assert load_config(REPO / "configs" / "experiment-templates.yaml").loop.budget == "equal_steps"
    with pytest.raises(ConfigError, match="loop.budget"):
        load_config(None, ["loop.budget=equal_epochs"])


def test_the_template_preset_draws_every_set_from_the_same_honest_templates():
    config = load_config(REPO / "configs" / "cpu-templates.yaml")
    assert config.data.train.templates and all(
        spec.templates == config.data.train.templates for spec in config.data.evaluation)
    assert len(config.teacher.strategies) == 3  # PoT is correct and honest on every chosen template


@pytest.mark.parametrize(("override", "old"), [("mixing.granularity=strategy", "mixing.granularity"),
                                               ("loop.sample_mode=both", "loop.sample_mode")])
def test_the_old_sampling_and_granularity_keys_are_refused_naming_mixing_line(override, old):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert f"{old} was replaced by mixing.line" in message
    assert "(got {" not in message  # one line naming the fields, not the whole section


@pytest.mark.parametrize(("overrides", "moved"), [
    (["teacher.base_url=http://host/v1"], "teacher.base_url is now teacher.openai.base_url"),
    (["teacher.backend=openai", "teacher.model=m"], "teacher.model is now teacher.openai.model"),
    (["teacher.backend=vllm", "teacher.endpoint=completions"], "teacher.endpoint is now teacher.local.endpoint"),
    (["teacher.model=m"], "teacher.model is now teacher.openai.model or teacher.local.model"),
    (["teacher.batch_size=8"], "teacher.batch_size is now teacher.local.batch_size"),
    (["teacher.file=solutions.jsonl"], "teacher.file is now teacher.file.path"),
    (["teacher.file_fields={solution: text}"], "teacher.file_fields is now teacher.file.fields"),
])
def test_the_teachers_old_flat_keys_are_refused_naming_their_section(overrides, moved):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert moved in message and "\n" not in message and "(got {" not in message


def test_a_config_file_with_several_flat_teacher_keys_names_each_new_key(tmp_path: Path):
    path = tmp_path / "old.yaml"
    path.write_text("teacher:\n  backend: openai\n  base_url: http://host/v1\n  concurrency: 64\n")
    with pytest.raises(ConfigError, match="teacher.base_url is now teacher.openai.base_url, "
                                          "teacher.concurrency is now teacher.openai.concurrency"):
        load_config(path)


def test_each_backends_settings_load_from_its_own_section(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  backend: vllm\n  samples: 4\n"
                    "  local: {model: some/model, batch_size: 8, tensor_parallel_size: 2}\n"
                    "  file: {path: solutions.jsonl, fields: {solution: text}}\n")
    config = load_config(path, ["teacher.openai.concurrency=3"])
    teacher = config.teacher
    assert (teacher.local.model, teacher.local.batch_size, teacher.local.tensor_parallel_size) == ("some/model", 8, 2)
    assert teacher.file.path == Path("solutions.jsonl") and teacher.file.fields == {"solution": "text"}
    assert teacher.openai.concurrency == 3 and teacher.samples == 4 and teacher.model_name == "some/model"
    with pytest.raises(ConfigError, match="teacher.options is for registered backends, not 'vllm': its settings are teacher.local"):
        load_config(path, ["teacher.options={model: m}"])


def test_a_run_directorys_config_from_before_the_teacher_sections_is_read_into_them(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("teacher:\n  backend: openai\n  base_url: http://host/v1\n  model: m\n  endpoint: completions\n"
                    "  concurrency: 64\n  samples: 2\n  file: null\n  file_fields: {}\n")
    with pytest.raises(ConfigError, match="teacher.base_url is now teacher.openai.base_url"):
        load_config(path)
    teacher = load_config(path, recorded=True).teacher
    assert (teacher.openai.base_url, teacher.openai.model, teacher.openai.endpoint) == ("http://host/v1", "m", "completions")
    assert teacher.openai.concurrency == 64 and teacher.samples == 2 and teacher.local.endpoint == "chat"
    assert teacher.file.path is None


def test_priority_belongs_to_the_biased_line_and_names_taught_strategies():
    config = load_config(None, ["mixing.line=biased", "mixing.priority=[l2m, pot, cot]"])
    assert config.mixing.priority == ["l2m", "pot", "cot"] and config.mixing.sampling == "free"
    with pytest.raises(ConfigError, match="mixing.priority applies to mixing.line=biased only"):
        load_config(None, ["mixing.priority=[cot, pot, l2m]"])  # the embedded default runs the paper line
    with pytest.raises(ConfigError, match="teacher.strategies"):
        load_config(None, ["mixing.line=biased", "teacher.strategies=[cot, l2m]"])  # pot first by default


def test_evaluation_has_its_own_longer_token_limit():
    defaults = SikedConfig().generation
    assert defaults.eval_max_new_tokens > defaults.max_new_tokens
    with pytest.raises(ConfigError, match="generation.eval_max_new_tokens"):
        load_config(None, ["generation.eval_max_new_tokens=0"])


def test_paper_preset_follows_the_authors_settings():
    config = load_config(REPO / "configs" / "paper.yaml")
    assert config.student.model == "Qwen/Qwen2-1.5B-Instruct"
    assert config.train.learning_rate == 3e-4  # Qwen2; the authors use 2e-4 for Gemma and SmolLM
    assert "2e-4 for the Gemma and SmolLM" in (REPO / "configs" / "paper.yaml").read_text()
    assert (config.generation.samples, config.generation.temperature, config.generation.top_p) == (10, 0.7, 0.95)
    assert config.generation.eval_max_new_tokens > config.generation.max_new_tokens
    assert (config.train.lora_r, config.train.lora_alpha, config.train.full_finetune) == (16, 32, False)
    assert set(config.train.lora_target_modules) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert config.train.epochs == 3
    assert config.train.per_device_batch_size * config.train.gradient_accumulation_steps == 8
    assert config.train.init == "previous"
    assert config.mixing.line == "unbiased" and config.data.validation_fraction == 0.1
    assert config.loop.budget == "own_epochs"
    assert config.teacher.backend == "openai" and config.teacher.openai.base_url.startswith("http://127.0.0.1")
    assert config.teacher.openai.model == "meta-llama/Llama-3.3-70B-Instruct" and config.teacher.openai.concurrency == 64


def test_another_training_dataset_drops_the_embedded_defaults_templates() -> None:
    config = load_config(None, ["data.train.name=jsonl", "data.train.file=mine.jsonl"])
    assert config.data.train.name == "jsonl" and config.data.train.templates is None
    assert load_config(None, []).data.train.templates  # the default draws from chosen templates
    kept = load_config(None, ["data.train.name=gsm_symbolic", "data.train.limit=8"]).data.train
    assert kept.templates == load_config(None, []).data.train.templates


def test_the_run_seed_seeds_training_sampling_and_the_teacher_unless_a_section_sets_its_own(tmp_path: Path):
    config = load_config(None, ["seed=3"])
    assert (config.train.seed, config.generation.seed, config.teacher.seed) == (3, 3, 3)
    config = load_config(None, ["seed=3", "train.seed=7"])
    assert (config.train.seed, config.generation.seed, config.teacher.seed) == (7, 3, 3)
    assert load_config(None).train.seed == 0
    # the resolved config (what a run directory keeps) reproduces every section's seed
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(config))
    assert load_config(path).model_dump() == config.model_dump()
    assert load_config(path, ["seed=4"]).train.seed == 7  # written out, the section's own seed stays


def test_siked_config_prints_the_resolved_config_and_a_schema_with_every_field_described(tmp_path: Path):
    import json

    import yaml
    from typer.testing import CliRunner

    from siked.cli import app

    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  samples: 3\n")
    shown = CliRunner().invoke(app, ["config", str(path), "--set", "loop.method=pot"])
    assert shown.exit_code == 0, shown.output
    assert load_config(path, ["loop.method=pot"]) == SikedConfig.model_validate(yaml.safe_load(shown.stdout))

    shown = CliRunner().invoke(app, ["config", "--schema"])
    schema = json.loads(shown.stdout)
    undescribed = [f"{name}.{field}" for name, model in [("SikedConfig", schema), *schema["$defs"].items()]
                   for field, prop in model["properties"].items() if not prop.get("description")]
    assert undescribed == []
    assert schema["$defs"]["TrainConfig"]["properties"]["max_steps"]["description"].startswith("Stop after")


def test_a_plugin_named_in_the_config_is_imported_before_its_names_are_checked(tmp_path: Path, monkeypatch):
    from siked.strategies.registry import STRATEGIES

    (tmp_path / "ext_tot.py").write_text(
        "from siked.strategies import register\nfrom siked.strategies.cot import ChainOfThought\n\n"
        "class TreeOfThought(ChainOfThought):\n    name = 'tot'\n\nregister(TreeOfThought())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"loop.baselines: .*unknown baseline 'tot' \(known: combined, cot, l2m, pot"):
        load_config(None, ["loop.baselines=[tot]"])
    try:
        config = load_config(None, ["plugins=[ext_tot]", "loop.method=tot", "loop.baselines=[combined, tot]",
                                    "teacher.strategies=[cot, tot]"])
        assert (config.loop.method, config.loop.baselines) == ("tot", ["combined", "tot"])
    finally:
        STRATEGIES.pop("tot")
        monkeypatch.delitem(sys.modules, "ext_tot")
    with pytest.raises(ConfigError, match="plugins: expected a list of module names"):
        load_config(None, ["plugins=ext_tot"])


def test_a_stage_child_does_not_recheck_templates_the_parent_checked(tmp_path) -> None:
    import json
    import subprocess
    import sys

    config = tmp_path / "config.json"
    config.write_text(json.dumps(load_config().model_dump(mode="json")))  # the embedded default has templates
    child = ("import json, sys; from siked.config import SikedConfig, CHECKED_BY_PARENT; "
             f"SikedConfig.model_validate(json.load(open({str(config)!r})), context=CHECKED_BY_PARENT); "
             "print('reasoning_gym' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"  # reasoning-gym's 3 s import is not paid in every stage child
    with pytest.raises(ConfigError, match="unknown template"):  # the parent still checks
        load_config(None, ["data.train.templates=[32]"])
