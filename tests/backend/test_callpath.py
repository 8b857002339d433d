"""The Python entry point of a compiled function: argument conversion (never a wrong read), the
errors for bad arguments, the `out=` forms, concurrent calls and the lifetime of the entry point."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from avcheck import run_in_threads

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm.ad import gradient
from anvil_llvm.backend import callpath


def function(fn, *args, name="f"):
    return av.NumericalFunction(name, fn, args)


def affine():
    """f(x[3, 4], y[4]) = (x * y + 1, (x * y).sum(axis=0)), a function of two outputs."""
    return function(lambda x, y: (x * y + 1.0, (x * y).sum(axis=0)), av.Arg((3, 4)), av.Arg(4),
                    name="affine")


def affine_expected(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return x * y + 1.0, (x * y).sum(axis=0)


class Subclass(np.ndarray):
    pass


X = np.arange(12.0).reshape(3, 4) - 5.5
Y = np.array([1.0, -2.0, 0.5, 3.0])


def assert_affine(result, x=X, y=Y):
    expected = affine_expected(x, y)
    assert isinstance(result, tuple) and len(result) == 2
    for r, e in zip(result, expected):
        assert type(r) is np.ndarray and r.dtype == np.float64 and r.flags.c_contiguous
        np.testing.assert_allclose(r, e, rtol=1e-15)


# ---- conversion ----------------------------------------------------------------------------------
@pytest.mark.parametrize("convert", [
    lambda a: a,
    lambda a: np.asfortranarray(a),
    lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    lambda a: np.ascontiguousarray(a[::-1])[::-1],
    lambda a: a.astype(">f8"),
    lambda a: a.astype(np.float32),
    lambda a: np.round(a * 2).astype(np.int64),
    lambda a: np.round(a * 2).astype(np.int32),
    lambda a: np.round(a * 2).astype(np.uint8) if (a >= 0).all() else np.round(a * 2),
    lambda a: (a > 0),
    lambda a: a.tolist(),
    lambda a: np.frombuffer(np.concatenate([[0.0], a.ravel()]).tobytes()[8:],
                            dtype=np.float64).reshape(a.shape) if a.ndim else a,
    lambda a: np.ascontiguousarray(a).view(np.dtype(np.float64, align=True)),
    lambda a: np.broadcast_to(a[..., :1], a.shape),
    lambda a: np.round(a * 2).astype(np.longlong),
    lambda a: np.round(a * 2).astype(">i8"),
], ids=["contiguous", "fortran", "strided", "negative strides", "big-endian", "float32",
        "int64", "int32", "uint8", "bool", "list", "read-only buffer", "aligned view",
        "broadcast (zero strides)", "longlong", "big-endian int"])
def test_arguments_are_converted_not_misread(convert):
    f = affine()
    x, y = convert(X), convert(Y)
    assert_affine(f(x, y), x, y)
    # The same arrays again (the first call compiled; this one takes the compiled entry point).
    assert_affine(f(x, y), x, y)


def test_misaligned_array():
    raw = np.zeros(12 * 8 + 1, dtype=np.uint8)
    x = raw[1:].view(np.float64).reshape(3, 4)
    x[...] = X
    assert not x.flags.aligned
    assert_affine(affine()(x, Y), x, Y)


def test_array_subclass_and_generic_sequences():
    f = affine()
    assert_affine(f(X.view(Subclass), tuple(Y)), X, Y)
    assert_affine(f([list(r) for r in X], np.array(Y, dtype=object).astype(float)), X, Y)


def test_python_scalars_for_array_of_one_shape():
    f = function(lambda x: x * 2.0, av.Arg((1,)))
    np.testing.assert_array_equal(f([3]), [6.0])


@pytest.mark.parametrize("value", [2.0, 2, np.float64(2.0), np.float32(2.0), np.array(2),
                                   True], ids=["float", "int", "np.float64", "np.float32",
                                               "0-d int", "bool"])
def test_python_scalars_for_scalar_arguments(value):
    f = function(lambda s: s * 3.0, av.Arg(()), name="triple")
    assert f(value) == 3.0 * float(value)


def test_scalar_argument_next_to_a_converted_one():
    f = function(lambda x, s: x * s, av.Arg(3), av.Arg(()))
    np.testing.assert_array_equal(f([1.0, 2.0, 3.0], np.array(2.0)), [2.0, 4.0, 6.0])


def test_scalar_argument_on_the_fast_path():
    f = function(lambda x, s: x * s, av.Arg(3), av.Arg(()))
    np.testing.assert_array_equal(f(np.array([1.0, 2.0, 3.0]), np.array(2.0)), [2.0, 4.0, 6.0])


def test_constant_scalar_result():
    f = function(lambda x: av.where(True, 2.0, x), av.Arg(()), name="constant")
    assert f(np.array(1.0)) == 2.0
    out = np.full((), -1.0)
    assert f(np.array(1.0), out=out) == 2.0


def test_int_and_bool_arguments():
    f = function(lambda i, b: av.where(b, i * 2, -i), av.Arg(4, np.int64), av.Arg(4, np.bool_))
    i, b = np.array([1, -2, 3, 4]), np.array([True, False, False, True])
    expected = np.where(b, i * 2, -i)
    for args in [(i, b), (i.astype(np.int32), b), (i.tolist(), b.tolist()), (i[::-1][::-1], b)]:
        result = f(*args)
        assert result.dtype == np.int64
        np.testing.assert_array_equal(result, expected)


def test_float32_function():
    f = function(lambda x: x * 2.5 + 1.0, av.Arg(3, np.float32))
    for x in (np.array([1.0, 2.0, 3.0], np.float32), [1.0, 2.0, 3.0], np.array([1, 2, 3])):
        result = f(x)
        assert result.dtype == np.float32
        np.testing.assert_array_equal(result, np.array([3.5, 6.0, 8.5], np.float32))


def test_results_are_fresh_arrays():
    f = function(lambda x: x + 1.0, av.Arg(3))
    x = np.zeros(3)
    a, b = f(x), f(x)
    assert a is not b and not np.shares_memory(a, b) and not np.shares_memory(a, x)
    assert a.flags.owndata or a.base is None or a.flags.writeable


def test_zero_size_arguments_and_results():
    f = function(lambda x: (x * 2.0, x.sum()), av.Arg((0, 3)))
    a, s = f(np.zeros((0, 3)))
    assert a.shape == (0, 3) and s == 0.0


def test_native_entry_point():
    f = affine()
    assert_affine(f.native(X, Y))
    assert_affine(f.native(X.tolist(), Y))


# ---- bad arguments -------------------------------------------------------------------------------
@pytest.mark.parametrize("args, exception, match", [
    ((np.zeros((3, 5)), Y), ValueError, r"'x'.*shape \(3, 4\).*\(3, 5\)"),
    ((X, np.zeros(3)), ValueError, r"'y'.*shape \(4,\).*\(3,\)"),
    ((X.ravel(), Y), ValueError, r"'x'.*shape"),
    ((X, Y.reshape(1, 4)), ValueError, r"'y'.*shape"),
    ((X + 1j, Y), TypeError, r"'x'.*dtype"),
    ((X, Y.astype(np.complex64)), TypeError, r"'y'.*dtype"),
    (("abc", Y), TypeError, "'x'"),
    ((X, None), TypeError, "'y'"),
    ((X, [1.0, 2.0, "a", 3.0]), TypeError, "'y'"),
    ((X, [1.0, [2.0], 3.0, 4.0]), TypeError, "'y'"),
    ((X.astype(object), Y), TypeError, "'x'"),
    ((X.astype("datetime64[s]"), Y), TypeError, "'x'"),
    ((X,), TypeError, r"takes 2 arguments \(x, y\), missing y"),
    ((), TypeError, "takes 2 arguments"),
    ((X, Y, X, Y), TypeError, "takes 2 arguments"),
])
def test_bad_arguments(args, exception, match):
    f = function(lambda x, y: x * y, av.Arg((3, 4)), av.Arg(4))
    with pytest.raises(exception, match=match):
        f(*args)


def test_float_into_an_int_argument_is_refused():
    f = function(lambda i: i * 2, av.Arg(3, np.int64))
    with pytest.raises(TypeError, match=r"'i'.*int64"):
        f(np.array([1.5, 2.0, 3.0]))


def test_extra_positional_arguments_are_refused_and_never_written():
    """scipy.optimize passes `args=` positionally: jac(x, p) must not write the gradient into p."""
    f = function(lambda x, y: x * y, av.Arg((3, 4)), av.Arg(4))
    out, before = np.zeros((3, 4)), np.zeros((3, 4))
    with pytest.raises(TypeError, match=r"takes 2 arguments \(x, y\), got 3 positional.*out="):
        f(X, Y, out)
    np.testing.assert_array_equal(out, before)
    with pytest.raises(TypeError, match="got 3 positional"):
        f.native(X, Y, out)
    np.testing.assert_array_equal(out, before)


def test_scipy_args_are_not_overwritten():
    """The integration that broke: minimize(fun, x0, jac=gradient(c), args=(p,)) with a
    one-input c calls jac(x, p), which wrote the gradient into p."""
    from scipy.optimize import minimize
    p = np.array([1.0, -2.0, 3.0])
    kept = p.copy()
    c = function(lambda x: ((x - kept) ** 2).sum(), av.Arg(3), name="c")
    with pytest.raises(TypeError, match="positional"):
        minimize(lambda x, p: c(x), np.zeros(3), jac=gradient(c), args=(p,), method="BFGS")
    np.testing.assert_array_equal(p, kept)
    c2 = function(lambda x, p: ((x - p) ** 2).sum(), av.Arg(3), av.Arg(3), name="c2")
    result = minimize(c2, np.zeros(3), jac=gradient(c2), args=(p,), method="BFGS")
    np.testing.assert_allclose(result.x, kept, atol=1e-6)
    np.testing.assert_array_equal(p, kept)


def test_inputs_by_keyword():
    f = function(lambda x, y: x * y, av.Arg((3, 4)), av.Arg(4))
    np.testing.assert_array_equal(f(y=Y, x=X), X * Y)
    np.testing.assert_array_equal(f(X, y=Y), X * Y)
    out = np.empty((3, 4))
    assert f(X, y=Y, out=out) is out
    np.testing.assert_array_equal(out, X * Y)
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        f(X, x=X)
    with pytest.raises(TypeError, match=r"missing y"):
        f(x=X)


def test_masked_arrays_are_refused():
    f = affine()
    masked = np.ma.masked_array(X, mask=X > 0)
    with pytest.raises(TypeError, match="'x'.*masked"):
        f(masked, Y)


# ---- out= -------------------------------------------------------------------------------------
def test_out_single_output():
    f = function(lambda x: x * 2.0, av.Arg((2, 3)))
    x = np.arange(6.0).reshape(2, 3)
    out = np.full((2, 3), np.nan)
    assert f(x, out=out) is out
    np.testing.assert_array_equal(out, x * 2)
    out2 = np.full((2, 3), np.nan)
    assert f(x, out=(out2,)) is out2
    assert f(x.tolist(), out=out) is out


def test_out_several_outputs():
    f = affine()
    a, b = np.empty((3, 4)), np.empty(4)
    result = f(X, Y, out=(a, b))
    assert result[0] is a and result[1] is b
    assert_affine(result)
    c, d = np.empty((3, 4)), np.empty(4)
    result = f(X.tolist(), Y, out=[c, d])
    assert result[0] is c and result[1] is d


def test_out_for_bool_and_int_outputs():
    f = function(lambda x: (x > 0, (x > 0).sum()), av.Arg(4))
    a, b = np.zeros(4, dtype=bool), np.zeros((), dtype=np.int64)
    f(Y, out=(a, b))
    np.testing.assert_array_equal(a, Y > 0)
    assert b == 3


@pytest.mark.parametrize("make_out, exception, match", [
    (lambda: np.empty((4, 3)), ValueError, "shape"),
    (lambda: np.empty((3, 4), dtype=np.float32), ValueError, "dtype"),
    (lambda: np.empty((3, 4), dtype=">f8"), ValueError, "C-contiguous|byte|dtype"),
    (lambda: np.empty((4, 3)).T, ValueError, "C-contiguous"),
    (lambda: np.empty((3, 8))[:, ::2], ValueError, "C-contiguous"),
    (lambda: np.empty((3, 4)).tolist(), TypeError, "ndarray|out must hold 1"),
    (lambda: np.empty((3, 4)).view(Subclass), TypeError, "ndarray"),
])
def test_bad_out(make_out, exception, match):
    f = function(lambda x: x * 2.0, av.Arg((3, 4)))
    with pytest.raises(exception, match=match) as info:
        f(X, out=make_out())
    assert "out" in str(info.value)


def test_read_only_out():
    f = function(lambda x: x * 2.0, av.Arg((3, 4)))
    out = np.empty((3, 4))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        f(X, out=out)


def test_out_of_the_wrong_count():
    f = affine()
    with pytest.raises(TypeError, match="out must hold 2"):
        f(X, Y, out=np.empty((3, 4)))
    with pytest.raises(TypeError, match="out must hold 2"):
        f(X, Y, out=(np.empty((3, 4)), np.empty(4), np.empty(4)))


def test_out_aliasing_an_input():
    f = function(lambda x: x[::-1] * 2.0, av.Arg(6))
    base = np.arange(12.0)
    x = base[:6]
    for out in (x, x[:], base[3:9], base[5:11]):        # whole and partial overlaps
        with pytest.raises(ValueError, match="overlaps"):
            f(x, out=out)
    np.testing.assert_array_equal(base, np.arange(12.0))
    out = base[6:]                                      # adjacent, not overlapping
    assert f(x, out=out) is out
    np.testing.assert_array_equal(base, np.concatenate([np.arange(6.0), np.arange(6.0)[::-1] * 2]))


def test_outputs_aliasing_each_other():
    f = function(lambda x: (x + 1.0, x * 2.0), av.Arg(4))
    out = np.empty(4)
    with pytest.raises(ValueError, match="overlaps"):
        f(Y, out=(out, out))


def test_out_overlapping_a_converted_input_is_fine():
    """A converted input is a private copy, so an out array may be the caller's original."""
    f = function(lambda x: x * 2.0, av.Arg(4, np.float32))
    x = np.arange(4.0)        # float64: converted to a fresh float32 array
    out = np.empty(4, np.float32)
    f(x, out=out)
    np.testing.assert_array_equal(out, np.arange(4.0) * 2)


# ---- threads -------------------------------------------------------------------------------------
def test_functions_of_one_code_share_its_workspace_and_busy_flag():
    """Each unpickling makes a new function object (Dask does it for every task): the loaded
    objects of one compiled code share its workspace (allocated and touched once) and the busy
    flag that keeps two calls from using it at once; calls alternating between two such objects
    from four threads, the GIL released, all give the single-threaded results."""
    import pickle
    n = 60_000
    f = function(lambda x, y: (anp.cumsum((x * y).sin())[::-1] * x, (x * y).sum()),
                 av.Arg(n), av.Arg(n), name="shared_work")
    blob = pickle.dumps(f)
    one, twin = pickle.loads(blob), pickle.loads(blob)
    table = one.native.__self__[1]          # [address, work bytes, release, busy, workspace]
    assert table[1] > callpath.STACK_WORK_LIMIT and table[2] == 1
    assert twin.native.__self__[1] is table
    rng = np.random.default_rng(5)
    inputs = [(rng.standard_normal(n), rng.standard_normal(n)) for _ in range(4)]
    expected = [f(x, y)[0] for x, y in inputs]
    for (x, y), want in zip(inputs, expected):
        np.testing.assert_allclose(want, np.cumsum(np.sin(x * y))[::-1] * x, rtol=1e-9,
                                   atol=1e-9)

    def work(k):
        x, y = inputs[k]
        failures = []
        for i in range(100):
            got = (one if (i + k) % 2 else twin)(x, y)[0]
            if not np.array_equal(got, expected[k]):
                failures.append(i)
        return failures
    assert run_in_threads(work) == [[]] * 4


@pytest.mark.parametrize("n", [8, 40_000], ids=["small", "gil-released"])
def test_concurrent_calls(n):
    f = function(lambda x, y: ((x * y).sin() + x, (x * y).sum()), av.Arg(n), av.Arg(n))
    table = f.native.__self__[1]            # [address, work bytes, release, busy, workspace]
    assert table[2] == (n >= callpath.GIL_RELEASE_WORK)
    rng = np.random.default_rng(n)
    inputs = [(rng.standard_normal(n), rng.standard_normal(n)) for _ in range(4)]
    expected = [f(x, y) for x, y in inputs]

    def work(k):
        x, y = inputs[k]
        out = (np.empty(n), np.empty(()))
        failures = []
        for i in range(200):
            result = f(x, y) if i % 2 else f(x, y, out=out)
            if not (np.array_equal(result[0], expected[k][0])
                    and result[1] == expected[k][1]):
                failures.append(i)
        return failures
    assert run_in_threads(work) == [[]] * 4
    for (x, y), (a, s) in zip(inputs, expected):
        np.testing.assert_allclose(a, np.sin(x * y) + x, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(s, (x * y).sum(), rtol=1e-12, atol=1e-12 * n)


def test_concurrent_first_calls_compile_once():
    f = function(lambda x: x.exp().sum(), av.Arg(50), name="first_call")
    x = np.linspace(0, 1, 50)
    results = run_in_threads(lambda k: float(f(x)))
    assert len(set(results)) == 1


def test_concurrent_compilation_of_different_functions():
    def work(k):
        for i in range(8):
            c = k + i / 10
            f = function(lambda x, c=c: (x * c).sin().sum() + x, av.Arg(7), name=f"f{k}_{i}")
            x = np.linspace(0.0, 1.0, 7)
            np.testing.assert_allclose(f(x), np.sin(x * c).sum() + x, rtol=1e-13, atol=1e-15)
    run_in_threads(work)


# ---- lifetime ------------------------------------------------------------------------------------
def test_dropping_a_compiled_function_is_safe():
    """The entry point's PyMethodDef must outlive the builtin function object that points to it,
    which the garbage collector frees at some later time. Refilling freed 32-byte blocks with
    0xFF bytes (under PYTHONMALLOC=debug, which hands them out again at once) makes a premature
    free crash here deterministically."""
    script = textwrap.dedent("""
        import ctypes, gc
        import numpy as np
        import anvil_llvm as av
        for i in range(3):
            f = av.NumericalFunction("f", lambda x: x + float(i), (av.Arg(3),))
            f(np.ones(3))
            del f
            junk = [(ctypes.c_char * 32).from_buffer_copy(b"\\xff" * 32) for _ in range(10000)]
            gc.collect()
        print("ok")
    """)
    env = dict(os.environ, PYTHONMALLOC="debug")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


FIRST_CALLS_AT_ONCE = textwrap.dedent("""
    import threading
    import numpy as np
    import anvil_llvm as av
    from anvil_llvm.backend import callpath

    checks = []
    original = callpath.self_check
    callpath.self_check = lambda: checks.append(1) or original()
    barrier = threading.Barrier(8)

    def first(t):
        f = av.NumericalFunction(f"first{t}", lambda x: (x * (t + 1.0)).sum(), (av.Arg(t + 2),))
        barrier.wait()
        assert float(f(np.ones(t + 2))) == (t + 2) * (t + 1.0)

    threads = [threading.Thread(target=first, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(len(checks))
""")


def test_first_calls_from_several_threads_at_once():
    """The process-wide set-up (NumPy's C API cell that entry points read) happens once, even
    when threads compile their first functions together: a second cell made by a racing
    thread freed the first, which code loaded in between read as NULL (a crash)."""
    env = dict(os.environ, ANVIL_LLVM_NO_CACHE="1")
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", FIRST_CALLS_AT_ONCE], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "1", "the set-up ran more than once"
