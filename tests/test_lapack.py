"""Linear algebra on large matrices through SciPy's LAPACK (ir/ops/linalg.py, `LAPACK_FROM`):
JIT code calls it from the measured size on, exported code never does; values against NumPy
and SciPy around each threshold, batched, in float32, with singular, indefinite and NaN input;
derivatives (which run the same ops) against closed forms."""
from __future__ import annotations

import ctypes
import dataclasses

import numpy as np
import pytest
import scipy.linalg as sla

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad
from anvil_llvm.backend import jit
from anvil_llvm.backend.target import Target
from anvil_llvm.ir.ops.linalg import LAPACK_FROM

RNG = np.random.default_rng(11)


def _size(op: str, below: bool = False) -> int:
    """The smallest n x n matrix whose work reaches `op`'s threshold (or the largest below)."""
    n = round(LAPACK_FROM[op] ** (1 / 3))
    while n ** 3 < LAPACK_FROM[op]:
        n += 1
    return n - 1 if below else n


def _spd(n: int, batch: tuple = ()) -> np.ndarray:
    m = RNG.normal(size=batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


def _general(n: int, batch: tuple = ()) -> np.ndarray:
    return RNG.normal(size=batch + (n, n)) + 3 * np.sqrt(n) * np.eye(n)


def _calls(fn: av.NumericalFunction, routine: str, target: Target | None = None) -> bool:
    ir = fn.lowered(target).ir if target else fn.llvm_ir
    return f"@anvil_d{routine}(" in ir or f"@anvil_s{routine}(" in ir


def _signed(v: np.ndarray) -> np.ndarray:
    largest = np.take_along_axis(v, np.argmax(np.abs(v), axis=-2)[..., None, :], axis=-2)
    return v * np.sign(largest)


CASES = {
    "solve": (lambda a, b: anp.linalg.solve(a, b), lambda a, b: np.linalg.solve(a, b),
              "getrf", _general, 3),
    "slogdet": (lambda a: anp.stack(anp.linalg.slogdet(a)), lambda a: np.stack(
        np.linalg.slogdet(a)), "getrf", _general, None),
    "cholesky": (lambda a: anp.linalg.cholesky(a), np.linalg.cholesky, "potrf", _spd, None),
    "eigh": (lambda a: anp.concatenate([anp.linalg.eigh(a)[0][None],
                                        anp.linalg.eigh(a)[1]]),
             lambda a: np.concatenate([np.linalg.eigh(a)[0][None],
                                       _signed(np.linalg.eigh(a)[1])]), "syevd", _spd, None),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("below", [True, False], ids=["below", "from"])
def test_the_jit_calls_lapack_from_its_threshold_and_matches_numpy(name, below):
    traced, reference, routine, matrix, columns = CASES[name]
    n = _size(name, below)
    a = matrix(n)
    args = [a] + ([RNG.normal(size=(n, columns))] if columns else [])
    f = av.NumericalFunction(name, traced, tuple(av.Arg(x.shape) for x in args))
    assert _calls(f, routine) is not below
    assert not _calls(f, routine, Target.object())
    np.testing.assert_allclose(f(*args), reference(*args), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("batch, b_shape", [((), ()), ((2,), (1,)), ((2,), (4,))],
                         ids=["vector", "one-column", "four-columns"])
def test_solve_on_lapack_with_batches_and_right_sides(batch, b_shape):
    n = _size("solve")
    a = _general(n, batch)
    b = RNG.normal(size=batch + (n,) + b_shape)
    f = av.NumericalFunction("f", lambda a, b: anp.linalg.solve(a, b),
                             (av.Arg(a.shape), av.Arg(b.shape)))
    assert _calls(f, "getrs")
    np.testing.assert_allclose(f(a, b), np.linalg.solve(a, b), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("trans", [0, 1])
def test_triangular_solves_on_lapack_match_scipy(lower, trans):
    n = 64
    k = -(-LAPACK_FROM["trisolve"] // (n * n))
    t = np.tril(_general(n)) if lower else np.triu(_general(n))
    b = RNG.normal(size=(n, k))
    noise = RNG.normal(size=(n, n))
    noisy = t + (np.triu(noise, 1) if lower else np.tril(noise, -1))      # the other triangle
    f = av.NumericalFunction("f", lambda t, b: anp.linalg.solve_triangular(
        t, b, trans=trans, lower=lower), (av.Arg((n, n)), av.Arg((n, k))))
    assert _calls(f, "trsm")
    np.testing.assert_allclose(f(noisy, b), sla.solve_triangular(t, b, trans=trans, lower=lower),
                               rtol=1e-10, atol=1e-12)
    narrow = av.NumericalFunction("f", lambda t, b: anp.linalg.solve_triangular(t, b),
                                  (av.Arg((n, n)), av.Arg((n, k - 1))))
    assert not _calls(narrow, "trsm")


def test_float32_calls_the_single_precision_routines():
    n = max(_size(name) for name in CASES)
    a = _spd(n).astype(np.float32)
    f = av.NumericalFunction("f", lambda a: (anp.linalg.cholesky(a), anp.linalg.eigh(a)[0],
                                             anp.linalg.slogdet(a)[1]),
                             (av.Arg((n, n), np.float32),))
    assert all(f"@anvil_s{r}(" in f.llvm_ir for r in ("potrf", "syevd", "getrf"))
    chol, w, logdet = f(a)
    a64 = a.astype(np.float64)
    np.testing.assert_allclose(chol, np.linalg.cholesky(a64), rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(a64), rtol=2e-4, atol=2e-3)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(a64)[1], rtol=2e-5)


def test_slogdet_on_lapack_counts_the_row_swaps():
    """Matrices pivoting once and with random pivoting: the sign as NumPy's."""
    n = _size("slogdet")
    a = _general(n, (5,))
    a[0] = a[0, [1, 0, *range(2, n)]]
    a[1:] = RNG.normal(size=(4, n, n))
    f = av.NumericalFunction("f", lambda a: anp.stack(anp.linalg.slogdet(a), axis=-1),
                             (av.Arg(a.shape),))
    np.testing.assert_allclose(f(a), np.stack(np.linalg.slogdet(a), axis=-1), rtol=1e-10)


def test_singular_indefinite_and_nan_input_on_lapack_as_in_the_loops():
    n = max(_size(name) for name in CASES)
    singular = _general(n)
    singular[:, 3] = 0.0                         # a zero pivot, exactly
    indefinite = _spd(n)
    indefinite[5, 5] = -1e6
    with_nan = _spd(n)
    with_nan[7, 2] = np.nan
    f = av.NumericalFunction("f", lambda a: anp.stack(anp.linalg.slogdet(a)), (av.Arg((n, n)),))
    np.testing.assert_array_equal(f(singular), np.linalg.slogdet(singular))
    chol = av.NumericalFunction("c", lambda a: anp.linalg.cholesky(a), (av.Arg((n, n)),))
    assert np.isnan(chol(indefinite)).all()
    eig = av.NumericalFunction("e", lambda a: tuple(anp.linalg.eigh(a)), (av.Arg((n, n)),))
    assert all(np.isnan(x).all() for x in eig(with_nan))
    upper_nan = _spd(n)
    upper_nan[2, 7] = np.nan                     # the upper triangle is not read
    w, _ = eig(upper_nan)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(upper_nan, UPLO="L"), rtol=1e-10)


def test_derivatives_on_lapack_match_closed_forms():
    n = max(_size(name) for name in ("solve", "slogdet"))
    a, b = _general(n), RNG.normal(size=n)
    logdet = ad.gradient(lambda a: anp.linalg.slogdet(a)[1])
    np.testing.assert_allclose(logdet(a), np.linalg.inv(a).T, rtol=1e-9, atol=1e-12)
    x = np.linalg.solve(a, b)
    solve_b = ad.gradient(lambda b, a: (anp.linalg.solve(a, b) ** 2).sum())
    np.testing.assert_allclose(solve_b(b, a), np.linalg.solve(a.T, 2 * x), rtol=1e-9,
                               atol=1e-12)
    s = _spd(n)
    w_grad = ad.gradient(lambda s: anp.linalg.eigvalsh(s)[-1])   # d lambda_max = v v^T
    v = np.linalg.eigh(s)[1][:, -1]
    np.testing.assert_allclose(w_grad(s), np.tril(2 * np.outer(v, v), -1)
                               + np.diag(v * v), rtol=1e-7, atol=1e-9)


def test_code_without_lapack_keeps_the_loops_and_computes_the_same():
    """The C ABI function of a target without SciPy's routines (as exported) runs the loops."""
    n = 3 * _size("eigh")
    a = _spd(n)
    f = av.NumericalFunction("f", lambda a: anp.linalg.eigh(a)[1], (av.Arg((n, n)),))
    low = dataclasses.replace(Target.jit(), gemm=None)
    assert _calls(f, "syevd") and not _calls(f, "syevd", low)
    loops = f.lowered(low)
    code = jit.build(loops.ir, loops.symbol, loops.codegen_opt)
    native = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_void_p] * 3)(code.addresses[loops.symbol])
    out = np.empty((n, n))
    work = np.empty(loops.work_bytes + 64, np.uint8)
    assert native(a.ctypes.data, out.ctypes.data, work.ctypes.data + (-work.ctypes.data % 64)) == 0
    np.testing.assert_allclose(out, f(a), rtol=1e-8, atol=1e-10)
