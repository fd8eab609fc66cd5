from __future__ import annotations

import ast
import re

from siked.strategies.base import Strategy
from siked.strategies.exemplars import Exemplar

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(?P<code>.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_program(text: str) -> str:
    """The Python program in a PoT solution: the fenced block if there is one, else the text."""
    match = _FENCE.search(text)
    code = match.group("code") if match else text
    return code.strip("\n")


def assigns_answer(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name) and name.id == "answer":
                    return True
    return False


class ProgramOfThought(Strategy):
    name = "pot"
    title = "Program of thought"
    executes = True
    instruction = (
        "Solve the math word problem by writing a Python program. Use descriptive variable names, "
        "and store the final numeric result in a variable named `answer`. Write only the code. "
        "`math`, sympy's `Symbol`, `Eq`, `solve` and a helper `solve_it(equations, variables)` "
        "are available."
    )

    def exemplar_solution(self, exemplar: Exemplar) -> str:
        return exemplar.pot

    def gradable_text(self, text: str) -> str:
        return extract_program(text)

    def invalid_reason(self, text: str) -> str | None:
        program = extract_program(text)
        if not program.strip():
            return "empty program"
        try:
            tree = ast.parse(program)
        except SyntaxError as exc:
            return f"not valid Python: {exc.msg} (line {exc.lineno})"
        if not assigns_answer(tree):
            return "the program never assigns `answer`"
        return None
