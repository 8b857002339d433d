"""Element types of tensors and NumPy-style promotion between them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class DType:
    """An element type: its name, NumPy dtype, LLVM type and kind ('f', 'i' or 'b').

    The four DTypes are singletons, so they compare (fast) by identity."""

    name: str
    np: np.dtype
    llvm: str
    kind: str

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    @property
    def is_float(self) -> bool:
        return self.kind == "f"

    @property
    def zero(self) -> str:
        """The LLVM literal of zero (false for bool)."""
        return "0.0" if self.kind == "f" else ("false" if self.kind == "b" else "0")

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self):
        """Pickled by name: the unpickled DType is the singleton."""
        return (named, (self.name,))


float64 = DType("float64", np.dtype(np.float64), "double", "f")
float32 = DType("float32", np.dtype(np.float32), "float", "f")
int64 = DType("int64", np.dtype(np.int64), "i64", "i")
bool_ = DType("bool", np.dtype(np.bool_), "i1", "b")

ALL = (float64, float32, int64, bool_)
_BY_NUMPY = {d.np: d for d in ALL}
_RANK = {bool_: 0, int64: 1, float32: 2, float64: 3}
_BY_NAME = {d.name: d for d in ALL}


def named(name: str) -> DType:
    """The DType called `name` (how a pickled DType is found again)."""
    return _BY_NAME[name]


def from_numpy(dtype) -> DType:
    """The DType of a NumPy dtype; raises TypeError for types anvil_llvm does not compute in.

    >>> from_numpy(np.float32)
    float32
    """
    if isinstance(dtype, DType):
        return dtype
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype: expected float64, float32, int64 or bool, got {dtype!r}") from e
    if np_dtype.kind in "iu" and np_dtype != np.int64:
        return int64
    found = _BY_NUMPY.get(np_dtype)
    if found is None:
        raise TypeError(f"dtype: expected float64, float32, int64 or bool, got {np_dtype}")
    return found


def exact(dtype) -> DType:
    """The DType that is exactly `dtype` (arguments keep their type: an int32 or uint64 argument
    is a TypeError, not silently an int64 one).

    >>> exact("float32")
    float32
    """
    if isinstance(dtype, DType):
        return dtype
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        np_dtype = None
    found = _BY_NUMPY.get(np_dtype)
    if found is None:
        raise TypeError("dtype: expected one of float64, float32, int64 or bool, got "
                        f"{repr(dtype) if np_dtype is None else np_dtype}")
    return found


def promote(a: DType, b: DType) -> DType:
    """The common type of two DTypes, as NumPy promotes arrays (int64 with float32 is float64).

    >>> promote(int64, float32)
    float64
    """
    if a == b:
        return a
    if {a, b} == {int64, float32}:
        return float64
    return a if _RANK[a] > _RANK[b] else b


def float_of(d: DType) -> DType:
    """The floating type a math function of `d` computes in (NumPy: ints and bools: float64)."""
    return d if d.is_float else float64
