"""Arg: the shape, dtype and name of one argument of a function; C-identifier names."""
from __future__ import annotations

import keyword
import math
import re

import numpy as np

from . import dtypes
from .dtypes import DType

_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while class namespace template typename new delete this "
    "operator private public protected virtual friend".split())


MAX_BYTES = 1 << 48      # an argument's size limit: beyond any address space of today


def check_name(name, what: str = "name") -> str:
    """`name` if it is a valid C identifier (generated code exports it), else ValueError."""
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected a str, got {type(name).__name__}")
    if not _C_IDENTIFIER.match(name) or name in _C_KEYWORDS or keyword.iskeyword(name):
        raise ValueError(f"{what}: {name!r} is not a valid C identifier (letters, digits and "
                         "underscores, not starting with a digit, not a C/C++ keyword)")
    return name


class Arg:
    """The shape and dtype of one argument: `Arg(5)`, `Arg((3, 4))`, `Arg((), name="t")`.

    >>> Arg((3, 4)).shape
    (3, 4)
    """

    def __init__(self, shape=(), dtype=dtypes.float64, name: str | None = None):
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (int(shape),)
        if not isinstance(shape, (tuple, list)) or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                for d in shape):
            raise ValueError(f"Arg: shape must be a non-negative int or a tuple of them, "
                             f"got {shape!r}")
        self.shape = tuple(int(d) for d in shape)
        self.dtype: DType = dtypes.exact(dtype)
        if math.prod(self.shape) * self.dtype.itemsize > MAX_BYTES:
            raise ValueError(f"Arg: shape {self.shape} of {self.dtype} is too large: more than "
                             f"{MAX_BYTES} bytes")
        self.name = None if name is None else check_name(name, "Arg name")

    def __repr__(self) -> str:
        return f"Arg({self.shape}, {self.dtype})"


def as_arg(spec, position: int) -> Arg:
    """`spec` (an Arg or a shape) as the Arg of argument `position`."""
    if isinstance(spec, Arg):
        return spec
    try:
        return Arg(spec)
    except ValueError:
        raise TypeError(f"args[{position}]: expected an Arg or a shape, got {spec!r}") from None
