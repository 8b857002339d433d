"""Source ops: function inputs, scalar and array constants, and index ramps (iota)."""
from __future__ import annotations

import struct

import numpy as np

from .. import dtypes
from ..dtypes import DType
from ..uop import OpDef, OpKind, Payload, UOp


class Scalar:
    """A scalar constant's value and dtype; equal when the bits are equal (so -0.0 != 0.0)."""

    __slots__ = ("value", "dtype", "_key")

    def __init__(self, value, dtype: DType):
        value = {"f": float, "i": int, "b": bool}[dtype.kind](value)
        if dtype is dtypes.float32:
            value = float(np.float32(value))
        self.value, self.dtype = value, dtype
        bits = struct.pack("<d", value) if dtype.is_float else value
        self._key = (dtype.name, bits)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Scalar) and self._key == other._key

    def __repr__(self) -> str:
        return repr(self.value)

    @property
    def stable_key(self) -> tuple:
        """The value's type and bits, spelled the same in every process."""
        return (self.dtype.name, self._key[1].hex() if self.dtype.is_float else self._key[1])


def _llvm_float(value: float) -> str:
    # LLVM's exact spelling of a double: 64-bit hex (also for float, which must be representable).
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", value))[0]


def llvm_literal(value, dtype: DType) -> str:
    """The LLVM IR literal of a scalar of `dtype`."""
    if dtype.is_float:
        return _llvm_float(float(value))
    if dtype.kind == "b":
        return "true" if value else "false"
    return str(int(value))


INPUT = OpDef(
    "input", 0, kind=OpKind.SOURCE,
    shape=lambda shapes, arg: arg[1],
    dtype=lambda dts, arg: arg[2],
    numpy=None,
)
"""arg = (position, shape, dtype): the function's argument at that position."""

CONST = OpDef(
    "const", 0, kind=OpKind.SOURCE,
    shape=lambda shapes, arg: (),
    dtype=lambda dts, arg: arg.dtype,
    numpy=lambda arg: np.array(arg.value, dtype=arg.dtype.np),
    emit=lambda ctx, node, index: llvm_literal(node.arg.value, node.dtype),
    cost=0,
)

CONST_ARRAY = OpDef(
    "const_array", 0, kind=OpKind.SOURCE,
    shape=lambda shapes, arg: arg.array.shape,
    dtype=lambda dts, arg: dtypes.from_numpy(arg.array.dtype),
    numpy=lambda arg: arg.array,
    cost=0,
)


def _iota_emit(ctx, node, index):
    shape, axis = node.arg
    return ctx.cast_index(index.dims(ctx.e)[axis], node.dtype)


IOTA = OpDef(
    "iota", 0, kind=OpKind.SOURCE,
    shape=lambda shapes, arg: arg[0],
    dtype=lambda dts, arg: dtypes.int64,
    numpy=lambda arg: np.broadcast_to(
        np.arange(arg[0][arg[1]]).reshape([-1 if i == arg[1] else 1 for i in range(len(arg[0]))]),
        arg[0]).copy(),
    emit=_iota_emit,
    cost=0,
)
"""arg = (shape, axis): the index along `axis` at every position (structured, never expanded)."""


def const(value, dtype: DType = dtypes.float64) -> UOp:
    """A scalar constant node.

    >>> const(2.0).shape
    ()
    """
    if dtype.is_float and not isinstance(value, (bool, int, float, np.number)):
        raise TypeError(f"constant: expected a real number, got {type(value).__name__}")
    return UOp(CONST, (), Scalar(value, dtype))


def const_array(array: np.ndarray) -> UOp:
    """An array constant node (its content is hashed, so equal arrays are one node)."""
    return UOp(CONST_ARRAY, (), Payload(array))
