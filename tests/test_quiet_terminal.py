"""A stage child's Python warnings go to its log, not to the loop's terminal (a whole default run's
terminal is checked in tests/test_crash_anywhere.py)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from siked.config import SikedConfig
from siked.stages import LOG, REQUEST, run_child

WARNING_STAGE = """
import sys, warnings
from siked import stage_worker
from siked.metrics import StageInfo
from siked.stage_requests import StageArgs

class Warns(StageArgs):
    kind = "warns"

@stage_worker.stage_body(Warns)
def warns(request, console):
    warnings.warn("a library's notice", FutureWarning)
    console.print("siked's own line")
    return [], StageInfo()

sys.exit(stage_worker.main(sys.argv[1:]))
"""


def test_a_stage_childs_warning_is_kept_in_its_log_and_kept_off_the_terminal(tmp_path: Path) -> None:
    stage_dir = tmp_path / "iter1" / "eval"
    stage_dir.mkdir(parents=True)
    request = {"stage": "iter1/eval", "kind": "warns", "config": SikedConfig().model_dump(mode="json"), "args": {}}
    (stage_dir / REQUEST).write_text(json.dumps(request))
    console = io.StringIO()
    run_child([sys.executable, "-c", WARNING_STAGE, str(stage_dir / REQUEST)], "iter1/eval", stage_dir / LOG, console)
    assert "siked's own line" in console.getvalue()
    assert "Warning" not in console.getvalue()
    log = (stage_dir / LOG).read_text()
    assert "FutureWarning: a library's notice" in log and "siked's own line" in log
