"""Random expression graphs over one to three inputs, compiled and compared with the NumPy
reference interpreter (and NumPy itself).

Expressions are trees drawn with `st.recursive`; equal subtrees are one interned UOp and every
input is shared, so the traced graphs are DAGs with reuse. Every value stays broadcastable with
every other (each op keeps its operand's shape, or makes an axis 1, or adds a leading axis), so
any two subexpressions can meet in a binary op.

Two families:
- exact: IEEE operations that are correctly rounded (+ - * / sqrt, neg, abs, max, min, where) and
  movement; compiled and interpreted results must agree bit for bit;
- smooth: adds transcendentals, sums, means, products and matmul, all continuous and bounded
  (tanh before exp, 1 + y*y under a division) so that a few ulp of difference in one op cannot
  become a large difference in the result; compared to rtol 1e-9 of the output's magnitude.
"""
import numpy as np
import pytest
from avcheck import Tol, arrays, check, fast, floats, numpy_result
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def _along(ndim: int, axis: int, key) -> tuple:
    return (slice(None),) * axis + (key,) + (slice(None),) * (ndim - axis - 1)


def _rng(seed: int):
    return np.random.default_rng(seed)


# Each op takes (m, seed, *operands); `seed` picks axes, index tables and matrices so that one
# drawn expression is valid for whatever shapes its operands turn out to have.
UNARY_EXACT = {
    "neg": lambda m, s, x: -x,
    "abs": lambda m, s, x: abs(x),
    "half": lambda m, s, x: x * 0.5,
    "hypot1": lambda m, s, x: m.sqrt(x * x + 1.0),
    "leaky": lambda m, s, x: m.where(x > 0, x, 0.25 * x),
}
UNARY_SMOOTH = {
    "sin": lambda m, s, x: m.sin(x),
    "cos": lambda m, s, x: m.cos(x),
    "tanh": lambda m, s, x: m.tanh(x),
    "arctan": lambda m, s, x: m.arctan(x),
    "exp_tanh": lambda m, s, x: m.exp(m.tanh(x)),
    "log1p_sq": lambda m, s, x: m.log1p(x * x),
    "pow": lambda m, s, x: (x * x + 1.0) ** 0.75,
}
BINARY_EXACT = {
    "add": lambda m, s, x, y: x + y,
    "sub": lambda m, s, x, y: x - y,
    "mul": lambda m, s, x, y: x * y,
    "div": lambda m, s, x, y: x / (y * y + 1.0),
    # + 0.0 makes a zero positive: NumPy's maximum and minimum of 0.0 and -0.0 give either zero
    # depending on its SIMD path (LLVM's give the larger and the smaller).
    "maximum": lambda m, s, x, y: m.maximum(x, y) + 0.0,
    "minimum": lambda m, s, x, y: m.minimum(x, y) + 0.0,
    "where": lambda m, s, x, y: m.where(x > y, x, y),
}
BINARY_SMOOTH = {
    "arctan2": lambda m, s, x, y: m.arctan2(x, y * y + 1.0),
    "pow": lambda m, s, x, y: (x * x + 0.5) ** m.tanh(y),
}


def _flip(m, s, x):
    return x[_along(x.ndim, s % x.ndim, slice(None, None, -1))] if x.ndim else x


def _gather(m, s, x):
    if not x.ndim:
        return x
    axis = s % x.ndim
    n = x.shape[axis]
    indices = _rng(s).integers(-n, n, size=n)    # repeats and negative indices
    return x[_along(x.ndim, axis, indices)]


def _pad_then_slice(m, s, x):
    if not x.ndim:
        return x
    axis = s % x.ndim
    width = [(0, 0)] * x.ndim
    width[axis] = (1, 2)
    return m.pad(x, width)[_along(x.ndim, axis, slice(2, -1))]    # shifted by one, zero-filled


def _concat_then_stride(m, s, x):
    if not x.ndim:
        return x
    axis = s % x.ndim
    return m.concatenate([x, -x], axis=axis)[_along(x.ndim, axis, slice(1, None, 2))]


def _transposed(m, s, x):
    return (x.T * 2.0).T


def _reshaped(m, s, x):
    return x.reshape(-1)[::-1].reshape(x.shape)


def _new_axis(m, s, x):
    return x[None] if x.ndim < 4 else x


MOVEMENT = {
    "flip": _flip, "gather": _gather, "pad": _pad_then_slice, "concat": _concat_then_stride,
    "transpose": _transposed, "reshape": _reshaped, "newaxis": _new_axis,
}


def _reduce(name: str):
    def op(m, s, x):
        if not x.ndim:
            return x
        axis = s % x.ndim
        if name in ("max", "min") and x.shape[axis] == 0:
            return x
        # + 0.0: the sign of a zero maximum is NumPy's choice (see BINARY_EXACT).
        return getattr(x, name)(axis=axis - x.ndim if s % 2 else axis, keepdims=True) + 0.0
    return op


REDUCE_EXACT = {"max": _reduce("max"), "min": _reduce("min")}
REDUCE_SMOOTH = {"sum": _reduce("sum"), "mean": _reduce("mean"), "prod": _reduce("prod")}


def _matmul(m, s, x):
    if not x.ndim:
        return x
    k = x.shape[-1]
    return x @ (_rng(s).uniform(-1.0, 1.0, (k, k)) / k)


def expressions(n_inputs: int, smooth: bool):
    """Expression trees: ("input", i) | ("const", c) | (table, name, seed, *children)."""
    unary = {**UNARY_EXACT, **MOVEMENT, **REDUCE_EXACT}
    binary = dict(BINARY_EXACT)
    if smooth:
        unary.update({**UNARY_SMOOTH, **REDUCE_SMOOTH, "matmul": _matmul})
        binary.update(BINARY_SMOOTH)
    leaves = st.one_of(st.tuples(st.just("input"), st.integers(0, n_inputs - 1)),
                       st.tuples(st.just("const"), floats(-2.0, 2.0)))
    seeds = st.integers(0, 2**16)

    def extend(children):
        return st.one_of(
            st.tuples(st.just("unary"), st.sampled_from(sorted(unary)), seeds, children),
            st.tuples(st.just("binary"), st.sampled_from(sorted(binary)), seeds, children,
                      children),
            # Reuse inside one expression: the same subtree on both sides.
            children.flatmap(lambda c: st.tuples(st.just("binary"),
                                                 st.sampled_from(sorted(binary)), seeds,
                                                 st.just(c),
                                                 st.tuples(st.just("unary"),
                                                           st.sampled_from(sorted(unary)),
                                                           seeds, st.just(c)))))
    tree = st.recursive(leaves, extend, max_leaves=10)
    return tree, {"unary": unary, "binary": binary}


def evaluate(expr, m, inputs, tables):
    kind = expr[0]
    if kind == "input":
        return inputs[expr[1]]
    if kind == "const":
        return expr[1]
    _, name, seed, *children = expr
    values = [evaluate(c, m, inputs, tables) for c in children]
    if all(type(v) is float for v in values):
        return values[0]        # an expression of constants only stays a constant
    result = tables[kind][name](m, seed, *values)
    # NumPy turns 0-d results into scalars, which index and promote differently.
    return np.asarray(result) if m is np else result


@st.composite
def programs(draw, smooth: bool, max_dims: int = 3, max_side: int = 4):
    """Inputs (1-3 broadcastable arrays) and 1-2 output expressions over them."""
    n = draw(st.integers(1, 3))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=max_dims,
                                                    min_side=1, max_side=max_side)).input_shapes
    dtypes = (np.float64,) if smooth else (np.float64, np.float64, np.float32, np.int64)
    inputs = [draw(arrays(s, draw(st.sampled_from(dtypes)), lo=-2.0, hi=2.0)) for s in shapes]
    tree, tables = expressions(n, smooth)
    outputs = draw(st.lists(tree.filter(lambda e: e[0] != "const"), min_size=1, max_size=2))
    return inputs, outputs, tables


def program_op(outputs, tables):
    def op(m, *xs):
        results = []
        for e in outputs:
            value = evaluate(e, m, xs, tables)
            results.append(xs[0] * 0.0 + value if type(value) is float else value)
        return tuple(results)
    return op


SIZES = {"small": {"max_dims": 3, "max_side": 4}, "long": {"max_dims": 2, "max_side": 40}}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("smooth", [False, True], ids=["exact", "smooth"])
@fast(40)
@given(data=st.data())
def test_random_graphs(smooth, size, data):
    """Exact graphs match bit for bit; smooth ones to rtol 1e-9 of the outputs' magnitude.
    Long arrays run the vectorised loops and their remainders."""
    inputs, outputs, tables = data.draw(programs(smooth, **SIZES[size]))
    op = program_op(outputs, tables)
    if not smooth:
        check(op, *inputs)
        return
    expected = numpy_result(op, *inputs)
    scale = max([1.0] + [float(np.max(np.abs(e), initial=0.0)) for e in expected])
    check(op, *inputs, tol=Tol(1e-9, 1e-9 * scale))
