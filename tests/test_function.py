"""NumericalFunction behaviour around compilation (independent of the op tests)."""
import numpy as np

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
