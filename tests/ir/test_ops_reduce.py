"""Reductions and contractions compiled vs the interpreter vs NumPy: sum, prod, max, min, mean
over all / given / negative / tuple axes with keepdims, and matmul for 1-D, 2-D and batched N-D.

The compiled sums carry `reassoc` (they vectorise), so sums, means and matmuls agree to
rtol 1e-12 plus an absolute term scaled by the sum of magnitudes (cancellation makes a small
result's relative error meaningless); max and min and all integer reductions are exact.
"""
import numpy as np
import pytest
from avcheck import SIGNLESS, Tol, arrays, check, fast, floats, numpy_result, shapes, trace
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import anvil_llvm as av

REASSOC = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}


def sum_tol(x, axis=None) -> Tol | None:
    """Tolerance of a reassociated sum of `x` over `axis`; None (exact) for integers."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        return None
    rtol = REASSOC[x.dtype]
    magnitude = np.abs(x.astype(np.float64)).sum(axis=axis, initial=1.0)
    return Tol(rtol, rtol * float(np.max(magnitude, initial=1.0)))


def axis_args(data, ndim: int):
    """An axis argument NumPy accepts for `ndim` dimensions: None, an int (maybe negative) or a
    tuple of distinct ints (maybe negative, any order), and keepdims."""
    if ndim == 0:
        axis = data.draw(st.sampled_from([None, ()]))
    else:
        axes = data.draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
        axes = [a - ndim if data.draw(st.booleans()) else a for a in axes]
        axis = data.draw(st.sampled_from([None, tuple(axes), axes[0] if axes else -1]))
    return axis, data.draw(st.booleans())


def reduced_size(shape, axis) -> int:
    if axis is None:
        return int(np.prod(shape))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([shape[a] for a in axes])) if shape else 1


@pytest.mark.parametrize("name", ["sum", "mean"])
@fast(40)
@given(data=st.data())
def test_sum_and_mean(name, data):
    dtype = data.draw(st.sampled_from((np.float64, np.float32, np.int64, np.bool_)))
    x = data.draw(arrays(shapes(max_side=5), dtype))
    axis, keepdims = axis_args(data, x.ndim)
    tol = sum_tol(x, axis)
    if name == "mean" and tol is not None:
        tol = Tol(tol.rtol, tol.atol / max(reduced_size(x.shape, axis), 1))
    check(lambda m, a: getattr(a, name)(axis=axis, keepdims=keepdims), x, tol=tol)


@fast(40)
@given(data=st.data())
def test_prod(data):
    dtype = data.draw(st.sampled_from((np.float64, np.float32, np.int64, np.bool_)))
    width = 8 * np.dtype(dtype).itemsize
    # Magnitudes in [0.5, 2]: no partial product of up to 125 factors under- or overflows in
    # one association order and not in another.
    elements = (floats(0.5, 2, width=width) | floats(-2, -0.5, width=width)
                if np.dtype(dtype).kind == "f" else None)
    x = data.draw(arrays(shapes(max_side=5), dtype, elements=elements))
    axis, keepdims = axis_args(data, x.ndim)
    rtol = REASSOC.get(x.dtype, 0.0) * 10
    check(lambda m, a: a.prod(axis=axis, keepdims=keepdims), x,
          tol=Tol(rtol) if x.dtype.kind == "f" else None)


@pytest.mark.parametrize("name", ["max", "min"])
@fast(40)
@given(data=st.data())
def test_max_and_min(name, data):
    """Exact, NaN-propagating like NumPy (zeros compared without sign, as NumPy's own SIMD
    paths return either)."""
    dtype = data.draw(st.sampled_from((np.float64, np.float32, np.int64)))
    x = data.draw(arrays(shapes(min_side=1, max_side=5), dtype, special=True))
    axis, keepdims = axis_args(data, x.ndim)
    check(lambda m, a: getattr(a, name)(axis=axis, keepdims=keepdims), x, tol=Tol(0.0))


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_of_nothing_raise(name):
    with pytest.raises(ValueError, match="zero-size"):
        av.NumericalFunction("f", lambda x: getattr(x, name)(axis=1), (av.Arg((3, 0)),))


def test_reductions_of_empty_axes_give_identities():
    x = np.zeros((2, 0, 3))
    for op in ("sum", "prod", "mean"):
        check(lambda m, a, op=op: getattr(a, op)(axis=1), x, tol=Tol(0.0))
        check(lambda m, a, op=op: getattr(a, op)(), x, tol=Tol(0.0))
    check(lambda m, a: a.max(axis=(0, 2), keepdims=True), x)


def test_sum_large_enough_to_vectorise():
    x = np.random.default_rng(0).standard_normal((3, 1000))
    check(lambda m, a: (a.sum(), a.sum(axis=1), a.sum(axis=0), a.mean(axis=-1)), x,
          tol=sum_tol(x))


# ---- matmul -------------------------------------------------------------------------------------
@st.composite
def matmul_operands(draw, dtypes=(np.float64, np.float32, np.int64)):
    """Two arrays NumPy's matmul takes: 1-D or 2-D or batched with broadcast batch shapes."""
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    n, k, m = (draw(st.integers(0, 4)) for _ in range(3))
    left_kind, right_kind = draw(st.sampled_from(["vec", "mat", "batch"])), draw(
        st.sampled_from(["vec", "mat", "batch"]))
    left = {"vec": (k,), "mat": (n, k), "batch": batch.input_shapes[0] + (n, k)}[left_kind]
    right = {"vec": (k,), "mat": (k, m), "batch": batch.input_shapes[1] + (k, m)}[right_kind]
    dtype = draw(st.sampled_from(dtypes))
    return draw(arrays(left, dtype, lo=-10, hi=10)), draw(arrays(right, dtype, lo=-10, hi=10))


def matmul_tol(a, b) -> Tol | None:
    if a.dtype.kind != "f":
        return None
    scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    rtol = REASSOC[np.result_type(a, b)]
    return Tol(rtol, rtol * (float(np.max(scale, initial=0.0)) + 1))


MATMUL_FORMS = {
    "operator": lambda m, a, b: a @ b,
    "function": lambda m, a, b: m.matmul(a, b),
}


@pytest.mark.parametrize("form", MATMUL_FORMS)
@fast(50)
@given(operands=matmul_operands())
def test_matmul(form, operands):
    a, b = operands
    check(MATMUL_FORMS[form], a, b, tol=matmul_tol(a, b))


@fast(25)
@given(operands=matmul_operands(dtypes=(np.float64,)), data=st.data())
def test_matmul_with_captured_array(operands, data):
    """An ndarray on either side: on the left it must reach Tensor.__rmatmul__."""
    a, b = operands
    if data.draw(st.booleans()):
        check(lambda m, y: a @ y, b, tol=matmul_tol(a, b))
    else:
        check(lambda m, x: x @ b, a, tol=matmul_tol(a, b))


def test_dot_method():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(3.0)
    check(lambda m, x, y: x.dot(y), a, b)


def test_matmul_of_bools_is_logical_as_in_numpy():
    a = np.array([[True, False, True], [True, True, True], [False, False, False]])
    check(lambda m, x, y: x @ y, a, a.T.copy())


def test_matmul_large_enough_to_vectorise():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((40, 70)), rng.standard_normal((70, 30))
    check(lambda m, x, y: x @ y, a, b, tol=matmul_tol(a, b))


GEMM_RNG = np.random.default_rng(2)
A, B = GEMM_RNG.standard_normal((40, 50)), GEMM_RNG.standard_normal((50, 36))
C = GEMM_RNG.standard_normal((3, 40, 50))


@pytest.mark.parametrize("op, a, b", [
    (lambda m, x, y: x @ y, A, B),
    (lambda m, x, y: x.T @ x, A, B),
    (lambda m, x, y: x @ y.T, A, B.T.copy()),
    (lambda m, x, y: x[::2] @ y[:, ::-1], A, B),
    (lambda m, x, y: (x * 2.0 + 1.0) @ m.sin(y), A, B),
    (lambda m, x, y: x @ y, C, B),
    (lambda m, x, y: x.transpose(0, 2, 1) @ x, C, B),
    (lambda m, x, y: x @ x.transpose(0, 2, 1)[:1], C, B),
    (lambda m, x, y: x.transpose(1, 0, 2) @ y[None], C, B),
    (lambda m, x, y: ((x @ y).T * 2.0, (x @ y).sum(axis=0)), A, B),
    (lambda m, x, y: (x @ y) @ (x @ y).T, A, B),
    (lambda m, x, y: x[[3, 1, 4, 1, 5] * 8] @ m.pad(y, ((0, 0), (2, 2))), A, B),
    (lambda m, x, y: m.concatenate([x, x]) @ y, A, B),
    (lambda m, x, y: x @ y, A.astype(np.float32), B.astype(np.float32)),
    (lambda m, x, y: x @ y, np.round(A * 10).astype(np.int64), np.round(B * 10).astype(np.int64)),
], ids=["plain", "transposed input", "transposed operand", "strided", "expressions", "batched",
        "batched transposed", "broadcast batch", "permuted batch", "result reused",
        "product of products", "gather and pad", "concatenate", "float32", "int64"])
def test_large_contractions(op, a, b):
    """Past blas.GEMM_WORK multiply-adds a float contraction calls BLAS on (batch, M, K) views of
    realised operands; every way an operand can be laid out must be read right."""
    expected = numpy_result(op, a, b)
    rtol = REASSOC.get(expected[0].dtype)
    scale = max(float(np.abs(e).max()) for e in expected) + 1.0
    check(op, a, b, tol=Tol(rtol, rtol * scale) if rtol else None)


def test_large_float_contractions_call_blas():
    f64 = trace(lambda m, x, y: x @ y, A, B)
    f32 = trace(lambda m, x, y: x @ y, A.astype(np.float32), B.astype(np.float32))
    small = trace(lambda m, x, y: x @ y, A[:4], B)
    assert "anvil_dgemm" in f64.llvm_ir and "anvil_sgemm" in f32.llvm_ir
    assert "gemm" not in small.llvm_ir


@pytest.mark.parametrize("a, b", [((200, 0), (0, 190)), ((0, 50), (50, 40)),
                                  ((0, 40, 50), (50, 40)), ((3, 40, 50), (0, 1, 50, 36))])
def test_empty_contractions(a, b):
    check(lambda m, x, y: x @ y, np.ones(a), np.ones(b))


@pytest.mark.parametrize("name", ["sum", "prod", "max", "min"])
@pytest.mark.parametrize("shape, bound", [((1001,), 2**62), ((33, 77), 9), ((5, 301), 2**62)])
def test_integer_reductions_on_long_arrays(name, shape, bound):
    """Vectorised integer reductions are exact, wrapping on overflow like NumPy."""
    x = np.random.default_rng(5).integers(-bound, bound, shape)
    check(lambda m, a: (getattr(a, name)(), getattr(a, name)(axis=0),
                        getattr(a, name)(axis=-1)), x)


@pytest.mark.parametrize("name", ["sum", "prod", "max", "min"])
@fast(25)
@given(data=st.data())
def test_reductions_over_leading_axes_fold_in_numpy_order(name, data):
    """A reduction whose source keeps its innermost axis folds rows in order, as NumPy does
    for such axes: the compiled result is exact, NaN included (max and min up to the sign of
    a zero: they order -0.0 below +0.0, where NumPy keeps the later of two zeros)."""
    lead = data.draw(st.integers(1, 3))
    rows = data.draw(st.integers(9, 300))
    cols = data.draw(st.integers(2, 17))
    shape = (lead, rows, cols)
    x = data.draw(arrays(st.just(shape), np.float64))
    axis = data.draw(st.sampled_from([1, (0, 1)]))
    check(lambda m, a: getattr(a, name)(axis=axis), x,
          tol=SIGNLESS if name in ("max", "min") else None)
