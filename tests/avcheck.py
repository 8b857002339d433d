"""Shared test helpers: trace a function once, run it compiled, through the NumPy reference
interpreter and through NumPy itself, and compare with the tolerance the op deserves.

Importable from any test file as `avcheck`: the rootdir conftest puts `tests/` on sys.path.

Most checks take an `op(m, *xs)` written once for both array libraries: it is traced with
`m = anvil_llvm` on tensors and evaluated with `m = numpy` on the same arrays, so the NumPy
result is the expectation and the interpreter is the oracle of the graph itself.
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import anvil_llvm as av
from anvil_llvm.ir.interpret import evaluate


def fast(max_examples: int = 30):
    """Hypothesis settings for properties that compile a new function per example (~25 ms).

    ANVIL_TEST_EXAMPLES_SCALE=10 runs ten times as many examples (a deeper local search)."""
    scale = float(os.environ.get("ANVIL_TEST_EXAMPLES_SCALE", "1"))
    return settings(max_examples=max(1, int(max_examples * scale)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@dataclass(frozen=True)
class Tol:
    """assert_allclose tolerances; `None` in place of a Tol means bit-for-bit."""

    rtol: float
    atol: float = 0.0


# Transcendentals: LLVM calls glibc's libm (or its libmvec vector variants, <= 4 ulp), NumPy its
# own SIMD kernels or libm; each is within a few ulp of the exact value, so they may differ by up
# to about 8 ulp = 8 * 2.2e-16 relative; 1e-14 leaves room without hiding a wrong formula, and
# atol covers results near a zero of the function (sin near pi), where relative error is
# meaningless. float32 kernels differ by a few float32 ulp (1.2e-7).
ULP64 = Tol(1e-14, 1e-15)
# Exact values, but either sign of zero: NumPy's own maximum/minimum give -0.0 or 0.0 for a pair
# of zeros depending on its SIMD path and the array length.
SIGNLESS = Tol(0.0, 0.0)
ULP32 = Tol(4e-6, 1e-6)


def ulp_tol(dtype) -> Tol:
    return ULP32 if np.dtype(dtype) == np.float32 else ULP64


def as_list(result) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def assert_same(actual, expected, what: str = "") -> None:
    """Same dtype, shape and values bit for bit (NaN matches NaN; -0.0 does not match 0.0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_array_equal(actual, expected, err_msg=what, strict=True)
    if actual.dtype.kind == "f":
        numbers = ~np.isnan(expected)
        np.testing.assert_array_equal(np.signbit(actual[numbers]), np.signbit(expected[numbers]),
                                      err_msg=f"{what}: signs of zero differ")


def assert_matches(actual, expected, tol: Tol | None, what: str = "") -> None:
    if tol is None:
        assert_same(actual, expected, what)
        return
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if actual.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, rtol=tol.rtol, atol=tol.atol, err_msg=what)


def arg_for(value) -> av.Arg:
    value = np.asarray(value)
    return av.Arg(value.shape, value.dtype)


def trace(op, *inputs, name: str = "f", reroll: bool = True) -> av.NumericalFunction:
    """`op(anvil_llvm, *tensors)` traced for the shapes and dtypes of `inputs`."""
    return av.NumericalFunction(name, lambda *xs: op(av, *xs), [arg_for(x) for x in inputs],
                                reroll=reroll)


def numpy_result(op, *inputs) -> list:
    """`op` on NumPy arrays; NaN and infinities are expected results here, not warnings."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # "Mean of empty slice"
        return [np.asarray(r) for r in as_list(op(np, *inputs))]


def unlike(value: np.ndarray) -> np.ndarray:
    """An array of `value`'s dtype and shape that differs from it at every element."""
    out = np.empty(value.shape, value.dtype)
    if value.dtype.kind == "f":
        out[...] = np.where(np.isnan(value), 0.0, np.nan)
    else:
        out[...] = ~value if value.dtype.kind == "b" else value + 1
    return out


def check_function(fn: av.NumericalFunction, inputs, expected, tol: Tol | None = None) -> list:
    """`fn` compiled and interpreted on `inputs` equals `expected` (a list, one per output).

    The compiled function runs twice: returning new arrays, and writing into `out=` arrays that
    first hold a different value everywhere (a fresh array may by chance hold the right bytes
    of an array just freed, which would hide an element that is never written)."""
    inputs = [np.asarray(x) for x in inputs]
    compiled = as_list(fn(*inputs))
    interpreted = evaluate(fn.outputs, inputs)
    assert len(compiled) == len(interpreted) == len(expected)
    outs = [unlike(i) for i in interpreted]
    fn(*inputs, out=tuple(outs))
    for j, (c, o, i, e) in enumerate(zip(compiled, outs, interpreted, expected)):
        assert_matches(i, e, tol, f"interpreter vs NumPy, output {j}")
        assert_matches(c, e, tol, f"compiled vs NumPy, output {j}")
        assert_matches(c, i, tol, f"compiled vs interpreter, output {j}")
        assert_matches(o, c, None, f"compiled into out= vs compiled, output {j}")
    return compiled


def check(op, *inputs, tol: Tol | None = None, numpy_op=None, reroll: bool = True) -> list:
    """Trace `op`, then compare compiled, interpreted and NumPy (`numpy_op` or `op`) results."""
    fn = trace(op, *inputs, reroll=reroll)
    return check_function(fn, inputs, numpy_result(numpy_op or op, *inputs), tol)


def run_in_threads(work, count: int = 4) -> list:
    """`work(k)` for k in range(count), each in its own thread, started together; their results
    in order. An exception in any thread is raised here (a thread alone would only print it)."""
    results, errors = [None] * count, []

    def run(k):
        try:
            results[k] = work(k)
        except BaseException as e:       # noqa: BLE001  reported in the calling thread
            errors.append(e)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# ---- strategies ---------------------------------------------------------------------------------
SPECIAL = (0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0)


def floats(lo: float = -100.0, hi: float = 100.0, special: bool = False, width: int = 64):
    if width == 32:     # the float32 numbers inside [lo, hi]
        lo, hi = (float(np.nextafter(np.float32(v), np.float32(inward))) if float(np.float32(v)) != v
                  else v for v, inward in ((lo, hi), (hi, lo)))
    values = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=width)
    return values | st.sampled_from(SPECIAL) if special else values


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def arrays(shape, dtype=np.float64, elements=None, **float_options):
    """Arrays of `dtype` (a NumPy dtype) and `shape` (a shape or a strategy of shapes)."""
    dtype = np.dtype(dtype)
    if elements is None:
        if dtype.kind == "f":
            elements = floats(width=8 * dtype.itemsize, **float_options)
        elif dtype.kind == "b":
            elements = st.booleans()
        else:
            elements = st.integers(-50, 50)
    return hnp.arrays(dtype, shape, elements=elements)


NUMERIC = (np.float64, np.float32, np.int64)
