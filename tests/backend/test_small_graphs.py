"""Long computations on small arrays (a few elements: states, Jacobians of small functions) are
scheduled like scalar code (backend/schedule.py `is_small`, docs/backend.md 'Huge scalar
graphs'): grouped into chunk functions of a bounded size, their positions unrolled, values only
a chunk reads kept out of the workspace. Results are compared bit for bit with the NumPy
reference interpreter (and derivatives with finite differences); the structure is checked
through the schedule and the module text."""
from __future__ import annotations

import re

import numpy as np
import pytest
from avcheck import ULP64, Tol, assert_same, check, check_function

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.backend import codegen
from anvil_llvm.backend.schedule import CHUNK_OPS, SMALL_SIZE, schedule
from anvil_llvm.ir.interpret import evaluate

Z = np.array([0.5, 0.1, 9.81])        # pendulum: theta, omega, p


def chain(n: int):
    """The deep chain of the issue: y = y * 1.00001 + sin(y) * 1e-6, then sum(y * y)."""
    def f(x):
        y = x
        for _ in range(n):
            y = y * 1.00001 + av.sin(y) * 1e-6
        return (y * y).sum()
    return f


def pendulum(steps: int):
    """RK4 of a pendulum written as a traced Python loop: z = [theta, omega, p] -> state."""
    def g(z):
        x, p = z[:2], z[2]

        def f(x):
            return av.stack(x[1], -p * av.sin(x[0]))
        for _ in range(steps):
            x = rk4_step(f, x, 0.01)
        return x
    return g


def pendulum_numpy(z, steps: int):
    x, p = z[:2].copy(), z[2]

    def f(x):
        return np.array([x[1], -p * np.sin(x[0])])
    for _ in range(steps):
        x = rk4_step(f, x, 0.01)
    return x


def rk4_step(f, x, h: float):
    """One classical Runge-Kutta step of x' = f(x) (Tensors or NumPy arrays)."""
    k1 = f(x)
    k2 = f(x + h / 2 * k1)
    k3 = f(x + h / 2 * k2)
    k4 = f(x + h * k3)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def as_interpreted(fn: av.NumericalFunction, *inputs, tol: Tol | None = None) -> list:
    """`fn` compiled equals the interpreter (bit for bit unless `tol`), also into `out=`."""
    return check_function(fn, inputs, evaluate(fn.outputs, [np.asarray(x) for x in inputs]),
                          tol)


def chunk_functions(fn: av.NumericalFunction) -> list[str]:
    """The bodies of the module's `noinline optnone` chunk functions."""
    text = fn.lowered().ir
    return re.findall(r"^define internal void @[^\n]*\) noinline optnone nounwind \{\n(.*?)^\}",
                      text, re.MULTILINE | re.DOTALL)


def test_deep_chain_gradient_on_a_2_vector_matches_the_interpreter():
    x = np.array([0.3, -0.7])
    g = ad.gradient(av.NumericalFunction("chain", chain(400), (av.Arg(2),), reroll=False))
    (grad,) = as_interpreted(g, x)
    h, e = 1e-6, np.eye(2)
    f = av.NumericalFunction("chain", chain(400), (av.Arg(2),), reroll=False)
    fd = [(f(x + h * e[i]) - f(x - h * e[i])) / (2 * h) for i in range(2)]
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


def test_chunks_of_a_deep_chain_grow_linearly_and_stay_bounded():
    """Twice the steps, about twice the chunk functions, each of a bounded size; the module
    is no longer one function whose size grows with the graph."""
    counts, largest = [], 0
    for n in (300, 600, 1200):
        g = ad.gradient(av.NumericalFunction("chain", chain(n), (av.Arg(2),), reroll=False))
        bodies = chunk_functions(g)
        counts.append(len(bodies))
        largest = max(largest, max(body.count("\n") for body in bodies))
        assert codegen.is_chunked(schedule(g.inputs, g.outputs))
    assert counts[0] >= 10
    assert 1.7 <= counts[1] / counts[0] <= 2.3 and 1.7 <= counts[2] / counts[1] <= 2.3
    # instructions per chunk: about CHUNK_OPS operations and their loads, stores and addresses
    assert largest <= 4 * CHUNK_OPS


@pytest.mark.parametrize("mode, unroll", [("auto", False), ("rev", False), ("fwd", False),
                                          ("fwd", True)])
def test_rk4_pendulum_jacobian_matches_the_interpreter_and_finite_differences(mode, unroll):
    steps = 60
    f = av.NumericalFunction("pend", pendulum(steps), (av.Arg(3),), reroll=False)
    jac = ad.jacobian(f, mode=mode, unroll=unroll)
    (J,) = as_interpreted(jac, Z)
    assert J.shape == (2, 3)
    h, e = 1e-6, np.eye(3)
    fd = np.stack([(pendulum_numpy(Z + h * e[i], steps) - pendulum_numpy(Z - h * e[i], steps))
                   / (2 * h) for i in range(3)], axis=1)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)
    assert len(chunk_functions(jac)) > 1


def test_rk4_pendulum_value_matches_numpy_and_the_interpreter():
    steps = 300
    f = av.NumericalFunction("pend", pendulum(steps), (av.Arg(3),), reroll=False)
    (x,) = as_interpreted(f, Z)
    np.testing.assert_allclose(x, pendulum_numpy(Z, steps), rtol=1e-12, atol=1e-14)
    assert len(chunk_functions(f)) > 1


def test_values_read_only_inside_their_chunk_need_no_workspace():
    """The forward RK4 steps need only a few live values at a time: the workspace stays about
    the same size as the number of steps grows (a value only its own chunk reads is kept in
    registers, the others reuse slots by liveness)."""
    sizes = [av.NumericalFunction("pend", pendulum(n), (av.Arg(3),), reroll=False).work_bytes
             for n in (100, 400)]
    assert sizes[1] <= 1.5 * sizes[0]


def test_small_nodes_of_mixed_shapes_dtypes_and_movement():
    """(1,), (2,), (3, 2), scalars, slices, concatenations, comparisons and integers in one
    long graph of small nodes: chunked, and bit for bit NumPy's."""
    def op(m, x, k):
        a = x.reshape(3, 2)
        k = k.reshape(3, 2)
        total = k * 0
        for step in range(60):
            b = m.sin(a) * 0.5 + a[::-1] * 0.25
            a = m.where(b > 0.1, b, -b * 0.5) + a.T.reshape(3, 2) * 0.125
            head = m.concatenate([a[0], a[1, :1] * 2.0])
            a = m.concatenate([head, a.reshape(-1)[3:]]).reshape(3, 2)
            total = total + (a > 0).astype(np.int64) * (step % 3) + k[::-1]
        return a, a.sum(axis=0), total, a[2, 1] * 3.0
    x, k = np.linspace(-1.0, 1.0, 6), np.arange(6, dtype=np.int64)
    check(op, x, k, reroll=False)
    fn = av.NumericalFunction("mixed", lambda x, k: op(av, x, k),
                              (av.Arg(6), av.Arg(6, np.int64)), reroll=False)
    assert codegen.is_chunked(schedule(fn.inputs, fn.outputs))


def test_bool_and_float32_small_chunks():
    def op(m, x):
        y, flags = x, x > 0
        for _ in range(80):
            y = (m.where(flags, y * np.float32(0.75), y + np.float32(0.5))
                 - y[::-1] * np.float32(0.125))
            flags = (y > 0) ^ flags
        return y, flags
    x = np.linspace(-1.0, 1.0, 4).astype(np.float32)
    check(op, x, reroll=False)
    fn = av.NumericalFunction("flags", lambda x: op(av, x), (av.Arg(4, np.float32),),
                              reroll=False)
    assert codegen.is_chunked(schedule(fn.inputs, fn.outputs))


def test_a_small_output_of_the_inputs_alone_stays_a_kernel_of_its_own():
    """Only the code of a long computation is chunked: a small output computed from the
    inputs directly (no other small intermediate) keeps a kernel (and code) of its own."""
    def fn(x):
        s = x[0]
        for k in range(400):
            s = s * 0.75 + x[k % 5] * x[(3 * k + 1) % 5]
        return s, av.exp(x) * 2.0
    f = av.NumericalFunction("mixed", fn, (av.Arg(5),), reroll=False)
    sched = schedule(f.inputs, f.outputs)
    assert codegen.is_chunked(sched)
    alone = [k for k in sched.kernels if k.chunk is None]
    assert [k.roots for k in alone] == [[f.outputs[1]]]
    # exp(x) * 2.0 is a loop kernel, whose exp may be libmvec's (docs/backend.md, 'Vector math')
    as_interpreted(f, np.linspace(0.1, 0.9, 5), tol=ULP64)


def test_only_chunks_are_optnone_and_an_entry_calling_only_chunks_is_too():
    """When every kernel is a chunk, the entry function is `optnone` as well, so that LLVM's
    optimiser does not run at all (each chunk function costs its module-wide passes time)."""
    f = ad.jacobian(av.NumericalFunction("pend", pendulum(40), (av.Arg(3),), reroll=False),
                    mode="fwd",
                    unroll=True)
    sched = schedule(f.inputs, f.outputs)
    assert all(k.chunk is not None for k in sched.kernels) and codegen.is_chunked(sched)
    text = f.lowered().ir
    entry = re.findall(r"^define dso_local i32 @\S+\(.*\) (.*) \{$", text, re.MULTILINE)
    assert entry == ["noinline optnone nounwind"]
    as_interpreted(f, Z)
    # with a kernel that is no chunk (a loop over 40 elements), the entry is left to the
    # optimiser, and that kernel is optimised on its own, never inlined into the entry (LLVM's
    # time stays linear in the number of such kernels)
    g = av.NumericalFunction("mixed", lambda x: (chain(300)(x[:2]), av.exp(x) * 2.0),
                             (av.Arg(40),), reroll=False)
    sched = schedule(g.inputs, g.outputs)
    assert codegen.is_chunked(sched) and any(k.chunk is None for k in sched.kernels)
    text = g.lowered().ir
    entry = re.findall(r"^define dso_local i32 @\S+\(.*\) (.*) \{$", text, re.MULTILINE)
    assert entry == ["nounwind"]
    kernels = re.findall(r"^define internal void @\S+\(.*\) (.*) \{$", text, re.MULTILINE)
    assert set(kernels) == {"noinline optnone nounwind", "noinline nounwind"}
    as_interpreted(g, np.linspace(-0.5, 0.5, 40), tol=ULP64)


def test_arrays_larger_than_small_keep_their_loop_nests():
    n = SMALL_SIZE * 2
    f = ad.gradient(av.NumericalFunction("chain", chain(200), (av.Arg(n),), reroll=False))
    sched = schedule(f.inputs, f.outputs)
    assert all(k.chunk is None for k in sched.kernels)
    as_interpreted(f, np.linspace(-1.0, 1.0, n))


def test_chunks_of_a_loop_body_are_optimised_one_by_one():
    """A loop body's code runs every iteration: its chunks are optimised (not `optnone`), one
    by one (`noinline`: inlined into one function, a long body would take LLVM superlinear
    time)."""
    def step(x):
        for _ in range(60):
            x = x * 0.999 + av.sin(x[::-1]) * 1e-3
        return x

    f = av.NumericalFunction("body", lambda z: av.fori_loop(0, 5, lambda i, x: step(x), z),
                             (av.Arg(3),))
    text = f.lowered().ir
    assert "optnone" not in text and "noinline" in text
    z = np.array([0.3, -0.2, 0.7])
    expected = z
    for _ in range(5):
        for _ in range(60):
            expected = expected * 0.999 + np.sin(expected[::-1]) * 1e-3
    assert_same(f(z), evaluate(f.outputs, [z])[0])
    np.testing.assert_allclose(f(z), expected, rtol=1e-13)


def test_a_stack_of_many_states_computes_one_piece_per_element():
    """The Jacobian of a traced loop that stacks its states reads a concatenation of many
    pieces along an outer axis: each element finds its piece by binary search in branches and
    computes only that one (no select over every piece's value)."""
    steps = 30

    def states(z):
        x, out = z[:2], []
        for k in range(steps):
            x = rk4_step(lambda s: av.stack(s[1], -z[2] * av.sin(s[0])), x, 0.01)
            out.append(x * (1.0 + 0.01 * k))
        return av.concatenate(out)
    f = ad.jacobian(av.NumericalFunction("stack", states, (av.Arg(3),), reroll=False),
                    mode="fwd")
    assert "choose.then" in f.lowered().ir
    jac = as_interpreted(f, Z, tol=ULP64)[0]
    h = 1e-7
    for j in range(3):
        e = np.eye(3)[j] * h
        fd = (np.concatenate(_states_numpy(Z + e, steps)) - np.concatenate(
            _states_numpy(Z - e, steps))) / (2 * h)
        np.testing.assert_allclose(jac[:, j], fd, rtol=1e-6, atol=1e-8)


def _states_numpy(z, steps: int) -> list:
    x, out = z[:2].copy(), []
    for k in range(steps):
        x = rk4_step(lambda s: np.array([s[1], -z[2] * np.sin(s[0])]), x, 0.01)
        out.append(x * (1.0 + 0.01 * k))
    return out
