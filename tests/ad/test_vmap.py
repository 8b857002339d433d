"""vmap against a Python loop: every op's batching rule (the rows of test_ad_rules, batched in
all their arguments or one), in_axes variations, composition with the derivative operators, and
errors."""
from __future__ import annotations

import numpy as np
import pytest
from avcheck import as_list, fast
from hypothesis import given
from hypothesis import strategies as st
from test_ad_rules import ROWS, trace

import anvil_llvm as av
from anvil_llvm.ad import gradient, hessian, jacobian, vmap

BATCH = 3


def looped(fn, args, in_axes) -> list:
    """fn applied to each batch element (in_axes as vmap's), results stacked on axis 0."""
    size = next(np.shape(a)[ax] for a, ax in zip(args, in_axes) if ax is not None)
    results = [as_list(fn(*[a if ax is None else np.take(a, i, axis=ax)
                            for a, ax in zip(args, in_axes)])) for i in range(size)]
    return [np.stack(r) for r in zip(*results)]


def assert_batched(actual, expected) -> None:
    actual, expected = as_list(actual), as_list(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=1e-13, atol=1e-14)


# ---- every batching rule --------------------------------------------------------------------------
def batchings(row):
    """All arguments batched, and for several arguments each one alone."""
    n = len(row.args)
    yield (0,) * n
    if n > 1:
        for i in range(n):
            yield tuple(0 if j == i else None for j in range(n))


CASES = [(row, axes) for row in ROWS for axes in batchings(row)]


@pytest.mark.parametrize("row, in_axes", CASES,
                         ids=[f"{row.name}-{''.join('b' if a == 0 else 'u' for a in axes)}"
                              for row, axes in CASES])
@fast(3)
@given(data=st.data())
def test_batching_rule_matches_a_loop(row, in_axes, data):
    args = [np.stack([data.draw(d.strategy()) for _ in range(BATCH)]) if ax == 0 else
            data.draw(d.strategy()) for d, ax in zip(row.args, in_axes)]
    f = trace(row)
    batched = vmap(f, in_axes=in_axes, axis_size=BATCH)
    assert_batched(batched(*args), looped(f, args, in_axes))


# ---- in_axes ---------------------------------------------------------------------------------------
def affine(x, A, b):
    return av.tanh(A @ x + b) * x.sum()


AFFINE = av.NumericalFunction("affine", affine, (av.Arg(3), av.Arg((2, 3)), av.Arg(2)))
RNG = np.random.default_rng(3)
XS = RNG.uniform(-1, 1, (4, 3))
AS = RNG.uniform(-1, 1, (4, 2, 3))
BS = RNG.uniform(-1, 1, (4, 2))


@pytest.mark.parametrize("in_axes, args", [
    (0, (XS, AS, BS)),
    ((0, None, None), (XS, AS[0], BS[0])),
    ((None, 0, None), (XS[0], AS, BS[0])),
    ((1, 2, 0), (XS.T, AS.transpose(1, 2, 0), BS)),
    ((-1, -1, None), (XS.T, AS.transpose(1, 2, 0), BS[0])),
    ([0, 1, None], (XS, AS.transpose(1, 0, 2), BS[1])),
], ids=["all0", "first", "middle", "positive", "negative", "list"])
def test_in_axes(in_axes, args):
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * 3
    assert_batched(vmap(AFFINE, in_axes=in_axes)(*args), looped(AFFINE, args, axes))


def test_axis_size_gives_a_function_of_the_batched_shapes():
    batched = vmap(AFFINE, in_axes=(1, None, 0), axis_size=4)
    assert isinstance(batched, av.NumericalFunction)
    assert [a.shape for a in batched.args] == [(3, 4), (2, 3), (4, 2)]
    assert batched.output_shapes == [(4, 2)]
    assert_batched(batched(XS.T, AS[0], BS), looped(AFFINE, (XS.T, AS[0], BS), (1, None, 0)))


def test_outputs_independent_of_the_batch_are_broadcast():
    f = av.NumericalFunction("f", lambda x, p: (x * p, av.exp(p)), (av.Arg(3), av.Arg(3)))
    y, e = vmap(f, in_axes=(0, None))(XS, XS[0])
    assert_batched([y, e], looped(f, (XS, XS[0]), (0, None)))


def test_vmap_of_plain_callables():
    assert_batched(vmap(lambda x, b: av.sin(x) + b)(XS, XS),
                   [np.sin(XS) + XS])
    assert_batched(vmap(lambda x, b: (x * b).sum(), in_axes=(0, None))(XS, XS[1]),
                   [XS @ XS[1]])


def test_nested_vmap():
    f = av.NumericalFunction("f", lambda x, y: (av.sin(x) * y).sum(), (av.Arg(3), av.Arg(3)))
    inner = vmap(f, in_axes=(0, None), axis_size=2)              # over x
    outer = vmap(inner, in_axes=(None, 0), axis_size=4)          # over y
    xs, ys = XS[:2], RNG.uniform(-1, 1, (4, 3))
    np.testing.assert_allclose(outer(xs, ys), (np.sin(xs) @ ys.T).T, rtol=1e-14)


def test_vmap_graph_does_not_grow_with_the_batch():
    def lines(size):
        return len(vmap(AFFINE, in_axes=(0, None, None), axis_size=size).graph.splitlines())
    assert lines(2) == lines(2000)


# ---- with the derivative operators ------------------------------------------------------------------
def loss(x, A, b):
    return (affine(x, A, b) ** 2).sum()


LOSS = av.NumericalFunction("loss", loss, (av.Arg(3), av.Arg((2, 3)), av.Arg(2)))


def test_per_example_gradients():
    g = gradient(LOSS, argnum=1)
    assert_batched(vmap(g, in_axes=(0, None, 0))(XS, AS[0], BS),
                   looped(g, (XS, AS[0], BS), (0, None, 0)))


def test_vmap_of_jacobian_and_hessian():
    for op in (jacobian(AFFINE), hessian(LOSS), jacobian(AFFINE, mode="rev", unroll=True)):
        assert_batched(vmap(op, in_axes=(0, None, None))(XS, AS[0], BS[0]),
                       looped(op, (XS, AS[0], BS[0]), (0, None, None)))


def test_jacobian_of_vmap_is_block_diagonal():
    batched = vmap(AFFINE, in_axes=(0, None, None), axis_size=4)
    J = jacobian(batched)(XS, AS[0], BS[0])                  # (4, 2) + (4, 3)
    blocks = looped(jacobian(AFFINE), (XS, AS[0], BS[0]), (0, None, None))[0]
    expected = np.zeros((4, 2, 4, 3))
    for i in range(4):
        expected[i, :, i, :] = blocks[i]
    np.testing.assert_allclose(J, expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(jacobian(batched, mode="rev")(XS, AS[0], BS[0]), expected,
                               rtol=1e-13, atol=1e-15)


# ---- errors -------------------------------------------------------------------------------------------
def test_mismatched_batch_sizes():
    with pytest.raises(ValueError, match="batch size.*2.*4|batch size.*4.*2"):
        vmap(AFFINE)(XS[:2], AS, BS)
    with pytest.raises(ValueError, match="batch size"):
        vmap(lambda x, y: x * y)(np.ones((2, 3)), np.ones((4, 3)))


def test_in_axes_errors():
    with pytest.raises(ValueError, match="in_axes: expected one entry per argument"):
        vmap(AFFINE, in_axes=(0, None), axis_size=4)
    with pytest.raises(ValueError, match="in_axes: at least one argument must be batched"):
        vmap(AFFINE, in_axes=None, axis_size=4)
    with pytest.raises(ValueError, match=r"in_axes\[0\]"):
        vmap(AFFINE, in_axes=(3, None, None), axis_size=4)
    with pytest.raises(ValueError, match="axis_size"):
        vmap(AFFINE, axis_size=-1)
