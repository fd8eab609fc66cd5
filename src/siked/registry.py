"""The one way strategies, datasets and teacher backends join siked: a named `Registry`.

    STRATEGIES.register("cot", ChainOfThought())           # siked.strategies.registry
    DATASETS.register("gsm8k", DatasetInfo(...))            # siked.data
    TEACHER_BACKENDS.register("mine", MyTeacher)            # a Teacher subclass

An entry may also be given as "module:attribute", imported on first use: the built-in teacher
backends are registered so, which keeps their libraries (openai, vLLM, transformers) unloaded until
a backend is chosen and lets the config validate `teacher.backend` without importing any of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind, in registration order; unknown names fail naming the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def pop(self, name: str) -> T | str:
        """Remove an entry (a plugin's tests clean up with it)."""
        return self._entries.pop(name)

    def __getitem__(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r} (known: {', '.join(sorted(self._entries))})") from None
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return entry  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return name in self._entries  # without importing a lazy entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


TEACHER_BACKENDS: Registry[Any] = Registry("teacher backend")
"""Teacher backend name -> its `siked.teachers.Teacher` subclass (built from a `TeacherConfig`)."""
for _name, _path in {
    "openai": "siked.teachers.openai_client:OpenAITeacher",
    "vllm": "siked.teachers.local_models:VLLMTeacher",
    "hf": "siked.teachers.local_models:HFTeacher",
    "file": "siked.teachers.file_import:FileTeacher",
    "reference": "siked.teachers.reference:ReferenceTeacher",
}.items():
    TEACHER_BACKENDS.register(_name, _path)
