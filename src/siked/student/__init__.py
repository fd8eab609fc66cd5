"""The student: model loading (hub id, folder, GGUF, embedded SmolLM2), LoRA/full fine-tuning
with TRL, and sampling through the `hf` (transformers) or `vllm` backend."""

from siked.student.generate import (
    Completion,
    GenerationBackend,
    GenerationRun,
    HFBackend,
    generate_solutions,
    open_backend,
    run_generation,
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
    "GenerationBackend",
    "GenerationRun",
    "HFBackend",
    "ModelError",
    "StudentSource",
    "TrainDataError",
    "TrainExample",
    "TrainResult",
    "convert_gguf",
    "embedded_gguf",
    "generate_solutions",
    "load_model",
    "locate_model",
    "open_backend",
    "read_examples",
    "run_generation",
    "train_student",
]
