"""The simplifier: each rewrite row does what it says, and no rewrite changes a value: on random
graphs full of the constants the rules look for (0.0, -0.0, 1, -1, NaN, constant conditions)
and chains of movement ops, the simplified graph gives the same bits as the raw one."""
import operator

import numpy as np
import pytest
from avcheck import arrays, assert_same, check_function, fast, shapes
from hypothesis import given
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm.ir import dtypes
from anvil_llvm.ir import ops as O
from anvil_llvm.ir.interpret import evaluate
from anvil_llvm.ir.simplify import FOLD_LIMIT, simplify
from anvil_llvm.ir.uop import UOp, toposort
from anvil_llvm.tensor import as_tensor


def inputs_of(*shapes_and_dtypes):
    """Tensors over INPUT nodes (raw tracing: nothing is simplified yet)."""
    return [av.Tensor(UOp(O.INPUT, (), (i, tuple(s), d)))
            for i, (s, d) in enumerate(shapes_and_dtypes)]


def x3(dtype=dtypes.float64):
    (x,) = inputs_of(((3,), dtype))
    return x


def simplified(tensor):
    (node,) = simplify([tensor.node])
    return node


def ops_in(node) -> set:
    return {n.op for n in toposort([node])}


# ---- the rows, one at a time ----------------------------------------------------------------------
@pytest.mark.parametrize("build", [
    lambda x: x * 1.0, lambda x: 1.0 * x, lambda x: x / 1.0, lambda x: x - 0.0,
    lambda x: x + (-0.0), lambda x: operator.neg(-x), lambda x: x.astype(np.float64),
    lambda x: x.reshape(3), lambda x: x.reshape(1, 3).reshape(3), lambda x: x[:],
    lambda x: x[::1], lambda x: av.where(True, x, x * 2.0),
    lambda x: av.where(False, x * 2.0, x), lambda x: av.where(x > 0, x, x),
    lambda x: x[None].T.T[0], lambda x: av.pad(x, 1)[1:-1], lambda x: x[::-1][::-1],
], ids=["x*1", "1*x", "x/1", "x-0", "x+(-0)", "--x", "cast to own dtype", "reshape to own shape",
        "reshape reshape", "[:]", "[::1]", "where(True)", "where(False)",
        "where same branches", "permute permute", "slice of pad", "slice of slice"])
def test_identities_vanish(build):
    x = x3()
    assert simplified(build(x)) is x.node


def test_adding_positive_zero_to_floats_is_kept():
    """x + 0.0 turns -0.0 into 0.0, so it is not the identity for floats (but is for ints)."""
    x = x3()
    assert simplified(x + 0.0) is not x.node
    assert simplified(0.0 + x) is not x.node
    i = x3(dtypes.int64)
    assert simplified(i + 0) is i.node and simplified(0 + i) is i.node


def test_zero_minus_x():
    x = x3()
    assert simplified(-0.0 - x) is UOp(O.NEG, (x.node,))
    assert simplified(0.0 - x).op is O.SUB      # 0.0 - 0.0 is 0.0, -(0.0) is -0.0


def test_minus_negative_zero_is_kept():
    """x - (-0.0) is x + 0.0, which turns -0.0 into 0.0."""
    x = x3()
    value = np.array([-0.0, 0.0, 1.0])
    (got,) = evaluate([simplified(x - (-0.0))], [value])
    assert_same(got, value - (-0.0))


def test_sum_over_no_axes_of_negative_zero():
    x = x3()
    value = np.array([-0.0, 0.0, 1.0])
    (got,) = evaluate([simplified(x.sum(axis=()))], [value])
    assert_same(got, value.sum(axis=()))


def test_multiplying_by_minus_one_is_negation():
    x = x3()
    assert simplified(x * -1.0) is UOp(O.NEG, (x.node,))


def test_scalar_constants_fold():
    x = x3()
    node = simplified(x * (av.Tensor(O.const(2.0)) + 3.0))
    assert O.ADD not in ops_in(node)
    consts = [n.arg.value for n in toposort([node]) if n.op is O.CONST]
    assert consts == [5.0]


def test_small_constant_arrays_fold_and_large_structured_ones_do_not():
    small = simplified((as_tensor(np.arange(4.0)) * np.arange(4.0)).reshape(2, 2).sum(axis=0))
    assert small.op is O.CONST_ARRAY
    np.testing.assert_array_equal(small.arg.array, [4.0, 10.0])
    large = simplified(as_tensor(np.arange(FOLD_LIMIT + 1.0)) * np.arange(FOLD_LIMIT + 1.0))
    assert large.op is O.MUL, "arrays past FOLD_LIMIT are not folded"
    n = FOLD_LIMIT + 1
    big = simplified(av.Tensor(O.const(2.0)).broadcast_to((n,)) * 3.0)
    assert O.CONST_ARRAY not in ops_in(big), "a broadcast scalar stays structured"
    assert evaluate([big], [])[0].tolist() == [6.0] * n


def test_merges_and_compositions():
    (x,) = inputs_of(((2, 3, 4), dtypes.float64))
    node = simplified(x.transpose(1, 0, 2).transpose(2, 0, 1))
    assert node.op is O.PERMUTE and node.src[0] is x.node and node.arg == (2, 1, 0)
    (x,) = inputs_of(((4, 5), dtypes.float64))
    node = simplified(x[1:, ::2][::-1, 1:])
    assert [n.op for n in toposort([node])].count(O.SLICE) == 1
    node = simplified(av.pad(av.pad(x, 1), ((0, 2), (1, 0))))
    assert [n.op for n in toposort([node])].count(O.PAD) == 1
    assert node.arg == ((1, 3), (2, 1))


def test_slices_move_through_elementwise_ops():
    x, y = inputs_of(((100,), dtypes.float64), ((100,), dtypes.float64))
    node = simplified((x.sin() * y)[::50])
    assert node.op is O.MUL and node.shape == (2,)
    assert all(s.op is not O.SLICE or s.src[0].op is O.INPUT for s in toposort([node])
               if s.op is O.SLICE)


def test_entries_read_the_stacks_slices_and_concatenations_they_come_from():
    x, y = inputs_of(((3,), dtypes.float64), ((3,), dtypes.float64))
    assert simplified(av.stack([x[0], x[1], x[2]])) is x.node
    assert simplified(av.stack([x, y])[1]) is y.node
    node = simplified(x[::-1][0])                       # x[2]
    assert node.op is O.PICK and node.src[0] is x.node and node.arg == 2
    node = simplified(av.concatenate([x, y, x])[4])     # y[1]
    assert node.op is O.PICK and node.src[0] is y.node and node.arg == 1
    (m,) = inputs_of(((40, 3), dtypes.float64))
    node = simplified((m.sin() * m)[7])                  # only row 7 is computed
    assert node.op is O.MUL and node.shape == (3,)
    assert all(n.src[0] is m.node for n in toposort([node]) if n.op is O.PICK)
    assert x[1].node.op is O.PICK and av.stack([x[0], x[1] * 2]).node.op is O.STACK


def test_scalar_code_is_traced_in_simplified_form():
    """A traced integrator written with entries and stacks (its state a slice of the input)
    is already what `simplify` would make of it: returned node for node, not rebuilt."""
    def rk4_step(x, u, h=0.05):
        def f(s):
            return av.stack([s[1], u * av.cos(s[0]) - 0.5 * s[1] * s[1]])
        k1 = f(x)
        k2 = f(x + h / 2 * k1)
        return x + h * (k1 + k2) / 2

    def program(z):
        x = z[0:2]
        for k in range(20):
            x = rk4_step(x, z[2 + k % 3])
        return x
    f = av.NumericalFunction("rk", program, (av.Arg(5),), reroll=False)
    (z,) = inputs_of(((5,), dtypes.float64))
    (traced,) = [t.node for t in [program(z)]]
    assert simplify([traced])[0] is traced
    assert traced is f.outputs[0]
    # the first state's entries read the input itself (an entry of a slice is an entry)
    assert all(n.src[0].op is not O.SLICE for n in toposort([traced]) if n.op is O.PICK)


@pytest.mark.parametrize("last", [16, 4])
def test_elementwise_ops_over_a_padded_grid_run_on_the_grid(last):
    """exp(u) + (flat view of a padded grid): computed on the grid and reshaped after, when the
    grid's last axis holds a vector (16), not when it is shorter (4); the same bits."""
    (u,) = inputs_of(((6 * 5 * last,), dtypes.float64))
    grid = av.pad(u.reshape(6, 5, last)[1:-1, :, 1:], ((1, 1), (0, 0), (0, 1)))
    node = simplified(u.exp() + grid.reshape(-1) * 2.0)
    on_grid = node.op is O.RESHAPE and node.src[0].op is O.ADD and node.src[0].shape == (6, 5, last)
    assert on_grid == (last == 16)
    value = np.random.default_rng(7).standard_normal(6 * 5 * last)
    raw = (u.exp() + grid.reshape(-1) * 2.0).node
    assert_same(evaluate([node], [value])[0], evaluate([raw], [value])[0])


@fast(25)
@given(data=st.data())
def test_elementwise_ops_on_the_grid_keep_every_value(data):
    """Random grids (last axis 6-12) read through pads and slices, combined with flat terms:
    the simplified graph (computed on the grid where the rule fires) gives the raw bits, and
    so does its compiled code."""
    shape = tuple(data.draw(st.lists(st.integers(3, 5), min_size=1, max_size=2))) + (
        data.draw(st.integers(6, 12)),)
    size = int(np.prod(shape))
    value = data.draw(arrays((size,), np.float64, special=True))
    (u,) = inputs_of(((size,), dtypes.float64))
    grid = u.reshape(shape)
    cut = tuple(slice(1, None) if data.draw(st.booleans()) else slice(None, -1) for _ in shape)
    moved = av.pad(grid[cut], tuple((1, 0) if c.start else (0, 1) for c in cut))
    y = abs(u) * 1.5 + moved.reshape(-1) * data.draw(st.sampled_from([2.0, -0.0]))
    if data.draw(st.booleans()):
        y = av.maximum(y, u) - moved.reshape(-1)
    raw = evaluate([y.node], [value])[0]
    (node,) = simplify([y.node])
    assert_same(evaluate([node], [value])[0], raw, "simplified vs raw graph")
    fn = av.NumericalFunction.from_graph("f", [av.Arg(size)], [y.node], False)
    check_function(fn, [value], [raw])


@pytest.mark.parametrize("length", [10, 200], ids=["short", "deeper than MAX_NESTING"])
def test_slices_move_through_long_chains_in_one_call(length):
    """A slice pushed through a chain of elementwise ops reaches the input in one call (the
    rewrites of rewrites go past MAX_NESTING in later traversals), with the same values."""
    (x,) = inputs_of(((16,), dtypes.float64))
    chain = x
    for k in range(length):
        chain = chain * 1.5 + float(k % 3) if k % 2 else (chain - 0.25).abs()
    node = simplified(chain[2:5])
    assert node.shape == (3,)
    assert all(s.src[0].op is O.INPUT for s in toposort([node]) if s.op is O.SLICE)
    value = np.linspace(-1.0, 1.0, 16)
    assert_same(evaluate([node], [value])[0], evaluate([chain.node], [value])[0][2:5])


def test_simplify_is_idempotent_and_keeps_shared_nodes():
    x = x3()
    a = (x * 1.0).sin()
    outputs = simplify([a.node, (a + a).node])
    assert outputs[1].src[0] is outputs[0] and outputs[1].src[1] is outputs[0]
    assert simplify(outputs) == outputs


# ---- no rewrite changes a value -------------------------------------------------------------------
CONSTANTS = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, np.nan, np.inf, -np.inf])


def _axis_slices(x, data):
    return tuple(slice(data.draw(st.none() | st.integers(-n - 1, n)),
                       data.draw(st.none() | st.integers(-n - 1, n)),
                       data.draw(st.none() | st.sampled_from([1, 2, -1, -2, 3])))
                 for n in x.shape)


def _step(x, data):
    """One op the simplifier has a row for, applied to `x` (or `x` and a constant)."""
    c = data.draw(CONSTANTS)
    if x.dtype == dtypes.int64:
        c = int(c) if np.isfinite(c) else 0
    choice = data.draw(st.integers(0, 21))
    if choice == 0:
        return x + c
    if choice == 1:
        return c + x
    if choice == 2:
        return x - c
    if choice == 3:
        return c - x
    if choice == 4:
        return x * c
    if choice == 5:
        return c * x
    if choice == 6:
        return x / c if x.dtype != dtypes.int64 else x * c
    if choice == 7:
        return -x
    if choice == 8:
        return av.where(data.draw(st.booleans()), x, x * 2)
    if choice == 9:
        return av.where(x > c, x, x)
    if choice == 10:
        return x.astype(x.dtype) + x.astype(np.float32).astype(np.float64)
    if choice == 11:
        return x.reshape(-1).reshape(x.shape)
    if choice == 12 and x.ndim:
        perm = data.draw(st.permutations(range(x.ndim)))
        return x.transpose(perm).transpose(tuple(int(i) for i in np.argsort(perm)))
    if choice == 13:
        return x[_axis_slices(x, data)] if x.ndim else x
    if choice == 14:
        width = data.draw(st.integers(0, 2))
        return av.pad(x, width)[_axis_slices(av.pad(x, width), data)] if x.ndim else x
    if choice == 15 and x.ndim:     # 0-d: see test_pad_of_a_scalar in test_interpret.py
        return av.pad(av.pad(x, data.draw(st.integers(0, 1))), data.draw(st.integers(0, 1)))
    if choice == 16:    # + 1: the sign of a zero sum, see test_sum_over_no_axes_of_negative_zero
        return (x * c).sum(axis=()) + 1
    if choice == 17 and x.ndim and x.shape[0]:
        return av.stack([x[i] for i in range(x.shape[0])])
    if choice == 18:
        return av.stack([x, x * c])[data.draw(st.integers(-2, 1))]
    if choice == 19 and x.ndim and x.shape[0]:
        return av.concatenate([x * c, x])[data.draw(st.integers(0, 2 * x.shape[0] - 1))]
    if choice == 20 and x.ndim:
        part = x[_axis_slices(x, data)]
        return part[data.draw(st.integers(0, part.shape[0] - 1))] if part.shape[0] else part
    return av.Tensor(O.const(c, x.dtype)) * c + x      # constants fold


@fast(60)
@given(data=st.data())
def test_simplification_preserves_values(data):
    dtype = data.draw(st.sampled_from([np.float64, np.float32, np.int64]))
    shape = data.draw(shapes(max_dims=2, max_side=4))
    value = data.draw(arrays(shape, dtype, special=True))
    (x,) = inputs_of((shape, dtypes.from_numpy(dtype)))
    y = x
    for _ in range(data.draw(st.integers(1, 5))):
        y = _step(y, data)
    raw = evaluate([y.node], [value])[0]
    (node,) = simplify([y.node])
    assert node.shape == y.node.shape and node.dtype == y.node.dtype
    assert_same(evaluate([node], [value])[0], raw, "simplified vs raw graph")
    fn = av.NumericalFunction.from_graph("f", [av.Arg(shape, dtype)], [y.node], False)
    check_function(fn, [value], [raw])
