"""Elementwise ops: unary math, arithmetic, comparisons, logic, casts and where.

At the UOp level every source of an elementwise op has the node's shape (the tensor layer inserts
explicit broadcasts) and arithmetic sources share one dtype (the tensor layer inserts casts).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..dtypes import DType
from ..uop import OpDef

_SUFFIX = {"double": "f64", "float": "f32"}


def _same_shape(shapes, arg):
    for s in shapes[1:]:
        if s != shapes[0]:
            raise ValueError(f"elementwise sources must have one shape, got {shapes}")
    return shapes[0]


def _same_dtype(kinds: str, result: DType | None = None):
    def rule(dts, arg):
        for d in dts[1:]:
            if d != dts[0]:
                raise TypeError(f"elementwise sources must have one dtype, got {dts}")
        if dts[0].kind not in kinds:
            raise TypeError(f"expected a dtype of kind {kinds!r}, got {dts[0]}")
        return result or dts[0]
    return rule


class _Lifted:
    """Lowers an elementwise op: its scalar rule applied to its sources' values at `index`."""

    __slots__ = ("scalar",)

    def __init__(self, scalar):
        self.scalar = scalar        # (emitter, node, *operand values) -> value

    def __call__(self, ctx, node, index):
        return self.scalar(ctx.e, node, *[ctx.value(s, index) for s in node.src])


_lift = _Lifted


def _intrinsic(name: str):
    def emit(e, node, x, *rest):
        ty = node.dtype.llvm
        args = [(ty, v) for v in (x, *rest)]
        return e.call(ty, f"llvm.{name}.{_SUFFIX[ty]}", args)
    return emit


def _libm(name: str):
    def emit(e, node, *xs):
        ty = node.dtype.llvm
        fname = name if ty == "double" else name + "f"
        return e.call(ty, fname, [(ty, v) for v in xs], pure=True)
    return emit


def _unary_math(name: str, np_fn, emit, cost: int) -> OpDef:
    return OpDef(name, 1, shape=_same_shape, dtype=_same_dtype("f"), numpy=lambda arg, x: np_fn(x),
                 emit=_lift(emit), cost=cost)


SIN = _unary_math("sin", np.sin, _intrinsic("sin"), 20)
COS = _unary_math("cos", np.cos, _intrinsic("cos"), 20)
TAN = _unary_math("tan", np.tan, _libm("tan"), 30)
EXP = _unary_math("exp", np.exp, _intrinsic("exp"), 15)
LOG = _unary_math("log", np.log, _intrinsic("log"), 15)
SQRT = _unary_math("sqrt", np.sqrt, _intrinsic("sqrt"), 4)
TANH = _unary_math("tanh", np.tanh, _libm("tanh"), 30)
SINH = _unary_math("sinh", np.sinh, _libm("sinh"), 30)
COSH = _unary_math("cosh", np.cosh, _libm("cosh"), 30)
ASIN = _unary_math("asin", np.arcsin, _libm("asin"), 30)
ACOS = _unary_math("acos", np.arccos, _libm("acos"), 30)
ATAN = _unary_math("atan", np.arctan, _libm("atan"), 30)
LOG1P = _unary_math("log1p", np.log1p, _libm("log1p"), 30)
EXPM1 = _unary_math("expm1", np.expm1, _libm("expm1"), 30)
UNARY_MATH = (SIN, COS, TAN, EXP, LOG, SQRT, TANH, SINH, COSH, ASIN, ACOS, ATAN, LOG1P, EXPM1)


def _neg(e, node, x):
    if node.dtype.is_float:
        return e.op(f"fneg {node.dtype.llvm} {x}")
    return e.op(f"sub {node.dtype.llvm} 0, {x}")


def _abs(e, node, x):
    if node.dtype.is_float:
        return _intrinsic("fabs")(e, node, x)
    return e.call("i64", "llvm.abs.i64", [("i64", x), ("i1", "false")])


NEG = OpDef("neg", 1, shape=_same_shape, dtype=_same_dtype("fi"), numpy=lambda arg, x: -x,
            emit=_lift(_neg))
ABS = OpDef("abs", 1, shape=_same_shape, dtype=_same_dtype("fi"), numpy=lambda arg, x: np.abs(x),
            emit=_lift(_abs))
NOT = OpDef("not", 1, shape=_same_shape, dtype=_same_dtype("b"),
            numpy=lambda arg, x: np.logical_not(x),
            emit=_lift(lambda e, node, x: e.op(f"xor i1 {x}, true")))


def _arith(name: str, np_fn, float_op: str, int_op: str | None, cost: int = 1) -> OpDef:
    kinds = "fi" if int_op else "f"

    def emit(e, node, x, y):
        opcode = float_op if node.dtype.is_float else int_op
        return e.op(f"{opcode} {node.dtype.llvm} {x}, {y}")
    return OpDef(name, 2, shape=_same_shape, dtype=_same_dtype(kinds),
                 numpy=lambda arg, x, y: np_fn(x, y), emit=_lift(emit), cost=cost)


ADD = _arith("add", np.add, "fadd", "add")
SUB = _arith("sub", np.subtract, "fsub", "sub")
MUL = _arith("mul", np.multiply, "fmul", "mul")
DIV = _arith("div", np.true_divide, "fdiv", None, cost=4)


def _extremum(name: str, np_fn, intrinsic: str, int_pred: str) -> OpDef:
    def emit(e, node, x, y):
        if node.dtype.is_float:
            # llvm.maximum/minimum propagate NaN, as np.maximum/np.minimum do.
            return _intrinsic(intrinsic)(e, node, x, y)
        cond = e.op(f"icmp {int_pred} i64 {x}, {y}")
        return e.op(f"select i1 {cond}, i64 {x}, i64 {y}")
    return OpDef(name, 2, shape=_same_shape, dtype=_same_dtype("fi"),
                 numpy=lambda arg, x, y: np_fn(x, y), emit=_lift(emit), cost=2)


MAX = _extremum("max", np.maximum, "maximum", "sgt")
MIN = _extremum("min", np.minimum, "minimum", "slt")
POW = OpDef("pow", 2, shape=_same_shape, dtype=_same_dtype("f"),
            numpy=lambda arg, x, y: np.power(x, y), emit=_lift(_intrinsic("pow")), cost=40)
ATAN2 = OpDef("atan2", 2, shape=_same_shape, dtype=_same_dtype("f"),
              numpy=lambda arg, x, y: np.arctan2(x, y), emit=_lift(_libm("atan2")), cost=40)


def _compare(name: str, np_fn, float_pred: str, int_pred: str) -> OpDef:
    def emit(e, node, x, y):
        ty = node.src[0].dtype
        if ty.is_float:
            return e.op(f"fcmp {float_pred} {ty.llvm} {x}, {y}")
        return e.op(f"icmp {int_pred} {ty.llvm} {x}, {y}")
    return OpDef(name, 2, shape=_same_shape, dtype=_same_dtype("fib", dtypes.bool_),
                 numpy=lambda arg, x, y: np_fn(x, y), emit=_lift(emit))


CMPLT = _compare("cmplt", np.less, "olt", "slt")
CMPLE = _compare("cmple", np.less_equal, "ole", "sle")
CMPEQ = _compare("cmpeq", np.equal, "oeq", "eq")
CMPNE = _compare("cmpne", np.not_equal, "une", "ne")


def _logic(name: str, np_fn, opcode: str) -> OpDef:
    return OpDef(name, 2, shape=_same_shape, dtype=_same_dtype("b"),
                 numpy=lambda arg, x, y: np_fn(x, y),
                 emit=_lift(lambda e, node, x, y: e.op(f"{opcode} i1 {x}, {y}")))


AND = _logic("and", np.logical_and, "and")
OR = _logic("or", np.logical_or, "or")
XOR = _logic("xor", np.logical_xor, "xor")

BINARY = (ADD, SUB, MUL, DIV, MAX, MIN, POW, ATAN2, CMPLT, CMPLE, CMPEQ, CMPNE, AND, OR, XOR)


def _where_dtype(dts, arg):
    if dts[0] != dtypes.bool_:
        raise TypeError(f"where: condition must be bool, got {dts[0]}")
    if dts[1] != dts[2]:
        raise TypeError(f"where: branches must have one dtype, got {dts[1]} and {dts[2]}")
    return dts[1]


WHERE = OpDef("where", 3, shape=_same_shape, dtype=_where_dtype,
              numpy=lambda arg, c, x, y: np.where(c, x, y),
              emit=_lift(lambda e, node, c, x, y: e.op(
                  f"select i1 {c}, {node.dtype.llvm} {x}, {node.dtype.llvm} {y}")))


def _cast_emit(e, node, x):
    src, dst = node.src[0].dtype, node.dtype
    if src == dst:
        return x
    s, d = src.llvm, dst.llvm
    if dst.kind == "b":
        if src.is_float:
            return e.op(f"fcmp une {s} {x}, 0.0")
        return e.op(f"icmp ne {s} {x}, 0")
    if dst.is_float:
        if src.is_float:
            return e.op(f"{'fpext' if dst.itemsize > src.itemsize else 'fptrunc'} {s} {x} to {d}")
        return e.op(f"{'uitofp' if src.kind == 'b' else 'sitofp'} {s} {x} to {d}")
    if src.is_float:
        # Saturating: out-of-range and NaN give defined results instead of poison.
        return e.call(d, f"llvm.fptosi.sat.i64.{_SUFFIX[s]}", [(s, x)])
    return e.op(f"zext i1 {x} to i64")


CAST = OpDef("cast", 1, shape=_same_shape, dtype=lambda dts, arg: arg,
             numpy=lambda arg, x: x.astype(arg.np), emit=_lift(_cast_emit), cost=0)
"""arg = the target DType."""
