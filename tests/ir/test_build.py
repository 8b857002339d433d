"""ir/build.py, the graph-building helpers of the AD rules: None as a symbolic zero, the shortcuts
that return a node itself, and each helper's graph evaluated by the reference interpreter against
NumPy (the transposes also by their adjoint identities: <T(u), v> == <u, A(v)>)."""
from __future__ import annotations

import numpy as np
import pytest
from avcheck import arrays, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

from anvil_llvm.ir import build as B
from anvil_llvm.ir import dtypes
from anvil_llvm.ir.interpret import evaluate
from anvil_llvm.ir.ops import CONST, CONST_ARRAY, INPUT, MAX, SIN
from anvil_llvm.ir.uop import UOp, toposort

many = settings(max_examples=80, deadline=None)


def leaf(position: int, shape: tuple, dtype=dtypes.float64) -> UOp:
    return UOp(INPUT, (), (position, tuple(shape), dtype))


def value(node: UOp, *inputs) -> np.ndarray:
    (result,) = evaluate([node], [np.asarray(x) for x in inputs])
    return result


def of(x: np.ndarray, position: int = 0) -> UOp:
    """The input node for the NumPy array `x` at `position`."""
    return leaf(position, x.shape, dtypes.from_numpy(x.dtype))


def inner(a, b) -> float:
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


def assert_adjoint(t_of_u, v, u, a_of_v) -> None:
    """<T(u), v> == <u, A(v)> (to rounding): T is the transpose of the linear map A."""
    np.testing.assert_allclose(inner(t_of_u, v), inner(u, a_of_v), rtol=1e-12, atol=1e-12)


def reals(shape):
    return arrays(shape, np.float64, elements=st.floats(-8, 8, allow_nan=False))


# ---- symbolic zeros ------------------------------------------------------------------------------
X = leaf(0, (2, 3))
C = leaf(1, (2, 3), dtypes.bool_)


def test_sums_skip_a_symbolic_zero():
    assert B.add(None, X) is X and B.add(X, None) is X and B.add(None, None) is None
    assert B.sub(X, None) is X and B.sub(None, None) is None
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(value(B.sub(None, X), x), -x)


@pytest.mark.parametrize("make", [
    lambda: B.mul(None, X), lambda: B.mul(X, None), lambda: B.mul(None, None),
    lambda: B.div(None, X), lambda: B.neg(None), lambda: B.where(C, None, None),
    lambda: B.cast(None, dtypes.float32), lambda: B.reshape(None, (3, 2)),
    lambda: B.permute(None, (1, 0)), lambda: B.broadcast_to(None, (4, 2, 3)),
    lambda: B.reduce_sum(None, (0,)), lambda: B.sum_to(None, (3,)),
    lambda: B.expand_back(None, (2, 3), (0,)), lambda: B.slice_(None, ((0, 1, 1), (0, 1, 3))),
    lambda: B.pad(None, ((1, 0), (0, 0))), lambda: B.unslice(None, ((0, 1, 2), (0, 1, 3)), (4, 3)),
    lambda: B.gather(None, 0, np.array([1, 0])),
    lambda: B.scatter_add(None, 0, np.array([1, 0]), 2),
    lambda: B.contract(None, X, (1,), (1,)), lambda: B.contract(X, None, (1,), (1,)),
], ids=["mul(None, x)", "mul(x, None)", "mul(None, None)", "div", "neg", "where", "cast",
        "reshape", "permute", "broadcast_to", "reduce_sum", "sum_to", "expand_back", "slice_",
        "pad", "unslice", "gather", "scatter_add", "contract lhs", "contract rhs"])
def test_linear_helpers_of_a_symbolic_zero_are_a_symbolic_zero(make):
    assert make() is None


def test_where_with_one_zero_branch_materialises_it():
    x = np.arange(6.0).reshape(2, 3) - 2.5
    c = x > 0
    np.testing.assert_array_equal(value(B.where(C, X, None), x, c), np.where(c, x, 0.0))
    np.testing.assert_array_equal(value(B.where(C, None, X), x, c), np.where(c, 0.0, x))
    zeros = B.materialise(None, X)
    assert (zeros.shape, zeros.dtype) == (X.shape, X.dtype) and B.materialise(X, X) is X
    np.testing.assert_array_equal(value(zeros), np.zeros((2, 3)))


def test_identity_shortcuts_return_the_node_itself():
    assert B.reshape(X, (2, 3)) is X and B.permute(X, (0, 1)) is X
    assert B.broadcast_to(X, (2, 3)) is X and B.sum_to(X, (2, 3)) is X
    assert B.pad(X, ((0, 0), (0, 0))) is X and B.reduce_sum(X, ()) is X
    assert B.concat([X], 0) is X
    assert B.unslice(X, ((0, 1, 2), (0, 1, 3)), (2, 3)) is X


# ---- constants -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(), (1,), (1, 1), (3,), (2, 1, 4)], ids=str)
@pytest.mark.parametrize("dtype", [dtypes.float64, dtypes.float32, dtypes.int64, dtypes.bool_])
def test_full_is_a_structured_scalar_constant(shape, dtype):
    node = B.full(shape, 1, dtype)
    assert (node.shape, node.dtype) == (shape, dtype)
    assert not any(n.op is CONST_ARRAY for n in toposort([node]))
    assert sum(n.op is CONST for n in toposort([node])) == 1
    expected = np.full(shape, 1, dtype.np)
    np.testing.assert_array_equal(value(node), expected, strict=True)
    np.testing.assert_array_equal(value(B.zeros_like(node)), np.zeros(shape, dtype.np),
                                  strict=True)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (1, 2, 2)], ids=str)
def test_basis_stacks_the_identity(shape):
    n = int(np.prod(shape))
    np.testing.assert_array_equal(value(B.basis(shape)), np.eye(n).reshape((n,) + shape),
                                  strict=True)


def test_sign_is_numpys_for_numbers():
    x = np.array([-3.5, -1e-300, -0.0, 0.0, 2e-310, 7.0, np.inf, -np.inf])
    np.testing.assert_array_equal(value(B.sign(of(x)), x), np.sign(x))
    k = np.array([-4, 0, 9])
    np.testing.assert_array_equal(value(B.sign(of(k)), k), np.sign(k), strict=True)


def test_sign_of_nan_is_nan_as_numpys():
    x = np.array([np.nan])
    np.testing.assert_array_equal(value(B.sign(of(x)), x), np.sign(x))


def test_a_cast_to_the_own_dtype_is_the_node_itself():
    assert B.cast(X, dtypes.float64) is X


def test_arithmetic_helpers_are_numpys():
    x, y = np.array([1.5, -2.0, 4.0]), np.array([0.5, 3.0, -8.0])
    a, b = of(x), of(y, 1)
    for node, expected in [(B.add(a, b), x + y), (B.sub(a, b), x - y), (B.mul(a, b), x * y),
                           (B.div(a, b), x / y), (B.neg(a), -x),
                           (B.scalar(2.5, a), np.full(3, 2.5)),
                           (B.unary(SIN, a), np.sin(x)), (B.binary(MAX, a, b), np.maximum(x, y)),
                           (B.cast(a, dtypes.int64), x.astype(np.int64))]:
        np.testing.assert_array_equal(value(node, x, y), expected, strict=True)


# ---- broadcasting and its transpose --------------------------------------------------------------
@st.composite
def broadcasts(draw):
    """(shape, a shape it broadcasts to: leading axes added, size-1 axes stretched)."""
    shape = draw(shapes(max_dims=3, min_side=1, max_side=3))
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    stretched = [draw(st.integers(1, 3)) if n == 1 else n for n in shape]
    return shape, tuple(lead) + tuple(stretched)


@many
@given(broadcasts(), st.data())
def test_broadcast_to_is_numpys(pair, data):
    shape, big = pair
    x = data.draw(reals(shape))
    np.testing.assert_array_equal(value(B.broadcast_to(of(x), big), x), np.broadcast_to(x, big))


@many
@given(broadcasts(), st.data())
def test_sum_to_sums_the_broadcast_axes_and_is_the_transpose_of_broadcasting(pair, data):
    shape, big = pair
    x, y = data.draw(reals(big)), data.draw(reals(shape))
    got = value(B.sum_to(of(x), shape), x)
    lead = len(big) - len(shape)
    stretched = tuple(i for i, n in enumerate(shape) if n == 1)
    expected = np.sum(np.sum(x, axis=tuple(range(lead))), axis=stretched, keepdims=True)
    assert got.shape == shape
    np.testing.assert_allclose(got, expected.reshape(shape), rtol=1e-12, atol=1e-12)
    assert_adjoint(got, y, x, np.broadcast_to(y, big))


@many
@given(shapes(max_dims=4, min_side=1, max_side=3), st.data())
def test_expand_back_is_the_transpose_of_a_sum(shape, data):
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1))) if shape else ()))
    reduced = tuple(n for i, n in enumerate(shape) if i not in axes)
    ct, x = data.draw(reals(reduced)), data.draw(reals(shape))
    got = value(B.expand_back(of(ct), shape, axes), ct)
    np.testing.assert_array_equal(got, np.broadcast_to(np.expand_dims(ct, axes), shape))
    assert_adjoint(got, x, ct, np.sum(x, axis=axes))
    np.testing.assert_allclose(value(B.reduce_sum(of(x), axes), x), np.sum(x, axis=axes),
                               rtol=1e-12, atol=1e-12)


# ---- slices, padding and their transposes --------------------------------------------------------
@st.composite
def axis_slices(draw, n: int):
    """(start, step, count) of a valid strided slice of an axis of n: the positions
    start + step * i for i < count, all inside [0, n)."""
    step = draw(st.integers(-3, 3).filter(bool))
    count = draw(st.integers(0, (n - 1) // abs(step) + 1 if n else 0))
    if count == 0:
        return 0, step, 0
    reach = abs(step) * (count - 1)
    start = draw(st.integers(0, n - 1 - reach)) + (reach if step < 0 else 0)
    return start, step, count


def positions(spec) -> list[np.ndarray]:
    return [start + step * np.arange(count, dtype=np.int64) for start, step, count in spec]


@many
@given(shapes(max_dims=3, min_side=0, max_side=5), st.data())
def test_unslice_places_the_cotangent_and_is_the_adjoint_of_slicing(shape, data):
    spec = tuple(data.draw(axis_slices(n)) for n in shape)
    where = np.ix_(*positions(spec))
    x = data.draw(reals(shape))
    ct = data.draw(reals(tuple(c for _, _, c in spec)))
    np.testing.assert_array_equal(value(B.slice_(of(x), spec), x), x[where])
    got = value(B.unslice(of(ct), spec, shape), ct)
    placed = np.zeros(shape)
    placed[where] = ct
    np.testing.assert_array_equal(got, placed)
    assert_adjoint(got, x, ct, x[where])


@many
@given(shapes(max_dims=3, min_side=0, max_side=4), st.data())
def test_pad_is_numpys_and_its_transpose_a_slice(shape, data):
    widths = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape)
    x = data.draw(reals(shape))
    got = value(B.pad(of(x), widths), x)
    np.testing.assert_array_equal(got, np.pad(x, widths) if shape else x)
    spec = tuple((lo, 1, n) for (lo, _), n in zip(widths, shape))
    ct = data.draw(reals(got.shape))
    assert_adjoint(got, ct, x, value(B.slice_(of(ct), spec), ct))


# ---- gather and scatter_add ----------------------------------------------------------------------
@st.composite
def takes(draw):
    """(shape, axis, int64 indices into that axis: of rank 1 or 2, repeats, maybe none)."""
    shape = draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = draw(st.integers(0, len(shape) - 1))
    index_shape = draw(shapes(min_dims=1, max_dims=2, min_side=0, max_side=4))
    indices = draw(arrays(index_shape, np.int64, elements=st.integers(0, shape[axis] - 1)))
    return shape, axis, indices


@many
@given(takes(), st.data())
def test_gather_is_numpys_take_and_scatter_add_its_adjoint(case, data):
    shape, axis, indices = case
    x = data.draw(reals(shape))
    taken = np.take(x, indices, axis=axis)
    np.testing.assert_array_equal(value(B.gather(of(x), axis, indices), x), taken)
    ct = data.draw(reals(taken.shape))
    got = value(B.scatter_add(of(ct), axis, indices, shape[axis]), ct)
    assert got.shape == shape
    flat = ct.reshape(shape[:axis] + (indices.size,) + shape[axis + 1:])
    expected = np.zeros(shape)
    np.add.at(expected, (slice(None),) * axis + (indices.reshape(-1),), flat)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert_adjoint(got, x, ct, taken)


def test_gather_of_a_scalar_index_drops_the_axis_as_numpys_take():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(value(B.gather(of(x), 1, np.array(2)), x), np.take(x, 2, axis=1))


# ---- contraction, reshape, permutations ----------------------------------------------------------
RNG = np.random.default_rng(5)


@pytest.mark.parametrize("a_shape, b_shape, axes, reference", [
    ((3, 4), (4, 5), ((1,), (0,)), np.matmul),
    ((4,), (4,), ((0,), (0,)), np.dot),
    ((3,), (2,), ((), ()), np.outer),
    ((2, 3, 4), (2, 4, 5), ((2,), (1,), (0,), (0,)), np.matmul),
    ((4, 3), (4, 5), ((0,), (0,)), lambda a, b: a.T @ b),
    ((3, 4, 5), (5, 4, 2), ((1, 2), (1, 0)), lambda a, b: np.tensordot(a, b, ((1, 2), (1, 0)))),
    ((5, 2, 4), (4, 3, 2), ((2,), (0,), (1,), (2,)),
     lambda a, b: np.stack([a[:, i] @ b[:, :, i] for i in range(2)])),
], ids=["matmul", "dot", "outer", "batched matmul", "transposed", "tensordot", "batch inside"])
def test_contract_is_numpys_product(a_shape, b_shape, axes, reference):
    a, b = RNG.standard_normal(a_shape), RNG.standard_normal(b_shape)
    got = value(B.contract(of(a), of(b, 1), *axes), a, b)
    expected = reference(a, b)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@many
@given(shapes(max_dims=4, min_side=1, max_side=3), st.data())
def test_reshape_and_permute_are_numpys(shape, data):
    x = data.draw(reals(shape))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    permuted = value(B.permute(of(x), perm), x)
    np.testing.assert_array_equal(permuted, np.transpose(x, perm))
    flat = value(B.reshape(of(x), (x.size,)), x)
    np.testing.assert_array_equal(flat, x.reshape(-1))
    back = B.permute(B.permute(of(x), perm), B.inverse_permutation(perm))
    np.testing.assert_array_equal(value(back, x), x)


@given(st.integers(0, 6).flatmap(lambda n: st.permutations(range(n))))
def test_inverse_permutation_is_numpys_argsort(perm):
    inverse = B.inverse_permutation(perm)
    assert inverse == tuple(np.argsort(perm).tolist())
    assert tuple(perm[i] for i in inverse) == tuple(range(len(perm)))


def test_concat_is_numpys():
    a, b = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 1))
    got = value(B.concat([of(a), of(b, 1), of(a)], 1), a, b)
    np.testing.assert_array_equal(got, np.concatenate([a, b, a], axis=1))
