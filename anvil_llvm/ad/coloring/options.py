"""The choices the colouring functions take, and their checks: what callers validate before
(or without) colouring, with no numba import (the kernels are in the other modules)."""
from __future__ import annotations

ORDERS = (
    "natural",
    "largest_first",
    "smallest_first",
    "smallest_last",
    "incidence_degree",
    "dynamic_largest_first",
    "random",
)
PARTITIONS = ("auto", "column", "row", "bidirectional")
METHODS = ("star", "acyclic")
JACOBIAN_ORDERS = ("best", "dsatur", *ORDERS)
HESSIAN_ORDERS = ("best", *ORDERS)


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """A ValueError naming `name` unless `value` is one of `allowed`.

    >>> check_choice("method", "star", METHODS)
    >>> check_choice("method", "greedy", METHODS)
    Traceback (most recent call last):
    ...
    ValueError: method must be one of ('star', 'acyclic'); got 'greedy'
    """
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")


def check_jacobian_options(partition: str, order: str) -> None:
    """The checks of `jacobian_coloring`'s partition and order."""
    check_choice("partition", partition, PARTITIONS)
    check_choice("order", order, JACOBIAN_ORDERS)
    if order == "dsatur" and partition == "bidirectional":
        raise ValueError("order='dsatur' is for column and row partitions; got 'bidirectional'")


def check_hessian_options(method: str, order: str) -> None:
    """The checks of `hessian_coloring`'s method and order."""
    check_choice("method", method, METHODS)
    check_choice("order", order, HESSIAN_ORDERS)
