"""Elementwise ops: unary math, arithmetic, comparisons, logic, casts and where.

At the UOp level every source of an elementwise op has the node's shape (the tensor layer inserts
explicit broadcasts) and arithmetic sources share one dtype (the tensor layer inserts casts).
"""
from __future__ import annotations

import numpy as np

from ..._lazy import scipy_sparse as sp
from .. import dtypes
from ..dtypes import DType
from ..uop import Linearity, OpDef, OpKind, toposort

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


def _same(kinds: str, result: DType | None = None) -> dict:
    """The shape and dtype rules of an op whose sources share one shape and one dtype of one of
    `kinds` (its result: `result`, else theirs), with the `uniform` table they amount to."""
    return {"shape": _same_shape, "dtype": _same_dtype(kinds, result),
            "uniform": {d: result or d for d in dtypes.ALL if d.kind in kinds}}


def batch_elementwise(B, node, sources, batched):
    """Batching rule of every elementwise op: unbatched sources are broadcast over the batch."""
    size = next(s.shape[0] for s, b in zip(sources, batched) if b)
    shape = (size,) + node.shape
    return B.UOp(node.op, tuple(s if b else B.broadcast_to(s, shape)
                                for s, b in zip(sources, batched)), node.arg)


def _smooth(*partials):
    """JVP and VJP rules from the partial derivatives d node / d source (each built lazily)."""
    def jvp(B, node, tangents):
        total = None
        for t, d in zip(tangents, partials):
            if t is not None:
                total = B.add(total, B.mul(t, d(B, node)))
        return total

    def vjp(B, node, ct):
        return tuple(B.mul(ct, d(B, node)) for d in partials)
    return {"jvp": jvp, "vjp": vjp, "batch": batch_elementwise,
            "linearity": Linearity.NONLINEAR}


def _piecewise_linear(*partials):
    """`_smooth` for an op whose partial derivatives are piecewise constant (abs, max, min,
    mod): its second derivative is zero wherever it exists."""
    return {**_smooth(*partials), "linearity": Linearity.LINEAR}


def _linear(jvp, vjp):
    return {"jvp": jvp, "vjp": vjp, "batch": batch_elementwise, "linearity": Linearity.LINEAR}


def _constant():
    """No derivative: comparisons, logic, and anything producing ints or bools."""
    return {"jvp": lambda B, node, tangents: None,
            "vjp": lambda B, node, ct: (None,) * len(node.src),
            "batch": batch_elementwise, "linearity": Linearity.CONSTANT}


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


def _unary_math(name: str, np_fn, emit, cost: int, derivative) -> OpDef:
    """A float -> float function; `derivative(B, x, y)` gives dy/dx from the source x and y."""
    return OpDef(name, 1, **_same("f"), numpy=lambda arg, x: np_fn(x),
                 scalar=emit, cost=cost,
                 **_smooth(lambda B, n: derivative(B, n.src[0], n)))


def _one_minus_square(B, x):
    return B.sub(B.scalar(1, x), B.mul(x, x))


def _inverse_sqrt_one_minus_square(B, x):
    return B.div(B.scalar(1, x), B.unary(SQRT, _one_minus_square(B, x)))


SIN = _unary_math("sin", np.sin, _intrinsic("sin"), 20, lambda B, x, y: B.unary(COS, x))
COS = _unary_math("cos", np.cos, _intrinsic("cos"), 20, lambda B, x, y: B.neg(B.unary(SIN, x)))
TAN = _unary_math("tan", np.tan, _libm("tan"), 30,
                  lambda B, x, y: B.add(B.scalar(1, y), B.mul(y, y)))
EXP = _unary_math("exp", np.exp, _intrinsic("exp"), 15, lambda B, x, y: y)
LOG = _unary_math("log", np.log, _intrinsic("log"), 15,
                  lambda B, x, y: B.div(B.scalar(1, x), x))
SQRT = _unary_math("sqrt", np.sqrt, _intrinsic("sqrt"), 4,
                   lambda B, x, y: B.div(B.scalar(0.5, y), y))
TANH = _unary_math("tanh", np.tanh, _libm("tanh"), 30, lambda B, x, y: _one_minus_square(B, y))
SINH = _unary_math("sinh", np.sinh, _libm("sinh"), 30, lambda B, x, y: B.unary(COSH, x))
COSH = _unary_math("cosh", np.cosh, _libm("cosh"), 30, lambda B, x, y: B.unary(SINH, x))
ASIN = _unary_math("asin", np.arcsin, _libm("asin"), 30,
                   lambda B, x, y: _inverse_sqrt_one_minus_square(B, x))
ACOS = _unary_math("acos", np.arccos, _libm("acos"), 30,
                   lambda B, x, y: B.neg(_inverse_sqrt_one_minus_square(B, x)))
ATAN = _unary_math("atan", np.arctan, _libm("atan"), 30,
                   lambda B, x, y: B.div(B.scalar(1, x), B.add(B.scalar(1, x), B.mul(x, x))))
LOG1P = _unary_math("log1p", np.log1p, _libm("log1p"), 30,
                    lambda B, x, y: B.div(B.scalar(1, x), B.add(B.scalar(1, x), x)))
EXPM1 = _unary_math("expm1", np.expm1, _libm("expm1"), 30,
                    lambda B, x, y: B.add(y, B.scalar(1, y)))


def _erf_numpy(name: str):
    def apply(arg, x):
        from scipy import special  # SciPy's erf is the reference (NumPy has none)
        return getattr(special, name)(x)
    return apply


def _gaussian(B, x):
    """2 / sqrt(pi) * exp(-x**2), the derivative of erf."""
    return B.mul(B.scalar(2.0 / np.sqrt(np.pi), x), B.unary(EXP, B.neg(B.mul(x, x))))


ERF = OpDef("erf", 1, **_same("f"), numpy=_erf_numpy("erf"),
            scalar=_libm("erf"), cost=30, **_smooth(lambda B, n: _gaussian(B, n.src[0])))
ERFC = OpDef("erfc", 1, **_same("f"), numpy=_erf_numpy("erfc"),
             scalar=_libm("erfc"), cost=30,
             **_smooth(lambda B, n: B.neg(_gaussian(B, n.src[0]))))


def _rounding(name: str, np_fn, intrinsic: str) -> OpDef:
    """A float -> float rounding to an integral value: its derivative is zero wherever it
    exists, so it has none (as a comparison)."""
    return OpDef(name, 1, **_same("f"),
                 numpy=lambda arg, x: np_fn(x), scalar=_intrinsic(intrinsic), cost=1,
                 **_constant())


FLOOR = _rounding("floor", np.floor, "floor")
CEIL = _rounding("ceil", np.ceil, "ceil")
TRUNC = _rounding("trunc", np.trunc, "trunc")
RINT = _rounding("rint", np.rint, "roundeven")     # halves to even, as NumPy


def _neg(e, node, x):
    if node.dtype.is_float:
        return e.op(f"fneg {node.dtype.llvm} {x}")
    return e.op(f"sub {node.dtype.llvm} 0, {x}")


def _abs(e, node, x):
    if node.dtype.is_float:
        return _intrinsic("fabs")(e, node, x)
    return e.call("i64", "llvm.abs.i64", [("i64", x), ("i1", "false")])


NEG = OpDef("neg", 1, **_same("fi"), numpy=lambda arg, x: -x,
            scalar=_neg, **_linear(lambda B, node, t: B.neg(t[0]),
                                        lambda B, node, ct: (B.neg(ct),)))
ABS = OpDef("abs", 1, **_same("fi"), numpy=lambda arg, x: np.abs(x),
            scalar=_abs, **_piecewise_linear(lambda B, n: B.sign(n.src[0])))
"""The derivative of abs at 0 is 0 (the subgradient np.sign gives)."""
NOT = OpDef("not", 1, **_same("b"),
            numpy=lambda arg, x: np.logical_not(x),
            scalar=(lambda e, node, x: e.op(f"xor i1 {x}, true")), **_constant())


def _arith(name: str, np_fn, float_op: str, int_op: str | None, rules: dict,
           cost: int = 1) -> OpDef:
    kinds = "fi" if int_op else "f"

    def emit(e, node, x, y):
        opcode = float_op if node.dtype.is_float else int_op
        return e.op(f"{opcode} {node.dtype.llvm} {x}, {y}")
    return OpDef(name, 2, **_same(kinds),
                 numpy=lambda arg, x, y: np_fn(x, y), scalar=emit, cost=cost, **rules)


ADD = _arith("add", np.add, "fadd", "add", _linear(
    lambda B, node, t: B.add(t[0], t[1]), lambda B, node, ct: (ct, ct)))
SUB = _arith("sub", np.subtract, "fsub", "sub", _linear(
    lambda B, node, t: B.sub(t[0], t[1]), lambda B, node, ct: (ct, B.neg(ct))))
MUL = _arith("mul", np.multiply, "fmul", "mul", {
    **_smooth(lambda B, n: n.src[1], lambda B, n: n.src[0]), "linearity": Linearity.BILINEAR})
DIV = _arith("div", np.true_divide, "fdiv", None, {
    **_smooth(lambda B, n: B.div(B.scalar(1, n), n.src[1]),
              lambda B, n: B.neg(B.div(n, n.src[1]))), "linearity": Linearity.QUOTIENT}, cost=4)


def _mod_emit(e, node, x, y):
    """NumPy's remainder: the truncated remainder (frem, srem), moved by y where its sign differs
    from y's; a float zero takes y's sign. An int divisor of 0 gives 0, as NumPy, and so does -1
    (srem of the most negative int by -1 overflows)."""
    ty = node.dtype.llvm
    if node.dtype.is_float:
        r = e.op(f"frem {ty} {x}, {y}")
        nonzero = e.op(f"fcmp une {ty} {r}, 0.0")
        signs_differ = e.op(f"xor i1 {e.op(f'fcmp olt {ty} {r}, 0.0')}, "
                            f"{e.op(f'fcmp olt {ty} {y}, 0.0')}")
        move = e.op(f"and i1 {nonzero}, {signs_differ}")
        moved = e.op(f"select i1 {move}, {ty} {e.op(f'fadd {ty} {r}, {y}')}, {ty} {r}")
        return e.op(f"select i1 {nonzero}, {ty} {moved}, {ty} "
                    f"{_intrinsic('copysign')(e, node, '0.0', y)}")
    unit = e.op(f"icmp ult i64 {e.op(f'add i64 {y}, 1')}, 2")        # y is 0 or -1
    r = e.op(f"srem i64 {x}, {e.op(f'select i1 {unit}, i64 1, i64 {y}')}")
    signs_differ = e.op(f"icmp slt i64 {e.op(f'xor i64 {r}, {y}')}, 0")
    move = e.op(f"and i1 {e.op(f'icmp ne i64 {r}, 0')}, {signs_differ}")
    return e.op(f"select i1 {move}, i64 {e.op(f'add i64 {r}, {y}')}, i64 {r}")


MOD = OpDef("mod", 2, **_same("fi"),
            numpy=lambda arg, x, y: np.mod(x, y), scalar=_mod_emit, cost=20,
            **_piecewise_linear(lambda B, n: B.scalar(1, n),
                                lambda B, n: B.neg(B.div(B.sub(n.src[0], n), n.src[1]))))
"""x mod y with the sign of y, as np.mod. d/dx = 1 and d/dy = -q for the quotient q = (x - r) / y,
floor(x / y) up to rounding: the integer that the computed remainder r belongs to."""


def _choose(B, n, mine: int):
    """d max(x, y) / d src[mine]: 1 where that source wins, 1/2 at ties (as JAX), else 0."""
    x, y = n.src[mine], n.src[1 - mine]
    won = B.binary(CMPEQ, n, x)
    tie = B.binary(CMPEQ, x, y)
    return B.where(won, B.where(tie, B.scalar(0.5, n), B.scalar(1, n)), B.scalar(0, n))


def _extremum(name: str, np_fn, float_pred: str, int_pred: str) -> OpDef:
    def emit(e, node, x, y):
        if node.dtype.is_float:
            # NumPy's rule, to the bit: x where it wins or is NaN, else y (so y at ties: of
            # +0.0 and -0.0 the second, which llvm.maximum/minimum would order instead)
            ty = node.dtype.llvm
            wins = e.op(f"fcmp {float_pred} {ty} {x}, {y}")
            nan = e.op(f"fcmp uno {ty} {x}, 0.0")
            return e.op(f"select i1 {e.op(f'or i1 {wins}, {nan}')}, {ty} {x}, {ty} {y}")
        cond = e.op(f"icmp {int_pred} i64 {x}, {y}")
        return e.op(f"select i1 {cond}, i64 {x}, i64 {y}")
    return OpDef(name, 2, **_same("fi"),
                 numpy=lambda arg, x, y: np_fn(x, y), scalar=emit, cost=2,
                 **_piecewise_linear(lambda B, n: _choose(B, n, 0),
                                     lambda B, n: _choose(B, n, 1)))


MAX = _extremum("max", np.maximum, "ogt", "sgt")
MIN = _extremum("min", np.minimum, "olt", "slt")


def _pow_base(B, n):
    x, y = n.src
    d = B.mul(y, B.binary(POW, x, B.sub(y, B.scalar(1, y))))
    # Only 0 * 0**-1 (x == y == 0) needs the limit 0; elsewhere d stays differentiable in y.
    singular = B.binary(AND, B.binary(CMPEQ, y, B.scalar(0, y)), B.binary(CMPEQ, x, B.scalar(0, x)))
    return B.where(singular, B.scalar(0, y), d)


def _pow_exponent(B, n):
    x = n.src[0]
    return B.where(B.binary(CMPEQ, x, B.scalar(0, x)), B.scalar(0, x),
                   B.mul(n, B.unary(LOG, x)))


_IPOW = """define internal i64 @anvil.ipow(i64 %b, i64 %e) alwaysinline nounwind {
entry:
  %negative = icmp slt i64 %e, 0
  br i1 %negative, label %inverse, label %loop
inverse:
  %is_one = icmp eq i64 %b, 1
  %is_minus_one = icmp eq i64 %b, -1
  %odd_bit = and i64 %e, 1
  %odd = icmp ne i64 %odd_bit, 0
  %sign = select i1 %odd, i64 -1, i64 1
  %unit = select i1 %is_minus_one, i64 %sign, i64 0
  %inverted = select i1 %is_one, i64 1, i64 %unit
  ret i64 %inverted
loop:
  %acc = phi i64 [1, %entry], [%acc.next, %step]
  %base = phi i64 [%b, %entry], [%base.next, %step]
  %rest = phi i64 [%e, %entry], [%rest.next, %step]
  %done = icmp eq i64 %rest, 0
  br i1 %done, label %exit, label %step
step:
  %bit = and i64 %rest, 1
  %use = icmp ne i64 %bit, 0
  %product = mul i64 %acc, %base
  %acc.next = select i1 %use, i64 %product, i64 %acc
  %base.next = mul i64 %base, %base
  %rest.next = lshr i64 %rest, 1
  br label %loop
exit:
  ret i64 %acc
}"""


def _pow_emit(e, node, x, y):
    if node.dtype.is_float:
        return _intrinsic("pow")(e, node, x, y)
    # Square-and-multiply, wrapping on overflow as NumPy does; a negative exponent gives the
    # truncated value (NumPy raises instead, which compiled code cannot).
    e.parts.define("anvil.ipow", _IPOW)
    return e.op(f"call i64 @anvil.ipow(i64 {x}, i64 {y})")


POW = OpDef("pow", 2, **_same("fi"),
            numpy=lambda arg, x, y: np.power(x, y), scalar=_pow_emit, cost=40,
            **_smooth(_pow_base, _pow_exponent))
"""d/dx is 0 at x == y == 0 and d/dy is 0 where x == 0 (the limits JAX takes)."""


def _atan2_partial(B, n, sign: int, other: int):
    y, x = n.src
    d = B.div(n.src[other], B.add(B.mul(x, x), B.mul(y, y)))
    return d if sign > 0 else B.neg(d)


ATAN2 = OpDef("atan2", 2, **_same("f"),
              numpy=lambda arg, x, y: np.arctan2(x, y), scalar=_libm("atan2"), cost=40,
              **_smooth(lambda B, n: _atan2_partial(B, n, 1, 1),
                        lambda B, n: _atan2_partial(B, n, -1, 0)))


def _compare(name: str, np_fn, float_pred: str, int_pred: str) -> OpDef:
    def emit(e, node, x, y):
        ty = node.src[0].dtype
        if ty.is_float:
            return e.op(f"fcmp {float_pred} {ty.llvm} {x}, {y}")
        if ty.kind == "b":      # i1 true is -1 when signed: bools compare unsigned
            return e.op(f"icmp {int_pred.replace('s', 'u')} {ty.llvm} {x}, {y}")
        return e.op(f"icmp {int_pred} {ty.llvm} {x}, {y}")
    return OpDef(name, 2, **_same("fib", dtypes.bool_),
                 numpy=lambda arg, x, y: np_fn(x, y), scalar=emit, **_constant())


CMPLT = _compare("cmplt", np.less, "olt", "slt")
CMPLE = _compare("cmple", np.less_equal, "ole", "sle")
CMPEQ = _compare("cmpeq", np.equal, "oeq", "eq")
CMPNE = _compare("cmpne", np.not_equal, "une", "ne")


def _logic(name: str, np_fn, opcode: str) -> OpDef:
    return OpDef(name, 2, **_same("b"),
                 numpy=lambda arg, x, y: np_fn(x, y),
                 scalar=(lambda e, node, x, y: e.op(f"{opcode} i1 {x}, {y}")), **_constant())


AND = _logic("and", np.logical_and, "and")
OR = _logic("or", np.logical_or, "or")
XOR = _logic("xor", np.logical_xor, "xor")



def _where_dtype(dts, arg):
    if dts[0] != dtypes.bool_:
        raise TypeError(f"where: condition must be bool, got {dts[0]}")
    if dts[1] != dts[2]:
        raise TypeError(f"where: branches must have one dtype, got {dts[1]} and {dts[2]}")
    return dts[1]


def _where_dependence(node) -> list:
    """Each element reads one branch: which one is known before any input when the condition
    is a constant (a mask), else either (the dependence rule)."""
    from ..interpret import evaluate
    condition = node.src[0]
    if any(n.op.kind is OpKind.SOURCE and n.op.numpy is None for n in toposort([condition])):
        taken = [np.ones(node.size, bool)] * 2
    else:
        (mask,) = evaluate([condition], [])
        taken = [mask.reshape(-1), ~mask.reshape(-1)]
    return [None] + [sp.diags_array(t, format="csr", dtype=bool) if s.dtype.is_float else None
                     for t, s in zip(taken, node.src[1:])]


WHERE = OpDef("where", 3, shape=_same_shape, dtype=_where_dtype,
              numpy=lambda arg, c, x, y: np.where(c, x, y), dependence=_where_dependence,
              scalar=(lambda e, node, c, x, y: e.op(
                  f"select i1 {c}, {node.dtype.llvm} {x}, {node.dtype.llvm} {y}")),
              **_linear(lambda B, node, t: B.where(node.src[0], t[1], t[2]),
                        lambda B, node, ct: (None, B.where(node.src[0], ct, None),
                                             B.where(node.src[0], None, ct))))


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
        if src.kind == "b":
            # a select, not `uitofp i1`: LLVM 22's SLP vectoriser fails an assertion (an abort)
            # on one-hot seeds cast with uitofp in small unrolled loop nests (a dense Jacobian
            # of a padded stencil, tests/ad/test_entrywise.py)
            return e.op(f"select i1 {x}, {d} 1.0, {d} 0.0")
        return e.op(f"sitofp {s} {x} to {d}")
    if src.is_float:
        # Saturating: out-of-range and NaN give defined results instead of poison.
        return e.call(d, f"llvm.fptosi.sat.i64.{_SUFFIX[s]}", [(s, x)])
    return e.op(f"zext i1 {x} to i64")


def _cast_jvp(B, node, t):
    return B.cast(t[0], node.dtype) if node.dtype.is_float else None


def _cast_vjp(B, node, ct):
    src = node.src[0].dtype
    return (B.cast(ct, src) if src.is_float and node.dtype.is_float else None,)


CAST = OpDef("cast", 1, shape=_same_shape, dtype=lambda dts, arg: arg,
             numpy=lambda arg, x: x.astype(arg.np), scalar=_cast_emit, cost=0,
             **_linear(_cast_jvp, _cast_vjp))
"""arg = the target DType; only float-to-float casts carry derivatives."""
