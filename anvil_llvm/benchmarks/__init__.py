"""The public benchmark problems (DESIGN.md), shared by tests, examples and benchmark scripts."""
from .problems import PROBLEMS, Problem, problem

__all__ = ["PROBLEMS", "Problem", "problem"]
