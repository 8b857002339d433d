"""The loop primitives `av.fori_loop`, `av.scan` and `av.map` (JAX semantics): values, every
transform (jvp, vjp, gradient, jacobian in both modes, hessian, vmap) through them, errors, and
graphs that do not grow with the trip count.

Every model below is written once as `fn(L, m, *args)`: `L` holds the loops and `m` the array
library. Three versions run from the same code:

- `L = av, m = av`: the loop primitives under test, traced and compiled;
- `L = UNROLLED, m = av`: the spec's semantics as a plain Python loop over tensors, so tracing
  unrolls it into straight-line code of the same arithmetic (the reference of every transform);
- `L = NUMPY, m = np`: the same Python loop on NumPy arrays (the reference of values; on complex
  arrays, complex-step derivatives accurate to rounding).

Derivatives are checked against the unrolled function's (the same arithmetic: tight tolerance)
and against complex-step and 5-point finite differences of the NumPy version (independent of
anvil_llvm).
"""
from __future__ import annotations

import cmath
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from avcheck import as_list, fast
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_ad_rules import assert_close, difference_jacobian

import anvil_llvm as av
from anvil_llvm.ad import gradient, hessian, jacobian, jvp, vjp, vmap
from anvil_llvm.ir.uop import toposort
from anvil_llvm.tensor import as_tensor

SAME = 1e-12        # the same arithmetic, traced as a loop or unrolled (libm vs NumPy at most)
COMPLEX = 1e-10     # complex-step derivatives: exact up to rounding
FD = 1e-6           # 5-point central differences


# ---- the reference loops ------------------------------------------------------------------------
def tree_map(f, tree, *rest):
    """`f` on the leaves of nested tuples and lists (None stays None), keeping the containers."""
    if tree is None:
        return None
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(f, t, *(r[k] for r in rest)) for k, t in enumerate(tree))
    return f(tree, *rest)


def leaves(tree) -> list:
    if tree is None:
        return []
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in leaves(t)]
    return [tree]


class Unrolled:
    """fori_loop, scan and map as the spec defines them, written as Python loops: on tensors the
    trace unrolls them; on NumPy arrays they are the NumPy reference. `index(k)` makes the loop
    index (an int64 scalar), `stack(list)` stacks the ys."""

    def __init__(self, index: Callable, stack: Callable):
        self.index, self.stack = index, stack

    def fori_loop(self, lower, upper, body, init):
        carry = init
        for k in range(lower, upper):
            carry = body(self.index(k), carry)
        return carry

    def scan(self, body, init, xs=None, length=None, reverse=False):
        n = length if xs is None else len(leaves(xs)[0])
        assert n > 0, "the unrolled reference cannot give the shape of an empty ys"
        carry, ys = init, [None] * n
        for k in (range(n - 1, -1, -1) if reverse else range(n)):
            carry, ys[k] = body(carry, tree_map(lambda x, k=k: x[k], xs))
        if ys[0] is None:
            return carry, None
        return carry, tree_map(lambda *y: self.stack(list(y)), ys[0], *ys[1:])

    def map(self, body, xs):
        return self.scan(lambda carry, x: (carry, body(x)), (), xs)[1]


UNROLLED = Unrolled(lambda k: as_tensor(np.int64(k)), av.stack)
NUMPY = Unrolled(np.int64, np.stack)


# ---- models ---------------------------------------------------------------------------------------
DT, STEPS = 0.1, 5


def pendulum_rhs(m, s, t, p):
    """A damped, driven pendulum: s = (angle, velocity), p = (g/l, damping)."""
    return m.stack([s[1], -p[0] * m.sin(s[0]) - p[1] * s[1] + 0.5 * m.cos(t)])


def rk4_step(m, s, t, p):
    k1 = pendulum_rhs(m, s, t, p)
    k2 = pendulum_rhs(m, s + DT / 2 * k1, t + DT / 2, p)
    k3 = pendulum_rhs(m, s + DT / 2 * k2, t + DT / 2, p)
    k4 = pendulum_rhs(m, s + DT * k3, t + DT, p)
    return s + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def pendulum(L, m, s0, p):
    """STEPS RK4 steps; the body reads the loop index (the time) and the captured p."""
    return L.fori_loop(0, STEPS, lambda i, s: rk4_step(m, s, i * DT, p), s0)


def pendulum_energy(L, m, s0, p):
    s = pendulum(L, m, s0, p)
    return 0.5 * s[1] ** 2 + p[0] * (1 - m.cos(s[0]))


def mixed_body(m, carry, x):
    """A carry of three shapes, (2,), () and (3, 3), and two xs; two ys."""
    a, s, M = carry
    xa, ya = x
    a = m.sin(a * s) + xa
    s = 0.9 * s + 0.1 * (xa * a).sum() + 0.05 * (M @ ya).sum()
    M = 0.8 * M + 0.1 * m.tanh(ya[:, None] * ya[None, :]) * s
    return (a, s, M), (a * s, M @ ya)


def mixed_scan(L, m, a0, s0, M0, X, Y):
    (a, s, M), (ya, yM) = L.scan(lambda c, x: mixed_body(m, c, x), (a0, s0, M0), (X, Y))
    return a, s, M, ya, yM


def mixed_loss(L, m, *args):
    a, s, M, ya, yM = mixed_scan(L, m, *args)
    return a.sum() + s * s + (M * M).sum() + (ya * ya).sum() + m.sin(yM).sum()


def counter_body(m, i, carry):
    """Nested carry (x, [k, j]): x float64 (3,), k and j int64 counters."""
    x, (k, j) = carry
    return (x * 0.5 + m.sin(x) * (k * 0.25), [k + i, j + k * i])


def counter(L, m, x0, k0):
    return L.fori_loop(1, 6, lambda i, c: counter_body(m, i, c), (x0, [k0, k0 + 1]))


def counter_floats(L, m, x0, k0):
    """counter's float results (derivatives are taken of float outputs only)."""
    x, (k, j) = counter(L, m, x0, k0)
    return x, x * k + j


def counter_loss(L, m, x0, k0):
    x, y = counter_floats(L, m, x0, k0)
    return (x * y).sum()


GAMMA = 0.9


def returns(L, m, r, g0):
    """Discounted returns, G[t] = r[t] + GAMMA G[t + 1], G[T] = g0: a reverse scan."""
    def body(g, rt):
        g = rt + GAMMA * g
        return g, g
    return L.scan(body, g0, r, reverse=True)


def returns_closed_form(r, g0):
    T = len(r)
    G = np.array([sum(GAMMA ** (j - t) * r[j] for j in range(t, T)) + GAMMA ** (T - t) * g0
                  for t in range(T)])
    return G[0], G


def reverse_tanh(L, m, r, g0, w):
    """A nonlinear reverse scan with a captured weight w and two ys."""
    def body(g, rt):
        g = m.tanh(rt + w * g) + 0.1 * g * rt
        return g, (g * rt, g + w)
    g, (y1, y2) = L.scan(body, g0, r, reverse=True)
    return g, y1, y2


def reverse_tanh_loss(L, m, r, g0, w):
    g, y1, y2 = reverse_tanh(L, m, r, g0, w)
    return g * g + (y1 * y2).sum()


def nested(L, m, c0, X, p):
    """A scan over the rows of X whose body runs a fori_loop reading the row, the inner index,
    the outer carry and the captured p."""
    def outer(c, x):
        def inner(i, c):
            return c + 0.1 * m.sin(c[::-1] * p + i * 0.3) * x[0]
        c = L.fori_loop(0, 3, inner, c + x)
        return c, (c * x).sum()
    return L.scan(outer, c0, X)


def nested_loss(L, m, c0, X, p):
    c, ys = nested(L, m, c0, X, p)
    return (c * c).sum() + (ys * ys).sum()


def length_only(L, m, c0, p):
    """A scan without xs: `length` steps, the body gets x = None."""
    def body(c, x):
        assert x is None
        c = m.tanh(c * p) + 0.5 * c
        return c, c.sum()
    return L.scan(body, c0, None, length=4)


def length_loss(L, m, c0, p):
    c, ys = length_only(L, m, c0, p)
    return (c ** 3).sum() + (ys ** 2).sum()


def mapped(L, m, X, p):
    return L.map(lambda x: m.sin(x * p) * (x * x).sum(), X)


def mapped_loss(L, m, X, p):
    return (mapped(L, m, X, p) ** 2).sum()


@dataclass(frozen=True)
class Model:
    name: str
    fn: Callable                      # fn(L, m, *args) -> output(s)
    loss: Callable                    # loss(L, m, *args) -> a float scalar
    inputs: tuple                     # NumPy arrays, one per argument
    diff: tuple                       # the float arguments differentiated
    hess: tuple | None = None         # those of the Hessian test, if not all (compile time)

    @property
    def args(self):
        return tuple(av.Arg(np.shape(x), np.asarray(x).dtype) for x in self.inputs)


R = np.random.default_rng(2024)
MODELS = {model.name: model for model in [
    Model("pendulum", pendulum, pendulum_energy, (np.array([0.8, -0.3]), np.array([2.0, 0.15])),
          (0, 1)),
    Model("mixed_scan", mixed_scan, mixed_loss,
          (np.array([0.3, -0.6]), np.array(0.7), R.uniform(-0.5, 0.5, (3, 3)),
           R.uniform(-1, 1, (3, 2)), R.uniform(-1, 1, (3, 3))), (0, 1, 2, 3, 4), (1, 2, 3)),
    Model("counter", counter_floats, counter_loss, (np.array([0.5, -1.0, 1.5]), np.array(2)),
          (0,)),
    Model("reverse_tanh", reverse_tanh, reverse_tanh_loss,
          (R.uniform(-1, 1, 5), np.array(0.3), np.array(0.8)), (0, 1, 2)),
    Model("nested", nested, nested_loss,
          (np.array([0.2, -0.4]), R.uniform(-1, 1, (2, 2)), np.array([1.3, -0.7])), (0, 1, 2)),
    Model("length_only", length_only, length_loss,
          (np.array([0.4, -0.9, 0.1]), np.array([1.2, 0.5, -0.8])), (0, 1)),
    Model("map", mapped, mapped_loss, (R.uniform(-1, 1, (5, 3)), np.array([0.5, -1.5, 2.0])),
          (0, 1)),
]}
NAMES = list(MODELS)


@functools.cache
def traced(name: str, kind: str, loss: bool = False) -> av.NumericalFunction:
    """The model (or its loss) traced with the loop primitives (kind "loop") or unrolled."""
    model = MODELS[name]
    L = av if kind == "loop" else UNROLLED
    fn = model.loss if loss else model.fn
    return av.NumericalFunction(f"{name}_{kind}{'_loss' if loss else ''}",
                                lambda *xs: fn(L, av, *xs), model.args)


def pair(name: str, loss: bool = False):
    return traced(name, "loop", loss), traced(name, "unrolled", loss)


def numpy_outputs(name: str, *inputs, loss: bool = False) -> list:
    model = MODELS[name]
    fn = model.loss if loss else model.fn
    return [np.asarray(o) for o in as_list(fn(NUMPY, np, *inputs))]


def flat(result) -> list:
    """The arrays of a (nested) result, in order."""
    return [np.asarray(leaf) for leaf in leaves(result if isinstance(result, (tuple, list))
                                                else [result])]


def assert_all_close(actual, expected, rtol: float, what: str) -> None:
    actual, expected = flat(actual), flat(expected)
    assert len(actual) == len(expected), f"{what}: {len(actual)} results != {len(expected)}"
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == e.dtype, f"{what}, result {k}: dtype {a.dtype} != {e.dtype}"
        if a.dtype.kind in "iub":
            np.testing.assert_array_equal(a, e, err_msg=f"{what}, result {k}")
        else:
            assert_close(a, e, rtol, f"{what}, result {k}")


# ---- independent derivatives of the NumPy version -----------------------------------------------
def complex_step_jacobian(fn, inputs, a: int, h: float = 1e-30) -> np.ndarray:
    """d fn(*inputs) / d inputs[a], shaped output.shape + input.shape, by the complex step
    (`fn` returns one array; analytic in inputs[a])."""
    x = np.asarray(inputs[a], dtype=np.float64)
    columns = []
    for e in np.eye(x.size):
        xs = list(inputs)
        xs[a] = x + 1j * h * e.reshape(x.shape)
        columns.append(np.imag(np.asarray(fn(*xs))).ravel() / h)
    out_shape = np.shape(fn(*inputs))
    return np.stack(columns, axis=-1).reshape(out_shape + x.shape)


def finite_difference_jacobian(fn, inputs, a: int) -> np.ndarray:
    x = np.asarray(inputs[a], dtype=np.float64)

    def at(v):
        return np.ravel(fn(*inputs[:a], v, *inputs[a + 1:]))
    out_shape = np.shape(fn(*inputs))
    return difference_jacobian(at, x).reshape(out_shape + x.shape)


def reference_jacobians(name: str, jacobian_of=complex_step_jacobian) -> list[list]:
    """J[output][k], k over model.diff, of the NumPy version."""
    model = MODELS[name]
    outputs = numpy_outputs(name, *model.inputs)
    return [[jacobian_of(lambda *xs, j=j: numpy_outputs(name, *xs)[j], model.inputs, a)
             for a in model.diff] for j in range(len(outputs))]


def reference_gradients(name: str, jacobian_of=complex_step_jacobian) -> list:
    model = MODELS[name]
    return [jacobian_of(lambda *xs: numpy_outputs(name, *xs, loss=True)[0], model.inputs, a)
            for a in model.diff]


def output_count(name: str) -> int:
    return len(numpy_outputs(name, *MODELS[name].inputs))


def directions(name: str, seed: int = 0) -> list:
    """One random tangent per differentiated argument."""
    rng = np.random.default_rng(seed)
    model = MODELS[name]
    return [rng.uniform(-1, 1, np.shape(model.inputs[a])) for a in model.diff]


# ---- 1. values ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_values_match_the_unrolled_loop_and_numpy(name):
    loop, unrolled = pair(name)
    inputs = MODELS[name].inputs
    result = loop(*inputs)
    assert_all_close(result, unrolled(*inputs), SAME, "loop vs unrolled")
    assert_all_close(result, numpy_outputs(name, *inputs), SAME, "loop vs NumPy")
    loss_loop, loss_unrolled = pair(name, loss=True)
    assert_all_close(loss_loop(*inputs), loss_unrolled(*inputs), SAME, "loss, loop vs unrolled")


@fast(25)
@given(s0=hnp.arrays(np.float64, 2, elements=st.floats(-2, 2)),
       p=hnp.arrays(np.float64, 2, elements=st.floats(0, 3)))
def test_rk4_pendulum_for_any_state_and_parameter(s0, p):
    """One compiled function, many values: against NumPy's RK4 and a plain float loop."""
    result = traced("pendulum", "loop")(s0, p)
    np.testing.assert_allclose(result, numpy_outputs("pendulum", s0, p)[0], rtol=SAME, atol=SAME)
    def rhs(s, t):
        return [s[1], -p[0] * math.sin(s[0]) - p[1] * s[1] + 0.5 * math.cos(t)]
    s = [float(s0[0]), float(s0[1])]
    for i in range(STEPS):        # the same scheme on Python floats
        t = i * DT
        k1 = rhs(s, t)
        k2 = rhs([s[n] + DT / 2 * k1[n] for n in (0, 1)], t + DT / 2)
        k3 = rhs([s[n] + DT / 2 * k2[n] for n in (0, 1)], t + DT / 2)
        k4 = rhs([s[n] + DT * k3[n] for n in (0, 1)], t + DT)
        s = [s[n] + DT / 6 * (k1[n] + 2 * k2[n] + 2 * k3[n] + k4[n]) for n in (0, 1)]
    np.testing.assert_allclose(result, s, rtol=1e-11, atol=1e-12)


@functools.cache
def bounded(lower: int, upper: int) -> av.NumericalFunction:
    def body(i, c):
        x, k = c
        return x * av.cos(i * 0.7) + i * 0.5, k * 2 + i
    return av.NumericalFunction(f"bounded_{lower + 10}_{upper + 10}",
                                lambda x, k: av.fori_loop(lower, upper, body, (x, k)),
                                (av.Arg(2), av.Arg((), av.int64)))


@fast(15)
@given(lower=st.integers(-3, 5), upper=st.integers(-3, 6))
def test_fori_loop_bounds(lower, upper):
    """Any bounds, negative ones, one trip and none (upper <= lower: the init, unchanged)."""
    x0, k0 = np.array([0.25, -1.5]), np.array(3)
    x, k = bounded(lower, upper)(x0, k0)
    ex, ek = x0.copy(), np.int64(k0)
    for i in range(lower, upper):
        ex, ek = ex * np.cos(i * 0.7) + i * 0.5, ek * 2 + i
    assert k.dtype == np.int64 and k == ek
    if upper <= lower:
        np.testing.assert_array_equal(x, x0)
    else:
        np.testing.assert_allclose(x, ex, rtol=SAME, atol=SAME)


def test_fori_loop_with_numpy_integer_bounds():
    f = av.NumericalFunction(
        "f", lambda x: av.fori_loop(np.int64(2), np.int32(5), lambda i, c: c * i, x),
        (av.Arg(3),))
    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_array_equal(f(x), x * 2 * 3 * 4)


def test_zero_trip_loops_return_the_init():
    def zero(x, k):
        a = av.fori_loop(3, 3, lambda i, c: (c[0] * 2.0, c[1] + i), (x, k))
        b = av.fori_loop(5, 2, lambda i, c: c * 2.0, x)
        c, ys = av.scan(lambda c, x: (c + x.sum(), (c * x, x)), x[0], x[None, :][:0])
        d, zs = av.scan(lambda c, _: (c * 2.0, c), x, length=0)
        assert isinstance(a, tuple) and len(a) == 2
        assert isinstance(ys, tuple) and len(ys) == 2
        return a[0], a[1], b, c, ys[0], ys[1], d, zs
    f = av.NumericalFunction("zero", zero, (av.Arg(3), av.Arg((), av.int64)))
    x, k = np.array([0.5, -1.0, 2.0]), np.array(7)
    a0, a1, b, c, y0, y1, d, zs = f(x, k)
    np.testing.assert_array_equal(a0, x)
    assert a1.dtype == np.int64 and a1 == 7
    np.testing.assert_array_equal(b, x)
    np.testing.assert_array_equal(c, x[0])
    assert y0.shape == (0, 3) and y1.shape == (0, 3) and y0.dtype == np.float64
    np.testing.assert_array_equal(d, x)
    assert zs.shape == (0, 3)


def test_one_trip_loops_apply_the_body_once():
    def one(x, X):
        a = av.fori_loop(4, 5, lambda i, c: av.sin(c) * i, x)
        c, ys = av.scan(lambda c, r: (c * r + 1.0, av.exp(r) * c), x, X)
        r = av.map(lambda r: r[::-1] * 2.0, X)
        return a, c, ys, r
    f = av.NumericalFunction("one", one, (av.Arg(3), av.Arg((1, 3))))
    x, X = np.array([0.5, -1.0, 2.0]), np.array([[0.3, 0.2, -0.1]])
    a, c, ys, r = f(x, X)
    np.testing.assert_allclose(a, np.sin(x) * 4, rtol=SAME)
    np.testing.assert_allclose(c, x * X[0] + 1.0, rtol=SAME)
    assert ys.shape == (1, 3)
    np.testing.assert_allclose(ys[0], np.exp(X[0]) * x, rtol=SAME)
    np.testing.assert_array_equal(r, X[:, ::-1] * 2.0)


def test_scan_with_a_tuple_carry_of_three_shapes_and_two_xs():
    """The structure of the results: carry (a, s, M) and ys (a * s, M @ y) stacked along a new
    leading axis of length len(xs); values as the NumPy loop."""
    model = MODELS["mixed_scan"]

    def fn(*args):
        carry, ys = av.scan(lambda c, x: mixed_body(av, c, x), tuple(args[:3]), tuple(args[3:]))
        assert isinstance(carry, tuple) and len(carry) == 3
        assert isinstance(ys, tuple) and len(ys) == 2
        assert [t.shape for t in carry] == [(2,), (), (3, 3)]
        assert [t.shape for t in ys] == [(3, 2), (3, 3)]
        return (*carry, *ys)
    f = av.NumericalFunction("mixed", fn, model.args)
    result = f(*model.inputs)
    assert [r.shape for r in result] == [(2,), (), (3, 3), (3, 2), (3, 3)]
    assert_all_close(result, numpy_outputs("mixed_scan", *model.inputs), SAME, "vs NumPy")


@fast(10)
@given(data=st.data())
def test_mixed_scan_for_any_values(data):
    model = MODELS["mixed_scan"]
    inputs = [data.draw(hnp.arrays(np.float64, np.shape(x), elements=st.floats(-1, 1)))
              for x in model.inputs]
    assert_all_close(traced("mixed_scan", "loop")(*inputs), numpy_outputs("mixed_scan", *inputs),
                     SAME, "vs NumPy")


def test_int64_counters_in_a_nested_carry():
    """(x, [k, j]): the ints stay int64 and exact, the containers keep their types."""
    def fn(x0, k0):
        x, kj = counter(av, av, x0, k0)
        assert isinstance(kj, list) and len(kj) == 2
        assert kj[0].dtype == av.int64 and kj[1].dtype == av.int64 and x.dtype == av.float64
        return x, kj[0], kj[1]
    f = av.NumericalFunction("counter", fn, MODELS["counter"].args)
    x0, k0 = MODELS["counter"].inputs
    x, k, j = f(x0, k0)
    ex, (ek, ej) = counter(NUMPY, np, x0, k0)
    assert k.dtype == j.dtype == np.int64
    assert (k, j) == (ek, ej) == (2 + 1 + 2 + 3 + 4 + 5, 3 + sum(
        (2 + sum(range(1, i))) * i for i in range(1, 6)))
    np.testing.assert_allclose(x, ex, rtol=SAME)


def test_int64_carry_with_large_values_is_exact():
    """An int64 carry beyond 2**53 is not rounded through float64."""
    f = av.NumericalFunction("big", lambda k: av.fori_loop(0, 4, lambda i, c: c * 3 + i, k),
                             (av.Arg((), av.int64),))
    k = 2**55 + 1
    expected = k
    for i in range(4):
        expected = expected * 3 + i
    assert expected < 2**63 and expected != int(float(expected))
    result = f(np.array(k))
    assert result.dtype == np.int64 and int(result) == expected


def test_reverse_scan_is_discounted_returns():
    f = av.NumericalFunction("returns", lambda r, g0: returns(av, av, r, g0),
                             (av.Arg(6), av.Arg(())))
    r, g0 = np.array([1.0, -2.0, 0.5, 3.0, 0.0, 1.5]), np.array(4.0)
    g, G = f(r, g0)
    eg, eG = returns_closed_form(r, g0)
    np.testing.assert_allclose(G, eG, rtol=SAME)
    np.testing.assert_allclose(g, eg, rtol=SAME)
    eg, eG = returns(NUMPY, np, r, g0)
    np.testing.assert_array_equal(G, eG)       # the same operations in the same order
    # forward would be another result: ys[t] = sum_{j<=t} GAMMA^(t-j) r[j] + GAMMA^(t+1) g0
    forward = av.NumericalFunction(
        "forward", lambda r, g0: av.scan(lambda g, rt: (rt + GAMMA * g,) * 2, g0, r),
        (av.Arg(6), av.Arg(())))
    _, F = forward(r, g0)
    assert not np.allclose(F, G)
    np.testing.assert_allclose(F, [sum(GAMMA ** (t - j) * r[j] for j in range(t + 1))
                                   + GAMMA ** (t + 1) * g0 for t in range(6)], rtol=SAME)


def test_jacobian_of_the_reverse_scan_in_closed_form():
    f = av.NumericalFunction("returns", lambda r, g0: returns(av, av, r, g0),
                             (av.Arg(6), av.Arg(())))
    r, g0 = np.linspace(-1, 1, 6), np.array(0.5)
    expected = np.triu(GAMMA ** (np.arange(6)[None, :] - np.arange(6)[:, None]))
    for mode in ("fwd", "rev"):
        (dg_dr, dg_dg0), (dG_dr, dG_dg0) = jacobian(f, argnum=(0, 1), mode=mode)(r, g0)
        np.testing.assert_allclose(dG_dr, expected, rtol=SAME, atol=SAME)
        np.testing.assert_allclose(dg_dr, expected[0], rtol=SAME, atol=SAME)
        np.testing.assert_allclose(dG_dg0, GAMMA ** (6 - np.arange(6)), rtol=SAME)
        np.testing.assert_allclose(dg_dg0, GAMMA ** 6, rtol=SAME)


def test_scan_with_length_and_no_xs():
    loop, _ = pair("length_only")
    c0, p = MODELS["length_only"].inputs
    c, ys = loop(c0, p)
    ec, eys = c0.copy(), []
    for _ in range(4):
        ec = np.tanh(ec * p) + 0.5 * ec
        eys.append(ec.sum())
    assert ys.shape == (4,)
    np.testing.assert_allclose(c, ec, rtol=SAME)
    np.testing.assert_allclose(ys, eys, rtol=SAME)


def test_scan_without_ys_and_with_xs_and_length():
    def fn(x, X):
        c, ys = av.scan(lambda c, r: (c * r + av.sin(c), None), x, X, length=4)
        assert ys is None
        return c
    f = av.NumericalFunction("noys", fn, (av.Arg(3), av.Arg((4, 3))))
    x, X = np.array([0.1, 0.2, 0.3]), R.uniform(-1, 1, (4, 3))
    expected = x.copy()
    for r in X:
        expected = expected * r + np.sin(expected)
    np.testing.assert_allclose(f(x, X), expected, rtol=SAME)


def test_map_over_the_rows_of_a_matrix():
    loop, unrolled = pair("map")
    X, p = MODELS["map"].inputs
    result = loop(X, p)
    assert result.shape == (5, 3)
    np.testing.assert_allclose(result, np.sin(X * p) * (X * X).sum(axis=1, keepdims=True),
                               rtol=SAME)
    np.testing.assert_allclose(result, unrolled(X, p), rtol=SAME)


def test_nested_loops():
    c0, X, p = MODELS["nested"].inputs
    c, ys = traced("nested", "loop")(c0, X, p)
    ec, eys = c0.copy(), []
    for x in X:
        ec = ec + x
        for i in range(3):
            ec = ec + 0.1 * np.sin(ec[::-1] * p + i * 0.3) * x[0]
        eys.append((ec * x).sum())
    np.testing.assert_allclose(c, ec, rtol=SAME)
    np.testing.assert_allclose(ys, eys, rtol=SAME)


def test_fori_loop_inside_fori_loop_with_int_carries():
    """sum over i < 4, j < i of (i * j + k): the inner body reads the outer index i (bounds are
    Python ints, so the triangle is a mask)."""
    def fn(k):
        def outer(i, acc):
            return av.fori_loop(0, 4, lambda j, a: a + av.where(j < i, i * j + k, 0), acc)
        return av.fori_loop(0, 4, outer, k * 0)
    f = av.NumericalFunction("tri", fn, (av.Arg((), av.int64),))
    k = 5
    assert f(np.array(k)) == sum(i * j + k for i in range(4) for j in range(i))


def test_closure_over_inputs_and_constants():
    """A body may read tensors of the enclosing trace and NumPy constants."""
    table = np.array([[1.0, 2.0], [0.5, -1.0]])

    def fn(x, p):
        q = p * 2.0           # a tensor computed outside the loop
        return av.fori_loop(0, 3, lambda i, c: table @ c * q + p[::-1], x)
    f = av.NumericalFunction("closure", fn, (av.Arg(2), av.Arg(2)))
    x, p = np.array([0.3, -0.2]), np.array([0.7, 1.1])
    expected = x
    for _ in range(3):
        expected = table @ expected * (p * 2.0) + p[::-1]
    np.testing.assert_allclose(f(x, p), expected, rtol=SAME)


# ---- 2. derivatives -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_jacobian(name, mode):
    """Every output against every differentiated input (init carry, xs, captured parameters)."""
    model = MODELS[name]
    loop, unrolled = pair(name)
    result = jacobian(loop, argnum=model.diff, mode=mode)(*model.inputs)
    blocks = [result] if output_count(name) == 1 else list(result)
    assert_all_close(blocks, jacobian(unrolled, argnum=model.diff, mode=mode)(*model.inputs),
                     SAME, "loop vs unrolled")
    assert_all_close(blocks, reference_jacobians(name), COMPLEX, "vs complex step")
    assert_all_close(blocks, reference_jacobians(name, finite_difference_jacobian), FD,
                     "vs finite differences")


@pytest.mark.parametrize("name", NAMES)
def test_gradient(name):
    model = MODELS[name]
    loop, unrolled = pair(name, loss=True)
    result = gradient(loop, argnum=model.diff)(*model.inputs)
    assert_all_close(result, gradient(unrolled, argnum=model.diff)(*model.inputs), SAME,
                     "loop vs unrolled")
    assert_all_close(result, reference_gradients(name), COMPLEX, "vs complex step")
    assert_all_close(result, reference_gradients(name, finite_difference_jacobian), FD,
                     "vs finite differences")


@pytest.mark.parametrize("name", NAMES)
def test_jvp(name):
    model = MODELS[name]
    loop, unrolled = pair(name)
    tangents = directions(name)
    result = jvp(loop, argnum=model.diff)(*model.inputs, *tangents)
    assert_all_close(result, jvp(unrolled, argnum=model.diff)(*model.inputs, *tangents), SAME,
                     "loop vs unrolled")
    n = output_count(name)
    expected = [sum(np.tensordot(J, t, axes=t.ndim) for J, t in zip(row, tangents))
                for row in reference_jacobians(name)]
    assert_all_close(result[:n], numpy_outputs(name, *model.inputs), SAME, "primal")
    assert_all_close(result[n:], expected, COMPLEX, "tangents vs complex step")


@pytest.mark.parametrize("name", NAMES)
def test_vjp(name):
    model = MODELS[name]
    loop, unrolled = pair(name)
    rng = np.random.default_rng(1)
    cotangents = [rng.uniform(-1, 1, o.shape) for o in numpy_outputs(name, *model.inputs)]
    result = vjp(loop, argnum=model.diff)(*model.inputs, *cotangents)
    assert_all_close(result, vjp(unrolled, argnum=model.diff)(*model.inputs, *cotangents), SAME,
                     "loop vs unrolled")
    jacobians = reference_jacobians(name)
    expected = [sum(np.tensordot(c, jacobians[j][k], axes=c.ndim)
                    for j, c in enumerate(cotangents)) for k in range(len(model.diff))]
    assert_all_close(result, expected, COMPLEX, "vs complex step")


@pytest.mark.parametrize("name", NAMES)
def test_hessian(name):
    """Forward over reverse through the loop; against the unrolled function's and finite
    differences of the complex-step gradient."""
    model = MODELS[name]
    positions = model.hess or model.diff
    loop, unrolled = pair(name, loss=True)
    result = hessian(loop, argnum=positions)(*model.inputs)
    assert_all_close(result, hessian(unrolled, argnum=positions)(*model.inputs), SAME,
                     "loop vs unrolled")

    def gradient_part(a):
        return lambda *xs: reference_gradients_at(name, xs, (a,))[0]
    expected = [[finite_difference_jacobian(gradient_part(a), list(model.inputs), b)
                 for b in positions] for a in positions]
    assert_all_close(result, expected, FD, "vs finite differences of the gradient")


def reference_gradients_at(name: str, inputs, positions=None) -> list:
    """The complex-step gradient of the NumPy loss at `inputs` wrt `positions` (model.diff)."""
    positions = MODELS[name].diff if positions is None else positions
    return [complex_step_jacobian(lambda *xs: numpy_outputs(name, *xs, loss=True)[0],
                                  list(inputs), a) for a in positions]


def test_second_order_modes_agree_through_loops():
    """Reverse over reverse, forward over forward and the hessian operator (forward over
    reverse) give one Hessian."""
    loop, _ = pair("pendulum", loss=True)
    inputs = MODELS["pendulum"].inputs
    H = hessian(loop)(*inputs)
    np.testing.assert_allclose(jacobian(gradient(loop), mode="rev")(*inputs), H, rtol=SAME,
                               atol=SAME)
    np.testing.assert_allclose(jacobian(jacobian(loop, mode="fwd"), mode="fwd")(*inputs), H,
                               rtol=SAME, atol=SAME)
    np.testing.assert_allclose(H, H.T, rtol=SAME, atol=SAME)


def looped(fn, args, in_axes) -> list:
    size = next(np.shape(a)[0] for a, ax in zip(args, in_axes) if ax is not None)
    results = [as_list(fn(*[a if ax is None else a[i] for a, ax in zip(args, in_axes)]))
               for i in range(size)]
    return [np.stack(r) for r in zip(*results)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("which", ["first", "all"])
def test_vmap(name, which):
    """Batched over the first argument (an init carry or xs) or over every differentiated one
    (with the captured parameters): against the loop per element, unrolled and in NumPy."""
    model = MODELS[name]
    loop, unrolled = pair(name)
    batched_positions = model.diff[:1] if which == "first" else model.diff
    in_axes = tuple(0 if a in batched_positions else None for a in range(len(model.inputs)))
    rng = np.random.default_rng(5)
    args = [np.stack([x + 0.1 * rng.uniform(-1, 1, np.shape(x)) for _ in range(3)])
            if ax == 0 else x for x, ax in zip(model.inputs, in_axes)]
    result = vmap(loop, in_axes=in_axes)(*args)
    assert_all_close(result, looped(unrolled, args, in_axes), SAME, "vs unrolled per element")
    assert_all_close(result, looped(lambda *xs: numpy_outputs(name, *xs), args, in_axes), SAME,
                     "vs NumPy per element")


def test_per_example_gradients_through_a_loop():
    """vmap of a gradient of a loop (the batching rules of the loop's VJP graph)."""
    loop, unrolled = pair("pendulum", loss=True)
    s0s = np.array([[0.8, -0.3], [0.1, 0.5], [-1.0, 0.0]])
    p = MODELS["pendulum"].inputs[1]
    result = vmap(gradient(loop, argnum=1), in_axes=(0, None))(s0s, p)
    expected = np.stack([reference_gradients_at("pendulum", (s0, p))[1] for s0 in s0s])
    assert_close(result, expected, COMPLEX, "vs complex step")
    np.testing.assert_allclose(result, looped(gradient(unrolled, argnum=1), (s0s, p),
                                              (0, None))[0], rtol=SAME, atol=SAME)


# ---- 3. errors ------------------------------------------------------------------------------------------
def trace_fn(fn, *args):
    return av.NumericalFunction("bad", fn, args)


@pytest.mark.parametrize("lower, upper", [(0.0, 3), (0, 3.0), (np.float64(1), 4), (0, "3"),
                                          (None, 2)])
def test_fori_loop_bounds_must_be_integers(lower, upper):
    with pytest.raises(TypeError, match="fori_loop"):
        trace_fn(lambda x: av.fori_loop(lower, upper, lambda i, c: c, x), av.Arg(2))


def test_fori_loop_bounds_must_not_be_tensors():
    with pytest.raises(TypeError, match="fori_loop"):
        trace_fn(lambda x, n: av.fori_loop(0, n, lambda i, c: c, x), av.Arg(2),
                 av.Arg((), av.int64))


# (what, body(carry) -> a carry unlike init, the exception, whether init is the pair (x, k))
MISMATCHES = [
    ("tuple of two for a tensor", lambda c: (c, c), TypeError, False),
    ("tensor for a tuple", lambda c: c[0], TypeError, True),
    ("tuple of three for a tuple of two", lambda c: (c[0], c[1], c[1]), TypeError, True),
    ("int64 for float64", lambda c: (c * 0).astype(av.int64), TypeError, False),
    ("float64 for int64", lambda c: (c[0], c[1] * 0.5), TypeError, True),
    ("float32 for float64", lambda c: c.astype(av.float32), TypeError, False),
    ("shape (3,) for (2,)", lambda c: av.concatenate([c, c[:1]]), ValueError, False),
    ("shape () for (2,)", lambda c: c.sum(), ValueError, False),
    ("shape (2, 2) for (2,)", lambda c: c[None, :] * c[:, None], ValueError, False),
]


@pytest.mark.parametrize("case", MISMATCHES, ids=[m[0] for m in MISMATCHES])
@pytest.mark.parametrize("loop", ["fori_loop", "scan"])
def test_the_carry_must_keep_structure_dtype_and_shape(case, loop):
    """init is x (float64 (2,)) or (x, k) with an int64 k; the error names the loop."""
    _, body, error, pair_carry = case

    def fn(x, k):
        init = (x, k) if pair_carry else x
        if loop == "fori_loop":
            return leaves(av.fori_loop(0, 3, lambda i, c: body(c), init))[0]
        return leaves(av.scan(lambda c, r: (body(c), r), init, x[None, :] * x[:, None]))[0]
    with pytest.raises(error, match=loop):
        trace_fn(fn, av.Arg(2), av.Arg((), av.int64))


def test_xs_of_different_lengths():
    with pytest.raises(ValueError, match="scan"):
        trace_fn(lambda x, X, Y: av.scan(lambda c, r: (c + r[0] + r[1].sum(), None), x, (X, Y))[0],
                 av.Arg(()), av.Arg(4), av.Arg((5, 2)))
    with pytest.raises(ValueError, match=r"\bmap\b|\bscan\b"):
        trace_fn(lambda X, Y: av.map(lambda r: r[0] + r[1].sum(), (X, Y)),
                 av.Arg(4), av.Arg((5, 2)))


def test_length_must_agree_with_xs():
    with pytest.raises(ValueError):
        trace_fn(lambda x, X: av.scan(lambda c, r: (c + r, r), x, X, length=3)[0],
                 av.Arg(2), av.Arg((4, 2)))
    # agreeing is fine
    f = trace_fn(lambda x, X: av.scan(lambda c, r: (c + r, r), x, X, length=4)[0],
                 av.Arg(2), av.Arg((4, 2)))
    X = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(f(np.zeros(2), X), X.sum(axis=0))


# ---- 4. the loop stays a loop ------------------------------------------------------------------------
def damped(steps: int) -> av.NumericalFunction:
    """`steps` explicit Euler steps of a damped pendulum, dt = 0.01: the loss of the state."""
    def fn(s0, p):
        def body(i, s):
            return av.stack([s[0] + 0.01 * s[1],
                             s[1] + 0.01 * (-p * av.sin(s[0]) - 0.1 * s[1])])
        s = av.fori_loop(0, steps, body, s0)
        return s[0] * s[0] + s[1] * s[1] * p
    return av.NumericalFunction(f"damped_{steps}", fn, (av.Arg(2), av.Arg(())))


def damped_python(s0, p, steps: int):
    """The same steps on Python floats (or complex numbers, for the complex step)."""
    sin = cmath.sin if any(isinstance(v, complex) for v in (*s0, p)) else math.sin
    a, b = s0
    for _ in range(steps):
        a, b = a + 0.01 * b, b + 0.01 * (-p * sin(a) - 0.1 * b)
    return a * a + b * b * p


def test_the_loop_graph_does_not_grow_with_the_trip_count():
    short, long = damped(10), damped(10_000)
    assert len(toposort(short.outputs)) == len(toposort(long.outputs))
    assert len(short.graph.splitlines()) == len(long.graph.splitlines())
    g_short, g_long = gradient(short, argnum=(0, 1)), gradient(long, argnum=(0, 1))
    assert len(toposort(g_short.outputs)) == len(toposort(g_long.outputs))
    assert len(g_short.graph.splitlines()) == len(g_long.graph.splitlines())
    # and the long loop runs: value, and gradient against the complex step
    s0, p = np.array([1.0, 0.0]), 2.0
    np.testing.assert_allclose(long(s0, p), damped_python(list(s0), p, 10_000), rtol=1e-10)
    h = 1e-30
    expected = [damped_python([s0[0] + 1j * h, s0[1]], p, 10_000).imag / h,
                damped_python([s0[0], s0[1] + 1j * h], p, 10_000).imag / h,
                damped_python(list(s0), p + 1j * h, 10_000).imag / h]
    gs, gp = g_long(s0, p)       # about (3.5e-3, 7.5e-4, -2.7e-2): no entry near zero
    np.testing.assert_allclose(np.append(gs, gp), expected, rtol=1e-8)


# ---- checkpointing ---------------------------------------------------------------------------
def _checkpointed(n: int, k: int | None, reverse: bool):
    def f(x, xs, w):
        def body(c, xi):
            new = av.sin(c) * xi + 0.1 * c * w
            return new, (new * c).sum()
        c, ys = av.scan(body, x, xs, reverse=reverse, checkpoint=k)
        return c.sum() + 0.01 * ys.sum()
    return av.NumericalFunction("ck", f, (av.Arg(4), av.Arg((n, 4)), av.Arg(4)))


@pytest.mark.parametrize("n, k, reverse", [(200, 14, False), (200, 14, True), (7, 3, False),
                                           (9, 3, True), (5, 3, False), (4, 4, False)])
def test_checkpointed_scan_gives_the_same_values_and_gradients(n, k, reverse):
    rng = np.random.default_rng(n + k)
    args = rng.uniform(-1, 1, 4), rng.uniform(0.5, 1.0, (n, 4)), rng.uniform(-1, 1, 4)
    plain, checkpointed = _checkpointed(n, None, reverse), _checkpointed(n, k, reverse)
    np.testing.assert_allclose(checkpointed(*args), plain(*args), rtol=1e-14)
    expected = gradient(plain, argnum=(0, 1, 2))(*args)
    for got, want in zip(gradient(checkpointed, argnum=(0, 1, 2))(*args), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    fd = difference_jacobian(lambda x: np.atleast_1d(plain(x, *args[1:])), args[0])[0]
    np.testing.assert_allclose(expected[0], fd, rtol=1e-6)


def test_checkpointing_stores_fewer_carries():
    def f(k):
        return lambda x: av.fori_loop(0, 1000, lambda i, c: av.sin(c) * 0.9 + 0.01 * c, x,
                                      checkpoint=k).sum()
    work = [gradient(av.NumericalFunction("ck", f(k), (av.Arg(100),))).lowered().work_bytes
            for k in (None, 32)]
    assert work[0] >= 1000 * 100 * 8 > 8 * work[1]


@pytest.mark.parametrize("k", [0, -2, 1.5, True])
def test_checkpoint_must_be_a_positive_integer(k):
    with pytest.raises(TypeError, match="scan: checkpoint"):
        trace_fn(lambda x: av.scan(lambda c, _: (c, None), x, length=4, checkpoint=k)[0],
                 av.Arg(2))


def test_a_body_reading_many_outer_values_gets_them_through_a_table():
    """A body reading more than loop.TABLE_INPUTS values computed outside it receives them as
    one table of pointers (functions with thousands of parameters take LLVM seconds to
    optimise); values and gradient match the same loop in NumPy and central differences."""
    from anvil_llvm.backend import loop as backend_loop
    count = 3 * backend_loop.TABLE_INPUTS

    def run(m, x, trips):
        outer = [m.sin(x[k % 4] * (k + 1)) for k in range(count)]
        total = x[0] * 0.0 + 1.0
        for _ in range(trips):
            for k in range(count):
                total = total * 0.999 + outer[k] * outer[(7 * k) % count] * 1e-3
        return total

    def looped(x):
        outer = [av.sin(x[k % 4] * (k + 1)) for k in range(count)]

        def body(i, total):
            for k in range(count):
                total = total * 0.999 + outer[k] * outer[(7 * k) % count] * 1e-3
            return total
        return av.fori_loop(0, 5, body, x[0] * 0.0 + 1.0)
    f = av.NumericalFunction("many", looped, (av.Arg(4),))
    assert "ptr noalias readonly %ins" in f.llvm_ir
    x = np.array([0.3, -0.2, 0.9, 0.5])
    assert_close(f(x), run(np, x, 5), 1e-13, "value")
    g = gradient(f)(x)
    step = 1e-6
    fd = [(run(np, x + step * e, 5) - run(np, x - step * e, 5)) / (2 * step) for e in np.eye(4)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


# ---- what the VJP of a loop stores -------------------------------------------------------------
def _backward_ops(fn: av.NumericalFunction) -> list[str]:
    """The ops of the body of the loop running backwards in `fn`'s graph (the VJP's)."""
    bodies = {n.arg.body for n in toposort(fn.outputs) if n.op.name == "loop" and n.arg.reverse}
    assert len(bodies) == 1
    return [n.op.name for n in toposort(bodies.pop().outputs)]


def test_the_vjp_stores_what_the_backward_pass_reads_and_recomputes_nothing():
    chain = av.NumericalFunction("chain", lambda x, p: av.fori_loop(
        0, 300, lambda i, y: y * 1.00001 + av.sin(y * p) * 1e-2, x).sum(),
        (av.Arg(2), av.Arg(())))
    g = gradient(chain, argnum=(0, 1))
    assert not {"sin", "cos"} & set(_backward_ops(g))       # cos(y p) and y p are stored

    def python(x, p):
        sin = cmath.sin if any(isinstance(v, complex) for v in (*x, p)) else math.sin
        for _ in range(300):
            x = [y * 1.00001 + sin(y * p) * 1e-2 for y in x]
        return sum(x)
    x, p, h = [0.4, -1.1], 1.7, 1e-30
    expected = [python([x[0] + 1j * h, x[1]], p).imag / h,
                python([x[0], x[1] + 1j * h], p).imag / h, python(x, p + 1j * h).imag / h]
    gx, gp = g(np.array(x), p)
    np.testing.assert_allclose(np.append(gx, gp), expected, rtol=1e-12)


def test_residuals_much_larger_than_the_carry_are_recomputed_instead():
    def body(i, c):                      # ten nonlinear values of the carry's size each
        return sum(av.tanh(c * (0.1 * k)) * 0.01 for k in range(1, 11)) + c
    f = av.NumericalFunction("wide", lambda x: av.fori_loop(0, 50, body, x).sum(),
                             (av.Arg(3),))
    g = gradient(f)
    assert "tanh" in _backward_ops(g)          # recomputed from the stored carry
    unrolled = av.NumericalFunction("wide_unrolled", lambda x: functools.reduce(
        lambda c, i: body(i, c), range(50), as_tensor(x)).sum(), (av.Arg(3),))
    x = np.array([0.3, -0.2, 0.5])
    np.testing.assert_allclose(g(x), gradient(unrolled)(x), rtol=1e-12)
    fd = difference_jacobian(lambda v: np.atleast_1d(f(v)), x)[0]
    np.testing.assert_allclose(g(x), fd, rtol=1e-6)


def test_the_vjp_of_a_map_stores_its_residuals_too():
    f = av.NumericalFunction("stages", lambda x: av.map(
        lambda r: av.sin(r[0]) * r[1] + av.cos(r[1]), x).sum(), (av.Arg((6, 2)),))
    g = gradient(f)
    assert not {"sin", "cos"} & set(_backward_ops(g))
    x = np.random.default_rng(4).uniform(-1, 1, (6, 2))
    expected = np.stack([np.cos(x[:, 0]) * x[:, 1], np.sin(x[:, 0]) - np.sin(x[:, 1])], axis=1)
    np.testing.assert_allclose(g(x), expected, rtol=1e-14, atol=1e-15)
