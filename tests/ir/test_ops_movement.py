"""Movement ops compiled vs the interpreter vs NumPy, bit for bit: indexing (ints, negative and
stepped slices, None, Ellipsis, one integer array incl. negative and 2-D), reshape (-1),
transpose / .T, broadcast_to, concatenate, stack, Tensor.stack, pad, captured constants."""
import numpy as np
import pytest
from avcheck import arrays, check, fast, shapes
from hypothesis import given
from hypothesis import strategies as st

import anvil_llvm as av

DTYPES = (np.float64, np.float32, np.int64, np.bool_)


def any_array(data, shape=None, **shape_options):
    dtype = data.draw(st.sampled_from(DTYPES))
    return data.draw(arrays(shape if shape is not None else shapes(**shape_options), dtype,
                            special=True))


@st.composite
def index_arrays(draw, n: int):
    """An integer index array (maybe 2-D, maybe a list, maybe negative) into an axis of n."""
    shape = draw(shapes(min_dims=1, max_dims=2, min_side=0 if n == 0 else 1, max_side=3))
    if n == 0:
        shape = (0,) * len(shape)
    indices = draw(arrays(shape, np.int64, elements=st.integers(-n, max(n - 1, 0))))
    return indices.tolist() if indices.ndim == 1 and draw(st.booleans()) else indices


@st.composite
def slices(draw, n: int):
    bound = st.none() | st.integers(-n - 2, n + 2)
    step = draw(st.none() | st.integers(-3, 3).filter(bool))
    return slice(draw(bound), draw(bound), step)


@st.composite
def index_keys(draw, shape):
    """A NumPy index for `shape`: per axis an int, a slice or (on at most one axis) an integer
    array; then maybe an Ellipsis over a run of axes, new axes (None) and a dropped tail."""
    gather = draw(st.sampled_from([None, *range(len(shape))]))
    entries = []
    for axis, n in enumerate(shape):
        if axis == gather:
            entries.append(draw(index_arrays(n)))
        elif n and draw(st.integers(0, 2)) == 0:
            entries.append(draw(st.integers(-n, n - 1)))
        else:
            entries.append(draw(slices(n)))
    if draw(st.booleans()):
        i = draw(st.integers(0, len(entries)))
        j = draw(st.integers(i, len(entries)))
        if gather is None or not i <= gather < j:
            entries[i:j] = [Ellipsis]
    elif entries and draw(st.booleans()):
        cut = draw(st.integers(0, len(entries)))
        if gather is None or gather < cut:
            entries = entries[:cut]
    for _ in range(draw(st.integers(0, 2))):
        entries.insert(draw(st.integers(0, len(entries))), None)
    if len(entries) == 1 and draw(st.booleans()):
        return entries[0]
    return tuple(entries)


@fast(60)
@given(data=st.data())
def test_indexing(data):
    x = any_array(data, max_dims=3, max_side=5)
    key = data.draw(index_keys(x.shape))
    check(lambda m, a: a[key], x)


@fast(25)
@given(data=st.data())
def test_indexing_then_arithmetic(data):
    """Indexing fused into an elementwise consumer (index arithmetic, no copies)."""
    x = data.draw(arrays(shapes(min_dims=1, max_dims=3, max_side=5)))
    key = data.draw(index_keys(x.shape))
    check(lambda m, a: m.maximum(a[key] * 2.0 - 1.0, a[key]), x)


def test_gather_examples():
    x = np.arange(36.0).reshape(3, 3, 4)
    for key in ([1, -1, 0], np.array([[0, 2], [-1, 1]]), (slice(None), [2, 0, 2]),
                (0, slice(None), [-1, -2]), (slice(None), 1, np.array([[3], [0]])),
                (Ellipsis, np.array([[1, 2, 3], [0, 0, 0]])), (None, 1, [0, 2], None)):
        check(lambda m, a, key=key: a[key], x)


def test_new_axis_between_advanced_indices():
    check(lambda m, a: a[0, None, [0, 2]], np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("key", [
    np.array(1),
    (np.array(-2), slice(None)),
    (slice(None), np.array(-1)),
    (np.int64(2), np.uint8(1)),
    np.array([1], dtype=np.uint8),
    slice(np.int64(1), None, np.int32(-1)),
], ids=["0-d array", "0-d array, slice", "slice, 0-d array", "NumPy ints", "uint8 array",
        "NumPy ints in a slice"])
def test_numpy_integer_indices(key):
    check(lambda m, a: a[key], np.arange(12.0).reshape(3, 4))


@st.composite
def reshapes(draw, size: int):
    """A new shape of `size` elements, maybe with one -1."""
    dims, rest = [], size
    while rest > 1 and len(dims) < 3 and draw(st.booleans()):
        d = draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
        dims.append(d)
        rest //= d
    dims = draw(st.permutations(dims + [rest] + [1] * draw(st.integers(0, 1))))
    if size and draw(st.booleans()):
        dims[draw(st.integers(0, len(dims) - 1))] = -1
    return tuple(dims)


@fast(40)
@given(data=st.data())
def test_reshape(data):
    x = any_array(data, max_dims=3, max_side=4)
    shape = data.draw(reshapes(x.size))
    check(lambda m, a: a.reshape(shape), x)
    check(lambda m, a: (a.reshape(*shape), a.reshape(-1).reshape(shape)), x)


def test_flatten_and_ravel():
    check(lambda m, a: (a.flatten(), a.ravel(), a.T.flatten()), np.arange(6.0).reshape(2, 3))


@fast(40)
@given(data=st.data())
def test_transpose(data):
    x = any_array(data, max_dims=4, max_side=3)
    perm = data.draw(st.permutations(range(x.ndim)))
    perm = tuple(p - x.ndim if data.draw(st.booleans()) else p for p in perm)
    check(lambda m, a: a.transpose(perm), x)
    check(lambda m, a: (a.T, a.transpose(), a.transpose(*perm)), x)


@fast(40)
@given(data=st.data())
def test_broadcast_to(data):
    x = any_array(data, max_dims=3, max_side=3)
    lead = data.draw(shapes(max_dims=2, max_side=3))
    target = lead + tuple(data.draw(st.integers(0, 3)) if n == 1 else n for n in x.shape)
    check(lambda m, a: a.broadcast_to(target), x,
          numpy_op=lambda m, a: np.broadcast_to(a, target))


@fast(40)
@given(data=st.data())
def test_concatenate(data):
    base = data.draw(shapes(min_dims=1, max_dims=3, max_side=3))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    pieces = []
    for _ in range(data.draw(st.integers(1, 4))):
        shape = list(base)
        shape[axis] = data.draw(st.integers(0, 3))
        pieces.append(any_array(data, tuple(shape)))
    captured = data.draw(st.sampled_from([None, *range(len(pieces))]))
    traced = [p for i, p in enumerate(pieces) if i != captured]

    def op(m, *xs):
        it = iter(xs)
        return m.concatenate([pieces[i] if i == captured else next(it)
                              for i in range(len(pieces))], axis=axis)
    if traced:
        check(op, *traced)


@fast(40)
@given(data=st.data())
def test_stack(data):
    shape = data.draw(shapes(max_dims=3, max_side=3))
    xs = [any_array(data, shape) for _ in range(data.draw(st.integers(1, 3)))]
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check(lambda m, *ts: m.stack(ts, axis=axis), *xs)
    check(lambda m, *ts: m.stack(list(ts)), *xs)


def test_tensor_stack_of_scalars():
    x = np.array([3.0, -1.5, 2.0])
    check(lambda m, a: av.Tensor.stack(a[0] * a[1], a[2], 2.5, a.sum()) if m is av else None,
          x, numpy_op=lambda m, a: np.stack([a[0] * a[1], a[2], 2.5, a.sum()]))
    check(lambda m, a: av.Tensor.stack([a[0], a[1]], axis=0), x,
          numpy_op=lambda m, a: np.stack([a[0], a[1]]))


def test_mixed_dtypes_promote_when_joined():
    x = np.array([1.5])
    check(lambda m, a: av.Tensor.stack(a[0], 2, True) if m is av else np.stack([a[0], 2, True]),
          x)
    check(lambda m, a: (m.concatenate([a, [1, 2]]), m.concatenate([a > 0, [True]]),
                        m.stack([a, a.astype(np.float32)])), x)


@fast(40)
@given(data=st.data())
def test_pad(data):
    x = any_array(data, min_dims=1, max_dims=3, max_side=3)
    width = st.integers(0, 2)
    pad_width = data.draw(st.one_of(
        width, st.tuples(width, width), st.tuples(st.tuples(width, width)),
        st.tuples(*[st.tuples(width, width)] * x.ndim)))
    check(lambda m, a: m.pad(a, pad_width), x)


def test_captured_constants():
    c = np.array([[1.0, -2.0, 0.5]])
    k = np.array([2, 0, -7])
    mask = np.array([True, False, True])
    check(lambda m, a: (a * c + k, m.where(mask, a, c), a[..., k % 3] - c), np.arange(6.0)
          .reshape(2, 3))


def test_bool_and_int64_outputs():
    x = np.array([[1.5, -2.0, 0.0], [np.nan, 4.0, -0.5]])
    check(lambda m, a: (a > 0, (a > 0).sum(axis=1), a.astype(np.int64)[:, ::-1],
                        m.concatenate([a < 1, a >= -np.inf]), m.stack([a != 0, ~(a > 0)])),
          np.nan_to_num(x))


def test_empty_and_size_one_dimensions():
    for shape in [(0,), (1,), (1, 1), (0, 3), (3, 0), (1, 0, 2), (2, 1, 3)]:
        x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) - 1
        check(lambda m, a: (a * 2, a.T[::-1], a.reshape(-1) if a.size else a.reshape(0),
                            a.sum(axis=0), m.pad(a, 1), m.concatenate([a, a], axis=-1),
                            m.stack([a, a], axis=-1), a[None, ..., None] + 1), x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_movement_of_every_dtype(dtype):
    x = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    check(lambda m, a: (a[::-2, [0, -1]], a.T.reshape(2, 6), m.pad(a, ((0, 1), (2, 0))),
                        m.concatenate([a, a[:1]]), a.broadcast_to((2, 3, 4)) if m is av
                        else np.broadcast_to(a, (2, 3, 4))), x)


@fast(30)
@given(data=st.data())
def test_one_dimensional_loops_split_at_bounds_tests(data):
    """Sums of shifted, reversed, stepped, padded and joined vectors (the shape of gradients of
    sliced functions): the loop runs in pieces whose bounds tests are known; exact values."""
    n = data.draw(st.integers(1, 120))
    x = data.draw(arrays(st.just((n,)), np.float64))
    draws = [(data.draw(st.integers(-n, n)), data.draw(st.integers(-n, n)),
              data.draw(st.sampled_from([1, -1, 2, -2])), data.draw(st.integers(0, 40)),
              data.draw(st.integers(0, 40))) for _ in range(3)]

    def expression(m, a):
        pieces = [m.pad(a[start:stop:step], (low, high))
                  for start, stop, step, low, high in draws]
        size = max(p.shape[0] for p in pieces)
        total = m.pad(pieces[0], (0, size - pieces[0].shape[0]))
        for p in pieces[1:]:
            total = total + m.pad(p, (size - p.shape[0], 0))
        return m.concatenate([total * 2.0, a[::-1]])
    check(expression, x)


def test_remembered_rules_give_what_the_rules_give_and_errors_every_time():
    """Shapes and dtypes are remembered per (op, arg, source shapes and dtypes); a rule that
    raises is asked again (nothing remembered), and a node made after the memo was emptied is
    the same node."""
    from anvil_llvm.ir import dtypes, uop
    from anvil_llvm.ir import ops as O
    x = uop.UOp(O.INPUT, (), (0, (4, 3), dtypes.float64))
    first = uop.UOp(O.SLICE, (x,), ((1, 2, 2), (0, 1, 3)))
    assert first.shape == (2, 3) and first.dtype is dtypes.float64
    assert uop._rules[(O.SLICE, ((1, 2, 2), (0, 1, 3)), ((4, 3),), (dtypes.float64,))] == \
        ((2, 3), dtypes.float64, 6)
    for _ in range(2):
        with pytest.raises(ValueError, match="out of range"):
            uop.UOp(O.SLICE, (x,), ((1, 2, 3), (0, 1, 3)))
    uop._rules.clear()
    assert uop.UOp(O.SLICE, (x,), ((1, 2, 2), (0, 1, 3))) is first


def _gathering(indices: np.ndarray) -> av.NumericalFunction:
    f = av.NumericalFunction("g", lambda x: x[indices], (av.Arg(7),))
    np.testing.assert_array_equal(f(np.arange(7.0)), indices.astype(float))
    return f


def test_tables_of_gathers_are_not_kept_alive_by_the_remembered_rules():
    import gc
    import weakref
    f = _gathering(np.arange(100_000) % 7)
    payloads = [n.arg[1] for n in f.outputs[0].src + (f.outputs[0],) if n.op.name == "gather"]
    assert payloads
    ref = weakref.ref(payloads[0].array)
    del f, payloads
    gc.collect()
    assert ref() is None
