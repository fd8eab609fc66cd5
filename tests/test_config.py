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
    ],
)
def test_bad_overrides_name_the_field(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert fragment in str(info.value)


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
