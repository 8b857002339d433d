"""fn.numba: generated functions called inside @numba.njit code equal the Python call and NumPy
references (inlined form, allocating form, prange, first-class), with clear errors."""
import threading

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from numba.core.errors import TypingError

import anvil_llvm as av
from anvil_llvm.benchmarks.problems import problem
from anvil_llvm.interop import numba as interop


def same(actual, expected):
    """Equal to the Python call up to rounding: numba re-optimises the linked module with its
    own pipeline, so a vectorised transcendental (libmvec) may become a scalar one (libm) or a
    reduction may be summed in another order (differences of an ulp or so)."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=1e-14,
                               atol=1e-14 * max(1.0, float(np.abs(expected).max(initial=0))))


def _writer(F):
    """An @njit function calling F in the output-writing form on one input."""
    @numba.njit
    def run(x, out):
        F(x, out)
    return run


def _allocator(F):
    @numba.njit
    def run(x):
        return F(x)
    return run


@pytest.fixture(scope="module")
def rosen():
    p = problem("rosen", 10)
    return p, p.function()


@pytest.fixture(scope="module")
def arm():
    p = problem("arm")
    return p, p.function()


def test_plain_function_writes_and_allocates_like_the_python_call(arm):
    p, f = arm
    x = np.linspace(-0.3, 0.8, 6)
    out = np.full(3, np.nan)
    _writer(f.numba)(x, out)
    same(out, f(x))
    np.testing.assert_allclose(out, p.reference(x), rtol=1e-14, atol=1e-15)
    same(_allocator(f.numba)(x), f(x))


def test_scalar_output_is_returned_as_a_float(rosen):
    p, f = rosen
    x = p.x0 + 0.1
    value = _allocator(f.numba)(x)
    assert isinstance(value, float)
    assert value == float(f(x))
    assert value == pytest.approx(float(p.reference(x)), rel=1e-14)


@pytest.mark.parametrize("operator", ["gradient", "hessian"])
def test_derivatives_equal_the_python_call(rosen, operator):
    p, f = rosen
    d = getattr(av.ad, operator)(f)
    x = p.x0 * 0.7
    out = np.zeros(d.output_shapes[0])          # any shape with the right size: here 2-D
    _writer(d.numba)(x, out)
    same(out, d(x))
    same(_allocator(d.numba)(x), d(x))
    h = 1e-6          # and they are the derivatives (central differences of the NumPy value)
    if operator == "gradient":
        numeric = [(p.reference(x + h * e) - p.reference(x - h * e)) / (2 * h)
                   for e in np.eye(x.size)]
        np.testing.assert_allclose(out, numeric, rtol=1e-6, atol=1e-5)


def test_jacobian_of_arm_and_its_workspace(arm):
    p, f = arm
    J = av.ad.jacobian(f)
    assert J.lowered(interop.numba_target()).work_bytes > 0
    x = p.x0.copy()
    out = np.empty((3, 6))
    _writer(J.numba)(x, out)
    same(out, J(x))
    h = 1e-6
    numeric = np.stack([(p.reference(x + h * e) - p.reference(x - h * e)) / (2 * h)
                        for e in np.eye(6)], axis=1)
    np.testing.assert_allclose(out, numeric, rtol=1e-6, atol=1e-8)


def test_sparse_jacobian_values_and_structure_inside_njit():
    p = problem("bratu2d", 5)
    f = p.function()
    J = av.ad.spjacobian(f)
    Jn = J.numba

    @numba.njit
    def run(x):
        vals = np.empty(Jn.nnz)
        Jn(x, vals)
        dense = np.zeros((25, 25))           # CSC decompression with the constant structure
        for j in range(25):
            for k in range(Jn.indptr[j], Jn.indptr[j + 1]):
                dense[Jn.indices[k], j] = vals[k]
        return vals, dense

    vals, dense = run(p.x0)
    same(vals, J(p.x0))
    same(dense, J.csc(p.x0).toarray())
    assert Jn.nnz == J.nnz
    same(dense, av.ad.jacobian(f)(p.x0))


def test_multiple_inputs_and_outputs_and_a_scalar_input():
    f = av.NumericalFunction("mimo", lambda x, y, t: (x * y * t, (x - y).sum() * t),
                             (av.Arg(4), av.Arg(4), av.Arg(())))
    F = f.numba

    @numba.njit
    def run(x, y, t):
        a = np.empty(4)
        b = np.empty(1)
        F(x, y, t, a, b)                      # t: a float for the shape-() input
        c, d = F(x, y, np.array(t))           # allocating form: a tuple
        return a, b, c, d

    x, y = np.arange(1.0, 5.0), np.linspace(0.5, 2.0, 4)
    a, b, c, d = run(x, y, 1.5)
    ra, rb = f(x, y, 1.5)
    same(a, ra)
    same(c, ra)
    assert b[0] == float(rb) == d
    np.testing.assert_allclose(a, x * y * 1.5)


def test_a_loop_of_many_calls_matches_the_python_loop(rosen):
    p, f = rosen
    G = av.ad.gradient(f)
    Gn = G.numba

    @numba.njit
    def descend(x, steps):
        g = np.empty(x.size)
        for _ in range(steps):
            Gn(x, g)
            x -= 1e-4 * g
        return x

    x = p.x0.copy()
    for _ in range(2000):
        x -= 1e-4 * G(x)
    same(descend(p.x0.copy(), 2000), x)


def test_nogil_and_prange_each_iteration_its_own_outputs(arm):
    _, f = arm
    J = av.ad.jacobian(f)
    Jn = J.numba

    @numba.njit(nogil=True, parallel=True)
    def batch(X):
        out = np.empty((X.shape[0], 3, 6))
        for i in numba.prange(X.shape[0]):
            Jn(X[i], out[i])
        return out

    X = np.random.default_rng(0).standard_normal((64, 6))
    expected = np.stack([J(x) for x in X])
    same(batch(X), expected)
    results = [None, None]                # two Python threads at once, without the GIL

    def work(k):
        results[k] = batch(X)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        same(r, expected)


def test_wrong_sizes_raise_and_write_nothing(arm):
    p, f = arm
    run = _writer(f.numba)
    x, out = p.x0.copy(), np.full(4, 7.0)
    with pytest.raises(ValueError, match=r"arm\(\): argument 'out' must have 3 elements"):
        run(x, out)
    np.testing.assert_array_equal(out, 7.0)
    short = np.full(5, 7.0)
    out3 = np.full(3, 7.0)
    with pytest.raises(ValueError, match=r"argument 'x' must have 6 elements"):
        run(short, out3)
    np.testing.assert_array_equal(out3, 7.0)
    with pytest.raises(ValueError, match="argument 'x'"):
        _allocator(f.numba)(short)


def test_unchecked_form_skips_the_checks(arm):
    p, f = arm
    big = np.full(5, 7.0)                 # larger than needed: only the first 3 are written
    _writer(f.numba_unchecked)(p.x0, big)
    same(big[:3], f(p.x0))
    np.testing.assert_array_equal(big[3:], 7.0)
    assert f.numba_unchecked is f.numba_unchecked and f.numba is not f.numba_unchecked


def test_wrong_dtype_layout_and_count_are_typing_errors(arm):
    p, f = arm
    run = _writer(f.numba)
    with pytest.raises(TypingError, match=r"arm\.numba: argument 'x' must have dtype float64"):
        run(p.x0.astype(np.float32), np.empty(3))
    with pytest.raises(TypingError, match=r"argument 'out' must be C-contiguous"):
        run(p.x0, np.empty(6)[::2])
    with pytest.raises(TypingError, match=r"argument 'x' must be a C-contiguous float64 array"):
        run(1.0, np.empty(3))
    F = f.numba

    @numba.njit
    def three(x, a, b):
        F(x, a, b)
    with pytest.raises(TypingError, match=r"arm\.numba: expected 1 input \(x\)"):
        three(p.x0, np.empty(3), np.empty(3))


def test_two_functions_with_the_same_name_in_one_njit_function():
    f = av.NumericalFunction("same", lambda x: x * 2.0, (av.Arg(3),))
    g = av.NumericalFunction("same", lambda x: x + 10.0, (av.Arg(3),))
    F, G = f.numba, g.numba
    assert F.symbol != G.symbol and F.symbol.startswith("same.")

    @numba.njit
    def both(x):
        a, b = np.empty(3), np.empty(3)
        F(x, a)
        G(x, b)
        return a, b

    x = np.arange(3.0)
    a, b = both(x)
    same(a, 2.0 * x)
    same(b, x + 10.0)


def test_python_calls_of_the_numba_form(arm):
    p, f = arm
    out = np.empty(3)
    assert f.numba(p.x0, out) is None
    same(out, f(p.x0))
    same(f.numba(p.x0), f(p.x0))
    with pytest.raises(TypeError, match="expected 1 inputs"):
        f.numba(p.x0, out, out)
    with pytest.raises(TypeError, match="fn: expected a NumericalFunction"):
        interop.numba_form(42)


def test_pooled_workspace_serial_and_parallel(arm, monkeypatch):
    """Above STACK_WORK_LIMIT the workspace comes from the pool (made small here)."""
    _, f = arm
    monkeypatch.setattr(interop, "STACK_WORK_LIMIT", 0)
    J = av.ad.jacobian(f, name="arm_jac_pooled")
    Jn = J.numba

    @numba.njit(parallel=True)
    def batch(X):
        out = np.empty((X.shape[0], 18))
        for i in numba.prange(X.shape[0]):
            Jn(X[i], out[i])
        return out

    X = np.random.default_rng(1).standard_normal((200, 6))
    expected = np.stack([J(x).ravel() for x in X])
    same(batch(X), expected)
    same(_allocator(Jn)(X[0]), J(X[0]))
    assert Jn.linked.pool is not None and not Jn.linked.flags.any()   # every slot given back
    Jn.linked.flags[:] = 1               # every slot busy: each call allocates its own
    try:
        same(batch(X), expected)
        status, out = _apply(Jn, X[3])       # the first-class wrapper uses the pool too
        assert status == 0
        same(out, expected[3])
    finally:
        Jn.linked.flags[:] = 0
    status, out = _apply(Jn, X[4])
    same(out, expected[4])
    assert not Jn.linked.flags.any()


@numba.njit
def _apply(k, x):
    out = np.empty(18)
    status = k(x, out)
    return status, out


# ---- first-class -------------------------------------------------------------------------------
@numba.njit
def _fixed_point(f, x, iters):
    """One compiled solver for any generated f: R^n -> R^n."""
    r = np.empty(x.size)
    for _ in range(iters):
        status = f(x, r)
        if status != 0:
            return status
        x[:] = r
    return 0


def test_first_class_one_solver_for_two_functions_without_recompiling():
    f = av.NumericalFunction("half", lambda x: 0.5 * x + 1.0, (av.Arg(4),))
    g = av.NumericalFunction("cosfix", lambda x: av.cos(x), (av.Arg(3),))
    x, y = np.zeros(4), np.zeros(3)
    assert _fixed_point(f.numba, x, 60) == 0
    assert _fixed_point(g.numba, y, 200) == 0
    assert len(_fixed_point.signatures) == 1
    xr, yr = np.zeros(4), np.zeros(3)
    for _ in range(60):
        xr = f(xr)
    for _ in range(200):
        yr = g(yr)
    same(x, xr)
    same(y, yr)
    np.testing.assert_allclose(x, 2.0)
    z = np.full(5, 3.0)                      # wrong size: status 1 (argument 0), untouched
    assert _fixed_point(f.numba, z, 1) == 1
    np.testing.assert_array_equal(z, 3.0)
    assert len(_fixed_point.signatures) == 1


def test_first_class_with_workspace_and_the_unchecked_form(arm):
    p, f = arm
    J = av.ad.jacobian(f)
    apply = _apply
    status, out = apply(J.numba, p.x0)
    assert status == 0
    same(out.reshape(3, 6), J(p.x0))
    status, out = apply(J.numba_unchecked, p.x0)
    assert status == 0
    same(out.reshape(3, 6), J(p.x0))
    assert len(apply.signatures) == 1          # (one signature: float64[::1] x 2 -> int32)


# ---- numba's on-disk cache -----------------------------------------------------------------------
_CACHED = '''
import sys, warnings
import numpy as np, numba, anvil_llvm as av
c = float(sys.argv[1])
F = av.NumericalFunction("cached", lambda x: x * c, (av.Arg(3),)).numba

@numba.njit(cache=True)
def inlined(x):
    return F(x)

@numba.njit(cache=True)
def first_class(k, x):
    out = np.empty(3)
    k(x, out)
    return out

def closing_over(G):
    @numba.njit(cache=True)
    def closed(x):
        return G(x)
    return closed

closed = closing_over(F)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    a, c = inlined(np.ones(3)), closed(np.ones(3))
b = first_class(F, np.ones(3))
refused = any("Cannot cache" in str(w.message) for w in caught)
print(a[0], c[0], b[0], refused,
      *(sum(f.stats.cache_hits.values()) for f in (inlined, closed, first_class)))
'''


def test_cache_true_recompiles_a_caller_whose_generated_function_changed(tmp_path):
    """numba keys its cache on the caller's bytecode and closure; the symbols (IR digests) of
    the generated functions it inlines as globals are added to the key, and one in a closure
    pickles as its function: the same function is loaded from the cache, a changed one (same
    source file, another constant) compiled again, never served stale. A solver taking the
    function first-class is cached and correct."""
    import os
    import subprocess
    import sys
    script = tmp_path / "cached_script.py"
    script.write_text(_CACHED)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), OPENBLAS_NUM_THREADS="1")
    runs = [subprocess.run([sys.executable, str(script), c], capture_output=True, text=True,
                           check=False, env=env, cwd=tmp_path, timeout=300)
            for c in ("2", "2", "5")]
    for r in runs:
        assert r.returncode == 0, r.stderr
    first, again, changed = (r.stdout.split() for r in runs)
    assert first == ["2.0"] * 3 + ["False", "0", "0", "0"]      # compiled and written
    assert again == ["2.0"] * 3 + ["False", "1", "1", "1"]      # all loaded from the cache
    assert changed == ["5.0"] * 3 + ["False", "0", "0", "1"]    # the inlining callers compiled


def test_numba_newton_example_converges_to_the_scipy_newton_solution():
    import pathlib
    import runpy

    import scipy.sparse.linalg as spla
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "numba_newton.py"
    scope = runpy.run_path(str(path))
    p, J, u = scope["p"], scope["J"], scope["u"]
    assert 0 < scope["iterations"] <= 8
    np.testing.assert_allclose(p.reference(u), 0.0, atol=1e-12)     # NumPy's residual
    v = p.x0.copy()                                 # the same method with SciPy's sparse LU
    for _ in range(scope["iterations"]):
        v -= spla.spsolve(J.csc(v), p.reference(v))
    np.testing.assert_allclose(u, v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(scope["u2"], u, rtol=0, atol=1e-14)


def test_numba_form_and_its_function_pickle():
    """The numba form pickles as its function (numba hashes a cached function's closure this
    way), and a function whose numba form exists still pickles."""
    import pickle
    f = av.NumericalFunction("pickled", lambda x: x * x + 1.0, (av.Arg(3),))
    F = f.numba
    G = pickle.loads(pickle.dumps(F))
    x = np.array([1.0, 2.0, 3.0])
    assert G.symbol == F.symbol and G.checked
    np.testing.assert_array_equal(G(x), x * x + 1.0)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(f))(x), x * x + 1.0)
    assert pickle.dumps(F) == pickle.dumps(F)          # a stable cache key
