"""Scheduling seen from the outside: outputs that share nodes or are inputs, workspaces on the
stack and on the heap (reused by liveness), deep fused chains and huge straight-line scalar
graphs split into chunks, all compared bit for bit with the interpreter."""
import numpy as np
import pytest
from avcheck import Tol, check, fast, run_in_threads
from hypothesis import given
from hypothesis import strategies as st

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad
from anvil_llvm.backend import callpath

X = np.linspace(-1.0, 1.0, 6)


@pytest.mark.parametrize("op", [
    lambda m, x: (x, x),
    lambda m, x: (x * 2.0, x * 2.0, x),
    lambda m, x: (x.sum(), x.sum() * 1.0, x[::-1]),
    lambda m, x: (x[::-1], x.T, x.reshape(2, 3), x[2], x[:0]),
    lambda m, x: (x > 0, (x > 0).astype(np.float64), m.where(x > 0, x, 0.0)),
], ids=["input twice", "node twice and input", "reduction twice", "views of the input",
        "bool and derived"])
def test_outputs_sharing_nodes(op):
    check(op, X)


def test_shared_subexpressions_are_computed_once_or_recomputed_consistently():
    def op(m, x, y):
        shared = m.sin(x * y) + m.exp(x - y) * m.cos(y)
        return shared * 2.0, shared.sum(), shared[::-1] - shared, shared.reshape(2, 3).T @ y[:2]
    check(op, X, X[::-1].copy(), tol=Tol(1e-14, 1e-14))


def test_workspace_on_the_heap():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 80)) / 8

    def op(m, a):
        return (m.tanh(a @ a) @ a).sum(axis=0) + m.tanh(a @ a)[0]
    f = av.NumericalFunction("heap", lambda a: op(av, a), (av.Arg((80, 80)),))
    assert f.work_bytes > callpath.STACK_WORK_LIMIT
    # calls release the GIL, so threads race for the function's one cached workspace: the
    # losers allocate their own, and every result stays right
    assert f.native.__self__[1][2] == 1
    expected = op(np, x)
    np.testing.assert_allclose(f(x), expected, rtol=1e-12, atol=1e-12)
    results = run_in_threads(lambda k: [f(x) for _ in range(20)])
    first = f(x)
    assert all(np.array_equal(r, first) for rs in results for r in rs)


def test_workspace_is_reused_by_liveness():
    rng = np.random.default_rng(1)
    m = rng.standard_normal((30, 30)) / 30

    def op(mod, x):
        for _ in range(8):
            x = mod.tanh(x @ m)      # each product is realised, then dead after the next one
        return x
    x = rng.standard_normal((30, 30))
    f = av.NumericalFunction("chain", lambda a: op(av, a), (av.Arg((30, 30)),))
    one = 30 * 30 * 8
    assert f.work_bytes <= 4 * one, "eight intermediates live in a few reused slots"
    np.testing.assert_allclose(f(x), op(np, x), rtol=1e-12, atol=1e-13)


def test_deep_chain_of_elementwise_ops():
    def op(m, x, y):
        for k in range(1500):
            x = x * 0.5 + (y if k % 3 else -y)
        return x
    check(op, X, X[::-1].copy())


def test_huge_straight_line_scalar_graph():
    """Thousands of shape-() operations are split into chunk functions; each operation is
    IEEE-exact, so the result is bit for bit the interpreter's."""
    n = 16

    def op(m, x):
        s, outputs = x[0], []
        for k in range(3000):
            s = s * 0.75 + x[k % n] * x[(3 * k + 1) % n]
            if k % 500 == 0:
                outputs.append(s)
        return (s, *outputs)
    check(op, np.random.default_rng(2).uniform(-1, 1, n))


def test_many_small_outputs():
    check(lambda m, x: tuple(x[k] * k for k in range(40)), np.arange(40.0))


def test_many_inputs_and_outputs():
    xs = [np.arange(3.0) + k for k in range(12)]
    check(lambda m, *a: tuple(a[k] * a[(k + 1) % 12] for k in range(12)) + (sum(a[1:], a[0]),),
          *xs)


def test_function_of_no_arguments():
    f = av.NumericalFunction.from_graph("nothing", [], [av.Tensor.stack(1.0, 2.0).node], False)
    np.testing.assert_array_equal(f(), [1.0, 2.0])
    out = np.zeros(2)
    assert f(out=out) is out and out.tolist() == [1.0, 2.0]


A = np.random.default_rng(2).standard_normal((37, 11))


def _nests(op, x) -> int:
    f = av.NumericalFunction("nests", lambda a: op(av, a), (av.Arg(x.shape),))
    return f.llvm_ir.count("define internal void")


@pytest.mark.parametrize("op, nests", [
    (lambda m, a: (a * 0.5 - 1.0, a * a), 1),
    (lambda m, a: (m.abs(a) * 3.0, (m.abs(a) * 3.0).sum(axis=0)), 1),
    (lambda m, a: (a / (a * a + 1.0), (a / (a * a + 1.0)).max(axis=0),
                   (a / (a * a + 1.0)).reshape(11, 37).T.reshape(37, 11) + a), 2),
    (lambda m, a: (a / (a * a + 1.0), (a / (a * a + 1.0))[::-1] + a), 2),
    (lambda m, a: (a.sum(axis=0), a - a.sum(axis=0)), 2),
], ids=["independent maps", "column sum of a stored map", "transposed read is not shared",
        "reversed read is not shared", "reading an accumulated sum waits for it"])
def test_kernels_over_one_shape_share_a_nest_only_when_reads_are_aligned(op, nests):
    """Kernels over the same shape run in one loop nest when each reads what the other stores
    at its own position; shifted or reduced reads keep their own nest. Values are exact."""
    assert _nests(op, A) == nests
    check(op, A)


def _g(a):
    """Arithmetic costly enough (> RECOMPUTE_LIMIT) to be stored, not recomputed, when read twice
    at different places; exact in both libraries (no transcendental)."""
    return ((a * a + 1.0) * (a - 3.0) + a) / (a * a + 2.0) * (a + 0.5) - a * 0.25


def _shift(m, a, low, high, axis=1):
    """`a` padded with `low` zeros before and `high` after along `axis`: read at an offset."""
    pads = [(0, 0)] * a.ndim
    pads[axis] = (low, high)
    return m.pad(a, tuple(pads))


@pytest.mark.parametrize("op, nests", [
    (lambda m, a: _shift(m, _g(a), 1, 0) - _shift(m, _g(a), 0, 1), 1),
    (lambda m, a: _shift(m, _g(a), 2, 0) - _shift(m, _g(a), 1, 1) * 2.0
     + _shift(m, _g(a), 0, 2), 1),
    (lambda m, a: (_shift(m, _g(a), 1, 0) - _shift(m, _g(a), 0, 1))[:, 1:-1], 1),
    (lambda m, a: m.where(_shift(m, _g(a), 1, 0) > 0.0, 1.0, _shift(m, _g(a), 0, 1)), 1),
    (lambda m, a: _shift(m, _g(a) > 0.0, 1, 0) & _shift(m, _g(a) > 0.0, 0, 1), 1),
    (lambda m, a: _shift(m, _g(a), 1, 0, 0) - _shift(m, _g(a), 0, 1, 0), 2),
    (lambda m, a: _shift(m, _shift(m, _g(a), 1, 0), 1, 0, 0)
     - _shift(m, _shift(m, _g(a), 0, 1), 0, 1, 0), 2),
    (lambda m, a: _shift(m, _g(a), 4, 0) - _shift(m, _g(a), 0, 4), 2),
    (lambda m, a: (_shift(m, _g(a), 1, 0) - _shift(m, _g(a), 0, 1), _g(a)), 2),
    (lambda m, a: (_shift(m, _g(a), 1, 0) - _shift(m, _g(a), 0, 1), _g(a).max(axis=1)), 3),
], ids=["difference", "second difference", "interior", "in a condition", "bool",
        "along the outer axis", "not aligned", "too far apart", "also an output",
        "also reduced"])
@pytest.mark.parametrize("shape", [(3, 40), (2, 7)], ids=["loop", "unrolled"])
def test_nodes_read_at_nearby_offsets_slide_along_the_inner_loop(op, nests, shape):
    """An intermediate that one nest reads at offsets at most WINDOW - 1 apart along its
    innermost axis is computed there once per iteration and carried to the next ones (one nest);
    reads along another axis, far apart or by another kernel keep it stored."""
    a = np.random.default_rng(5).uniform(-2.0, 2.0, shape)
    assert _nests(op, a) == nests
    check(op, a)


@fast(40)
@given(data=st.data())
def test_random_sliding_windows(data):
    """Weighted sums of one stored intermediate shifted along the last axis (some close enough
    to slide, some not), optionally cut to a slice, against NumPy and the interpreter, exactly."""
    rows = data.draw(st.integers(1, 3))
    n = data.draw(st.integers(2, 45))
    dtype = data.draw(st.sampled_from([np.float64, np.float32]))
    a = np.random.default_rng(data.draw(st.integers(0, 99))).uniform(-2.0, 2.0, (rows, n))
    a = a.astype(dtype)
    taps = data.draw(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0.5, -2.0, 3.0])),
                              min_size=2, max_size=4))
    width = max(shift for shift, _ in taps)
    start = data.draw(st.integers(0, n + width - 1))
    stop = data.draw(st.integers(start + 1, n + width))

    def op(m, x):
        g = _g(x)
        total = sum((_shift(m, g, shift, width - shift) * dtype(weight) for shift, weight in taps),
                    start=_shift(m, g * dtype(0.0), 0, width))
        return total[:, start:stop]
    check(op, a)


B = np.random.default_rng(7).uniform(-1.0, 1.0, (12, 10))


@pytest.mark.parametrize("op, nests", [
    (lambda m, a: m.pad((a @ a.T).reshape(144), (0, 22)) + m.pad(a.sum(axis=0), (144, 12))
     + m.pad(a.max(axis=1), (154, 0)), 3),
    (lambda m, a: m.pad(a @ a.T, ((0, 2), (0, 0))) + m.pad(a[:2] @ a.T, ((12, 0), (0, 0))), 2),
    (lambda m, a: m.pad(a.sum(axis=0), (0, 13)) + m.pad(a.max(axis=1), (11, 0)), 3),
    (lambda m, a: m.pad(a.sum(axis=0), (0, 3)) + m.pad(a.max(axis=1), (1, 0)), 3),
    (lambda m, a: (m.pad(a.sum(axis=0), (0, 12)) + m.pad(a.max(axis=1), (10, 0)),
                   a.sum(axis=0) * 2.0), 4),
    (lambda m, a: m.pad(a @ a.T, ((0, 0), (0, 2))) + m.pad((a[:2] @ a.T).T, ((0, 0), (12, 0))),
     3),
], ids=["flat blocks", "blocks of rows", "gap", "overlap", "block used elsewhere",
        "blocks of columns"])
def test_outputs_tiled_by_padded_blocks_are_computed_in_place(op, nests):
    """An output that sums realised blocks zero-padded into place along its leading axis, tiling
    it, has no kernel: each block is computed straight into its part of the output. Gaps,
    overlaps, blocks read elsewhere and blocks that are not contiguous keep the output's own
    kernel. All compared with NumPy and the interpreter, also through out= arrays."""
    assert _nests(op, B) == nests
    check(op, B, tol=Tol(1e-14, 1e-14))


@pytest.mark.parametrize("op, stored", [
    (lambda m, a: _g(a)[None, :, :] * np.arange(1.0, 6.0)[:, None, None], True),
    (lambda m, a: _g(a).reshape(-1)[np.arange(a.size)[::-1] % a.size], True),
    (lambda m, a: (a * 2.0)[None, :, :] * np.arange(1.0, 6.0)[:, None, None], False),
    (lambda m, a: _g(a).reshape(-1)[np.array([3, 5])], False),
], ids=["broadcast", "gather of all", "cheap broadcast", "gather of few"])
def test_costly_nodes_read_many_times_over_are_stored_once(op, stored):
    """A costly node that a broadcast (vmapped code) or a gather reading most of it would
    recompute per read gets a nest of its own; cheap ones and small gathers stay fused."""
    assert _nests(op, A) == (2 if stored else 1)
    check(op, A)


def _rk4_loss(m, p, x0, target, steps=6):
    """A batched integrator's loss: every point's trajectory is elementwise over the batch."""
    th, om = x0[0], x0[1]
    h = 0.05

    def f(th, om):
        return om, -p[0] * m.sin(th) - p[1] * om
    for _ in range(steps):
        k1 = f(th, om)
        k2 = f(th + h / 2 * k1[0], om + h / 2 * k1[1])
        k3 = f(th + h / 2 * k2[0], om + h / 2 * k2[1])
        k4 = f(th + h * k3[0], om + h * k3[1])
        th = th + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        om = om + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return ((th - target[0]) ** 2 + (om - target[1]) ** 2).sum()


def test_a_batched_reverse_pass_keeps_its_forward_values_in_registers():
    """The forward values the reverse pass reads at the same position stay in the one loop
    nest that computes both (moved across the reduction between them): the workspace holds
    only the arrays the parameter gradient's sums read (ten; 203 were stored, one nest for
    each pass), and the gradient matches central differences."""
    n = 500
    rng = np.random.default_rng(4)
    x0, target = rng.uniform(-1, 1, (2, n)), rng.uniform(-1, 1, (2, n))
    loss = av.NumericalFunction("rk4loss", lambda p: _rk4_loss(av, p, x0, target),
                                (av.Arg(2),))
    grad = av.ad.gradient(loss)
    assert grad.work_bytes <= 12 * n * 8, "the sums' operands, not one array per step"
    assert grad.llvm_ir.count("define internal void") <= 4
    p = np.array([2.0, 0.1])
    step = 1e-6
    fd = [(_rk4_loss(np, p + step * e, x0, target) - _rk4_loss(np, p - step * e, x0, target))
          / (2 * step) for e in np.eye(2)]
    np.testing.assert_allclose(grad(p), fd, rtol=1e-6)


def _reversing_chain(m, x, steps):
    for _ in range(steps):
        x = x * 1.00001 + m.sin(x[..., ::-1]) * 1e-3
    return (m.sin(x) ** 2).sum(axis=-1)


@pytest.mark.parametrize("steps", [10, 20])
def test_code_read_reversed_is_realised_not_copied_at_every_step(steps):
    """A batched reverse pass where each step's cotangent is read at its place and reversed:
    fusing it would copy its code at every step (2^steps: 20 steps took 240 s to lower);
    realised, the code grows with the steps. Gradients match central differences."""
    f = av.NumericalFunction("rev", lambda x: _reversing_chain(av, x, steps), (av.Arg(3),))
    g = av.vmap(av.ad.gradient(f))
    batched = av.NumericalFunction("revb", g, (av.Arg((50, 3)),))
    assert len(batched.llvm_ir) < 12_000 * steps
    xs = np.random.default_rng(5).uniform(-1, 1, (50, 3))
    step = 1e-6
    fd = np.stack([(_reversing_chain(np, xs + step * e, steps)
                    - _reversing_chain(np, xs - step * e, steps)) / (2 * step)
                   for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(batched(xs), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("rows, n", [(8, 3), (16, 3), (32, 3), (33, 5), (100, 7)])
def test_derivatives_through_exact_ties_see_the_stored_values(rows, n):
    """max(x, y)'s derivative tests max(x, y) == x, and reduce_max's tests each element against
    the maximum: x computed again in another kernel (a scalar loop calling libm's sin, where the
    vectorised kernel storing the maximum called libmvec's) would never be equal, and the
    derivative vanished or became 0/0. Against central differences."""
    rng = np.random.default_rng(rows * n)
    A, W = rng.normal(size=(rows, n)), rng.normal(size=(n, 1))

    def f(b, m):
        s = m.sin(A * b)
        rowmax = m.max(m.exp(s), axis=1)
        return m.sum((m.maximum(s, 0.5 * s) @ W) ** 2) + m.sum(rowmax * rowmax)
    g = ad.gradient(av.NumericalFunction("ties", lambda b: f(b, anp), (av.Arg(n),)))
    b = rng.normal(size=n)
    eps = 1e-6
    fd = np.array([(f(b + eps * e, np) - f(b - eps * e, np)) / (2 * eps) for e in np.eye(n)])
    np.testing.assert_allclose(g(b), fd, rtol=1e-6, atol=1e-6)


def test_an_output_reshaping_a_grid_is_computed_on_the_grid_in_place():
    """The gradient of a stencil energy with respect to the flat vector it reshapes: the grid
    gradient is computed in the output buffer by a nest over the grid's axes (no flat loop
    decoding positions, no copy); values against central differences."""
    from anvil_llvm.backend.schedule import schedule
    n = 12

    def energy(v, m):
        u = v.reshape(n, n)
        dx, dy = u[1:, :-1] - u[:-1, :-1], u[:-1, 1:] - u[:-1, :-1]
        return m.sqrt(1.0 + dx * dx + dy * dy).sum() + m.exp(u).sum() * 0.01
    g = ad.gradient(av.NumericalFunction("e", lambda v: energy(v, anp), (av.Arg(n * n),)))
    sched = schedule(g.inputs, g.outputs)
    writers = [k for k in sched.kernels if any(sched.buffers.get(r) is not None
                                                and sched.buffers[r].kind == "output"
                                                for r in k.roots)]
    assert [k.shape for k in writers] == [(n, n)] and not writers[0].flat
    v = np.random.default_rng(5).uniform(-0.5, 0.5, n * n)
    eps = 1e-6
    fd = np.array([(energy(v + eps * e, np) - energy(v - eps * e, np)) / (2 * eps)
                   for e in np.eye(n * n)])
    np.testing.assert_allclose(g(v), fd, rtol=1e-6, atol=1e-6)


# A substitution program (an acyclic colouring's kind): 4 compressed entries -> 3 values.
SOURCE, TARGET, SUBTRACT = [1, 3, 0], [0, 1, 2], [3, 0, -1]


def _substituted(rows: np.ndarray) -> np.ndarray:
    """The program run on each row of `rows`, step by step (the reference)."""
    out = np.empty(rows.shape[:-1] + (3,))
    for r, row in enumerate(rows.reshape(-1, 4)):
        work = row.copy()
        for s, t, sub in zip(SOURCE, TARGET, SUBTRACT):
            out.reshape(-1, 3)[r, t] = work[s]
            if sub >= 0:
                work[sub] -= work[s]
    return out


def _with_substitution(outputs):
    """The function of x (8,) whose outputs `outputs(x, s, substitute)` make from x's node, the
    node s = reshape(2x + 1, (2, 4)) and the substitution of a node."""
    from anvil_llvm.function import NumericalFunction
    from anvil_llvm.ir.ops.substitute import Program, substitute, tables
    program = Program(*tables(SOURCE, TARGET, SUBTRACT), 3, 4)
    traced = av.NumericalFunction("s", lambda x: (x * 2.0 + 1.0).reshape(2, 4),
                                  (av.Arg(8),))
    nodes = outputs(traced.inputs[0], traced.outputs[0], lambda n: substitute(n, program))
    return NumericalFunction.from_graph("sub", traced.args, nodes, len(nodes) > 1,
                                        traced.arg_names)


@pytest.mark.parametrize("case", ["dies there", "read after", "an output", "an input"])
def test_a_program_works_on_its_source_in_place_only_where_that_source_dies(case):
    """A substitution whose source (computed in the workspace, reached through a reshape) is
    read by nothing after it runs on that source, with no copy; one whose source is read
    later, is an output or an input works on a copy. Values against the program run step by
    step in NumPy; `out=` and the interpreter agree (check_function)."""
    from anvil_llvm.backend.schedule import schedule
    from avcheck import check_function
    from anvil_llvm.ir import build as B
    x = np.linspace(-1.0, 1.0, 8)
    s = (x * 2.0 + 1.0).reshape(2, 4)
    made = {
        "dies there": (lambda x_, s_, sub: [sub(s_)], [_substituted(s)]),
        "read after": (lambda x_, s_, sub: [sub(s_), B.mul(s_, B.broadcast_to(B.reduce_sum(
            sub(s_), (0, 1)), (2, 4)))], [_substituted(s), s * _substituted(s).sum()]),
        "an output": (lambda x_, s_, sub: [s_, sub(s_)], [s, _substituted(s)]),
        "an input": (lambda x_, s_, sub: [sub(B.reshape(x_, (2, 4)))],
                     [_substituted(x.reshape(2, 4))]),
    }
    outputs, expected = made[case]
    fn = _with_substitution(outputs)
    check_function(fn, [x], expected)
    programs = [k for k in schedule(fn.inputs, fn.outputs).kernels if k.scratch_bytes]
    assert [k.in_place for k in programs] == [case == "dies there"]


def test_a_program_reads_a_reshaped_source_where_its_nest_computed_it():
    """A solve of a right-hand side reshaped from a computed vector: the vector is computed in
    a nest of its own and the program reads its buffer through the reshape (no kernel for the
    reshape); values against NumPy."""
    M = np.array([[2.0, 1.0, 0.0], [0.5, 3.0, 1.0], [0.0, -1.0, 4.0]])
    check(lambda m, x: anp.linalg.solve(M, (x * 2.0 + 1.0).reshape(3, 2)), X,
          numpy_op=lambda m, x: np.linalg.solve(M, (x * 2.0 + 1.0).reshape(3, 2)),
          tol=Tol(1e-14, 1e-15))


def test_a_broadcast_value_is_computed_once_per_position_where_every_seed_is_placed_there():
    """bratu2d's Jacobian from its colours: exp(u) is broadcast along the colours, and the
    placement computes every colour at each grid point, so the nest computes it there once (no
    kernel storing it); where a broadcast value meets a nest over the batch (a vmapped
    function), it is stored once rather than computed for every batch element. Values against
    the dense Jacobian and NumPy."""
    from anvil_llvm.backend.schedule import schedule
    from anvil_llvm.benchmarks.problems import problem
    p = problem("bratu2d", 12)
    f = p.function()
    J = ad.spjacobian(f, entrywise=False)
    sched = schedule(J.inputs, J.outputs)
    assert len(sched.kernels) == 1 and sched.work_bytes == 0
    x = p.x0 + 0.01
    np.testing.assert_allclose(J.csc(x).toarray(), ad.jacobian(f)(x), rtol=1e-13, atol=1e-14)

    g = av.vmap(av.NumericalFunction("g", lambda x, y: x * anp.exp(anp.sin(y)) + y,
                                     (av.Arg(50), av.Arg(50))), (0, None), 8)
    assert schedule(g.inputs, g.outputs).work_bytes >= 50 * 8
    xs, y = np.linspace(-1, 1, 400).reshape(8, 50), np.linspace(0, 2, 50)
    np.testing.assert_allclose(g(xs, y), xs * np.exp(np.sin(y)) + y, rtol=1e-13, atol=1e-15)
