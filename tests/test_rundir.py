import json
from pathlib import Path

import pytest

from siked.config import load_config
from siked.metrics import TeacherInfo, TeacherStats
from siked.names import TEACHER
from siked.rundir import RunDir, RunDirError


def config_for(path: Path, *overrides: str):
    return load_config(None, [f"out={path}", *overrides])


def test_new_run_records_config_inputs_and_libraries(tmp_path: Path):
    run = RunDir.open(config_for(tmp_path / "run"))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["teacher"]["backend"] == "reference"
    assert "out" not in manifest["config"]
    assert manifest["libraries"]["siked"]
    assert manifest["stages"] == {}
    assert run.path == tmp_path / "run"


def test_stage_is_done_only_when_finished_and_outputs_exist(tmp_path: Path):
    config = config_for(tmp_path / "run")
    run = RunDir.open(config)
    output = run.stage_path("teacher", "teacher.jsonl")
    run.start(TEACHER)
    assert not run.is_done(TEACHER)  # started, then killed: redone on resume
    output.parent.mkdir(parents=True)
    output.write_text("{}\n")
    run.finish(TEACHER, [output], TeacherInfo(stats=TeacherStats(kept=3)))
    resumed = RunDir.open(config)
    assert resumed.is_done(TEACHER) and resumed.results().teacher().stats.kept == 3
    assert resumed.manifest["stages"]["teacher"]["info"] == {"stats": {"kept": 3}}  # the layout on disk
    assert resumed.manifest["resumed"] == 1
    output.unlink()  # an output that vanished makes the stage undone again
    assert not RunDir.open(config).is_done(TEACHER)


def test_changed_config_is_refused_and_names_the_fields(tmp_path: Path):
    RunDir.open(config_for(tmp_path / "run"))
    with pytest.raises(RunDirError) as info:
        RunDir.open(config_for(tmp_path / "run", "teacher.samples=7", "mixing.mode=all"))
    message = str(info.value)
    assert "teacher.samples: run has 1, now 7" in message
    assert "mixing.mode: run has 'adaptive', now 'all'" in message
    assert "--out" in message


def test_corrupt_manifest_is_a_clear_error(tmp_path: Path):
    config = config_for(tmp_path / "run")
    RunDir.open(config)
    (tmp_path / "run" / "manifest.json").write_text('{"version": 1, "config": ')
    with pytest.raises(RunDirError, match=r"manifest.json is corrupt"):
        RunDir.open(config)
    (tmp_path / "run" / "manifest.json").write_text('{"version": 1}')
    with pytest.raises(RunDirError, match=r"missing config, stages"):
        RunDir.open(config)


def test_a_directory_that_is_not_a_run_is_not_taken_over(tmp_path: Path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(RunDirError, match="not a siked run directory"):
        RunDir.open(config_for(tmp_path / "mine"))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_run_from_before_trainer_kwargs_resumes(tmp_path):
    from siked.config import SikedConfig
    from siked.rundir import RunDir, config_fingerprint

    config = SikedConfig(out=tmp_path / "run")
    run = RunDir.open(config)
    assert "trainer_kwargs" not in run.manifest["config"]["train"]  # as an older siked wrote it
    assert RunDir.open(config).manifest["resumed"] == 1
    config.train.trainer_kwargs = {"max_grad_norm": 0.5}
    assert config_fingerprint(config)["train"]["trainer_kwargs"] == {"max_grad_norm": 0.5}


def test_operational_settings_may_change_on_resume_and_are_recorded(tmp_path: Path):
    RunDir.open(config_for(tmp_path / "run", "generation.batch_size=64"))
    smaller = ("generation.batch_size=8", "sandbox.workers=1", "generation.gpu_memory_utilization=0.5",
               "teacher.openai.concurrency=2", "teacher.openai.request_timeout_s=30", "generation.device=cpu")
    resumed = RunDir.open(config_for(tmp_path / "run", *smaller))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["resumed"] == 1 == resumed.manifest["resumed"]
    first, second = manifest["invocations"]
    assert first["operational"]["generation.batch_size"] == 64
    assert second["operational"]["generation.batch_size"] == 8
    assert second["operational"]["sandbox.workers"] == 1
    assert second["operational"]["generation.gpu_memory_utilization"] == 0.5
    assert second["operational"]["teacher.openai.concurrency"] == 2
    assert "batch_size" not in manifest["config"]["generation"]
    # A results-changing field in the same section is still refused.
    with pytest.raises(RunDirError, match=r"generation.temperature: run has 0.7, now 0.2"):
        RunDir.open(config_for(tmp_path / "run", *smaller, "generation.temperature=0.2"))


def test_a_manifest_from_before_the_split_resumes_with_other_operational_settings(tmp_path: Path):
    RunDir.open(config_for(tmp_path / "run"))
    path = tmp_path / "run" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["generation"]["batch_size"] = 64  # old manifests kept every field
    manifest.pop("invocations")
    path.write_text(json.dumps(manifest))
    resumed = RunDir.open(config_for(tmp_path / "run", "generation.batch_size=4"))
    assert resumed.manifest["invocations"][-1]["operational"]["generation.batch_size"] == 4


def test_a_manifest_from_before_the_teacher_sections_resumes_with_todays_layout(tmp_path: Path):
    served = ("teacher.backend=openai", "teacher.openai.base_url=http://host/v1", "teacher.openai.model=m")
    RunDir.open(config_for(tmp_path / "run", *served))
    path = tmp_path / "run" / "manifest.json"
    manifest = json.loads(path.read_text())
    teacher = manifest["config"]["teacher"]
    server = teacher.pop("openai")
    del teacher["local"], teacher["file"], teacher["options"]
    teacher.update(base_url=server["base_url"], model=server["model"], endpoint=server["endpoint"],
                   multi_sample=server["multi_sample"], file=None, file_fields={})  # as an older siked wrote it
    path.write_text(json.dumps(manifest))
    assert RunDir.open(config_for(tmp_path / "run", *served)).manifest["resumed"] == 1
    with pytest.raises(RunDirError, match=r"teacher.openai.model: run has 'm', now 'other'"):
        RunDir.open(config_for(tmp_path / "run", *served, "teacher.openai.model=other"))


def test_input_files_are_rechecked_on_resume(tmp_path: Path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"question": "1+1?", "answer": 2}\n')
    teacher = tmp_path / "teacher.jsonl"
    teacher.write_text('{"problem_id": "a", "strategy": "cot", "solution": "2"}\n')
    overrides = (f"data.train.file={data}", f"teacher.file.path={teacher}")
    RunDir.open(config_for(tmp_path / "run", *overrides))
    RunDir.open(config_for(tmp_path / "run", *overrides))  # unchanged: resumes
    data.write_text('{"question": "1+1?", "answer": 3}\n')
    with pytest.raises(RunDirError) as info:
        RunDir.open(config_for(tmp_path / "run", *overrides))
    assert f"input file {data} changed since the run" in str(info.value)
    data.write_text('{"question": "1+1?", "answer": 2}\n')
    teacher.unlink()
    with pytest.raises(RunDirError, match=rf"input file {teacher} of the run in .* no longer exists"):
        RunDir.open(config_for(tmp_path / "run", *overrides))
