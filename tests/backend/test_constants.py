"""Large captured arrays are shared by all JIT code of the process (one copy, referenced by a
symbol named after the content) instead of embedded in every function's object code."""
import numpy as np

import anvil_llvm as av
from anvil_llvm.ad import gradient
from anvil_llvm.backend import constants
from anvil_llvm.backend.target import SHARED_CONSTANTS, Target
from anvil_llvm.ir.uop import Payload

RNG = np.random.default_rng(11)


def test_a_large_constant_is_shared_by_a_function_and_its_derivatives():
    A = RNG.standard_normal((400, 300))
    assert A.nbytes >= SHARED_CONSTANTS
    f = av.NumericalFunction("fit", lambda x: (av.tanh(A @ x) ** 2).sum(), (av.Arg(300),))
    g = gradient(f)
    x = np.linspace(-0.01, 0.01, 300)
    y = np.tanh(A @ x)
    np.testing.assert_allclose(f(x), (y ** 2).sum(), rtol=1e-13)
    np.testing.assert_allclose(g(x), A.T @ (2 * y * (1 - y ** 2)), rtol=1e-11, atol=1e-14)
    for fn in (f, g):
        ir = fn.lowered().ir
        assert len(ir) < A.nbytes / 10, "the matrix is not embedded"
        assert ir.count("external global") >= 1
    shared = [line.split(" =")[0] for line in f.lowered().ir.splitlines()
              if "external global" in line and "anvil.const." in line]
    assert shared and all(s in g.lowered().ir for s in shared)


def test_small_constants_stay_embedded():
    c = np.arange(1.0, 9.0)
    f = av.NumericalFunction("small", lambda x: (x * c).sum(), (av.Arg(8),))
    assert "anvil.const." not in f.lowered().ir
    assert float(f(np.ones(8))) == c.sum()


def test_shared_bool_and_int_constants_read_right():
    mask = RNG.random(70_000) > 0.5
    k = RNG.integers(-5, 5, 70_000)
    f = av.NumericalFunction("masked", lambda x: av.where(mask, x * k, -x).sum(), (av.Arg(70_000),))
    assert f.lowered().ir.count("anvil.const.") >= 2
    x = RNG.standard_normal(70_000)
    np.testing.assert_allclose(f(x), np.where(mask, x * k, -x).sum(), rtol=1e-12)


def test_one_copy_per_content():
    B = RNG.standard_normal((100, 100))
    f1 = av.NumericalFunction("u1", lambda x: (B @ x).sum(), (av.Arg(100),))
    f2 = av.NumericalFunction("u2", lambda x: (B.copy() @ x).max(), (av.Arg(100),))
    x = np.ones(100)
    np.testing.assert_allclose([f1(x), f2(x)], [(B @ x).sum(), (B @ x).max()], rtol=1e-13)
    name = constants.symbol(Payload(B))
    assert f"@{name}" in f1.lowered().ir and f"@{name}" in f2.lowered().ir
    copy = constants._arrays[name]
    assert copy.ctypes.data % 64 == 0
    np.testing.assert_array_equal(copy.view(np.float64).reshape(B.shape), B)


def test_objects_for_linking_embed_every_constant():
    A = RNG.standard_normal((300, 300))
    f = av.NumericalFunction("linked", lambda x: (A @ x).sum(), (av.Arg(300),))
    ir = f.lowered(Target.object()).ir
    assert "anvil.const." not in ir and "private unnamed_addr constant" in ir
