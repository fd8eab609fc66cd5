"""Plugins: modules that register strategies, datasets or teacher backends when imported.

Two ways in, loaded by `load_plugins` in every process siked runs (the command line, each stage
child, each training rank under `accelerate launch`) before any name is looked up:

- the config's `plugins:` list of module names;
- the entry-point group `siked.plugins` of installed distributions, each entry point a module
  (`my_ext = "my_ext"` under `[project.entry-points."siked.plugins"]`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points

from siked.errors import SikedError, one_line

ENTRY_POINT_GROUP = "siked.plugins"


class PluginError(SikedError):
    """A plugin that cannot be imported; the message names it, where it came from, and the cause."""


def _import(module: str, source: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # whatever a plugin raises, the user sees which plugin and why
        raise PluginError(f"plugin {module!r} ({source}) failed to import: "
                          f"{type(exc).__name__}: {one_line(exc)}") from exc


@functools.cache
def _load_entry_points() -> None:
    # cached: a failure raises again on the next call, a success is not repeated
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _import(entry.module, f"entry point {ENTRY_POINT_GROUP}:{entry.name}")


def load_plugins(names: Iterable[str] = ()) -> None:
    """Import the installed `siked.plugins` entry points, then the modules `names` (the config's
    `plugins`). Importing a module twice does nothing, so every caller may call this."""
    _load_entry_points()
    for name in names:
        _import(name, "from plugins")
