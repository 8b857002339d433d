"""The public benchmark problems (docs/architecture.md), shared by tests, examples and scripts."""
from .problems import PROBLEMS, Problem, problem

__all__ = ["PROBLEMS", "Problem", "problem"]
