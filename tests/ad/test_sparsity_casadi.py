"""Sparsity detection against CasADi's structural patterns of the same code (scalar
expressions in Python loops, traced by both: SX symbols and anvil_llvm Tensors)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import anvil_llvm as av
from anvil_llvm.ad import hessian_sparsity, jacobian_sparsity

casadi = pytest.importorskip("casadi")

N = 12


def rosen(x, m):
    return [sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(N - 1))]


def arrowhead(x, m):
    return [sum((x[i] * x[N - 1]) ** 2 + m.sin(x[i]) for i in range(N - 1))]


def quotients(x, m):
    """Products of distinct inputs and quotients: no diagonal entry for x[i] * x[j], none for
    the numerator of x / y."""
    return [sum(x[i] / (1.0 + x[(i + 3) % N] ** 2) + x[i] * x[(i + 5) % N] for i in range(N))]


def grid(x, m):
    """A 4 x 3 grid's 5-point residual with an exponential source (bratu2d's kind)."""
    rows, cols = 4, 3

    def at(i, j):
        return x[i * cols + j] if 0 <= i < rows and 0 <= j < cols else 0.0
    return [4.0 * at(i, j) - at(i - 1, j) - at(i + 1, j) - at(i, j - 1) - at(i, j + 1)
            - 0.1 * m.exp(at(i, j)) for i in range(rows) for j in range(cols)]


def mixed(x, m):
    return [m.sin(x[0] * x[3]) + x[5] / x[7], m.exp(x[1]) * x[2] ** 3, x[4] - m.cos(x[8]),
            m.tanh(x[9] + x[10] * x[11])]


def casadi_pattern(fn, hessian: bool) -> sp.csr_array:
    x = casadi.SX.sym("x", N)
    outputs = casadi.vertcat(*fn(x, casadi))
    expression = casadi.hessian(outputs, x)[0] if hessian else casadi.jacobian(outputs, x)
    pattern = expression.sparsity()
    rows, cols = pattern.get_triplet()
    return sp.csr_array((np.ones(len(rows), bool), (rows, cols)),
                        shape=(pattern.size1(), pattern.size2()))


def traced(fn) -> av.NumericalFunction:
    def f(x):
        outputs = fn(x, av)
        return av.stack(*outputs) if len(outputs) > 1 else outputs[0]
    return av.NumericalFunction("f", f, (av.Arg(N),))


@pytest.mark.parametrize("fn", [rosen, arrowhead, quotients, grid, mixed],
                         ids=lambda f: f.__name__)
def test_jacobian_pattern_equals_casadis(fn):
    ours, theirs = jacobian_sparsity(traced(fn)), casadi_pattern(fn, hessian=False)
    assert ours.shape == theirs.shape and (ours != theirs).nnz == 0


@pytest.mark.parametrize("fn", [rosen, arrowhead, quotients], ids=lambda f: f.__name__)
def test_hessian_pattern_equals_casadis(fn):
    ours, theirs = hessian_sparsity(traced(fn)), casadi_pattern(fn, hessian=True)
    assert ours.nnz == theirs.nnz and (ours != theirs).nnz == 0
