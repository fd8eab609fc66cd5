"""The package's shape: no import cycle between siked's modules (imports made inside functions
included, `if TYPE_CHECKING:` blocks excepted) and no module much longer than 600 lines."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "siked"
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, this: str, is_package: bool) -> set[str]:
    """Every `siked...` module named by an import anywhere in `tree`, TYPE_CHECKING blocks excepted."""
    found: set[str] = set()
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and is_type_checking(node)
               for stmt in node.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = this.split(".") if is_package else this.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "siked" or name.startswith("siked.")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name that is an attribute maps to its module)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for imported in imported_names(tree, name, path.name == "__init__.py"):
            while imported not in known and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported in known and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_sees_a_function_level_cycle() -> None:
    source = "def f():\n    from siked.b import x\n"
    tree = ast.parse(source)
    assert imported_names(tree, "siked.a", False) == {"siked.b", "siked.b.x"}
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from siked.b import x\n"
    assert imported_names(ast.parse(guarded), "siked.a", False) == set()
    relative = "from .base import Thing\n"
    assert imported_names(ast.parse(relative), "siked.pkg", True) == {"siked.pkg.base", "siked.pkg.base.Thing"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_project_modules() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (function-level imports included):\n" + "\n".join(
        " <-> ".join(component) for component in found
    )


def test_no_module_is_much_longer_than_600_lines() -> None:
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def test_the_sandbox_worker_side_is_standard_library_only() -> None:
    """The worker package runs without siked or any third-party library (loaded by path)."""
    outside = {}
    for path in sorted((PACKAGE / "sandbox" / "worker").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            foreign = [n for n in names if n.split(".")[0] not in sys.stdlib_module_names | {"__future__"}]
            if foreign:
                outside[f"{path.name}:{node.lineno}"] = foreign
    assert not outside, f"non-standard-library imports on the worker side: {outside}"


if __name__ == "__main__":
    graph = import_graph()
    for component in cycles(graph):
        print("cycle:", " <-> ".join(component))
        for member in component:
            print(f"  {member} -> {sorted(t for t in graph[member] if t in component)}")
