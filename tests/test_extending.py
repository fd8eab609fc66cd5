"""docs/extending.md's worked examples run as written, join their registries, and reach every process
of `siked run` as a plugin: named in the config, or installed with a `siked.plugins` entry point."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from siked.config import SikedConfig
from siked.data import DATASETS, load_problems
from siked.registry import TEACHER_BACKENDS
from siked.stages import LOG
from siked.strategies import get_strategy, parse_tagged
from siked.strategies.registry import STRATEGIES
from siked.teachers import teach

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
QUIZ = [{"q": "What is 2 + 3?", "a": 5}, {"q": "What is 10 / 4?", "a": "2.5"}, {"q": "What is 3 * 4?", "a": 12}]


def doc_examples() -> list[str]:
    """The python blocks of docs/extending.md: a strategy, a dataset, a teacher backend."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_worked_examples_register_a_strategy_a_dataset_and_a_teacher(tmp_path: Path) -> None:
    blocks = doc_examples()
    assert len(blocks) == 3
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), {})
        assert get_strategy("eq").invalid_reason("2 + 3 = 5") is None
        assert parse_tagged("[eq]: 2 + 3 = 5") == ("eq", "2 + 3 = 5")

        quiz = tmp_path / "quiz.json"
        quiz.write_text(json.dumps(QUIZ[:2]))
        problems = load_problems("quiz", "test", data_file=quiz)
        assert [(p.id, p.answer) for p in problems] == [("quiz/test/0", 5.0), ("quiz/test/1", 2.5)]

        config = SikedConfig(teacher={"backend": "gold", "strategies": ["pot", "eq"], "options": {"name": "total"}},
                             sandbox={"workers": 1})
        result = teach(config, problems, tmp_path / "teacher", progress=False)
        assert len(result.kept) == 4 and result.stats["oracle_coverage"] == 1.0
        assert [s.solution for s in result.kept if s.strategy == "eq"][0].startswith("total = 5.")  # its option
    finally:
        for registry, name in [(STRATEGIES, "eq"), (DATASETS, "quiz"), (TEACHER_BACKENDS, "gold")]:
            if name in registry:
                registry.pop(name)


# --- through `siked run`, its stages in child processes ---------------------------------------


def write_module(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(source, encoding="utf-8")
    return folder


def install_entry_point(site: Path, module: str, source: str) -> Path:
    """A distribution as pip leaves it in site-packages: the module and its dist-info with the entry point."""
    write_module(site, module, source)
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[siked.plugins]\n{module} = {module}\n", encoding="utf-8")
    return site


def siked(args: list[str], path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """The siked command line with `path` on PYTHONPATH (so its stage children see it too)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "siked.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def quiz_run(tmp_path: Path, *overrides: str) -> list[str]:
    """`siked run` on the quiz dataset with the gold teacher, in stage processes, as small as it goes."""
    quiz = tmp_path / "quiz.json"
    quiz.write_text(json.dumps(QUIZ))
    sets = [f"data.train={{name: quiz, split: train, file: {quiz}}}",
            f"data.evaluation=[{{name: quiz, split: test, file: {quiz}, limit: 2}}]",
            "data.validation_fraction=0", "teacher.backend=gold", "sandbox.workers=1",
            "loop.stage_processes=true", "loop.report=false", "loop.baselines=[]", *overrides]
    return ["run", "--out", str(tmp_path / "run"), *[arg for item in sets for arg in ("--set", item)]]


def stages_done(run_dir: Path) -> dict:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {name: stage["info"] for name, stage in manifest["stages"].items() if stage["status"] == "done"}


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


TRAIN_ON_EQ = ["teacher.strategies=[eq, pot]", "loop.method=eq", "train.max_steps=1", "train.max_length=192",
               "train.per_device_batch_size=1", "train.gradient_accumulation_steps=1", "generation.eval_max_new_tokens=8"]


def test_a_plugin_from_the_config_reaches_every_stage_and_its_strategy_trains_as_a_method(
        model_cache: Path, tmp_path: Path) -> None:
    plugins = write_module(tmp_path / "plugins", "docs_examples", "\n".join(doc_examples()))
    done = siked(quiz_run(tmp_path, "plugins=[docs_examples]", *TRAIN_ON_EQ), plugins)
    assert done.returncode == 0, done.stderr[-3000:]
    stages = stages_done(tmp_path / "run")
    assert stages["teacher"]["stats"]["backend"] == "gold"
    assert stages["baselines/eq/mix"]["train"]["strategy_counts"] == {"eq": 3}  # the training stage's data
    assert stages["baselines/eq/train"]["steps"] == 1
    assert "quiz:test" in stages["baselines/eq/eval"]["eval"]
    assert (tmp_path / "run" / "baselines" / "eq" / "train" / LOG).is_file()  # it ran in a child


def test_an_installed_entry_point_reaches_the_teacher_stage(tmp_path: Path) -> None:
    site = install_entry_point(tmp_path / "site", "docs_examples_ep", "\n".join(doc_examples()))
    done = siked(quiz_run(tmp_path, "teacher.strategies=[eq]", "loop.stop_after=teacher"), site)
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(stages_done(tmp_path / "run")) == {"data", "teacher"}
    kept = [json.loads(line) for line in (tmp_path / "run" / "teacher" / "teacher.jsonl").read_text().splitlines()]
    assert [(row["problem_id"], row["strategy"]) for row in kept] == [(f"quiz/train/{i}", "eq") for i in range(3)]
    assert (tmp_path / "run" / "teacher" / LOG).is_file()


FAILING_IN_CHILDREN = """
import os
if os.environ.get("SIKED_STAGE_PARENT"):  # set in every stage process
    raise RuntimeError("no licence server here")
"""
FAILING_BACKEND = """
from siked.records import Solution
from siked.registry import TEACHER_BACKENDS
from siked.teachers import Teacher


class Broken(Teacher):
    backend = "broken"
    uses_llm = False

    def solve(self, problems, context):
        return [Solution(problem_id=p.id, strategy="pot", solution=None, origin=self.origin) for p in problems]


TEACHER_BACKENDS.register("broken", Broken)
"""


@pytest.mark.parametrize(("source", "overrides", "cause", "traceback"), [
    (FAILING_IN_CHILDREN, [], "(exit status 2): plugin 'bad' (from plugins) failed to import: "
                              "RuntimeError: no licence server here", False),
    (FAILING_BACKEND, ["teacher.backend=broken", "teacher.strategies=[pot]"],
     "(exit status 1): ValidationError: Solution: solution: Input should be a valid string", True),
], ids=["plugin", "backend"])
def test_a_failing_stage_child_is_one_error_line_naming_the_stage_and_the_cause(
        tmp_path: Path, source: str, overrides: list[str], cause: str, traceback: bool) -> None:
    plugins = write_module(tmp_path / "plugins", "docs_examples", "\n".join(doc_examples()))
    write_module(plugins, "bad", source)
    done = siked(quiz_run(tmp_path, "plugins=[docs_examples, bad]", *overrides), plugins)
    assert done.returncode == 2
    log = tmp_path / "run" / "teacher" / LOG
    assert error_lines(done) == [f"error: stage teacher failed {cause} -- full log: {log}; "
                                 "rerun the same command to resume at this stage"]
    # a bug's traceback stays in the log; a plugin's own error is the whole story
    assert ("Traceback (most recent call last)" in log.read_text()) == traceback


def test_a_plugin_that_cannot_be_imported_is_named_with_where_it_came_from(tmp_path: Path) -> None:
    done = siked(["config", "--set", "plugins=[no_such_plugin]"], tmp_path)
    assert done.returncode == 2
    assert error_lines(done) == ["error: plugin 'no_such_plugin' (from plugins) failed to import: "
                                 "ModuleNotFoundError: No module named 'no_such_plugin'"]
    site = install_entry_point(tmp_path / "site", "broken_ep", "raise ImportError('needs libfoo')\n")
    done = siked(["data", "gsm_symbolic:test", "--limit", "1"], site)
    assert done.returncode == 2
    assert error_lines(done) == ["error: plugin 'broken_ep' (entry point siked.plugins:broken_ep) failed to "
                                 "import: ImportError: needs libfoo"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.long
def test_each_rank_of_a_two_process_training_stage_loads_the_plugins(model_cache: Path, tmp_path: Path) -> None:
    """Each `accelerate launch` rank validates the config (a plugin strategy) and reads the plugin's
    training data; about 90 s on CPU, over gloo."""
    plugins = write_module(tmp_path / "plugins", "docs_examples", "\n".join(doc_examples()))
    done = siked(quiz_run(tmp_path, "plugins=[docs_examples]", *TRAIN_ON_EQ, "train.launcher.num_processes=2",
                          f"train.launcher.main_process_port={free_port()}"), plugins, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    train = stages_done(tmp_path / "run")["baselines/eq/train"]
    assert train["processes"] == 2 and train["steps"] == 1
