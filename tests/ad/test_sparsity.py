"""Sparsity detection against the derivatives themselves: for every row of the AD rule table
(every differentiable op), the detected Jacobian and Hessian patterns hold every nonzero of
the dense Jacobian and Hessian at random points (never miss an entry) and hold nothing else
than the nonzeros seen over several random points (exact for the traced graph)."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from avcheck import as_list
from test_ad_rules import KINK_MARGIN, ROWS, scalarised, trace

import anvil_llvm as av
from anvil_llvm.ad import hessian, hessian_sparsity, jacobian, jacobian_sparsity
from anvil_llvm.ir import ops as O
from anvil_llvm.ir.uop import toposort

POINTS = 4      # random points whose nonzeros together must cover the pattern


def random_points(row, seed: int = 0) -> list:
    """POINTS generic points of the row's domains (uniform values: no structural zeros by
    accident, as boundary values drawn by hypothesis would give)."""
    rng = np.random.default_rng(seed)
    points = []
    while len(points) < POINTS:
        xs = []
        for d in row.args:
            if d.distinct:
                grid = np.arange(int(d.lo / KINK_MARGIN), int(d.hi / KINK_MARGIN) + 1)
                x = rng.choice(grid, size=d.shape, replace=False) * KINK_MARGIN
            else:
                x = rng.uniform(d.lo, d.hi, d.shape)
                if d.away:
                    x = np.where(rng.uniform(size=d.shape) < 0.5, -x, x)
            xs.append(np.asarray(x, dtype=np.float64))
        if row.valid is None or row.valid(*xs):
            points.append(xs)
    return points


@functools.cache
def jacobians(row):
    f = trace(row)
    return f, [jacobian(f, argnum=a, mode="fwd") for a in range(len(row.args))]


def dense(blocks, f) -> np.ndarray:
    """A Jacobian (one block per output) as (all output elements) x (argument elements)."""
    return np.vstack([np.reshape(b, (o.size, -1)) for b, o in zip(as_list(blocks), f.outputs)])


def selects(row) -> bool:
    """Whether the row picks values by comparing them (max, min, where with a computed
    condition, mod's quotient): a structural pattern holds every branch, a point shows one."""
    nodes = toposort(trace(row).outputs)
    picks = {O.MAX, O.MIN, O.REDUCE_MAX, O.REDUCE_MIN, O.MOD}
    return any(n.op in picks or n.op is O.WHERE and any(
        m.op is O.INPUT for m in toposort([n.src[0]])) for n in nodes)


def check_pattern(pattern: np.ndarray, nonzeros: list, exact: bool, what: str) -> None:
    seen = np.zeros_like(pattern)
    for nonzero in nonzeros:
        assert not (nonzero & ~pattern).any(), f"{what}: the pattern misses an entry"
        seen |= nonzero
    if exact:
        np.testing.assert_array_equal(pattern, seen, err_msg=what)


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_jacobian_pattern_is_the_union_of_the_nonzeros(row):
    f, jacs = jacobians(row)
    points = random_points(row)
    for a, jac in enumerate(jacs):
        check_pattern(jacobian_sparsity(f, argnum=a).toarray(),
                      [dense(jac(*xs), f) != 0 for xs in points], not selects(row),
                      f"{row.name}: argument {a}")


@functools.cache
def hessians(row):
    S, n = scalarised(row)
    f = av.NumericalFunction("s", lambda z: S(av, z), (av.Arg(n),))
    return f, hessian(f)


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_hessian_pattern_is_the_union_of_the_nonzeros(row):
    f, hess = hessians(row)
    pattern = hessian_sparsity(f).toarray()
    np.testing.assert_array_equal(pattern, pattern.T)
    points = [np.concatenate([np.ravel(x) for x in xs]) for xs in random_points(row, seed=1)]
    check_pattern(pattern, [hess(z) != 0 for z in points], not selects(row), row.name)


def test_a_product_of_distinct_inputs_has_no_diagonal_and_a_quotient_is_linear_above():
    f = av.NumericalFunction("f", lambda x: x[0] * x[1] + x[2] / x[3], (av.Arg(4),))
    expected = np.zeros((4, 4), bool)
    expected[0, 1] = expected[1, 0] = True
    expected[2, 3] = expected[3, 2] = expected[3, 3] = True
    np.testing.assert_array_equal(hessian_sparsity(f).toarray(), expected)


def test_patterns_of_a_million_variables_cost_their_nonzeros():
    n = 10 ** 6
    f = av.NumericalFunction("rosen", lambda x: (100.0 * (x[1:] - x[:-1] ** 2) ** 2
                                                 + (1.0 - x[:-1]) ** 2).sum(), (av.Arg(n),))
    H = hessian_sparsity(f)
    assert H.shape == (n, n) and H.nnz == 3 * n - 2
    expected = sp.diags_array([np.ones(n - 1), np.ones(n), np.ones(n - 1)], offsets=[-1, 0, 1])
    assert (sp.csr_array(expected != 0) != H).nnz == 0
    g = av.NumericalFunction("g", lambda x: x[1:] * av.sin(x[:-1]), (av.Arg(n),))
    J = jacobian_sparsity(g)
    assert J.shape == (n - 1, n) and J.nnz == 2 * (n - 1)


def test_a_contraction_reads_whole_rows_and_columns_of_a_constant_matrix():
    """Patterns are structural: a constant's values are not looked at (as CasADi with a dense
    DM)."""
    rng = np.random.default_rng(1)
    mask = rng.uniform(size=(3, 5)) < 0.4
    A = np.where(mask, rng.uniform(size=(3, 5)), 0.0)
    g = av.NumericalFunction("g", lambda x: A @ (x * x), (av.Arg(5),))
    np.testing.assert_array_equal(jacobian_sparsity(g).toarray(), np.ones((3, 5), bool))


@pytest.mark.parametrize("call, error, match", [
    (lambda f: jacobian_sparsity(f, argnum=2), ValueError, "argnum 2 is out of range"),
    (lambda f: jacobian_sparsity(f, argnum=1.0), TypeError, "argnum must be an int"),
    (lambda f: jacobian_sparsity(lambda x: x), TypeError, "NumericalFunction"),
    (lambda f: hessian_sparsity(f), ValueError, "one scalar"),
])
def test_bad_input_names_the_argument(call, error, match):
    f = av.NumericalFunction("f", lambda x, k: x * k, (av.Arg(3), av.Arg(3, av.int64)))
    with pytest.raises(error, match=match):
        call(f)


def test_an_integer_argument_has_no_derivative():
    f = av.NumericalFunction("f", lambda x, k: x * k, (av.Arg(3), av.Arg(3, av.int64)))
    with pytest.raises(TypeError, match="int64"):
        jacobian_sparsity(f, argnum=1)


def test_a_structurally_empty_jacobian():
    f = av.NumericalFunction("f", lambda x: (x > 0).astype(av.float64), (av.Arg(3),))
    assert jacobian_sparsity(f).nnz == 0 and jacobian_sparsity(f).shape == (3, 3)


def _shooting(loop: bool):
    """Cart-pole states after each of 12 explicit Euler steps, by a scan or a Python loop."""
    def f(z):
        x, u = z[:4], z[4:]

        def step(x, ui):
            s, c = av.sin(x[1]), av.cos(x[1])
            acc = (ui + 0.1 * s * (0.5 * x[3] ** 2 - 9.81 * c)) / (1.1 - 0.1 * c ** 2)
            new = av.stack(x[0] + 0.05 * x[2], x[1] + 0.05 * x[3], x[2] + 0.05 * acc,
                           x[3] + 0.05 * acc * c)
            return new, new
        if loop:
            return av.scan(step, x, u)[1].reshape(-1)
        states = []
        for i in range(u.shape[0]):
            x, y = step(x, u[i])
            states.append(y)
        return av.stack(*states).reshape(-1)
    return av.NumericalFunction("shoot", f, (av.Arg(16),))


def test_a_loop_pattern_is_the_unrolled_loop_pattern():
    loop, unrolled = _shooting(True), _shooting(False)
    pattern = jacobian_sparsity(loop)
    assert (pattern != jacobian_sparsity(unrolled)).nnz == 0
    rng = np.random.default_rng(3)
    check_pattern(pattern.toarray(), [jacobian(loop)(rng.uniform(-1, 1, 16)) != 0
                                      for _ in range(POINTS)], True, "shooting")


def test_a_loop_hessian_pattern_is_the_unrolled_loop_pattern():
    def objective(loop: bool):
        states = _shooting(loop)
        return av.NumericalFunction("j", lambda z: 0.5 * (states.inline(z) ** 2).sum()
                                    + (states.inline(z)[::7] * z[3]).sum(), (av.Arg(16),))
    loop, unrolled = objective(True), objective(False)
    pattern = hessian_sparsity(loop)
    assert (pattern != hessian_sparsity(unrolled)).nnz == 0
    rng = np.random.default_rng(4)
    check_pattern(pattern.toarray(), [hessian(loop)(rng.uniform(-1, 1, 16)) != 0
                                      for _ in range(POINTS)], True, "shooting objective")


def test_patterns_keep_32_bit_indices():
    """Detection works on 32-bit indices (half the memory of SciPy's 64-bit ones, which its
    constructors pick from NumPy's index arrays); the patterns are still the dense ones."""
    n = 300
    f = av.NumericalFunction("chain", lambda x: ((x[1:] - x[:-1] ** 2) ** 2).sum()
                             + (x[::3] * x[0]).sum(), (av.Arg(n),))
    x = np.random.default_rng(3).uniform(0.5, 1.5, n)
    for pattern, dense in ((hessian_sparsity(f), hessian(f)(x)),
                           (jacobian_sparsity(av.ad.gradient(f)), hessian(f)(x))):
        assert pattern.indices.dtype == pattern.indptr.dtype == np.int32
        np.testing.assert_array_equal(pattern.toarray(), dense != 0)
