"""Teachers: the large model (or dataset) whose correct solutions the student learns from.

    from siked.teachers import teach
    result = teach(config, problems, "runs/x/teacher")   # writes teacher.jsonl, teacher_stats.json

Backends (`teacher.backend`): `openai` (any OpenAI-compatible server, `teacher.openai`), `vllm`
(offline engine) and `hf` (local transformers model), both `teacher.local`, `file` (pre-generated
solutions, `teacher.file`), `reference` (the dataset's own worked solutions, no LLM), or a registered
one (`teacher.options`). LLM completions go through a durable content-keyed cache, so reruns and
resumes send only what is missing.
"""

from siked.teachers.base import Failure, Ledger, Reply, Request, SolveContext, Teacher, TeacherError
from siked.teachers.cache import CompletionLog, completion_key
from siked.teachers.teach import (
    LOG_FILE,
    SAMPLES_FILE,
    STATS_FILE,
    TEACHER_FILE,
    TeachResult,
    make_teacher,
    select_kept,
    teach,
)

__all__ = [
    "LOG_FILE",
    "SAMPLES_FILE",
    "STATS_FILE",
    "TEACHER_FILE",
    "CompletionLog",
    "Failure",
    "Ledger",
    "Reply",
    "Request",
    "SolveContext",
    "TeachResult",
    "Teacher",
    "TeacherError",
    "completion_key",
    "make_teacher",
    "select_kept",
    "teach",
]
