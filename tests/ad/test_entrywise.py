"""Sparse derivatives computed entry by entry (ad/entrywise.py): the values against the dense
Jacobian and Hessian and against central differences, random stencils, what falls back to the
colouring (and is still right), and that the entrywise graph evaluates no colours."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm.ad import hessian, jacobian, sphessian, spjacobian
from anvil_llvm.ad.entrywise import linear_terms
from anvil_llvm.ad.forward import jvp_graph
from anvil_llvm.ad.sparse import _placeholder
from anvil_llvm.benchmarks.problems import problem
from anvil_llvm.ir.ops import IOTA, PLACE
from anvil_llvm.ir.uop import toposort

RTOL = 1e-12


def entrywise(fn) -> bool:
    """Whether a sparse derivative's graph is one placement with no colour seeds (those
    compare the colour table with the colour's number, an IOTA)."""
    (values,) = fn.outputs
    found = values.op is PLACE and all(n.op is not IOTA for n in toposort([values]))
    assert fn.entrywise == found
    return found


def assert_dense(sparse, dense) -> None:
    dense = np.asarray(dense).reshape(sparse.shape)
    scale = max(1.0, float(np.abs(dense).max(initial=0.0)))
    np.testing.assert_allclose(sparse.toarray(), dense, rtol=RTOL, atol=RTOL * scale)


def central_differences(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    return np.stack([(np.asarray(f(x + h * e)) - np.asarray(f(x - h * e))) / (2 * h)
                     for e in np.eye(x.size)], axis=-1)


def periodic_laplacian(x):
    """A ring: the neighbours by concatenation (np.roll's way)."""
    left = av.concatenate([x[-1:], x[:-1]])
    right = av.concatenate([x[1:], x[:1]])
    return 2.0 * x - left - right + av.sin(x) * left


STENCILS = {
    "bratu2d": (problem("bratu2d", 7).function(), 49),
    "chain": (av.NumericalFunction("chain", lambda x: x[1:] ** 2 * av.exp(x[:-1]) - x[1:] / (
        1.5 + av.cos(x[:-1])), (av.Arg(9),)), 9),
    "ring": (av.NumericalFunction("ring", periodic_laplacian, (av.Arg(8),)), 8),
    "where": (av.NumericalFunction("where", lambda x: av.where(x[1:] > 0.5, x[1:] * x[:-1],
                                                               -x[:-1] ** 3), (av.Arg(7),)), 7),
    "broadcast": (av.NumericalFunction("broadcast", lambda x: x[0] * x + x ** 2, (av.Arg(6),)),
                  6),
    # two views meet in the middle only: the owner's coefficient adds the other's there
    "reversed": (av.NumericalFunction("reversed", lambda x: x * x[::-1], (av.Arg(7),)), 7),
    "two outputs": (av.NumericalFunction("two", lambda x: (x[1:] * x[:-1], av.tanh(x)),
                                         (av.Arg(6),)), 6),
}


@pytest.mark.parametrize("name", sorted(STENCILS))
def test_stencil_jacobians_are_entrywise_and_right(name):
    f, n = STENCILS[name]
    x = np.random.default_rng(3).uniform(0.1, 0.9, n)
    J = spjacobian(f)
    assert entrywise(J)
    assert_dense(J.csc(x), jacobian(f)(x) if len(f.outputs) == 1 else np.concatenate(
        [j.reshape(-1, n) for j in jacobian(f)(x)]))
    np.testing.assert_allclose(J(x), spjacobian(f, entrywise=False)(x), rtol=RTOL, atol=1e-14)
    reference = central_differences(lambda v: np.concatenate(
        [np.ravel(o) for o in (f(v) if len(f.outputs) > 1 else (f(v),))]), x)
    np.testing.assert_allclose(J.csc(x).toarray(), reference, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, size", [("rosen", 50), ("bratu2d_E", 6)])
def test_stencil_hessians_are_entrywise_and_right(name, size):
    p = problem(name, size)
    f = p.function()
    x = p.x0 + np.random.default_rng(4).uniform(-0.1, 0.1, p.n)
    for method in ("star", "acyclic"):
        H = sphessian(f, method=method)
        assert entrywise(H)
        assert_dense(H.csc(x), np.triu(hessian(f)(x)))


@pytest.mark.parametrize("fn", [
    lambda x: x * x.sum(),                   # a reduction: every row reads every element
    lambda x: av.matmul(np.tri(25), av.sin(x)),
    lambda x: sum(av.sin(x[k:k + 5]) for k in range(20)),   # 20 views: more than a nest takes
])
def test_other_derivatives_use_the_colouring_and_are_right(fn):
    f = av.NumericalFunction("other", fn, (av.Arg(25),))
    x = np.linspace(0.2, 0.8, 25)
    J = spjacobian(f)
    assert not entrywise(J)
    assert_dense(J.csc(x), jacobian(f)(x))


def test_a_tangent_with_a_constant_term_is_not_linear():
    x = av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(3),)).inputs[0]
    from anvil_llvm.ir import build as B
    seed = _placeholder(x)
    (tangent,) = jvp_graph([B.mul(x, x)], {x: seed})
    assert linear_terms(tangent, seed) is not None
    assert linear_terms(B.add(tangent, B.full((3,), 1.0)), seed) is None


@st.composite
def random_stencils(draw):
    """f(x)_i = sum over a few terms of g(x[i + a]) * x[i + b] (+ a square), on a padded
    vector: shifts in [-2, 2], nonlinear g; the Jacobian is banded."""
    n = draw(st.integers(3, 10))
    count = draw(st.integers(1, 4))
    shifts = [(draw(st.integers(-2, 2)), draw(st.integers(-2, 2))) for _ in range(count)]
    kinds = [draw(st.sampled_from(["sin", "exp", "square", "one"])) for _ in range(count)]

    def f(x):
        padded = av.pad(x, 2)
        total = x * x
        for (a, b), kind in zip(shifts, kinds):
            u, v = padded[2 + a:2 + a + n], padded[2 + b:2 + b + n]
            g = {"sin": av.sin(u), "exp": av.exp(u), "square": u * u, "one": u}[kind]
            total = total + g * v
        return total
    return f, n


@settings(max_examples=25, deadline=None)
@given(random_stencils(), st.integers(0, 2 ** 31 - 1))
def test_random_stencils(case, seed):
    plain, n = case
    f = av.NumericalFunction("stencil", plain, (av.Arg(n),))
    x = np.random.default_rng(seed).uniform(-1, 1, n)
    J = spjacobian(f)
    assert entrywise(J)
    assert_dense(J.csc(x), jacobian(f)(x))
    cost = av.NumericalFunction("cost", lambda x: (plain(x) ** 2).sum(), (av.Arg(n),))
    assert_dense(sphessian(cost).csc(x), np.triu(hessian(cost)(x)))


def test_the_colouring_is_made_when_asked_for_and_is_the_one_the_colour_loop_uses():
    f, _ = STENCILS["bratu2d"]
    J, colours = spjacobian(f), spjacobian(f, entrywise=False)
    assert callable(J._coloring)
    assert J.ncolors == colours.ncolors == 5
    assert (J.coloring.pattern != colours.coloring.pattern).nnz == 0
    assert np.array_equal(J.indices, colours.indices)
    assert np.array_equal(J.indptr, colours.indptr)
    assert "entry by entry" in repr(J) and "5 colours" in repr(colours)
    cost = problem("rosen", 20).function()
    H, star = sphessian(cost, method="acyclic"), sphessian(cost, entrywise=False)
    assert H.ncolors == 2 and np.array_equal(H.indptr, star.indptr)


def test_bad_colouring_options_are_refused_before_any_colouring():
    f, _ = STENCILS["chain"]
    with pytest.raises(ValueError, match="partition"):
        spjacobian(f, partition="diagonal")
    with pytest.raises(ValueError, match="method"):
        sphessian(problem("rosen", 5).function(), method="greedy")
    with pytest.raises(TypeError, match="entrywise"):
        spjacobian(f, entrywise="yes")


def test_an_entrywise_build_imports_no_colouring_kernels_and_pickles():
    """numba (the colouring kernels) is not imported by an entrywise build; a pickled one
    computes the same values in a fresh process."""
    import pickle
    import subprocess
    import sys
    f, n = STENCILS["ring"]
    J = spjacobian(f)
    x = np.linspace(0.1, 0.8, n)
    script = (
        "import pickle, sys, numpy as np\n"
        "from anvil_llvm.ad import spjacobian\n"
        "from anvil_llvm.benchmarks.problems import problem\n"
        "J = spjacobian(problem('bratu2d', 6).function())\n"
        "assert J.entrywise and 'numba' not in sys.modules\n"
        "K = pickle.loads(sys.stdin.buffer.read())\n"
        f"sys.stdout.write(repr(K(np.linspace(0.1, 0.8, {n})).tolist()))\n")
    done = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(J),
                          capture_output=True, check=True)
    assert np.array_equal(np.array(eval(done.stdout)), J(x))


def test_the_dense_jacobian_of_a_padded_stencil_compiles():
    # found by test_random_stencils: its one-hot seeds cast with `uitofp i1` made LLVM 22's SLP
    # vectoriser abort the process (an assertion); now cast with a select
    def f(x):
        padded = av.pad(x, 2)
        u, v = padded[0:6], padded[1:7]
        return x * x + u * u * x + v * u
    fn = av.NumericalFunction("stencil", f, (av.Arg(6),))
    x = np.random.default_rng(5).uniform(-1, 1, 6)
    step = 1e-6
    columns = [(fn(x + step * e) - fn(x - step * e)) / (2 * step) for e in np.eye(6)]
    np.testing.assert_allclose(jacobian(fn)(x), np.stack(columns, axis=1), rtol=1e-7,
                               atol=1e-9)


# ---- through maps: stages computed by one loop ------------------------------------------------
H_STAGE = 0.1


def _stage(x, u):
    """Two RK4 steps of a pendulum on a cart, written as control engineers write it: scalar
    indexing and `stack` (many paths reach each element of the stage's inputs)."""
    def rhs(s):
        return av.stack([s[1], -av.sin(s[0]) * 9.81 + u * av.cos(s[0]) - 0.1 * s[1]])
    for _ in range(2):
        k1 = rhs(x)
        k2 = rhs(x + H_STAGE / 2 * k1)
        k3 = rhs(x + H_STAGE / 2 * k2)
        k4 = rhs(x + H_STAGE * k3)
        x = x + H_STAGE / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def _shooting(stages: int, form: str):
    """w = [x_0..x_S (2 each), u_0..u_{S-1}] -> the continuity constraints, flat."""
    def f(w):
        xs = w[:2 * (stages + 1)].reshape(stages + 1, 2)
        us = w[2 * (stages + 1):]
        if form == "map":
            ends = av.map(lambda xu: _stage(xu[0], xu[1]), (xs[:-1], us))
        else:       # a scan without carry, run backwards: the same stages
            ends = av.scan(lambda c, xu: (c, _stage(xu[0], xu[1])), (), (xs[:-1], us),
                           reverse=True)[1]
        return (ends - xs[1:]).reshape(-1)
    return av.NumericalFunction(f"shooting_{form.replace(' ', '_')}", f,
                                (av.Arg(3 * stages + 2),))


@pytest.mark.parametrize("form", ["map", "reverse scan"])
def test_maps_are_differentiated_entry_by_entry(form):
    f = _shooting(7, form)
    w = np.random.default_rng(11).uniform(-1, 1, f.args[0].shape)
    J = spjacobian(f)
    assert entrywise(J)
    assert J.nnz == 7 * 2 * 3 + 7 * 2          # each stage: 2 x (2 states + 1 control), -I
    assert_dense(J.csc(w), jacobian(f, mode="fwd")(w))
    np.testing.assert_allclose(J.csc(w).toarray(), central_differences(f, w), rtol=1e-6,
                               atol=1e-7)
    colours = spjacobian(f, entrywise=False)
    np.testing.assert_allclose(J(w), colours(w), rtol=1e-13, atol=1e-15)


def test_a_map_reading_a_shared_input_or_a_carrying_scan_use_the_colouring():
    def shared(w):                 # every stage reads the parameter w[-1]: not stage-local
        return av.map(lambda x: av.sin(x) * w[-1], w[:-1].reshape(3, 2)).reshape(-1)

    def carried(w):                # a tangent flows from one iteration to the next
        return av.scan(lambda c, x: (c * x, c * x), w[0], w[1:])[1]

    def wide(w):                   # 3 outputs of 6 scalars each: more terms than colours pay
        def stage(r):
            products = [r[i] * r[(i + 1) % 6] for i in range(6)]
            return av.stack([av.sin(products[k]) + sum(products) * (k + 1) for k in range(3)])
        return av.map(stage, w.reshape(2, 6)).reshape(-1)
    for fn, n in ((shared, 7), (carried, 5), (wide, 12)):
        f = av.NumericalFunction(fn.__name__, fn, (av.Arg(n),))
        w = np.random.default_rng(n).uniform(0.5, 1.5, n)
        J = spjacobian(f)
        assert not entrywise(J)
        np.testing.assert_allclose(J.csc(w).toarray(), central_differences(f, w), rtol=1e-6,
                                   atol=1e-7)


def test_views_reaching_one_element_along_many_paths_are_joined():
    # scalar code on a 3-vector: hundreds of paths to x[0], x[1], x[2] after a few steps
    def f(x):
        for _ in range(4):
            x = av.stack([x[0] + 0.1 * x[1] * x[2], x[1] - 0.1 * av.sin(x[0]), x[2] * x[0]])
        return x
    fn = av.NumericalFunction("steps", f, (av.Arg(3),))
    x = np.array([0.3, -0.4, 0.8])
    J = spjacobian(fn)
    assert entrywise(J)
    assert_dense(J.csc(x), jacobian(fn)(x))


def test_a_map_over_scaled_slices_moves_their_coefficients_into_the_stages():
    scale = np.array([[1.0, -2.0], [0.5, 3.0], [2.0, 0.25], [-1.5, 1.0]])

    def f(w):
        scanned = w.reshape(4, 2) * scale          # the scanned tangent has coefficients
        return av.map(lambda r: av.stack([av.sin(r[0]) * r[1], r[1] * r[1]]), scanned)
    fn = av.NumericalFunction("scaled", f, (av.Arg(8),))
    w = np.random.default_rng(3).uniform(-1, 1, 8)
    J = spjacobian(fn)
    assert entrywise(J)
    assert_dense(J.csc(w), jacobian(fn, mode="fwd")(w))


def test_the_hessian_of_a_cost_over_a_map_is_computed_entry_by_entry():
    def f(w):
        stages = av.map(lambda x: av.stack([av.sin(x[0]) * x[1] + x[2] * x[2],
                                            x[0] * av.cos(x[2])]), w.reshape(5, 3))
        return (stages * stages).sum() + (w[1:] * w[:-1]).sum()
    fn = av.NumericalFunction("cost", f, (av.Arg(15),))
    w = np.random.default_rng(1).uniform(-1, 1, 15)
    H = sphessian(fn)
    assert entrywise(H)
    assert_dense(H.csc(w), np.triu(hessian(fn)(w)))
    np.testing.assert_allclose(H(w), sphessian(fn, entrywise=False)(w), rtol=1e-12,
                               atol=1e-14)
