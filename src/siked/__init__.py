"""SIKeD: Self-guided Iterative Knowledge Distillation for mathematical reasoning."""

from siked.records import Problem, Solution, Verdict

__all__ = ["Problem", "Solution", "Verdict"]
__version__ = "0.1.0"
