"""The `siked` command line: a thin layer over the Python API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from siked.config import ConfigError, SikedConfig, load_config

app = typer.Typer(
    help="SIKeD: self-guided iterative knowledge distillation for math reasoning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

ConfigArg = Annotated[
    Optional[Path],
    typer.Argument(help="YAML config file; omitted: the embedded default (offline, small)."),
]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config field, e.g. --set teacher.samples=4 (repeatable)."),
]


def fail(message: str, code: int = 2) -> None:
    """Print a clear error (no traceback) and exit."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def config_from(path: Path | None, overrides: list[str] | None) -> SikedConfig:
    try:
        return load_config(path, overrides or [])
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


def main() -> None:
    app()


if __name__ == "__main__":
    main()
