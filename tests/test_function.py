"""NumericalFunction behaviour around compilation (independent of the op tests)."""
import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm.ad import gradient


def test_derivative_of_a_function_already_called_is_its_own_function():
    cost = av.NumericalFunction("cost_called", lambda x: (x * x).sum(), (av.Arg(3),))
    x = np.array([1.0, 2.0, 3.0])
    assert float(cost(x)) == float(np.sum(x * x))
    grad = gradient(cost)
    np.testing.assert_array_equal(grad(x), 2 * x)
    np.testing.assert_array_equal(grad(x), grad.native(x))
    assert float(cost(x)) == 14.0


def test_compiled_call_and_native_entry_agree_and_out_is_returned():
    f = av.NumericalFunction("twice_plus", lambda x, y: 2 * x + y, (av.Arg(4), av.Arg(4)))
    x, y = np.arange(4.0), np.ones(4)
    out = np.empty(4)
    assert f(x, y, out=out) is out
    np.testing.assert_array_equal(out, 2 * x + y)
    np.testing.assert_array_equal(f.native(x, y), 2 * x + y)


# ---- composition: a NumericalFunction called inside another trace is inlined ------------------
def test_function_called_on_tensors_is_inlined_and_differentiated():
    inner = av.NumericalFunction("sensor", lambda x, w: av.tanh(w * x).sum(),
                                 (av.Arg(3), av.Arg(())))
    x = np.array([0.3, -1.2, 0.7])
    for compiled_first in (False, True):
        if compiled_first:
            inner.compile()
        outer = av.NumericalFunction(
            "model", lambda x: inner(x, 2.0) * inner(w=0.5, x=x[::-1] * x), (av.Arg(3),))
        a, b = np.tanh(2.0 * x).sum(), np.tanh(0.5 * x[::-1] * x).sum()
        np.testing.assert_allclose(outer(x), a * b, rtol=1e-14)
        expected = (2.0 * (1 - np.tanh(2.0 * x) ** 2) * b
                    + a * 0.5 * (1 - np.tanh(0.5 * x[::-1] * x) ** 2) * 2 * x[::-1])
        np.testing.assert_allclose(gradient(outer)(x), expected, rtol=1e-13)


def test_inlined_call_checks_its_arguments():
    inner = av.NumericalFunction("inner", lambda x: x * 2.0, (av.Arg(3),))
    with pytest.raises(ValueError, match=r"inner\(\): argument 'x' must have shape \(3,\)"):
        av.NumericalFunction("outer", lambda x: inner(x[:2]), (av.Arg(3),))
    with pytest.raises(TypeError, match="out= cannot be used while tracing"):
        av.NumericalFunction("outer", lambda x: inner(x, out=np.empty(3)), (av.Arg(3),))
    counts = av.NumericalFunction("counts", lambda n: n + 1, (av.Arg(3, np.int64),))
    with pytest.raises(TypeError, match="argument 'n' must have dtype int64"):
        av.NumericalFunction("outer", lambda x: counts(x), (av.Arg(3),))


def test_several_outputs_inline_as_a_tuple():
    pair = av.NumericalFunction("pair", lambda x: (x.sum(), x * x), (av.Arg(2),))
    outer = av.NumericalFunction("outer", lambda x: pair(x)[0] + pair(x)[1], (av.Arg(2),))
    x = np.array([1.5, -2.0])
    np.testing.assert_array_equal(outer(x), x.sum() + x * x)


# ---- arguments and their dtypes ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint64, np.int32, np.int8, np.uint8, np.float16,
                                   np.complex128])
def test_unsupported_argument_dtypes_are_refused(dtype):
    with pytest.raises(TypeError, match=r"float64, float32, int64 or bool.*" +
                       np.dtype(dtype).name):
        av.Arg(1, dtype=dtype)


@pytest.mark.parametrize("value", [np.uint64(2**63 + 5), 2**63, np.array([2**64 - 1],
                                                                         np.uint64)[0]])
def test_int_arguments_never_wrap(value):
    inc = av.NumericalFunction("inc", lambda n: n + 1, (av.Arg((), np.int64),))
    with pytest.raises(ValueError, match="'n'.*outside the range of int64"):
        inc(value)


def test_int_arguments_take_values_they_hold():
    inc = av.NumericalFunction("inc", lambda n: n + 1, (av.Arg(3, np.int64),))
    values = np.array([2**63 - 2, 0, 7], np.uint64)
    np.testing.assert_array_equal(inc(values), values.astype(np.int64) + 1)
    np.testing.assert_array_equal(inc(np.array([-128, 5, 127], np.int8)), [-127, 6, 128])
    with pytest.raises(TypeError, match="'n'.*int64.*float64"):
        inc(np.array([1.0, 2.0, 3.0]))


def test_float32_argument_rounds_but_does_not_overflow():
    f = av.NumericalFunction("f32", lambda x: x * 1.0, (av.Arg(2, np.float32),))
    np.testing.assert_array_equal(f([0.1, 2.0]), np.array([0.1, 2.0], np.float32))
    with pytest.raises(ValueError, match="'x'.*beyond the range of float32"):
        f([1.0, 1e39])
    assert np.isinf(f([np.inf, 1.0])[0])                 # an infinity stays one


@pytest.mark.parametrize("shape", [(2**63,), (2**40, 2**40), (2**46,)])
def test_shapes_too_large_to_address_are_refused_at_once(shape):
    with pytest.raises(ValueError, match="too large"):
        av.Arg(shape)


def test_argument_names_must_differ():
    with pytest.raises(ValueError, match="names must differ, a given twice"):
        av.NumericalFunction("h", lambda x, y: x + y, (av.Arg(3, name="a"), av.Arg(3, name="a")))


def test_a_tuple_of_ints_as_args_is_ambiguous():
    with pytest.raises(TypeError, match=r"ambiguous.*av.Arg\(\(3, 4\)\)"):
        av.NumericalFunction("h", lambda x, y: x, (3, 4))
    one = av.numerical_function("one", (3, 4))(lambda x: x.sum())
    two = av.numerical_function("two", 3, 4)(lambda x, y: x.sum() + y.sum())
    assert [a.shape for a in one.args] == [(3, 4)]
    assert [a.shape for a in two.args] == [(3,), (4,)]


def test_subclass_with_its_own_call_keeps_it():
    class Logged(av.NumericalFunction):
        calls = 0

        def __call__(self, *args, **kwargs):
            Logged.calls += 1
            return super().__call__(*args, **kwargs)
    f = Logged("logged", lambda x: x * 3.0, (av.Arg(2),)).compile()
    np.testing.assert_array_equal(f(np.array([1.0, 2.0])), [3.0, 6.0])
    assert Logged.calls == 1 and type(f) is Logged
