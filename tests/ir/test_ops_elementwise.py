"""Elementwise ops compiled vs the NumPy reference interpreter vs NumPy: arithmetic, comparisons,
logic, where, casts (bit for bit) and the math functions (within a few ulp)."""
import numpy as np
import pytest
from avcheck import NUMERIC, SIGNLESS, arrays, check, fast, floats, ulp_tol
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import anvil_llvm as av

BINARY_EXACT = {
    "add": lambda m, x, y: x + y,
    "sub": lambda m, x, y: x - y,
    "mul": lambda m, x, y: x * y,
    "div": lambda m, x, y: x / y,
    "lt": lambda m, x, y: x < y,
    "le": lambda m, x, y: x <= y,
    "gt": lambda m, x, y: x > y,
    "ge": lambda m, x, y: x >= y,
    "eq": lambda m, x, y: x == y,
    "ne": lambda m, x, y: x != y,
    "maximum": lambda m, x, y: m.maximum(x, y),
    "minimum": lambda m, x, y: m.minimum(x, y),
}

FORMS = ("tensor-tensor", "tensor-array", "array-tensor", "tensor-number", "number-tensor")


def two_operands(data, dtypes=NUMERIC, max_dims=3, **float_options):
    """Two arrays of broadcastable shapes and independently drawn dtypes."""
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=max_dims,
                                                         max_side=4)).input_shapes
    return [data.draw(arrays(s, data.draw(st.sampled_from(dtypes)), **float_options))
            for s in shapes]


def number(data):
    return data.draw(st.integers(-5, 5) | floats(-10, 10) | st.sampled_from([0.0, -0.0, 2]))


def check_binary(op, data, x, y, tol=None):
    """`op` with the operands in one of FORMS: a Tensor meets a Tensor, an ndarray captured in
    the function (on either side: the left one must reach the reflected method), or a number."""
    form = data.draw(st.sampled_from(FORMS))
    if form == "tensor-tensor":
        check(op, x, y, tol=tol)
    elif form == "tensor-array":
        check(lambda m, a: op(m, a, y), x, tol=tol)
    elif form == "array-tensor":
        check(lambda m, b: op(m, x, b), y, tol=tol)
    elif form == "tensor-number":
        c = number(data)
        check(lambda m, a: op(m, a, c), x, tol=tol)
    else:
        c = number(data)
        check(lambda m, b: op(m, c, b), y, tol=tol)


@pytest.mark.parametrize("name", BINARY_EXACT)
@fast(40)
@given(data=st.data())
def test_binary_exact(name, data):
    x, y = two_operands(data, special=True)
    check_binary(BINARY_EXACT[name], data, x, y, tol=SIGNLESS if "imum" in name else None)


def test_array_on_the_left_reaches_reflected_methods():
    y = np.array([1.0, -2.0, 4.0])
    c = np.array([3.0, 5.0, -7.0])
    for op in BINARY_EXACT.values():
        check(lambda m, b, op=op: op(m, c, b), y)
    check(lambda m, b: c @ b, y)
    check(lambda m, b: c ** b, np.array([0.5, 2.0, 3.0]), tol=ulp_tol(np.float64))


BOOLS = (np.array([True, True, False, False]), np.array([True, False, True, False]))


@pytest.mark.parametrize("name", ["eq", "ne"])
def test_equality_of_bools(name):
    check(BINARY_EXACT[name], *BOOLS)


@pytest.mark.parametrize("name", ["lt", "le", "gt", "ge"])
def test_ordering_of_bools(name):
    check(BINARY_EXACT[name], *BOOLS)


@pytest.mark.parametrize("op", [
    lambda m, a: np.float64(2.0) - a, lambda m, a: np.int64(3) * a,
    lambda m, a: np.float32(2) / a, lambda m, a: np.bool_(True) & (a > 0),
    lambda m, a: np.float64(2.0) ** a, lambda m, a: np.float64(0.0) < a,
    lambda m, a: np.float64(0.25) == a, lambda m, a: [1.0, 2.0, 3.0] + a,
    lambda m, a: a * (1, 2, 3), lambda m, a: np.eye(3) @ a,
], ids=["np.float64 -", "np.int64 *", "np.float32 /", "np.bool_ &", "np.float64 **",
        "np.float64 <", "np.float64 ==", "list +", "* tuple", "ndarray @"])
def test_numpy_scalars_and_sequences_as_operands(op):
    check(op, np.array([1.5, -2.0, 0.25]), tol=ulp_tol(np.float64))


@pytest.mark.parametrize("op", [lambda m, x: -x, lambda m, x: abs(x), lambda m, x: m.abs(x),
                                lambda m, x: +x], ids=["neg", "abs", "av.abs", "pos"])
@fast(30)
@given(data=st.data())
def test_unary_exact(op, data):
    check(op, data.draw(arrays(shape_strategy(), data.draw(st.sampled_from(NUMERIC)),
                               special=True)))


def test_abs_method():
    x = np.array([-1.5, 0.0, -0.0, 2.0, -np.inf])
    check(lambda m, a: a.abs(), x, numpy_op=lambda m, a: np.abs(a))


# name -> (domain of the inputs, NumPy function)
MATH = {
    "sin": (-10, 10), "cos": (-10, 10), "tan": (-1.5, 1.5), "exp": (-30, 30),
    "log": (1e-3, 1e3), "sqrt": (0, 1e4), "tanh": (-20, 20), "sinh": (-20, 20),
    "cosh": (-20, 20), "arcsin": (-1, 1), "arccos": (-1, 1), "arctan": (-100, 100),
    "log1p": (-0.99, 100), "expm1": (-20, 20),
}


@pytest.mark.parametrize("name", MATH)
@fast(30)
@given(data=st.data())
def test_math(name, data):
    lo, hi = MATH[name]
    dtype = data.draw(st.sampled_from((np.float64, np.float32)))
    x = data.draw(arrays(shape_strategy(), dtype, lo=lo, hi=hi))
    form = data.draw(st.sampled_from(["function", "method"]))
    np_fn = getattr(np, name)
    if form == "function":
        check(lambda m, a: getattr(m, name)(a), x, tol=ulp_tol(dtype))
    else:
        check(lambda m, a: getattr(a, name)(), x, tol=ulp_tol(dtype),
              numpy_op=lambda m, a: np_fn(a))


@pytest.mark.parametrize("name", MATH)
def test_math_special_values_and_ints(name):
    """Outside the domain, at infinities and NaN the results agree too (NaN where NumPy gives
    NaN); ints compute in float64 as in NumPy."""
    x = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -2.0, 50.0, 800.0, np.inf, -np.inf, np.nan])
    check(lambda m, a: getattr(m, name)(a), x, tol=ulp_tol(np.float64))
    check(lambda m, a: getattr(m, name)(a), np.array([0, 1, -1, 3]), tol=ulp_tol(np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", MATH)
def test_math_on_long_arrays(name, dtype):
    """Long enough for the vectorised loop (LLVM calls libmvec's vector variants) and an odd
    remainder for the scalar tail."""
    lo, hi = MATH[name]
    check(lambda m, a: getattr(m, name)(a), np.linspace(lo, hi, 1003).astype(dtype),
          tol=ulp_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op", [
    lambda m, a: a * np.inf, lambda m, a: a + np.nan,
    lambda m, a: m.where(a > 0, np.inf, -np.inf), lambda m, a: a * 0.1 + 1e-30,
    lambda m, a: a * 5e-324, lambda m, a: a * np.int64(2**62),
    lambda m, a: a + np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-310]),
], ids=["inf", "nan", "where infinities", "0.1", "subnormal", "large int", "special array"])
def test_special_constants(op, dtype):
    """Constants become exact LLVM literals, also the ones a float32 cannot hold exactly."""
    check(op, np.array([1.5, -2.0, 0.0, -0.0, np.inf, np.nan], dtype))


def test_math_aliases():
    assert av.asin is av.arcsin and av.acos is av.arccos and av.atan is av.arctan
    assert av.atan2 is av.arctan2


def shape_strategy():
    return hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@fast(40)
@given(data=st.data())
def test_arctan2(data):
    y, x = two_operands(data, dtypes=(np.float64,), special=True)
    check_binary(lambda m, a, b: m.arctan2(a, b), data, y, x, tol=ulp_tol(np.float64))


@pytest.mark.parametrize("exponent", [2, 0.5, -1, 1])
@fast(25)
@given(data=st.data())
def test_pow_fast_paths_are_exact(exponent, data):
    """NumPy computes x**2, x**0.5, x**-1 and x**1 as square, sqrt, reciprocal and copy."""
    dtype = data.draw(st.sampled_from((np.float64, np.float32)))
    x = data.draw(arrays(shape_strategy(), dtype, special=True))
    check(lambda m, a: a ** exponent, x)


@pytest.mark.parametrize("exponent", [2, 3, "tensor"])
def test_integer_power_stays_integer(exponent):
    x = np.array([1, -2, 3, 0])
    check(lambda m, a: a ** (abs(a) if exponent == "tensor" else exponent), x)


@pytest.mark.parametrize("exponent", [3, 0, -2, 1.5, -0.5, 2.5])
@fast(20)
@given(data=st.data())
def test_pow_scalar_exponent(exponent, data):
    dtype = data.draw(st.sampled_from((np.float64, np.float32)))
    x = data.draw(arrays(shape_strategy(), dtype, lo=0.0, hi=20.0))
    check(lambda m, a: a ** exponent, x, tol=ulp_tol(dtype))


@fast(40)
@given(data=st.data())
def test_pow_tensor_exponent(data):
    base, exponent = two_operands(data, dtypes=(np.float64,), lo=0.0, hi=10.0)
    check_binary(lambda m, a, b: a ** b, data, base, exponent / 4, tol=ulp_tol(np.float64))


def test_pow_special_values():
    base = np.array([0.0, -0.0, -2.0, 2.0, np.inf, -np.inf, np.nan, 1.0, 0.5])
    for exponent in (2, 0.5, -1, 3, 0, -0.5, np.inf):
        check(lambda m, a, exponent=exponent: a ** exponent, base, tol=ulp_tol(np.float64))
    check(lambda m, a, b: a ** b, base, base[::-1].copy(), tol=ulp_tol(np.float64))


@fast(40)
@given(data=st.data())
def test_logic(data):
    x, y = two_operands(data, dtypes=(np.bool_,))
    op = data.draw(st.sampled_from([lambda m, a, b: a & b, lambda m, a, b: a | b,
                                    lambda m, a, b: a ^ b, lambda m, a, b: ~(a & ~b)]))
    check(op, x, y)
    c = data.draw(st.booleans())
    check(lambda m, a: (a & c) | (c ^ a), x)
    check(lambda m, a: (c & a) | (a | c), x)


@fast(40)
@given(data=st.data())
def test_where(data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3,
                                                         max_side=4)).input_shapes
    cond = data.draw(arrays(shapes[0], data.draw(st.sampled_from((np.bool_, np.float64)))))
    x = data.draw(arrays(shapes[1], data.draw(st.sampled_from(NUMERIC)), special=True))
    y = data.draw(arrays(shapes[2], data.draw(st.sampled_from(NUMERIC)), special=True))
    check(lambda m, c, a, b: m.where(c, a, b), cond, x, y)
    c = number(data)
    check(lambda m, k, a: m.where(k, a, c), cond, x)
    check(lambda m, a: m.where(a > 0, c, a), x)


@fast(40)
@given(data=st.data())
def test_astype(data):
    source = data.draw(st.sampled_from((np.float64, np.float32, np.int64, np.bool_)))
    target = data.draw(st.sampled_from((np.float64, np.float32, np.int64, np.bool_)))
    # float -> int is only defined by NumPy inside int64's range and for finite values.
    special = target != np.int64
    x = data.draw(arrays(shape_strategy(), source, special=special, lo=-1e6, hi=1e6)
                  if np.dtype(source).kind == "f" else arrays(shape_strategy(), source))
    check(lambda m, a: a.astype(target), x)
    dtype = {np.float64: av.float64, np.float32: av.float32, np.int64: av.int64,
             np.bool_: av.bool_}[target]
    check(lambda m, a: a.astype(dtype), x, numpy_op=lambda m, a: a.astype(target))


@fast(40)
@given(data=st.data())
def test_float32_arithmetic_stays_float32(data):
    x, y = two_operands(data, dtypes=(np.float32,), special=True)
    check(lambda m, a, b: (a * b + a / b - 1.5) * 2, x, y)


def test_signed_zero_through_add_of_zero():
    """-0.0 + 0.0 is +0.0 in IEEE arithmetic, so 1 / (x + 0) is +inf at x = -0.0."""
    check(lambda m, a: 1.0 / (a + 0.0), np.array([-0.0, 0.0, 1.0]))


def test_signed_zero_through_zero_minus():
    """0.0 - 0.0 is +0.0, whereas -(0.0) is -0.0."""
    check(lambda m, a: 1.0 / (0.0 - a), np.array([-0.0, 0.0, 1.0]))


def test_uniform_tables_agree_with_the_rules():
    """An op's `uniform` table (what nodes are made from without running the rules) gives, for
    sources of one dtype, the dtype its rules give, and nothing where they raise."""
    from anvil_llvm.ir import dtypes
    from anvil_llvm.ir.uop import _OPS
    with_tables = [op for op in _OPS.values() if op.uniform is not None]
    assert len(with_tables) > 20
    for op in with_tables:
        for d in dtypes.ALL:
            try:
                ruled = op.dtype((d,) * (op.arity or 2), None)
                op.shape(((2, 3),) * (op.arity or 2), None)
            except TypeError:
                ruled = None
            assert op.uniform.get(d) is ruled, (op, d)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_maximum_and_minimum_of_special_values_are_numpys_bits(name, dtype):
    """Every pair of -inf, -1, -0.0, +0.0, 1, inf and NaN: NumPy's result to the bit (the
    second operand at a tie of zeros, NaN from either side), compiled and interpreted."""
    import itertools
    from anvil_llvm.ir.interpret import evaluate
    values = [-np.inf, -1.0, -0.0, 0.0, 1.0, np.inf, np.nan]
    x, y = (np.array(v, dtype) for v in zip(*itertools.product(values, values)))
    f = av.NumericalFunction(name, lambda a, b: getattr(av, name)(a, b),
                             (av.Arg(x.size, dtype), av.Arg(x.size, dtype)))
    expected = getattr(np, name)(x, y)
    for got in (f(x, y), evaluate(f.outputs, [x, y])[0]):
        np.testing.assert_array_equal(got.view(np.uint64 if dtype == np.float64 else np.uint32),
                                      expected.view(np.uint64 if dtype == np.float64
                                                    else np.uint32))
