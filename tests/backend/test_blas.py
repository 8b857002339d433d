"""backend/blas.py: large contractions rewritten into canonical batched GEMMs (the rewrite
evaluated by the reference interpreter against NumPy's einsum), the GEMM_WORK threshold, and
compiled matrix products through SciPy's BLAS against np.matmul, with `anvil_dgemm` and
`anvil_sgemm` among a module's externals exactly when a GEMM of that precision is used."""
from __future__ import annotations

import math
import string
from unittest import mock

import numpy as np
import pytest
from avcheck import fast
from hypothesis import given
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm.backend import blas
from anvil_llvm.ir import build as B
from anvil_llvm.ir import dtypes
from anvil_llvm.ir.interpret import evaluate
from anvil_llvm.ir.ops import CONTRACT, INPUT
from anvil_llvm.ir.uop import UOp, toposort

RTOL = {np.float64: 1e-12, np.float32: 1e-5}
GEMM_SYMBOLS = {np.float64: "anvil_dgemm", np.float32: "anvil_sgemm"}


def leaf(position: int, shape: tuple, dtype=dtypes.float64) -> UOp:
    return UOp(INPUT, (), (position, tuple(shape), dtype))


def canonical(a: UOp, b: UOp) -> UOp:
    return B.contract(a, b, *blas.CANONICAL)


def canonicalised(outputs: list[UOp]) -> list[UOp]:
    return blas.canonicalise(list(outputs), toposort(outputs))


def contractions(outputs: list[UOp]) -> list[UOp]:
    return [n for n in toposort(outputs) if n.op is CONTRACT]


# ---- the threshold -------------------------------------------------------------------------------
@pytest.mark.parametrize("batch, m, k, n", [(1, 32, 32, 32), (2, 16, 32, 32), (8, 4, 32, 32),
                                            (1, 32, 31, 32), (1, 1, 1, 1), (3, 10, 30, 36)])
def test_is_gemm_exactly_from_gemm_work(batch, m, k, n):
    for dtype in (dtypes.float64, dtypes.float32):
        node = canonical(leaf(0, (batch, m, k), dtype), leaf(1, (batch, k, n), dtype))
        assert blas.is_gemm(node) == (batch * m * k * n >= blas.GEMM_WORK)


def test_is_gemm_only_for_canonical_float_contractions():
    big = 64
    a, b = leaf(0, (1, big, big)), leaf(1, (1, big, big))
    assert blas.is_gemm(canonical(a, b))
    ints = canonical(leaf(0, (1, big, big), dtypes.int64), leaf(1, (1, big, big), dtypes.int64))
    assert not blas.is_gemm(ints)
    assert not blas.is_gemm(B.contract(a, b, (1,), (2,), (0,), (0,)))        # a^T-style axes
    assert not blas.is_gemm(B.contract(leaf(0, (big, big)), leaf(1, (big, big)), (1,), (0,)))
    assert not blas.is_gemm(B.add(a, a))


@pytest.mark.parametrize("m, k, n, rewritten", [(32, 32, 32, True), (32, 32, 31, False),
                                                (4, 5, 6, False), (50, 40, 30, True)])
def test_canonicalise_rewrites_exactly_the_contractions_above_the_threshold(m, k, n, rewritten):
    assert (m * k * n >= blas.GEMM_WORK) == rewritten
    out = B.contract(leaf(0, (m, k)), leaf(1, (k, n)), (1,), (0,))
    result = canonicalised([out])
    if not rewritten:
        assert result[0] is out
        return
    (gemm,) = contractions(result)
    assert blas.is_gemm(gemm) and result[0].shape == (m, n)


def test_canonicalise_leaves_integer_and_canonical_contractions():
    ints = B.contract(leaf(0, (64, 64), dtypes.int64), leaf(1, (64, 64), dtypes.int64), (1,), (0,))
    already = canonical(leaf(0, (2, 64, 64)), leaf(1, (2, 64, 64)))
    assert canonicalised([ints, already]) == [ints, already]
    plain = B.add(leaf(0, (3,)), leaf(0, (3,)))
    assert canonicalised([plain])[0] is plain


@st.composite
def dot_generals(draw):
    """A random dot_general: sizes of batch, contracted and free axes, each operand's axes in a
    random order, maybe read through a transposition (as `a.T` traces)."""
    size = st.integers(1, 9)
    batch = draw(st.lists(size, max_size=1))
    contracted = draw(st.lists(size, min_size=1, max_size=2))
    free_a, free_b = draw(st.lists(size, max_size=2)), draw(st.lists(size, max_size=2))
    letters = iter(string.ascii_lowercase)
    named = lambda sizes: [(next(letters), s) for s in sizes]     # noqa: E731
    batch, contracted = named(batch), named(contracted)
    free_a, free_b = named(free_a), named(free_b)
    a_axes = draw(st.permutations(batch + contracted + free_a))
    b_axes = draw(st.permutations(batch + contracted + free_b))
    return batch, contracted, free_a, free_b, a_axes, b_axes, draw(st.booleans())


def contraction(config, np_dtype):
    """The CONTRACT node of a `dot_generals` example, its work, its inputs and NumPy's einsum
    of them (in float64)."""
    batch, contracted, free_a, free_b, a_axes, b_axes, transposed = config
    dtype = dtypes.from_numpy(np.dtype(np_dtype))
    a_shape, b_shape = tuple(s for _, s in a_axes), tuple(s for _, s in b_axes)
    a = leaf(0, a_shape[::-1] if transposed else a_shape, dtype)
    a_in = B.permute(a, tuple(range(len(a_shape)))[::-1]) if transposed else a
    pos_a, pos_b = [x for x, _ in a_axes], [x for x, _ in b_axes]
    out = B.contract(a_in, leaf(1, b_shape, dtype),
                     tuple(pos_a.index(x) for x, _ in contracted),
                     tuple(pos_b.index(x) for x, _ in contracted),
                     tuple(pos_a.index(x) for x, _ in batch),
                     tuple(pos_b.index(x) for x, _ in batch))
    work = math.prod(s for _, s in batch + contracted + free_a + free_b)
    rng = np.random.default_rng(work)
    inputs = [rng.standard_normal(s).astype(np_dtype) for s in (a.shape, b_shape)]
    free = [x for x, _ in free_a + free_b]      # each operand's free axes in its axis order
    subscripts = (f"{''.join(pos_a)},{''.join(pos_b)}->" + "".join(x for x, _ in batch)
                  + "".join(x for x in pos_a + pos_b if x in free))
    expected = np.einsum(subscripts, inputs[0].T if transposed else inputs[0], inputs[1],
                         dtype=np.float64)
    return out, work, inputs, expected


def assert_product(got, expected, np_dtype) -> None:
    assert got.dtype == np_dtype and got.shape == expected.shape
    rtol = RTOL[np_dtype]
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * np.sqrt(expected.size + 1))


FLOATS = st.sampled_from([np.float64, np.float32])


@fast(100)
@given(dot_generals(), FLOATS, st.integers(1, 3000))
def test_canonical_gemms_compute_the_contraction(config, np_dtype, threshold):
    """With GEMM_WORK lowered to `threshold` (the rewrite does not depend on its value), so
    that small random contractions cross it."""
    out, work, inputs, expected = contraction(config, np_dtype)
    with mock.patch.object(blas, "GEMM_WORK", threshold):
        (result,) = canonicalised([out])
        if work < threshold:
            assert result is out
        else:
            assert [blas.is_gemm(c) for c in contractions([result])] == [True]
    (got,) = evaluate([result], inputs)
    assert_product(got, expected, np_dtype)


@fast(15)
@given(dot_generals(), FLOATS)
def test_compiled_gemms_of_any_layout_compute_the_contraction(config, np_dtype):
    """Every contraction through BLAS (GEMM_WORK lowered to 1): operands read in place,
    transposed or copied, each batch at its offset; except those that sum one product, which
    the simplifier makes products."""
    out, _, inputs, expected = contraction(config, np_dtype)
    one_term = math.prod(s for _, s in config[1]) == 1
    args = [av.Arg(x.shape, x.dtype) for x in inputs]
    with mock.patch.object(blas, "GEMM_WORK", 1):
        f = av.NumericalFunction.from_graph("all_gemm", args, [out], False)
        assert (GEMM_SYMBOLS[np_dtype] in f.lowered().externals) != one_term
        got = f(*inputs)
    assert_product(got, expected, np_dtype)


# ---- compiled products ---------------------------------------------------------------------------
# (lhs shape, rhs shape, the product written once for NumPy arrays and tensors, uses a GEMM)
PRODUCTS = {
    "a @ b": ((40, 50), (50, 30), lambda a, b: a @ b, True),
    "a.T @ b": ((50, 40), (50, 30), lambda a, b: a.T @ b, True),
    "a @ b.T": ((40, 50), (30, 50), lambda a, b: a @ b.T, True),
    "a.T @ b.T": ((50, 40), (30, 50), lambda a, b: a.T @ b.T, True),
    "batched": ((3, 20, 30), (3, 30, 25), lambda a, b: a @ b, True),
    "batched, transposed": ((3, 30, 20), (3, 25, 30),
                            lambda a, b: a.transpose(0, 2, 1) @ b.transpose(0, 2, 1), True),
    "broadcast batch": ((3, 20, 30), (30, 25), lambda a, b: a @ b, True),
    "matrix @ vector": ((200, 180), (180,), lambda a, b: a @ b, True),
    "expressions": ((40, 50), (50, 30), lambda a, b: (a * 2.0)[:, ::-1] @ (b + 1.0), True),
    "slice of a vector": ((2010,), (50, 30), lambda a, b: a[10:2010].reshape(40, 50) @ b, True),
    "tensordot": ((6, 7, 8, 12), (8, 7, 10), lambda a, b: (a.reshape(6, 56, 12).transpose(0, 2, 1)
                                                          @ b.transpose(1, 0, 2).reshape(56, 10)),
                  True),
    "below the threshold": ((31, 32), (32, 32), lambda a, b: a @ b, False),
    "small": ((4, 5), (5, 6), lambda a, b: a @ b, False),
}


@pytest.mark.parametrize("np_dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", PRODUCTS)
def test_compiled_products_equal_numpys(name, np_dtype):
    a_shape, b_shape, op, gemm = PRODUCTS[name]
    f = av.NumericalFunction("product", op, (av.Arg(a_shape, np_dtype), av.Arg(b_shape, np_dtype)))
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal(s).astype(np_dtype) for s in (a_shape, b_shape)]
    expected = op(*[x.astype(np.float64) for x in inputs])
    assert_product(f(*inputs), expected, np_dtype)
    externals = f.lowered().externals
    assert [s for s in GEMM_SYMBOLS.values() if s in externals] == (
        [GEMM_SYMBOLS[np_dtype]] if gemm else [])
    assert blas.uses_blas(list(externals)) == gemm


def test_both_precisions_in_one_function():
    f = av.NumericalFunction("two", lambda a, b: (a @ a, b @ b),
                             (av.Arg((40, 40)), av.Arg((40, 40), np.float32)))
    assert {"anvil_dgemm", "anvil_sgemm"} <= set(f.lowered().externals)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((40, 40)), rng.standard_normal((40, 40)).astype(np.float32)
    da, db = f(a, b)
    np.testing.assert_allclose(da, a @ a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, np.matmul(b.astype(np.float64), b), rtol=1e-5, atol=1e-5)


def test_large_integer_products_stay_loops_and_are_exact():
    f = av.NumericalFunction("ints", lambda a, b: a @ b,
                             (av.Arg((40, 40), np.int64), av.Arg((40, 40), np.int64)))
    assert not blas.uses_blas(list(f.lowered().externals))
    rng = np.random.default_rng(4)
    a, b = rng.integers(-1000, 1000, (40, 40)), rng.integers(-1000, 1000, (40, 40))
    np.testing.assert_array_equal(f(a, b), a @ b)


def test_a_canonical_looking_contraction_with_a_matrix_operand():
    """(B, M, K) x (B, K) -> (B, M) has the canonical axis lists but a 2-D right operand: it
    is rewritten into a GEMM with N = 1, not taken for one as it is."""
    a = np.random.default_rng(5).uniform(-1, 1, (3, 4, 5))
    b = np.random.default_rng(6).uniform(-1, 1, (3, 5))
    args = [av.Arg(a.shape), av.Arg(b.shape)]
    x, y = (UOp(INPUT, (), (i, v.shape, dtypes.float64)) for i, v in enumerate((a, b)))
    with mock.patch.object(blas, "GEMM_WORK", 1):
        f = av.NumericalFunction.from_graph("mv", args, [UOp(CONTRACT, (x, y), blas.CANONICAL)],
                                            False)
        got = f(a, b)
    assert_product(got, np.einsum("bmk,bk->bm", a, b), np.float64)
