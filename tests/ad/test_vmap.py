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
from anvil_llvm.ad import grad, gradient, hessian, jacobian, vmap

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


def test_keyword_arguments_and_out():
    """A vmapped function binds keywords by the function's argument names and writes into out=,
    like any compiled function."""
    expected = looped(AFFINE, (XS, AS, BS), (0, 0, 0))[0]
    for batched in (vmap(AFFINE), vmap(affine)):
        assert_batched(batched(XS, A=AS, b=BS), [expected])
        assert_batched(batched(b=BS, A=AS, x=XS), [expected])
        out = np.empty_like(expected)
        batched(XS, AS, BS, out=out)
        np.testing.assert_allclose(out, expected, rtol=1e-13)


def test_empty_batch():
    result = vmap(lambda x: (x * x).sum())(np.ones((0, 3)))
    assert result.shape == (0,) and result.dtype == np.float64
    assert vmap(AFFINE, in_axes=(0, None, None))(XS[:0], AS[0], BS[0]).shape == (0, 2)


def test_vmap_of_vmap_and_grad_of_vmap_of_plain_callables():
    """A lazy vmap is a function of its arguments' names, so it composes like any other."""
    def f(x, y):
        return (av.sin(x) * y).sum()
    xs, ys = XS[:2], RNG.uniform(-1, 1, (4, 3))
    outer = vmap(vmap(f, in_axes=(0, None)), in_axes=(None, 0))
    np.testing.assert_allclose(outer(xs, ys), (np.sin(xs) @ ys.T).T, rtol=1e-14)
    total = grad(lambda x: vmap(f, in_axes=(0, None))(x, ys[0]).sum())
    np.testing.assert_allclose(total(xs), np.cos(xs) * ys[0], rtol=1e-14)


# ---- errors -------------------------------------------------------------------------------------------
def test_mismatched_batch_sizes_name_the_arguments():
    with pytest.raises(ValueError, match=r"affine_vmap\(\): batched arguments must share one batch "
                       r"size: argument 1 \('A'\) has 4 along axis 0, argument 0 \('x'\) has 2"):
        vmap(AFFINE)(XS[:2], AS, BS)
    with pytest.raises(ValueError, match=r"argument 1 \('y'\) has 4 along axis 0, "
                       r"argument 0 \('x'\) has 2"):
        vmap(lambda x, y: x * y)(np.ones((2, 3)), np.ones((4, 3)))


def test_an_argument_without_the_batch_axis():
    with pytest.raises(ValueError, match=r"in_axes\[1\] = 1 is out of range: argument 1 \('y'\) "
                       r"of fn_vmap\(\) has 1 dimension with its batch axis"):
        vmap(lambda x, y: x * y, in_axes=1)(np.ones((3, 4)), np.ones(3))
    with pytest.raises(ValueError, match=r"in_axes\[2\] = 0 is out of range: argument 2 \('b'\) "
                       r"of affine_vmap\(\) has 0 dimensions"):
        vmap(AFFINE)(XS, AS, 1.0)


@pytest.mark.parametrize("fn", [AFFINE, affine], ids=["function", "callable"])
def test_in_axes_errors(fn):
    with pytest.raises(ValueError, match=r"in_axes: expected one entry per argument of affine "
                       r"\(3: x, A, b\), got 2: \(0, None\)"):
        vmap(fn, in_axes=(0, None))
    with pytest.raises(ValueError, match="in_axes: at least one argument must be batched"):
        vmap(fn, in_axes=None)
    with pytest.raises(ValueError, match="in_axes: at least one argument must be batched"):
        vmap(fn, in_axes=[None, None, None])
    for bad in (0.0, "0", True, (0, 1.5, None), (0, (0,), None), {"x": 0}):
        with pytest.raises(TypeError, match="in_axes: expected an int or None"):
            vmap(fn, in_axes=bad)
    with pytest.raises(ValueError, match=r"in_axes\[0\] = 2 is out of range: argument 0 \('x'\) "
                       r"of affine(_vmap\(\))? has 2 dimensions with its batch axis"):
        vmap(fn, in_axes=(2, None, None))(XS, AS[0], BS[0])
    with pytest.raises(ValueError, match=r"in_axes\[0\] = -3"):
        vmap(fn, in_axes=(-3, None, None))(XS, AS[0], BS[0])


def test_axis_size_errors():
    with pytest.raises(ValueError, match=r"in_axes\[0\] = 3 is out of range"):
        vmap(AFFINE, in_axes=(3, None, None), axis_size=4)
    with pytest.raises(ValueError, match="axis_size: expected a non-negative int, got -1"):
        vmap(AFFINE, axis_size=-1)
    with pytest.raises(TypeError, match="axis_size: expected an int, got 4.0"):
        vmap(AFFINE, axis_size=4.0)
    with pytest.raises(TypeError, match="expected a NumericalFunction or a callable, got int"):
        vmap(42)


@pytest.mark.parametrize("fn", [AFFINE, affine], ids=["function", "callable"])
def test_call_errors_name_the_function(fn):
    """Keyword mistakes are reported for the vmapped function, never for vmap's own methods."""
    batched, twice = vmap(fn), {"out": None}
    calls = [
        (lambda: batched(XS, AS, BS, c=1),
         r"affine_vmap\(\) got an unexpected keyword argument 'c'"),
        (lambda: batched(XS, AS), r"affine_vmap\(\) missing argument 'b'"),
        (lambda: batched(XS, AS, BS, x=XS),
         r"affine_vmap\(\) got multiple values for argument 'x'"),
        (lambda: batched(XS, AS, BS, np.empty((4, 2))), r"affine_vmap\(\) takes 3 arguments"),
        (lambda: batched(XS, AS, BS, out=np.empty((4, 2)), **twice),
         r"affine_vmap\(\) got multiple values for keyword argument 'out'"),
    ]
    for call, match in calls:
        with pytest.raises(TypeError, match=match) as error:
            call()
        assert "_LazyVmap" not in str(error.value) and "__call__" not in str(error.value)
