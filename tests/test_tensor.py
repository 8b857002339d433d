"""The tracer API: Tensor properties, Arg and NumericalFunction construction, inspection
(`graph`, `llvm_ir`), and the errors raised while tracing, each of the right type and naming
what is wrong."""
import numpy as np
import pytest
from avcheck import arrays, check, fast, shapes
from hypothesis import given
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm.ad import gradient


def traced(fn, *shapes):
    """Trace `fn` for float64 arguments of `shapes` (errors surface here)."""
    return av.NumericalFunction("f", fn, [av.Arg(s) for s in shapes])


def raises_while_tracing(exception, match, fn, *shapes):
    with pytest.raises(exception, match=match):
        traced(fn, *shapes)


# ---- what a traced function sees and returns --------------------------------------------------
def test_tensor_properties():
    seen = {}

    def fn(x):
        seen.update(shape=x.shape, dtype=x.dtype, ndim=x.ndim, size=x.size, len=len(x),
                    repr=repr(x), rows=[r.shape for r in x])
        return x
    traced(fn, (3, 4))
    representation = seen.pop("repr")
    assert seen == {"shape": (3, 4), "dtype": av.float64, "ndim": 2, "size": 12, "len": 3,
                    "rows": [(4,)] * 3}
    assert "float64" in representation and "3, 4" in representation


def test_arg_forms_and_names():
    f = av.NumericalFunction("g", lambda a, b, c: a.sum() + b * c,
                             (3, av.Arg((), name="scale"), av.Arg((), np.float32)))
    assert [a.shape for a in f.args] == [(3,), (), ()]
    assert f.arg_names == ["a", "scale", "c"]
    assert f.args[2].dtype == av.float32
    assert f.output_shapes == [()]
    assert "g(" in repr(f) and "scale" in repr(f)
    assert float(f(np.array([1.0, 2.0, 3.0]), np.array(2.0), np.array(0.5, np.float32))) == 7.0


def test_numerical_function_decorator():
    @av.numerical_function("cost", 4, (2, 2))
    def cost(x, m):
        return (m @ x[:2]).sum() + x[2:].prod()

    x, m = np.arange(1.0, 5.0), np.array([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(cost, av.NumericalFunction)
    assert float(cost(x, m)) == (m @ x[:2]).sum() + x[2:].prod()


def test_tuple_and_list_outputs():
    f = traced(lambda x: (x + 1, x.sum()), 3)
    a, b = f(np.arange(3.0))
    np.testing.assert_array_equal(a, [1.0, 2.0, 3.0])
    assert b == 3.0 and isinstance(b, np.ndarray) and b.shape == ()
    g = traced(lambda x: [x * 2, x], 2)
    assert isinstance(g(np.ones(2)), tuple)


def test_one_tuple_output_stays_a_tuple():
    f = traced(lambda x: (x * 2,), 2)
    result = f(np.ones(2))
    assert isinstance(result, tuple) and len(result) == 1


def test_graph_text_lists_the_ops():
    f = av.NumericalFunction("f", lambda x, y: (x * y).sin().sum(axis=0),
                             (av.Arg((3, 4)), av.Arg(4)))
    text = f.graph
    lines = text.splitlines()
    assert lines[-1].startswith("return %")
    for op in ("input x", "input y", "mul", "sin", "sum", "expand"):
        assert op in text, op
    assert "float64[3, 4]" in text and "float64[4]" in text


def test_llvm_ir_defines_the_function():
    f = traced(lambda x: x.exp() * 2.0, 5)
    ir = f.llvm_ir
    assert "define dso_local i32 @f." in ir     # the name and a digest of the code
    assert "exp" in ir


def test_identical_traces_share_nodes():
    """UOps are interned: the same expression traced twice is one node."""
    f = traced(lambda x: x * 2.0 + 1.0, 3)
    g = traced(lambda y: y * 2.0 + 1.0, 3)
    assert f.outputs[0] is g.outputs[0]


# ---- errors while tracing ------------------------------------------------------------------------
@pytest.mark.parametrize("branch", [
    lambda x: x if x.sum() > 0 else -x,
    lambda x: bool(x[0]),
    lambda x: x[0] and x[1],
    lambda x: not x[0],
    lambda x: max(x[0], x[1]),
], ids=["if", "bool", "and", "not", "builtin max"])
def test_python_branching_on_a_tensor_points_to_where(branch):
    raises_while_tracing(TypeError, r"av\.where", branch, 3)


@pytest.mark.parametrize("use", [len, iter], ids=["len", "iter"])
def test_a_scalar_has_no_length(use):
    raises_while_tracing(TypeError, "0-d", lambda x: use(x) and x, ())


@pytest.mark.parametrize("convert", [float, int, complex, lambda x: range(x)],
                         ids=["float", "int", "complex", "index"])
def test_tensor_has_no_python_value(convert):
    raises_while_tracing(TypeError, "Tensor", lambda x: convert(x[0]), 3)


@pytest.mark.parametrize("result, match", [
    (lambda x: 1.0, "output 0 is a float"),
    (lambda x: (x, np.zeros(3)), "output 1 is a ndarray"),
    (lambda x: None, "output 0 is a NoneType"),
    (lambda x: (), "no outputs"),
])
def test_function_returning_a_non_tensor(result, match):
    raises_while_tracing(TypeError, match, result, 3)


@pytest.mark.parametrize("name", ["1abc", "a-b", "has space", "", "int", "class", "return",
                                  "naïve"])
def test_names_must_be_c_identifiers(name):
    with pytest.raises(ValueError, match="not a valid C identifier"):
        av.NumericalFunction(name, lambda x: x, (av.Arg(3),))
    with pytest.raises(ValueError, match="Arg name"):
        av.Arg(3, name=name)


def test_name_must_be_a_string():
    with pytest.raises(TypeError, match="name"):
        av.NumericalFunction(None, lambda x: x, (av.Arg(3),))


@pytest.mark.parametrize("shape", [-1, (2, -3), (2.0,), "3", (True,), 1.5, ((2,),)])
def test_arg_with_a_bad_shape(shape):
    with pytest.raises(ValueError, match="Arg: shape"):
        av.Arg(shape)


@pytest.mark.parametrize("dtype", [np.complex128, "U3", object, np.float16, "datetime64[s]"])
def test_arg_with_an_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match="dtype"):
        av.Arg(3, dtype)


def test_args_that_are_not_args():
    with pytest.raises(TypeError, match=r"args\[1\]"):
        av.NumericalFunction("f", lambda x, y: x, (3, "four"))


def test_fn_must_be_callable():
    with pytest.raises(TypeError, match="fn"):
        av.NumericalFunction("f", 42, (av.Arg(3),))


def test_tensor_is_made_by_tracing():
    with pytest.raises(TypeError, match="NumericalFunction"):
        av.Tensor(np.zeros(3))


def test_tensors_are_not_hashable():
    raises_while_tracing(TypeError, "unhashable", lambda x: {x: 1} and x, 3)


@pytest.mark.parametrize("op", [lambda x: x // 0.3, lambda x: 2 // (x + 3.0),
                                lambda x: np.full(3, 1.0) // (x + 3.0),
                                lambda x: np.floor_divide(x, -0.7)],
                         ids=["//", "r//", "ndarray //", "np.floor_divide"])
def test_floor_division_follows_numpy(op):
    x = np.array([1.0, -0.25, 2.9])
    np.testing.assert_array_equal(av.NumericalFunction("f", op, (av.Arg(3),))(x), op(x))


def test_assigning_into_a_tensor_says_how_to_build_the_values():
    def fill(x):
        x[0] = 1.0
        return x
    raises_while_tracing(TypeError, "cannot be assigned into.*stack, concatenate or where",
                         fill, 3)


@pytest.mark.parametrize("method, args, kwargs", [
    ("std", (), {"axis": 1}), ("var", (), {"ddof": 1}), ("clip", (-0.5, 1.0), {}),
    ("cumsum", (), {"axis": 1}), ("cumprod", (), {}), ("swapaxes", (0, 1), {}),
    ("round", (), {"decimals": 1}), ("copy", (), {}), ("diagonal", (), {}), ("trace", (), {}),
    ("take", (np.array([2, 0]),), {"axis": 1}), ("repeat", (2,), {"axis": 0})])
def test_ndarray_methods_follow_numpy(method, args, kwargs):
    x = np.array([[0.3, -1.2, 2.55], [1.0, 0.0, -0.7]])
    f = av.NumericalFunction("f", lambda t: getattr(t, method)(*args, **kwargs),
                             (av.Arg((2, 3)),))
    want = getattr(x, method)(*args, **kwargs)
    got = f(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_boolean_reductions_squeeze_and_logaddexp_reduce_follow_numpy():
    x = np.array([[0.3, -1.2, 2.5], [1.0, 0.0, -0.7]])

    def f(t, m=None):
        return ((t > -1.0).all(axis=0), (t > 2.0).any(), t[None].squeeze(0),
                np.logaddexp.reduce(t, axis=1))
    for got, want in zip(av.NumericalFunction("f", f, (av.Arg((2, 3)),))(x), f(x)):
        assert got.dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_traced_boolean_mask_indexing_points_to_where():
    raises_while_tracing(TypeError, r"av\.where", lambda x: x[x > 0], 3)


def test_indexing_with_a_traced_tensor():
    raises_while_tracing(TypeError, "traced Tensor", lambda x, i: x[i], 3, ())
    raises_while_tracing(TypeError, "traced Tensor", lambda x, i: x[1:i], 3, ())


@pytest.mark.parametrize("key", [3, -4, (0, 5), [0, 3], np.array([[-4]]), (0, 0, 0),
                                 (Ellipsis, 0, Ellipsis)])
def test_out_of_range_indices(key):
    raises_while_tracing(IndexError, "index|indices|ellipsis", lambda x: x[key], (3, 2))


def test_float_index_arrays():
    raises_while_tracing(TypeError, "integers", lambda x: x[np.array([0.0, 1.0])], 3)


def test_integer_arrays_that_do_not_broadcast_are_refused_clearly():
    raises_while_tracing(IndexError, "could not be broadcast", lambda x: x[[0, 1], [1, 0, 1]],
                         (2, 2))


@pytest.mark.parametrize("reduce", ["sum", "prod", "max", "min", "mean"])
@pytest.mark.parametrize("axis", [2, -3, (0, 2), (0, 0), (1, -1)])
def test_out_of_range_or_repeated_axes(reduce, axis):
    raises_while_tracing(ValueError, "axis", lambda x: getattr(x, reduce)(axis=axis), (3, 2))


@pytest.mark.parametrize("reduce", ["sum", "prod", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_axis_of_a_scalar_in_ufunc_reductions(reduce, axis):
    check(lambda m, a: getattr(a, reduce)(axis=axis), np.array(1.5))


@pytest.mark.parametrize("axis", [0, -1])
def test_axis_of_a_scalar_in_mean(axis):
    """NumPy's mean refuses any integer axis of a 0-d array (AxisError, a ValueError)."""
    with pytest.raises(np.exceptions.AxisError):
        np.zeros(()).mean(axis=axis)
    raises_while_tracing(ValueError, "axis", lambda x: x.mean(axis=axis), ())


@pytest.mark.parametrize("axis", [1.0, "0", True])
def test_axis_must_be_an_int(axis):
    raises_while_tracing(TypeError, "axis", lambda x: x.sum(axis=axis), (3, 2))


@pytest.mark.parametrize("fn, shapes, match", [
    (lambda x, y: x + y, [(3,), (4,)], r"\(3,\).*\(4,\).*broadcast"),
    (lambda x, y: x * y, [(2, 3), (3, 2)], "broadcast"),
    (lambda x, y: av.where(x > 0, x, y), [(3,), (2,)], "broadcast"),
    (lambda x: x + np.ones(4), [(3,)], "broadcast"),
    (lambda x: x.broadcast_to((2, 4)), [(3,)], "broadcast"),
    (lambda x: x.broadcast_to((2,)), [(2, 2)], "broadcast"),
    (lambda x, y: x @ y, [(2, 3), (2, 3)], "matmul"),
    (lambda x, y: x @ y, [(3,), (4,)], "matmul"),
    (lambda x, y: x @ y, [(2, 2, 3), (3, 3, 2)], "broadcast"),
    (lambda x, y: x @ y, [(), (3,)], "matmul"),
    (lambda x: x.reshape(4), [(3,)], "reshape"),
    (lambda x: x.reshape(-1, -1), [(4,)], "reshape"),
    (lambda x: x.reshape(-1, 5), [(4,)], "reshape"),
    (lambda x: x.reshape(2, -2), [(4,)], "reshape"),
    (lambda x: x.transpose(0), [(2, 2)], "transpose"),
    (lambda x: x.transpose(0, 0), [(2, 2)], "permutation|transpose"),
    (lambda x, y: av.concatenate([x, y]), [(2, 3), (2, 4)], "concatenate"),
    (lambda x: av.concatenate([]), [(2,)], "concatenate"),
    (lambda x: av.concatenate([x, x]), [()], "concatenate"),
    (lambda x: av.concatenate([x, x], axis=1), [(2,)], "axis"),
    (lambda x, y: av.stack([x, y]), [(2,), (3,)], "stack"),
    (lambda x: av.stack([]), [(2,)], "stack"),
    (lambda x: av.pad(x, -1), [(2,)], "pad"),
    (lambda x: av.pad(x, ((1, 1), (1, 1))), [(2,)], "."),
])
def test_incompatible_shapes(fn, shapes, match):
    with pytest.raises(ValueError, match=match):
        traced(fn, *shapes)


@pytest.mark.parametrize("fn, match", [
    (lambda x: ~x, "bool"),
    (lambda x: x & x, "bool"),
    (lambda x: x | (x > 0), "bool"),
    (lambda x: x + np.array(["a"]), "dtype"),
    (lambda x: x + 1j, "complex|real"),
    (lambda x: x + "s", "str"),
    (lambda x: x.astype(np.complex64), "dtype"),
])
def test_wrong_dtypes_while_tracing(fn, match):
    raises_while_tracing(TypeError, match, fn, 3)


# ---- NumPy semantics the tracer must follow ------------------------------------------------------
@pytest.mark.parametrize("dtype, other", [
    (np.float32, 2.5), (np.float32, 2), (np.int64, 2.5), (np.int64, 3), (np.float32, True),
    (np.float32, np.array(2.0)), (np.int64, np.float32(1.5)), (np.float32, np.float32(2.0)),
    (np.int64, np.int32(2)), (np.int64, np.float64(1.5)),
    (np.float32, np.float64(0.1)), (np.float32, np.int64(3)),
])
def test_result_dtypes_follow_numpy_promotion(dtype, other):
    x = np.arange(1, 4).astype(dtype)
    check(lambda m, a: (a + other, other - a, a * other, a / other, other / a), x)


def test_int_inputs_to_math_functions_compute_in_float64():
    check(lambda m, a: (m.sqrt(a), a / 2, a.mean()), np.array([1, 4, 9]))


# ---- % (mod) -------------------------------------------------------------------------------------
INT64 = np.iinfo(np.int64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@fast(30)
@given(data=st.data())
def test_mod_is_numpys(dtype, data):
    """x % y has the sign of y, as np.mod, bit for bit: negative operands, zeros of either sign,
    infinities, NaN, and integer division by 0 (0, as NumPy) and of the smallest int by -1."""
    shape = data.draw(shapes(max_dims=2))
    if np.dtype(dtype).kind == "f":
        x, y = (data.draw(arrays(shape, dtype, special=True)) for _ in range(2))
    else:
        ints = st.integers(-20, 20) | st.sampled_from([INT64.min, INT64.max, -1, 0])
        x, y = (data.draw(arrays(shape, dtype, elements=ints)) for _ in range(2))
    check(lambda m, a, b: (a % b, b % a), x, y)


def test_mod_of_numbers_and_mixed_dtypes():
    """Python numbers keep the tensor's dtype; NumPy promotes ints with floats to floats."""
    x = np.array([-7.5, -2.0, -0.0, 0.0, 3.25, 7.0], np.float32)
    check(lambda m, a: (a % 2, a % -2.5, 5 % a, a % np.float64(3.0), np.arange(6.0) % a), x)
    k = np.array([-7, -2, 0, 3, 7, INT64.min])
    specials = np.array([0.0, -0.0, np.inf, -np.inf, 2.5, -1.0])
    check(lambda m, a: (a % 3, a % -3, 7 % a, a % 2.5, a % specials), k)
    # NumPy's bool % bool is int8; ints here are int64
    check(lambda m, a: (a > 0) % (a < 0), x,
          numpy_op=lambda m, a: ((a > 0) % (a < 0)).astype(np.int64))


def test_mod_derivatives():
    """d(x % y)/dx = 1 and d(x % y)/dy = -floor(x / y), against central differences."""
    x = np.array([7.3, -7.3, 2.9, -0.4])
    y = np.array([2.0, 2.0, -1.5, 0.7])
    f = av.NumericalFunction("mod", lambda x, y: (x % y).sum(), (av.Arg(4), av.Arg(4)))
    gx, gy = gradient(f, argnum=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, np.ones(4))
    np.testing.assert_allclose(gy, -np.floor(x / y), rtol=1e-15)
    h = 1e-6
    np.testing.assert_allclose(gy, (np.mod(x, y + h) - np.mod(x, y - h)) / (2 * h), rtol=1e-8)


# ---- stack and concatenate -----------------------------------------------------------------------
def test_stack_and_concatenate_take_a_sequence_or_separate_tensors():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    check(lambda m, a: m.stack([a[0], a[1]]) if m is np else av.stack(a[0], a[1]), x)
    check(lambda m, a: m.stack([a[1], a[0]], axis=1) if m is np else
          av.stack(a[1], a[0], axis=1), x)
    check(lambda m, a: m.concatenate([a, a]) if m is np else av.concatenate(a, a), x)
    check(lambda m, a: m.concatenate((a, a * 2), axis=1) if m is np else
          av.concatenate(a, a * 2, axis=1), x)
    # NumPy's forms: a sequence, its axis positionally; one array is the sequence of its rows
    check(lambda m, a: (m.stack([a, a], 1), m.concatenate((a, a), 1), m.stack(a),
                        m.concatenate(a)), x)
    check(lambda m, a: av.Tensor.stack(a[0], a[1]) if m is av else np.stack([a[0], a[1]]), x)


def test_stack_and_concatenate_errors():
    raises_while_tracing(TypeError, "stack: axis given twice",
                         lambda x: av.stack([x, x], 1, axis=1), 3)
    raises_while_tracing(ValueError, "stack: need at least one tensor", lambda x: av.stack(), 3)
    raises_while_tracing(ValueError, "concatenate: need at least one tensor",
                         lambda x: av.concatenate(), 3)


# ---- NumPy's functions on tensors ----------------------------------------------------------------
def test_ndarray_operators_with_a_tensor_trace():
    """`ndarray <op> Tensor` and the ufuncs of Python's operators trace, with NumPy's results."""
    x = np.array([0.5, -1.25, 2.0])
    c = np.array([3.0, 2.0, -0.5])
    check(lambda m, a: (c + a, c - a, c * a, c / a, c ** a, c % a, c @ a, np.float64(2.0) * a,
                        np.add(a, 1), np.multiply(2, a), np.power(a, 2), np.subtract(c, a),
                        np.true_divide(a, c), np.remainder(a, 2.0), np.matmul(a, c)), x)
    check(lambda m, a: (c < a, c <= a, c > a, c >= a, c == a, c != a, np.less(a, 1.0),
                        np.equal(a, c)), x)
    flags = np.array([True, False, True])
    check(lambda m, a: (flags & (a > 0), flags | (a > 0), flags ^ (a > 0)), x)
    check(lambda m, a: (np.float32(2.5) * a, c.astype(np.float32) + a),
          x.astype(np.float32))


def test_in_place_ndarray_operators_are_refused():
    def accumulate(x):
        total = np.zeros(3)
        total += x
        return total
    raises_while_tracing(TypeError, r"a \+= x", accumulate, 3)


def test_numpy_shape_functions_give_the_static_shape():
    seen = []
    traced(lambda x: seen.append((np.shape(x), np.ndim(x), np.size(x))) or x, (2, 3))
    assert seen == [((2, 3), 2, 6)]
