"""docs/extending.md's worked examples run as written and join their registries."""

import json
import re
from pathlib import Path

from siked.config import SikedConfig
from siked.data import DATASETS, load_problems
from siked.registry import TEACHER_BACKENDS
from siked.strategies import get_strategy, parse_tagged
from siked.strategies.registry import STRATEGIES
from siked.teachers import teach

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def test_the_worked_examples_register_a_strategy_a_dataset_and_a_teacher(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 3
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), {})
        assert get_strategy("eq").invalid_reason("2 + 3 = 5") is None
        assert parse_tagged("[eq]: 2 + 3 = 5") == ("eq", "2 + 3 = 5")

        quiz = tmp_path / "quiz.json"
        quiz.write_text(json.dumps([{"q": "What is 2 + 3?", "a": 5}, {"q": "What is 10 / 4?", "a": "2.5"}]))
        problems = load_problems("quiz", "test", data_file=quiz)
        assert [(p.id, p.answer) for p in problems] == [("quiz/test/0", 5.0), ("quiz/test/1", 2.5)]

        config = SikedConfig(teacher={"backend": "gold_program", "strategies": ["pot"]}, sandbox={"workers": 1})
        result = teach(config, problems, tmp_path / "teacher", progress=False)
        assert len(result.kept) == 2 and result.stats["oracle_coverage"] == 1.0
    finally:
        for registry, name in [(STRATEGIES, "eq"), (DATASETS, "quiz"), (TEACHER_BACKENDS, "gold_program")]:
            if name in registry:
                registry.pop(name)
