"""The student: model loading (hub id, folder, GGUF, embedded SmolLM2), LoRA/full fine-tuning
with TRL, and a loaded `Student` generating through the `hf` (transformers) or `vllm` backend."""

from siked.student.generate import (
    Completion,
    Generation,
    GenerationBackend,
    HFBackend,
    Student,
    open_backend,
)
from siked.student.models import (
    ModelError,
    StudentSource,
    convert_gguf,
    embedded_gguf,
    load_model,
    locate_model,
)
from siked.student.train import (
    TrainDataError,
    TrainExample,
    TrainResult,
    read_examples,
    train_student,
)

__all__ = [
    "Completion",
    "Generation",
    "GenerationBackend",
    "HFBackend",
    "ModelError",
    "Student",
    "StudentSource",
    "TrainDataError",
    "TrainExample",
    "TrainResult",
    "convert_gguf",
    "embedded_gguf",
    "load_model",
    "locate_model",
    "open_backend",
    "read_examples",
    "train_student",
]
