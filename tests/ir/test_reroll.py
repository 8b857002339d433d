"""Traced Python loops become loops again: the rolled graph's values and derivatives against
hand-written NumPy loops and finite differences, and the repetitions that must stay unrolled."""
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.ir import dtypes
from anvil_llvm.ir import reroll as reroll_module
from anvil_llvm.ir.interpret import evaluate
from anvil_llvm.ir.ops import INPUT, LOOP
from anvil_llvm.ir.reroll import reroll
from anvil_llvm.ir.uop import UOp, toposort

H = 0.01


def rk4(z, steps, m, t0=None):
    """RK4 on the pendulum, written as engineers write it (scalar indexing and stack), traced
    (m = anvil_llvm) or computed (m = numpy); with `t0`, a forcing cos(t) with t advanced in
    Python (a constant that differs per step)."""
    x, p, t = z[:2], z[2], t0

    def f(x, t):
        force = 0.0 if t is None else 0.3 * np.cos(t)
        return m.stack([x[1], -p * m.sin(x[0]) + force])
    for _ in range(steps):
        half = None if t is None else t + H / 2
        k1 = f(x, t)
        k2 = f(x + H / 2 * k1, half)
        k3 = f(x + H / 2 * k2, half)
        k4 = f(x + H * k3, None if t is None else t + H)
        x = x + H / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t = None if t is None else t + H
    return x


def rk4_pendulum(z, steps, t0=None):
    return rk4(z, steps, av, t0)


def rk4_numpy(z, steps, t0=None):
    return rk4(z, steps, np, t0)


def loops(fn) -> list:
    """The distinct loops of a function's graph (or of a list of nodes)."""
    outputs = fn.outputs if isinstance(fn, av.NumericalFunction) else fn
    return list({(n.src, n.arg.body): n for n in toposort(outputs) if n.op is LOOP}.values())


def traced(fn, *shapes):
    inputs = [UOp(INPUT, (), (i, s, dtypes.float64)) for i, s in enumerate(shapes)]
    out = fn(*[av.Tensor(x) for x in inputs])
    return [o.node for o in (out if isinstance(out, (tuple, list)) else [out])]


Z = np.array([0.5, 0.1, 2.0])


@pytest.mark.parametrize("steps", [50, 200, 1000])
def test_rk4_becomes_one_loop_with_the_unrolled_values(steps):
    unrolled = traced(lambda z: rk4_pendulum(z, steps), (3,))
    rolled = reroll(unrolled)
    assert len(toposort(rolled)) < 200
    assert len(loops(rolled)) == 1
    # the same operations in the same order: equal to the last bit
    np.testing.assert_array_equal(evaluate(rolled, [Z])[0], evaluate(unrolled, [Z])[0])
    f = av.NumericalFunction("pend", lambda z: rk4_pendulum(z, steps), (av.Arg(3),))
    assert loops(f)
    np.testing.assert_allclose(f(Z), rk4_numpy(Z, steps), rtol=1e-14, atol=1e-15)


def test_jacobian_gradient_and_hessian_of_a_rolled_loop_against_finite_differences():
    f = av.NumericalFunction("pend", lambda z: rk4_pendulum(z, 300), (av.Arg(3),))
    cost = av.NumericalFunction("cost", lambda z: (rk4_pendulum(z, 300) ** 2).sum(),
                                (av.Arg(3),))
    assert loops(f) and loops(cost)
    eps = 1e-6
    fd = np.stack([(rk4_numpy(Z + eps * e, 300) - rk4_numpy(Z - eps * e, 300)) / (2 * eps)
                   for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(ad.jacobian(f)(Z), fd, rtol=1e-7, atol=1e-8)
    grad = ad.gradient(cost)
    np.testing.assert_allclose(grad(Z), 2 * rk4_numpy(Z, 300) @ fd, rtol=1e-7, atol=1e-8)
    fdh = np.stack([(grad(Z + eps * e) - grad(Z - eps * e)) / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(ad.hessian(cost)(Z), fdh, rtol=1e-6, atol=1e-7)


def test_constants_that_change_per_step_are_scanned():
    f = av.NumericalFunction("forced", lambda z: rk4_pendulum(z, 400, t0=0.25), (av.Arg(3),))
    (loop,) = loops(f)
    assert loop.arg.xs >= 1
    np.testing.assert_allclose(f(Z), rk4_numpy(Z, 400, t0=0.25), rtol=1e-14, atol=1e-15)


def test_a_trajectory_stacked_after_the_loop_and_an_intermediate_read_at_the_end():
    def trajectory(z):
        x, xs = z, []
        for _ in range(120):
            k = av.sin(x) * 0.1
            x = x + k * x[::-1]
            xs.append(x)
        return av.stack(xs), k * 3.0

    def numpy_trajectory(z):
        x, xs = z.copy(), []
        for _ in range(120):
            k = np.sin(x) * 0.1
            x = x + k * x[::-1]
            xs.append(x)
        return np.stack(xs), k * 3.0
    f = av.NumericalFunction("traj", trajectory, (av.Arg(3),))
    assert loops(f)
    z = np.array([0.3, -0.2, 0.7])
    for got, want in zip(f(z), numpy_trajectory(z)):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_two_loops_in_sequence_and_a_recurrence_two_steps_back():
    def two(x):
        for _ in range(100):
            x = x + av.sin(x) * 0.01
        for _ in range(100):
            x = x * 0.99 + av.cos(x[::-1]) * 0.02
        return x

    def fib(x):
        a, b = x[0], x[1]
        for _ in range(200):
            a, b = b, a * 0.5 + av.tanh(b) * 0.5
        return av.stack([a, b])
    x = np.array([0.1, 0.4, -0.3])
    f = av.NumericalFunction("two", two, (av.Arg(3),))
    assert len(loops(f)) == 2
    want = x.copy()
    for _ in range(100):
        want = want + np.sin(want) * 0.01
    for _ in range(100):
        want = want * 0.99 + np.cos(want[::-1]) * 0.02
    np.testing.assert_allclose(f(x), want, rtol=1e-14)
    g = av.NumericalFunction("fib", fib, (av.Arg(3),))
    a, b = x[0], x[1]
    for _ in range(200):
        a, b = b, a * 0.5 + np.tanh(b) * 0.5
    np.testing.assert_allclose(g(x), [a, b], rtol=1e-14)


def test_short_repetitions_stay_unrolled():
    f = av.NumericalFunction("few", lambda x: rk4_pendulum(x, 3), (av.Arg(3),))
    assert not loops(f)
    np.testing.assert_allclose(f(Z), rk4_numpy(Z, 3), rtol=1e-15)


def cart(x, u, m):
    """A small nonlinear system in the scalar style (x[0], stack) with a control u."""
    return m.stack([x[1], u - 0.3 * m.sin(x[0]) - 0.1 * x[1] * x[1]])


def euler(x, u, m, h=0.05, substeps=3):
    for _ in range(substeps):
        x = x + h * cart(x, u, m)
    return x


def single_shooting(z, m, steps=60):
    """z = [x0 (2), u (steps)]: the trajectory, concatenated; each step reads its own u."""
    x, states = z[0:2], []
    for k in range(steps):
        x = euler(x, z[2 + k], m)
        states.append(x)
    return m.concatenate(states)


def single_shooting_stacked(z, m, steps=60):
    """`single_shooting` with the trajectory stacked (one state per row), then flattened."""
    x, states = z[0:2], []
    for k in range(steps):
        x = euler(x, z[2 + k], m)
        states.append(x)
    return m.stack(states).reshape(-1)


def multiple_shooting(w, m, stages=40):
    """w = [x_0..x_S (2 each), u_0..u_{S-1}]: the continuity residuals of independent stages."""
    xs = [w[2 * k:2 * k + 2] for k in range(stages + 1)]
    us = w[2 * (stages + 1):]
    return m.concatenate([euler(xs[k], us[k], m) - xs[k + 1] for k in range(stages)])


@pytest.mark.parametrize("program, size", [(single_shooting, 62), (single_shooting_stacked, 62),
                                           (multiple_shooting, 122)])
def test_shooting_programs_roll_over_their_per_step_inputs(program, size):
    """Per-step slices of the input (controls, stage states) become arrays the loop scans,
    and the concatenated (or stacked) results one stacked output."""
    f = av.NumericalFunction("shoot", lambda z: program(z, av), (av.Arg(size),))
    unrolled = av.NumericalFunction("shoot", lambda z: program(z, av), (av.Arg(size),),
                                    reroll=False)
    assert loops(f) and not loops(unrolled)
    # at most a step before and one after the loop stay unrolled
    assert len(toposort(f.outputs)) < len(toposort(unrolled.outputs)) / 20
    z = np.random.default_rng(3).uniform(-1.0, 1.0, size)
    np.testing.assert_allclose(f(z), program(z, np), rtol=1e-13, atol=1e-14)
    eps = 1e-6
    fd = np.stack([(program(z + eps * e, np) - program(z - eps * e, np)) / (2 * eps)
                   for e in np.eye(size)], axis=1)
    J = ad.jacobian(f)(z)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(J, ad.jacobian(unrolled)(z), rtol=1e-12, atol=1e-14)


def test_integer_and_bool_carries_and_a_constant_cycling_with_the_step():
    def op(m, x, k):
        a, k = x.reshape(3, 2), k.reshape(3, 2)
        total, flags = k * 0, a > 0
        for step in range(60):
            b = m.sin(a) * 0.5 + a[::-1] * 0.25
            a = m.where(b > 0.1, b, -b * 0.5) + a.T.reshape(3, 2) * 0.125
            flags = (a > 0) ^ flags
            total = total + flags.astype(np.int64) * (step % 3) + k[::-1]
        return a, total, flags
    x, k = np.linspace(-1.0, 1.0, 6), np.arange(6, dtype=np.int64)
    f = av.NumericalFunction("mixed", lambda x, k: op(av, x, k),
                             (av.Arg(6), av.Arg(6, np.int64)))
    assert loops(f)
    for got, want in zip(f(x, k), op(np, x, k)):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_reroll_must_be_a_bool():
    with pytest.raises(TypeError, match="reroll: expected a bool"):
        av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(2),), reroll="no")


def test_steps_over_large_arrays_stay_unrolled_unless_there_are_very_many():
    """Unrolled steps of elementwise work over large arrays fuse into one pass over memory: a
    loop would store the carry every step. Only very long repetitions are rolled."""
    def chain(steps):
        def f(y):
            for _ in range(steps):
                y = y * 1.0001 + av.sin(y) * 1e-3
            return y
        return f
    x = np.linspace(-1.0, 1.0, 100)
    for steps, rolled in [(100, False), (reroll_module.MIN_ARRAY_NODES // 3 + 50, True)]:
        f = av.NumericalFunction("chain", chain(steps), (av.Arg(100),))
        assert bool(loops(f)) == rolled
        want = x.copy()
        for _ in range(steps):
            want = want * 1.0001 + np.sin(want) * 1e-3
        np.testing.assert_allclose(f(x), want, rtol=1e-12)


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_blocks_begin_where_fewest_values_are_carried(data):
    """`_best_phase` against counting, phase by phase, the values whose span from the value to
    its last reader holds a block boundary."""
    period = data.draw(st.integers(1, 30))
    start, blocks = data.draw(st.integers(0, 20)), data.draw(st.integers(2, 5))
    n = start + blocks * period + 3
    width = data.draw(st.integers(1, 3))
    src = np.full((n, width), -1)
    for i in range(1, n):
        for k in range(width):
            if data.draw(st.booleans()):
                src[i, k] = data.draw(st.integers(max(0, i - 3 * period - 1), i - 1))
    first = start + period
    last = {}
    for i in range(first, first + period):
        for t in src[i]:
            if t >= start:
                last[int(t)] = max(last.get(int(t), -1), i)
    carried = [sum(any((c - first) % period == phase for c in range(t + 1, r + 1))
                   for t, r in last.items()) for phase in range(period)]
    shift = carried.index(min(carried)) if last else 0
    expected = (start + shift, ((blocks - 1) * period - shift) // period + 1)
    seq = SimpleNamespace(src=src)
    assert reroll_module._best_phase(seq, start, blocks, period) == expected
