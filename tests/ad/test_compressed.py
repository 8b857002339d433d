"""Dense Jacobians through their sparsity (ad/compressed.py): values against the dense modes and
central differences, which functions take that path, and the greedy colouring's validity."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm.ad import jacobian
from anvil_llvm.ad.compressed import MIN_DIRECTIONS, greedy_coloring
from anvil_llvm.ir.ops import PLACE, RESHAPE

RTOL = 1e-12


def compressed(J) -> bool:
    """Whether a jacobian's graph places compressed products into the dense result."""
    (node,) = J.outputs
    while node.op is RESHAPE:
        node = node.src[0]
    return node.op is PLACE


def stages(w):
    """Multiple shooting's shape: 20 stages of a small nonlinear map of (x_k, u_k) minus
    x_{k+1}, states of 2, one control each (a block-banded 40 x 62 Jacobian)."""
    x, u = w[:42].reshape(21, 2), w[42:]
    a, b = x[:-1, 0], x[:-1, 1]
    step = av.stack([a + 0.1 * b * av.cos(a), b + 0.1 * (av.sin(a) * u - b * b)], axis=1)
    return (step - x[1:]).reshape(40)


def dense_row_and_chain(x):
    """One dense row (a sum) over a chain: columns need n colours, rows three."""
    return av.concatenate([av.stack([(x * x).sum()]), x[1:] * av.exp(x[:-1])])


CASES = {
    "stages": (stages, 62),
    "stages in a map": (lambda w: av.map(
        lambda xu: av.stack([xu[0] + 0.1 * xu[1] * av.cos(xu[0]),
                             xu[1] + 0.1 * (av.sin(xu[0]) * xu[2] - xu[1] * xu[1])]),
        av.concatenate([w[:40].reshape(20, 2), w[42:].reshape(20, 1)], axis=1)).reshape(40)
        - w[2:42], 62),
    "dense row": (dense_row_and_chain, 40),
    "band": (lambda x: av.sin(x[2:]) * x[:-2] + x[1:-1] ** 3, 50),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sparse_jacobians_are_compressed_and_right(name):
    fn, n = CASES[name]
    f = av.NumericalFunction(name.replace(" ", "_"), fn, (av.Arg(n),))
    x = np.random.default_rng(5).uniform(-0.5, 0.5, n)
    J = jacobian(f)
    assert compressed(J)
    got = J(x)
    for mode in ("fwd", "rev"):
        dense = jacobian(f, mode=mode)
        assert not compressed(dense)
        np.testing.assert_allclose(got, dense(x), rtol=RTOL, atol=1e-14)
    h = 1e-6
    differences = np.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(n)], 1)
    np.testing.assert_allclose(got, differences, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fn, n", [
    (lambda x: x * x.sum(), 30),                          # dense
    (lambda x: av.matmul(np.tri(30), av.sin(x)), 30),     # lower triangle: half dense
    (lambda x: x[1:] * x[:-1], MIN_DIRECTIONS - 1),       # too few directions to gain
])
def test_dense_or_small_jacobians_keep_the_dense_modes(fn, n):
    f = av.NumericalFunction("f", fn, (av.Arg(n),))
    x = np.linspace(0.1, 0.9, n)
    J = jacobian(f)
    assert not compressed(J)
    np.testing.assert_allclose(J(x), jacobian(f, mode="rev")(x), rtol=RTOL, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.floats(0.02, 0.5), st.integers(0, 2**31 - 1))
def test_greedy_colouring_separates_columns_that_share_a_row(m, n, density, seed):
    pattern = sp.random_array((m, n), density=density, rng=np.random.default_rng(seed),
                              format="csr") != 0
    colors = greedy_coloring(sp.csr_array(pattern))
    dense = pattern.toarray()
    for row in dense:
        used = colors[row]
        assert (used >= 0).all() and len(set(used.tolist())) == used.size
    assert (colors[~dense.any(axis=0)] == -1).all()
    degree = int((dense.T.astype(int) @ dense.astype(int) > 0).sum(axis=1).max(initial=0))
    assert colors.max(initial=-1) + 1 <= max(degree, 1)
