"""Elementwise functions with NumPy's names: the primitives of `anvil_llvm`, and composites
written once in numerically stable forms (each differentiable through its primitives)."""
from __future__ import annotations

import math as _math

import numpy as np

from .. import tensor as T
from ..ir import build as B
from ..ir import ops as O
from ..ir.uop import UOp
from ..tensor import Tensor, as_tensor

sin, cos, tan, arcsin, arccos, arctan = T.sin, T.cos, T.tan, T.arcsin, T.arccos, T.arctan
sinh, cosh, tanh, exp, expm1, log, log1p = T.sinh, T.cosh, T.tanh, T.exp, T.expm1, T.log, T.log1p
sqrt, arctan2, maximum, minimum, power = T.sqrt, T.arctan2, T.maximum, T.minimum, T.power
mod = remainder = T.mod
where = T.where
abs = absolute = T.abs


def _float(x) -> Tensor:
    return T._float(as_tensor(x))


def add(x, y) -> Tensor:
    return as_tensor(x) + y


def subtract(x, y) -> Tensor:
    return as_tensor(x) - y


def multiply(x, y) -> Tensor:
    return as_tensor(x) * y


def divide(x, y) -> Tensor:
    return as_tensor(x) / y


true_divide = divide


def floor_divide(x, y) -> Tensor:
    """x / y rounded towards -inf, as np.floor_divide, by NumPy's own steps (so `1 // 0.1` is
    9.0, as in NumPy); ints stay ints.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.floor_divide(x, 0.1), (av.Arg(2),))
    >>> f(np.array([1.0, -0.25]))
    array([ 9., -3.])
    """
    x, y = as_tensor(x), as_tensor(y)
    whole = (x - mod(x, y)) / y
    down = floor(whole)
    out = where(whole - down > 0.5, down + 1.0, down)
    return out.astype(np.int64) if x.dtype.kind in "ib" and y.dtype.kind in "ib" else out


def negative(x) -> Tensor:
    return -as_tensor(x)


def positive(x) -> Tensor:
    return as_tensor(x)


def square(x) -> Tensor:
    """x * x, as np.square."""
    x = as_tensor(x)
    return x * x


def reciprocal(x) -> Tensor:
    """1 / x for floats, as np.reciprocal."""
    return 1.0 / _float(x)


def sign(x) -> Tensor:
    """-1, 0 or 1 by the sign of x (NaN at NaN), as np.sign; its derivative is zero.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.sign, (av.Arg(3),))
    >>> f(np.array([-2.0, 0.0, 5.0]))
    array([-1.,  0.,  1.])
    """
    x = T._numeric(as_tensor(x))
    out = Tensor(B.sign(x.node))
    return out + 0.0 if x.dtype.kind == "f" else out      # -0.0 gives 0.0, as in NumPy


def _rounded(op, x) -> Tensor:
    x = as_tensor(x)
    return x if x.dtype.kind in "ib" else Tensor(UOp(op, (x.node,)))


def floor(x) -> Tensor:
    """The largest integral value <= x, as np.floor (ints unchanged); its derivative is 0."""
    return _rounded(O.FLOOR, x)


def ceil(x) -> Tensor:
    """The smallest integral value >= x, as np.ceil; its derivative is 0."""
    return _rounded(O.CEIL, x)


def trunc(x) -> Tensor:
    """x rounded towards zero, as np.trunc; its derivative is 0."""
    return _rounded(O.TRUNC, x)


def rint(x) -> Tensor:
    """x rounded to the nearest integral value, halves to even, as np.rint."""
    return _rounded(O.RINT, x)


fix = trunc


def round(a, decimals: int = 0) -> Tensor:
    """a rounded to `decimals` decimals, halves to even, as np.round (which scales by
    10**decimals, rounds, and scales back)."""
    a = as_tensor(a)
    if a.dtype.kind in "ib" and decimals >= 0:
        return a
    if decimals == 0:
        return rint(a)
    scale = 10.0 ** decimals
    return rint(_float(a) * scale) / scale


around = round


def erf(x) -> Tensor:
    """The error function, as scipy.special.erf."""
    return Tensor(UOp(O.ERF, (_float(x).node,)))


def erfc(x) -> Tensor:
    """1 - erf(x) without cancellation for large x, as scipy.special.erfc."""
    return Tensor(UOp(O.ERFC, (_float(x).node,)))


def isnan(x) -> Tensor:
    x = as_tensor(x)
    return x != x  # noqa: PLR0124  NaN is the value unequal to itself


def isinf(x) -> Tensor:
    return abs(as_tensor(x)) == np.inf


def isfinite(x) -> Tensor:
    return abs(as_tensor(x)) < np.inf


def logical_not(x) -> Tensor:
    return ~as_tensor(x)


def logical_and(x, y) -> Tensor:
    return as_tensor(x) & y


def logical_or(x, y) -> Tensor:
    return as_tensor(x) | y


def logical_xor(x, y) -> Tensor:
    return as_tensor(x) ^ y


def log2(x) -> Tensor:
    """Base-2 logarithm, as np.log2 (within an ulp or two: log(x) / log(2))."""
    return log(x) * (1.0 / _math.log(2.0))


def log10(x) -> Tensor:
    """Base-10 logarithm, as np.log10 (within an ulp or two: log(x) / log(10))."""
    return log(x) * (1.0 / _math.log(10.0))


def exp2(x) -> Tensor:
    """2 ** x, as np.exp2."""
    return power(2.0, _float(x))


def cbrt(x) -> Tensor:
    """The real cube root, as np.cbrt (negative for negative x; within a few ulps)."""
    x = _float(x)
    return sign(x) * power(abs(x), 1.0 / 3.0)


def deg2rad(x) -> Tensor:
    return _float(x) * (_math.pi / 180.0)


def rad2deg(x) -> Tensor:
    return _float(x) * (180.0 / _math.pi)


radians, degrees = deg2rad, rad2deg


def hypot(x, y) -> Tensor:
    """sqrt(x**2 + y**2) without overflow or underflow in the squares, as np.hypot (inf when
    either is infinite, even beside NaN).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.hypot, (av.Arg(2), av.Arg(2)))
    >>> f(np.array([3e200, 0.0]), np.array([4e200, 0.0])) / 1e200     # no overflow
    array([5., 0.])
    """
    a, b = abs(_float(x)), abs(_float(y))
    big, small = maximum(a, b), minimum(a, b)
    ratio = small / where(big == 0.0, 1.0, big)
    finite = big * sqrt(1.0 + ratio * ratio)
    return where(isinf(a) | isinf(b), np.inf, finite)


def clip(a, a_min=None, a_max=None) -> Tensor:
    """a limited to [a_min, a_max] (either may be None), as np.clip."""
    if a_min is None and a_max is None:
        raise ValueError("clip: a_min and a_max cannot both be None")
    out = as_tensor(a)
    if a_min is None:
        return minimum(out, a_max)
    if a_max is None:
        return maximum(out, a_min)
    # NumPy's clip between two bounds keeps `a` at a tie (of +0.0 and -0.0), where its
    # maximum and minimum (and its clip with one bound, which calls them) keep their second
    # operand: the bounds come first
    return minimum(a_max, maximum(a_min, out))


def logaddexp(x, y) -> Tensor:
    """log(exp(x) + exp(y)) without overflow, as np.logaddexp."""
    x, y = _float(x), _float(y)
    shifted = maximum(x, y) + log1p(exp(-abs(x - y)))
    return where(x == y, x + _math.log(2.0), shifted)


def expit(x) -> Tensor:
    """The logistic sigmoid 1 / (1 + exp(-x)), as scipy.special.expit; stable for large |x|
    (no branch overflows, so derivatives stay finite)."""
    x = _float(x)
    e = exp(-abs(x))
    return where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


sigmoid = expit


def softplus(x) -> Tensor:
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))."""
    x = _float(x)
    return maximum(x, 0.0) + log1p(exp(-abs(x)))


def fabs(x) -> Tensor:
    """|x| as a float, as np.fabs."""
    return abs(_float(x))


def fmax(x, y) -> Tensor:
    """The elementwise maximum ignoring NaN (the other operand wins; NaN only when both are),
    as np.fmax.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.fmax(x, x[::-1]), (av.Arg(2),))
    >>> f(np.array([np.nan, 1.0]))
    array([1., 1.])
    """
    x, y = as_tensor(x), as_tensor(y)
    return where(isnan(y), x, where(isnan(x), y, maximum(x, y)))


def fmin(x, y) -> Tensor:
    """The elementwise minimum ignoring NaN, as np.fmin (see `fmax`)."""
    x, y = as_tensor(x), as_tensor(y)
    return where(isnan(y), x, where(isnan(x), y, minimum(x, y)))


def heaviside(x1, x2) -> Tensor:
    """The step function: 0 for x1 < 0, `x2` at 0, 1 for x1 > 0 (NaN at NaN), as
    np.heaviside.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.heaviside(x, 0.5), (av.Arg(3),))
    >>> f(np.array([-2.0, 0.0, 3.0]))
    array([0. , 0.5, 1. ])
    """
    x1 = _float(x1)
    return where(x1 == 0.0, x2, where(x1 > 0.0, 1.0, where(x1 < 0.0, 0.0, x1)))


def sinc(x) -> Tensor:
    """sin(pi x) / (pi x), 1 at 0, as np.sinc (smooth there: its derivatives at 0 are those of
    the series 1 - (pi x)^2 / 6).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> av.NumericalFunction("f", anp.sinc, (av.Arg(2),))(np.array([0.0, 0.5])) * np.pi
    array([3.14159265, 2.        ])
    """
    y = _float(x) * _math.pi
    small = abs(y) < 1e-4
    safe = where(small, 1.0, y)
    series = 1.0 - y * y * (1.0 / 6.0)
    return where(small, series, sin(safe) / safe)


def float_power(x1, x2) -> Tensor:
    """x1 ** x2 in float64, as np.float_power."""
    return power(as_tensor(x1).astype(np.float64), as_tensor(x2).astype(np.float64))


def polyval(p, x) -> Tensor:
    """The polynomial with coefficients `p` (highest power first: a sequence, array or 1-D
    Tensor) at `x`, by Horner's rule, as np.polyval.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.polyval([1.0, 0.0, -2.0], x), (av.Arg(2),))
    >>> f(np.array([2.0, 3.0]))
    array([2., 7.])
    """
    coefficients = list(p) if isinstance(p, Tensor) else list(np.asarray(p))
    x = as_tensor(x)
    out = x * 0.0 + coefficients[0] if coefficients else x * 0.0
    for c in coefficients[1:]:
        out = out * x + c
    return out
