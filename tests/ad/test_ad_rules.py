"""Every differentiable op's JVP and VJP rule against finite differences of its NumPy definition,
the VJP as the transpose of the JVP, and second derivatives (forward over reverse and reverse over
reverse) against finite differences of the gradient.

Table-driven as JAX's lax_autodiff_test: ROWS lists `(name, fn, domain)` and one checker runs
every row. `fn(m, *xs)` is written once for both array libraries (`m` is numpy or anvil_llvm), so
NumPy evaluates the reference and anvil_llvm traces the same code. Shapes are fixed per row (one
compile per row and transform); hypothesis draws the values.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from avcheck import as_list, fast
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import linalg as sla
from scipy import special

import anvil_llvm as av
from anvil_llvm.ad import gradient, hessian, jacobian, jvp, vjp
from anvil_llvm.ad.batching import vmap_graph
from anvil_llvm.ad.forward import jvp_graph
from anvil_llvm.ad.reverse import vjp_graph
from anvil_llvm.ir import dtypes
from anvil_llvm.ir import ops as O
from anvil_llvm.ir.uop import OpDef, OpKind, UOp, toposort

# Finite differences: the 5-point central stencil, error O(H^4 f^(5)) + O(eps f / H), about 1e-11
# relative for the smooth functions and domains below; 1e-7 leaves room for the steep ends of the
# domains (tan near 1.3, x**-1.5 near 0.2) without hiding a wrong rule (those are off by O(1)).
H = 1e-3
STENCIL = ((-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12), (2, -1 / 12))
FD_RTOL = 1e-7
# Kinks (abs, maximum, where, reduce max) must stay further than the stencil's reach 2H from x.
KINK_MARGIN = 0.01


# ---- the table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Domain:
    """Values of one float64 argument: uniform in [lo, hi], or |x| in [lo, hi] with either sign
    (`away`, off a kink at 0), or distinct values on a grid of KINK_MARGIN (`distinct`, off ties)."""

    shape: tuple
    lo: float = -2.0
    hi: float = 2.0
    away: bool = False
    distinct: bool = False

    def strategy(self):
        if self.distinct:
            grid = st.integers(int(self.lo / KINK_MARGIN), int(self.hi / KINK_MARGIN))
            return hnp.arrays(np.float64, self.shape, unique=True,
                              elements=grid.map(lambda k: k * KINK_MARGIN))
        values = st.floats(self.lo, self.hi)
        if self.away:
            values = st.tuples(values, st.booleans()).map(lambda p: -p[0] if p[1] else p[0])
        return hnp.arrays(np.float64, self.shape, elements=values)

    def sample(self) -> np.ndarray:
        return np.full(self.shape, self.lo if self.away else (self.lo + self.hi) / 2)


def U(*shape, lo=-2.0, hi=2.0) -> Domain:
    return Domain(shape, lo, hi)


def away(*shape, lo=0.1, hi=2.0) -> Domain:
    return Domain(shape, lo, hi, away=True)


def distinct(*shape) -> Domain:
    return Domain(shape, distinct=True)


@dataclass(frozen=True)
class Row:
    name: str
    fn: Callable                      # fn(m, *xs): one array or a tuple of arrays
    args: tuple[Domain, ...]
    valid: Callable | None = None     # valid(*xs): False near a kink the domain cannot avoid

    def __repr__(self) -> str:
        return self.name


def separated(x, y) -> bool:
    return bool(np.all(np.abs(np.asarray(x) - np.asarray(y)) > KINK_MARGIN))


def broadcast(m, x, shape):
    return np.broadcast_to(x, shape) if m is np else x.broadcast_to(shape)


A23 = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])
MASK = np.array([[True, False, True], [False, False, True]])
REPEATED = np.array([0, 2, 2, 1, 0, 2])
# PLACE (no array API function makes one; sparse derivatives do): x's last two axes into 7
# slots, one element dropped, slots 1 and 5 left zero
SLOTS = np.array([[3, -1, 0], [6, 2, 4]])


def placed(m, x):
    if m is np:
        out = np.zeros(x.shape[:-2] + (7,))
        out[..., SLOTS[SLOTS >= 0]] = x[..., SLOTS >= 0]
        return out
    from anvil_llvm.ir import build
    return av.Tensor(build.place(x.node, SLOTS, 7))


def triangular(m, a, b):
    """op(a)^-1 b with op(a) the transpose of a's lower triangle."""
    if m is np:
        return sla.solve_triangular(a, b, trans=1, lower=True)
    import anvil_llvm.numpy as anp
    return anp.linalg.solve_triangular(a, b, trans=1, lower=True)


QR_SHIFT = 4.0 * np.eye(4, 2) + 2.5 * np.tril(np.ones((4, 2)), -1)


def eigen(a):
    w, v = np.linalg.eigh(a)
    return w, v * v[:1]


def scanned(m, c, xs):
    """A loop with a carry, scanned rows, a value read from outside and per-step outputs:
    `av.scan` for anvil_llvm, the same body in a Python loop for NumPy."""
    def body(carry, row):
        new = m.sin(carry) * row + 0.3 * carry * xs[0]
        return new, (new * carry).sum()
    if m is np:
        ys = []
        for row in xs:
            c, y = body(c, row)
            ys.append(y)
        return c, np.array(ys)
    return av.scan(body, c, xs)


ROWS = [
    # arithmetic, with broadcasting of either operand
    Row("add", lambda m, x, y: x + y, (U(3), U(3))),
    Row("add_broadcast", lambda m, x, y: x + y, (U(2, 3), U(3))),
    Row("sub_broadcast", lambda m, x, y: x - y, (U(2, 1), U(1, 3))),
    Row("mul", lambda m, x, y: x * y, (U(2, 3), U(2, 3))),
    Row("mul_broadcast", lambda m, x, y: x * y, (U(3, 1), U(4))),
    Row("mul_self", lambda m, x: x * x * x, (U(4),)),
    Row("div", lambda m, x, y: x / y, (U(2, 3), away(2, 3, lo=0.5, hi=3.0))),
    Row("div_broadcast", lambda m, x, y: x / y, (U(3), away(2, 1, lo=0.5, hi=3.0))),
    Row("rdiv", lambda m, x: 2.0 / x, (away(4, lo=0.5),)),
    Row("neg", lambda m, x: -x, (U(4),)),
    Row("abs", lambda m, x: abs(x), (away(5),)),
    Row("pow_int", lambda m, x: x ** 3, (U(4),)),
    Row("pow_square", lambda m, x: x ** 2, (U(4),)),
    Row("pow_sqrt", lambda m, x: x ** 0.5, (U(4, lo=0.2, hi=3.0),)),
    Row("pow_reciprocal", lambda m, x: x ** -1, (away(4, lo=0.5),)),
    Row("pow_float", lambda m, x: x ** 2.5, (U(4, lo=0.2, hi=3.0),)),
    Row("pow_negative", lambda m, x: x ** -1.5, (U(4, lo=0.2, hi=3.0),)),
    Row("pow_tensor", lambda m, x, y: x ** y, (U(2, 3, lo=0.3, hi=3.0), U(2, 3))),
    Row("pow_tensor_broadcast", lambda m, x, y: x ** y, (U(2, 3, lo=0.3, hi=3.0), U(3))),
    Row("rpow", lambda m, x: 2.0 ** x, (U(4),)),
    # unary math
    Row("sin", lambda m, x: m.sin(x), (U(5),)),
    Row("cos", lambda m, x: m.cos(x), (U(5),)),
    Row("tan", lambda m, x: m.tan(x), (U(5, lo=-1.3, hi=1.3),)),
    Row("exp", lambda m, x: m.exp(x), (U(5),)),
    Row("log", lambda m, x: m.log(x), (U(5, lo=0.1, hi=4.0),)),
    Row("sqrt", lambda m, x: m.sqrt(x), (U(5, lo=0.1, hi=4.0),)),
    Row("tanh", lambda m, x: m.tanh(x), (U(5),)),
    Row("sinh", lambda m, x: m.sinh(x), (U(5),)),
    Row("cosh", lambda m, x: m.cosh(x), (U(5),)),
    Row("arcsin", lambda m, x: m.arcsin(x), (U(5, lo=-0.9, hi=0.9),)),
    Row("arccos", lambda m, x: m.arccos(x), (U(5, lo=-0.9, hi=0.9),)),
    Row("arctan", lambda m, x: m.arctan(x), (U(5, lo=-3.0, hi=3.0),)),
    Row("log1p", lambda m, x: m.log1p(x), (U(5, lo=-0.9, hi=3.0),)),
    Row("expm1", lambda m, x: m.expm1(x), (U(5),)),
    # SciPy's ufuncs and NumPy's functions dispatch to anvil_llvm.numpy on Tensors
    Row("erf", lambda m, x: special.erf(x), (U(5),)),
    Row("erfc", lambda m, x: special.erfc(x), (U(5),)),
    # strictly diagonally dominant: well conditioned everywhere in the domain
    Row("solve", lambda m, a, b: np.linalg.solve(a + 8.0 * np.eye(3), b), (U(3, 3), U(3, 2))),
    Row("solve_batched", lambda m, a, b: np.linalg.solve(a + 8.0 * np.eye(2), b),
        (U(2, 2, 2), U(2, 2, 1))),
    Row("slogdet", lambda m, a: np.linalg.slogdet(a + 8.0 * np.eye(3))[1], (U(3, 3),)),
    Row("det_batched", lambda m, a: np.linalg.det(a + 8.0 * np.eye(2)), (U(2, 2, 2),)),
    # the symmetric matrix of the lower triangle is diagonally dominant: positive definite;
    # 2 x 2: from 3 x 3 on the rule leaves rounding noise where a derivative is exactly zero
    # (tests/test_linalg.py checks the 3 x 3 patterns up to it); sin: L[1, 1]^2 is linear in
    # A[1, 1], which the squares of the Hessian pattern check would hide
    Row("cholesky", lambda m, a: m.sin(np.linalg.cholesky(a + 8.0 * np.eye(2))), (U(2, 2),)),
    # eigenvalues near 0, 8 and 16: apart; eigenvectors times their first row: free of signs
    Row("eigh", lambda m, a: eigen(a + np.diag([0.0, 8.0, 16.0])), (U(3, 3, lo=-1.0, hi=1.0),)),
    # no column zero below its diagonal (where LAPACK's signs, and so NumPy's qr, jump);
    # 2 columns: from 3 on the rule leaves rounding noise where a derivative is exactly zero
    # (tests/test_qr.py checks the 4 x 3 patterns up to it)
    Row("qr", lambda m, a: tuple(np.linalg.qr(a + QR_SHIFT)), (U(4, 2),)),
    Row("solve_triangular", lambda m, a, b: triangular(m, a + 8.0 * np.eye(3), b),
        (U(3, 3), U(3, 2))),
    # off the branch cut (y = 0, x < 0)
    Row("arctan2", lambda m, y, x: m.arctan2(y, x), (U(4), U(4, lo=0.2))),
    # x / y stays within (0, 1) and (-1, 0): no jump of the remainder within the stencil
    Row("mod", lambda m, x, y: x % y, (U(4, lo=0.1, hi=0.9), U(4, lo=1.5))),
    Row("mod_negative", lambda m, x, y: x % y, (U(4, lo=-0.9, hi=-0.1), U(4, lo=1.5))),
    Row("arctan2_all_quadrants", lambda m, y, x: m.arctan2(y, x), (away(4, lo=0.2), U(4))),
    # piecewise: off their kinks and ties
    Row("maximum", lambda m, x, y: m.maximum(x, y), (U(2, 3), U(2, 3)), separated),
    Row("minimum", lambda m, x, y: m.minimum(x, y), (U(2, 3), U(3)), separated),
    Row("relu", lambda m, x: m.maximum(x, 0.0), (away(5),)),
    Row("where", lambda m, x, y: m.where(x > 0, x * y, m.sin(y)), (away(4), U(4))),
    Row("where_constant_mask", lambda m, x, y: m.where(MASK, x, y), (U(2, 3), U(3))),
    # reductions
    Row("sum", lambda m, x: x.sum(), (U(2, 3, 2),)),
    Row("sum_axis", lambda m, x: x.sum(axis=1), (U(2, 3, 2),)),
    Row("sum_axes_keepdims", lambda m, x: x.sum(axis=(0, 2), keepdims=True), (U(2, 3, 2),)),
    Row("prod", lambda m, x: x.prod(), (U(5),)),
    Row("prod_axis", lambda m, x: x.prod(axis=1), (U(2, 3),)),
    Row("prod_axes", lambda m, x: x.prod(axis=(0, 2)), (U(2, 3, 2),)),
    Row("max", lambda m, x: x.max(), (distinct(5),)),
    Row("max_axis", lambda m, x: x.max(axis=0), (distinct(3, 4),)),
    Row("min", lambda m, x: x.min(), (distinct(5),)),
    Row("min_axis_keepdims", lambda m, x: x.min(axis=1, keepdims=True), (distinct(3, 4),)),
    Row("mean", lambda m, x: x.mean(), (U(2, 3),)),
    Row("mean_axis", lambda m, x: x.mean(axis=-1), (U(2, 3),)),
    # movement
    Row("reshape", lambda m, x: x.reshape(3, 4), (U(2, 6),)),
    Row("reshape_infer", lambda m, x: x.reshape(-1), (U(2, 3, 2),)),
    Row("transpose", lambda m, x: x.transpose(2, 0, 1), (U(2, 3, 2),)),
    Row("T", lambda m, x: x.T, (U(2, 3),)),
    Row("broadcast_to", lambda m, x: broadcast(m, x, (4, 2, 3)), (U(2, 1),)),
    Row("slice", lambda m, x: x[1:], (U(5),)),
    Row("slice_reversed", lambda m, x: x[::-1], (U(5),)),
    Row("slice_stepped", lambda m, x: x[1::2], (U(7),)),
    Row("slice_negative_stepped", lambda m, x: x[-2::-3], (U(8),)),
    Row("slice_negative_bounds", lambda m, x: x[-4:-1], (U(6),)),
    Row("slice_2d", lambda m, x: x[1:, ::-2], (U(3, 5),)),
    Row("index_int", lambda m, x: x[-1, 1], (U(3, 4),)),
    Row("index_row", lambda m, x: x[1], (U(3, 4),)),
    Row("gather_repeated", lambda m, x: x[REPEATED], (U(4),)),
    Row("gather_axis1", lambda m, x: x[:, np.array([2, 0, 2])], (U(2, 3),)),
    Row("gather_2d_indices", lambda m, x: x[np.array([[1, 1], [0, 3]])], (U(4),)),
    Row("gather_negative", lambda m, x: x[np.array([-1, 0, -1])], (U(3),)),
    Row("place", lambda m, x: placed(m, m.sin(x)) * placed(m, x), (U(2, 3),)),
    Row("place_batch", lambda m, x: placed(m, x), (U(4, 2, 3),)),
    Row("gather_distinct_rows", lambda m, x: m.sin(x[np.array([2, 0])]), (U(3, 2),)),
    Row("gather_distinct_columns", lambda m, x: x[:, np.array([3, 1])] ** 2, (U(2, 4),)),
    Row("concatenate", lambda m, x, y: m.concatenate([x, y, x], axis=0), (U(2), U(3))),
    Row("concatenate_axis1", lambda m, x, y: m.concatenate([x, y], axis=1), (U(2, 2), U(2, 3))),
    Row("stack", lambda m, x, y: m.stack([x, y, x * y], axis=1), (U(3), U(3))),
    Row("stack_axis0", lambda m, x, y: m.stack([x, y, x * y]), (U(3), U(3))),
    Row("stack_scalars", lambda m, x: m.stack([x[0], x[2] * x[1], m.sin(x[1])]), (U(3),)),
    Row("stack_of_entries", lambda m, x: m.stack([x[0], x[1], x[2]]) * x, (U(3),)),
    Row("index_element", lambda m, x: m.sin(x[2]) * x[-1], (U(4),)),
    Row("entries_of_stack", lambda m, x, y: m.stack([x, y])[1] * m.stack([x, y])[0],
        (U(2, 3), U(2, 3))),
    Row("pad", lambda m, x: m.pad(x, ((1, 2), (0, 1))), (U(2, 3),)),
    # contraction
    Row("matmul_vv", lambda m, x, y: x @ y, (U(4), U(4))),
    Row("matmul_mv", lambda m, x, y: x @ y, (U(2, 3), U(3))),
    Row("matmul_vm", lambda m, x, y: x @ y, (U(3), U(3, 2))),
    Row("matmul_mm", lambda m, x, y: x @ y, (U(2, 3), U(3, 4))),
    Row("matmul_batched", lambda m, x, y: x @ y, (U(2, 2, 3), U(2, 3, 2))),
    Row("matmul_broadcast", lambda m, x, y: x @ y, (U(2, 2, 3), U(3, 2))),
    Row("matmul_constant", lambda m, x: A23 @ x + x.T @ A23.T, (U(3, 2),)),
    Row("matmul_self", lambda m, x: x @ x, (U(3, 3),)),
    # compositions and several outputs
    Row("rosen", lambda m, x: (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum(),
        (U(5),)),
    Row("logsumexp", lambda m, x: m.log(m.exp(x - x.max()).sum()) + x.max(), (U(5),)),
    Row("two_outputs", lambda m, x, y: (m.sin(x) * y, (x * y).sum()), (U(3), U(3))),
    Row("scan", scanned, (U(3), U(4, 3))),
]


# ---- the table covers the op set ------------------------------------------------------------------
ALL_OPS = {op for op in vars(O).values() if isinstance(op, OpDef)}
SOURCES = {op for op in ALL_OPS if op.kind is OpKind.SOURCE}
# (rounding to integral values: zero derivatives wherever they exist)
NOT_DIFFERENTIABLE = {O.CMPLT, O.CMPLE, O.CMPEQ, O.CMPNE, O.AND, O.OR, O.XOR, O.NOT, O.FLOOR,
                      O.CEIL, O.TRUNC, O.RINT}
# CAST: test_astype_between_floats (FD cannot see a float32 rounding); SUBSTITUTE (no function
# of the array API makes one): tests/ad/test_sparse.py, derivatives of acyclic Hessians.
TESTED_ELSEWHERE = {O.CAST, O.SUBSTITUTE}


def test_every_op_has_its_transform_rules():
    for op in ALL_OPS - SOURCES:
        assert op.jvp is not None and op.vjp is not None and op.batch is not None, op.name


def test_the_rows_cover_every_differentiable_op():
    seen = set()
    for row in ROWS:
        seen |= {node.op for node in toposort(trace(row).outputs)}
    missing = ALL_OPS - SOURCES - NOT_DIFFERENTIABLE - TESTED_ELSEWHERE - seen
    assert not missing, f"add rows for {sorted(op.name for op in missing)}"


def test_a_missing_rule_names_the_op_and_the_transform():
    bare = OpDef("mystery", 1, shape=lambda shapes, arg: shapes[0],
                 dtype=lambda dts, arg: dts[0], numpy=lambda arg, x: x)
    x = UOp(O.INPUT, (), (0, (3,), dtypes.float64))
    y = UOp(bare, (x,))
    with pytest.raises(NotImplementedError, match="no jvp rule for op 'mystery' .in forward mode"):
        jvp_graph([y], {x: x})
    with pytest.raises(NotImplementedError, match="no vjp rule for op 'mystery' .in reverse mode"):
        vjp_graph([y], [x], [x])
    xs = UOp(O.INPUT, (), (1, (4, 3), dtypes.float64))
    with pytest.raises(NotImplementedError, match="no batching rule for op 'mystery' .in vmap"):
        vmap_graph([y], {x: xs})


# ---- finite differences ---------------------------------------------------------------------------
def flat(values) -> np.ndarray:
    """Several arrays (outputs, cotangents) as one vector."""
    return np.concatenate([np.ravel(v) for v in as_list(values)])


def numpy_outputs(row: Row, xs) -> list:
    return [np.asarray(o) for o in as_list(row.fn(np, *xs))]


def central_difference(fn, x: np.ndarray, direction: np.ndarray, step: float = H) -> np.ndarray:
    """d/dh fn(x + h direction) at h = 0 (fn returns a vector)."""
    return sum(c * fn(x + k * step * direction) for k, c in STENCIL) / step


def difference_jacobian(fn, x: np.ndarray, step: float = H) -> np.ndarray:
    """The (outputs, x.size) Jacobian of the vector function `fn` by finite differences."""
    basis = np.eye(x.size).reshape((x.size,) + x.shape)
    return np.stack([central_difference(fn, x, e, step) for e in basis], axis=1)


def row_jacobian(row: Row, xs: list, a: int) -> np.ndarray:
    def at(x):
        return flat(row.fn(np, *xs[:a], x, *xs[a + 1:]))
    return difference_jacobian(at, xs[a])


def draw_inputs(data, row: Row) -> list:
    xs = [data.draw(d.strategy(), label=f"x{i}") for i, d in enumerate(row.args)]
    assume(row.valid is None or row.valid(*xs))
    return xs


def unit_interval(shape):
    return hnp.arrays(np.float64, shape, elements=st.floats(-1.0, 1.0))


def assert_close(actual, expected, rtol: float, what: str) -> None:
    """Agreement relative to the largest entry (a Jacobian's small entries carry the big ones'
    absolute error)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def trace(row: Row, name: str = "f") -> av.NumericalFunction:
    return av.NumericalFunction(name, lambda *xs: row.fn(av, *xs),
                                [av.Arg(d.shape) for d in row.args])


# ---- first order ----------------------------------------------------------------------------------
@functools.cache
def first_order(row: Row):
    """Per argument: its jvp, its vjp, and its dense Jacobians by vmap of the JVP and of the VJP
    over the basis seeds (so the batching rules of every rule's JVP and VJP graphs are checked)."""
    f = trace(row)
    return [(jvp(f, argnum=a), vjp(f, argnum=a),
             {mode: jacobian(f, argnum=a, mode=mode) for mode in ("fwd", "rev")})
            for a in range(len(row.args))]


def check_first_order(row: Row, xs: list, data) -> None:
    expected = numpy_outputs(row, xs)
    for a, (f_jvp, f_vjp, jacobians) in enumerate(first_order(row)):
        J = row_jacobian(row, xs, a)
        for mode, f_jac in jacobians.items():
            dense = np.concatenate([j.reshape(e.size, -1) for j, e in
                                    zip(as_list(f_jac(*xs)), expected)])
            assert_close(dense, J, FD_RTOL, f"{row.name}: jacobian ({mode}) wrt argument {a}")
        t = data.draw(unit_interval(xs[a].shape), label=f"tangent{a}")
        v = [data.draw(unit_interval(o.shape), label=f"cotangent{a}") for o in expected]
        result = as_list(f_jvp(*xs, t))
        values, tangents = result[:len(expected)], result[len(expected):]
        for y, e in zip(values, expected):
            assert_close(y, e, 1e-12, f"{row.name}: value")
        for tan, e in zip(tangents, expected):
            assert tan.shape == e.shape and tan.dtype == np.float64
        Jt = flat(tangents)
        assert_close(Jt, J @ t.ravel(), FD_RTOL, f"{row.name}: jvp wrt argument {a}")
        Jv = f_vjp(*xs, *v)
        assert Jv.shape == xs[a].shape and Jv.dtype == np.float64
        assert_close(Jv.ravel(), J.T @ flat(v), FD_RTOL, f"{row.name}: vjp wrt argument {a}")
        # <v, J t> == <J^T v, t>: the VJP is the transpose of the JVP, to the rounding of the
        # sums (bounded by the sums of absolute terms)
        v, t, Jv = flat(v), t.ravel(), Jv.ravel()
        lhs, rhs = v @ Jt, Jv @ t
        bound = np.abs(v) @ np.abs(J) @ np.abs(t) + np.abs(v) @ np.abs(Jt) + np.abs(Jv) @ np.abs(t)
        assert abs(lhs - rhs) <= 1e-12 * max(bound, 1e-300), (row.name, a, lhs, rhs)


@pytest.mark.parametrize("row", ROWS, ids=repr)
@fast(15)
@given(data=st.data())
def test_jvp_and_vjp_match_finite_differences(row, data):
    check_first_order(row, draw_inputs(data, row), data)


# Larger shapes than the vector width and loop unrolling, with remainders (the rows above are
# tiny); first order only.
BIG_INDICES = np.random.default_rng(0).integers(0, 37, 300)
LARGE_ROWS = [
    Row("prod_37", lambda m, x: x.prod(axis=1), (U(3, 37, lo=0.5, hi=1.5),)),
    Row("sum_37x9", lambda m, x: (m.sin(x) * x).sum(axis=0), (U(37, 9),)),
    Row("max_5x33", lambda m, x: x.max(axis=1), (distinct(5, 33),)),
    Row("gather_300_of_37", lambda m, x: x[BIG_INDICES] * x[BIG_INDICES[::-1]], (U(37),)),
    # |x @ y| <= 4.25: tanh' = 1 - tanh**2 keeps its relative accuracy (it cancels for large |x|)
    Row("matmul_13x17x11", lambda m, x, y: m.tanh(x @ y), (U(13, 17, lo=-0.5, hi=0.5),
                                                          U(17, 11, lo=-0.5, hi=0.5))),
    Row("slices_41", lambda m, x: x[3::5] * x[-1:-40:-5], (U(41),)),
    Row("pad_concat_35", lambda m, x: m.concatenate([m.pad(x, ((2, 3),)), x[::-1]]) ** 2,
        (U(35),)),
    Row("broadcast_9x23", lambda m, x, y: m.exp(x) / (1.5 + m.sin(y)), (U(9, 1), U(1, 23))),
]


@pytest.mark.parametrize("row", LARGE_ROWS, ids=repr)
@fast(3)
@given(data=st.data())
def test_jvp_and_vjp_of_larger_shapes(row, data):
    check_first_order(row, draw_inputs(data, row), data)


# ---- second order ---------------------------------------------------------------------------------
def scalarised(row: Row):
    """The row as a scalar function S(m, z) of one flat vector z of all its arguments,
    S = sum_k w_k * out_k**2 (squared, so linear ops get a Hessian and their transposes a JVP),
    and the length of z."""
    shapes = [d.shape for d in row.args]
    sizes = [int(np.prod(s)) for s in shapes]
    ends = np.cumsum(sizes)
    sample = numpy_outputs(row, [d.sample() for d in row.args])
    rng = np.random.default_rng(0)
    weights = [rng.uniform(0.5, 1.5, o.shape) for o in sample]

    def split(z):
        return [z[e - k:e].reshape(s) for e, k, s in zip(ends, sizes, shapes)]

    def S(m, z):
        total = 0.0
        for w, out in zip(weights, as_list(row.fn(m, *split(z)))):
            total = total + (w * out * out).sum()
        return total
    return S, int(ends[-1])


@functools.cache
def second_order(row: Row):
    S, n = scalarised(row)
    f = av.NumericalFunction("s", lambda z: S(av, z), (av.Arg(n),))
    return gradient(f), hessian(f), jacobian(gradient(f), mode="rev")


@pytest.mark.parametrize("row", ROWS, ids=repr)
@fast(10)
@given(data=st.data())
def test_hessian_matches_finite_differences_of_gradient(row, data):
    f_grad, f_hess, f_jacrev_grad = second_order(row)
    z = flat(draw_inputs(data, row))
    Hm = f_hess(z)
    fd = difference_jacobian(f_grad, z)
    # The stencil's truncation error (O(H^4) times the gradient's fifth derivative: large for
    # the squared polynomials here, even where the Hessian itself is 0, as at rosen's minimum)
    # estimated from the same stencil at half the step (Richardson).
    truncation = np.abs(fd - difference_jacobian(f_grad, z, H / 2)).max()
    np.testing.assert_allclose(Hm, fd, rtol=1e-6, err_msg=f"{row.name}: hessian", atol=max(
        1e-6 * max(1.0, np.abs(fd).max()), 2.0 * truncation))
    np.testing.assert_allclose(Hm, Hm.T, rtol=0, atol=1e-12 * max(1.0, np.abs(Hm).max()))
    assert_close(f_jacrev_grad(z), Hm, 1e-11, f"{row.name}: reverse over reverse")


# ---- conventions and exact values ------------------------------------------------------------
def product_of_others(x: np.ndarray) -> np.ndarray:
    return np.array([np.prod(np.delete(x, i)) for i in range(x.size)])


@pytest.mark.parametrize("x", [
    [2.0, 0.0, 3.0, -1.5, 4.0],
    [0.0, 2.0, 0.0, 3.0],
    [0.0, 0.0, 0.0],
    [5.0],
    [1.5, -2.0, 3.0, 0.5, 7.0, -1.0, 2.0],
], ids=["one_zero", "two_zeros", "all_zeros", "single", "no_zero"])
def test_prod_gradient_is_the_exact_product_of_the_others(x):
    x = np.array(x)
    f = av.NumericalFunction("p", lambda x: x.prod(), (av.Arg(x.size),))
    # small binary fractions: every partial product is exact, in any order
    np.testing.assert_array_equal(gradient(f)(x), product_of_others(x))
    expected_hessian = np.array([[0.0 if i == j else np.prod(np.delete(x, [i, j]))
                                  for j in range(x.size)] for i in range(x.size)])
    np.testing.assert_array_equal(hessian(f)(x), expected_hessian)


@fast(30)
@given(x=hnp.arrays(np.float64, (3, 5), elements=st.sampled_from([0.0, -0.0, 1.0, -2.0, 0.5])
                    | st.floats(-3, 3)))
def test_prod_over_an_axis_with_zeros(x):
    f = prod_over_axis()
    expected = np.stack([product_of_others(r) for r in x])
    np.testing.assert_allclose(vjp(f)(x, np.ones(3)), expected, rtol=1e-13, atol=1e-300)


@functools.cache
def prod_over_axis():
    return av.NumericalFunction("p", lambda x: x.prod(axis=1), (av.Arg((3, 5)),))


def test_gather_gradient_scatter_adds_repeated_indices():
    w = np.array([1.0, 10.0, 100.0, 1000.0, 1e4, 1e5])
    f = av.NumericalFunction("g", lambda x: (w * x[REPEATED]).sum(), (av.Arg(4),))
    expected = np.zeros(4)
    np.add.at(expected, REPEATED, w)
    np.testing.assert_array_equal(gradient(f)(np.arange(4.0)), expected)
    np.testing.assert_array_equal(expected, [10001.0, 1000.0, 100110.0, 0.0])


def test_gather_of_rows_scatter_adds_whole_rows():
    f = av.NumericalFunction("g", lambda x: x[np.array([2, 0, 2, 2])].sum(axis=0) * x[1],
                             (av.Arg((3, 2)),))
    x = np.arange(6.0).reshape(3, 2)
    J = jacobian(f)(x)                                    # (2,) + (3, 2)
    expected = np.zeros((2, 3, 2))
    for j in range(2):
        expected[j, 0, j] = x[1, j]
        expected[j, 2, j] = 3 * x[1, j]
        expected[j, 1, j] = x[0, j] + 3 * x[2, j]
    np.testing.assert_array_equal(J, expected)


def test_ties_share_the_derivative_equally():
    # The documented convention (as JAX): 1/2 to each side of maximum/minimum at a tie, and a
    # reduce max/min shares its derivative equally between all the positions attaining it.
    pair = av.NumericalFunction("m", lambda x, y: (av.maximum(x, y) + av.minimum(x, y) * 3).sum(),
                                (av.Arg(2), av.Arg(2)))
    gx, gy = gradient(pair, argnum=(0, 1))(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    np.testing.assert_array_equal(gx, [2.0, 1.0])
    np.testing.assert_array_equal(gy, [2.0, 3.0])
    top = av.NumericalFunction("t", lambda x: x.max() - 2 * x.min(), (av.Arg(5),))
    np.testing.assert_array_equal(gradient(top)(np.array([3.0, 1.0, 3.0, 1.0, 3.0])),
                                  [1 / 3, -1.0, 1 / 3, -1.0, 1 / 3])


def test_documented_limits_at_zero():
    # abs'(0) = 0 (np.sign); d(x**y)/dx = 0 at x == y == 0; d(x**y)/dy = 0 where x == 0.
    f = av.NumericalFunction("f", lambda x, y: abs(x) + x ** y, (av.Arg(3), av.Arg(3)))
    x, y = np.array([0.0, 0.0, 2.0]), np.array([0.0, 2.0, 0.0])
    gx, gy = gradient(lambda x, y: (abs(x) + x ** y).sum(), argnum=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(gy, [0.0, 0.0, np.log(2.0)])
    np.testing.assert_array_equal(jacobian(f)(x, y), np.diag(gx))


def test_pow_mixed_second_derivative_at_zero_exponent():
    f = av.NumericalFunction("p", lambda x, y: x ** y, (av.Arg(()), av.Arg(())))
    (hxx, hxy), (hyx, hyy) = hessian(f, argnum=(0, 1))(np.array(2.0), np.array(0.0))
    np.testing.assert_allclose([hxx, hyy], [0.0, np.log(2.0) ** 2], rtol=1e-15)
    np.testing.assert_allclose([hxy, hyx], [0.5, 0.5], rtol=1e-15)


@pytest.mark.parametrize("source, target", [(np.float32, np.float64), (np.float64, np.float32)])
def test_astype_between_floats(source, target):
    x = np.array([0.25, -1.5, 2.0, 0.75], dtype=source)
    f = av.NumericalFunction("c", lambda x: av.sin(x.astype(target)) * 2.0,
                             (av.Arg(4, dtype=source),))
    wide = x.astype(target)
    J = jacobian(f)(x)
    assert J.dtype == target
    np.testing.assert_allclose(J, np.diag(2 * np.cos(wide)), rtol=4e-6 if np.float32 in
                               (source, target) else 1e-15)
    v = np.array([1.0, -1.0, 0.5, 2.0], dtype=target)
    g = vjp(f)(x, v)
    assert g.dtype == source
    np.testing.assert_allclose(g, (2 * np.cos(wide) * v).astype(source), rtol=4e-6)
    y, t = jvp(f)(x, np.ones(4, dtype=source))
    assert y.dtype == t.dtype == target
    np.testing.assert_allclose(t, 2 * np.cos(wide), rtol=4e-6)


def test_astype_to_int_has_no_derivative():
    f = av.NumericalFunction("c", lambda x: x.astype(av.int64).astype(av.float64) + x * 2,
                             (av.Arg(3),))
    np.testing.assert_array_equal(jacobian(f)(np.array([0.5, 1.7, -2.2])), 2 * np.eye(3))
