"""Tensor: NumPy-style operator overloading that records UOps; no graph logic lives here."""
from __future__ import annotations

import builtins
import difflib
import math
import numbers
import operator

import numpy as np

from .indexing import entry, index
from .ir import build as B
from .ir import dtypes
from .ir import ops as O
from .ir.dtypes import DType
from .ir.ops.source import const_array
from .ir.uop import UOp


class Tensor:
    """A traced array: every operation on it records a node of the function's graph.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(3),))
    >>> float(f([1.0, 2.0, 3.0]))
    14.0
    """

    __slots__ = ("node",)
    __hash__ = None             # == builds a graph node, so tensors cannot be dict keys

    def __init__(self, node: UOp):
        if not isinstance(node, UOp):
            raise TypeError(f"Tensor: expected a UOp, got {type(node).__name__}; tensors are "
                            "created by tracing a function, see av.NumericalFunction")
        self.node = node

    # ---- properties -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.shape

    @property
    def dtype(self) -> DType:
        return self.node.dtype

    @property
    def ndim(self) -> int:
        return self.node.ndim

    @property
    def size(self) -> int:
        return self.node.size

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Tensor({self.dtype}{list(self.shape)}, op={self.node.op.name})"

    def __bool__(self):
        raise TypeError("a traced Tensor has no truth value: Python `if`, `and`, `or` and "
                        "`bool()` cannot branch on it; use av.where(condition, a, b)")

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __index__(self):
        raise TypeError("a traced Tensor cannot be used as a Python index or integer")

    def __float__(self):
        raise TypeError("a traced Tensor has no Python value while tracing; "
                        "keep computing with tensors")

    __int__ = __complex__ = __float__

    # ---- arithmetic -------------------------------------------------------------------------
    def __add__(self, other): return _binary(O.ADD, self, other)
    def __radd__(self, other): return _binary(O.ADD, other, self)
    def __sub__(self, other): return _binary(O.SUB, self, other)
    def __rsub__(self, other): return _binary(O.SUB, other, self)
    def __mul__(self, other): return _binary(O.MUL, self, other)
    def __rmul__(self, other): return _binary(O.MUL, other, self)
    def __truediv__(self, other): return _binary(O.DIV, self, other, to_float=True)
    def __rtruediv__(self, other): return _binary(O.DIV, other, self, to_float=True)
    def __pow__(self, other): return power(self, other)
    def __rpow__(self, other): return power(other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __lt__(self, other): return _binary(O.CMPLT, self, other)
    def __le__(self, other): return _binary(O.CMPLE, self, other)
    def __gt__(self, other): return _binary(O.CMPLT, other, self)
    def __ge__(self, other): return _binary(O.CMPLE, other, self)
    def __eq__(self, other): return _binary(O.CMPEQ, self, other)  # type: ignore[override]
    def __ne__(self, other): return _binary(O.CMPNE, self, other)  # type: ignore[override]
    def __and__(self, other): return _logic(O.AND, self, other)
    def __rand__(self, other): return _logic(O.AND, other, self)
    def __or__(self, other): return _logic(O.OR, self, other)
    def __ror__(self, other): return _logic(O.OR, other, self)
    def __xor__(self, other): return _logic(O.XOR, self, other)
    def __rxor__(self, other): return _logic(O.XOR, other, self)

    def __invert__(self):
        if self.dtype != dtypes.bool_:
            raise TypeError(f"~ takes a bool tensor, got {self.dtype}")
        return Tensor(UOp(O.NOT, (self.node,)))

    def __neg__(self):
        if self.dtype == dtypes.bool_:
            raise TypeError("negating a bool tensor is not supported (as in NumPy); use ~")
        return Tensor(UOp(O.NEG, (self.node,)))

    def __pos__(self):
        return self

    def __abs__(self):
        return self if self.dtype == dtypes.bool_ else Tensor(UOp(O.ABS, (self.node,)))

    def __floordiv__(self, other): return _numpy("floor_divide")(self, other)
    def __rfloordiv__(self, other): return _numpy("floor_divide")(other, self)

    def __setitem__(self, key, value):
        raise TypeError("a traced Tensor cannot be assigned into (x[i] = v): filling an array "
                        "is not traceable; build the values and join them with stack, "
                        "concatenate or where")

    def __mod__(self, other): return mod(self, other)
    def __rmod__(self, other): return mod(other, self)

    # ---- NumPy's protocols ----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method: str, *inputs, **kwargs):
        """NumPy's ufuncs trace: `np.sin(x)`, `ndarray * Tensor`, `np.add.reduce(x, axis)`
        and `np.add.accumulate` give the functions of `anvil_llvm.numpy`. `out=` is refused (a
        NumPy array cannot hold a traced value); a ufunc not supported is a
        NotImplementedError naming what to call instead."""
        from . import numpy as anp
        name = ufunc.__name__
        if kwargs.get("out") is not None:
            raise TypeError(f"np.{name} of a Tensor takes no out= (a NumPy array cannot hold a "
                            "traced value: write `a = a + x`, not `a += x` or out=)")
        kwargs.pop("out", None)
        if method == "__call__":
            found = _OPERATOR_UFUNCS.get(ufunc) or getattr(anp, name, None)
            if found is not None and not kwargs:
                # Python numbers stay weakly typed; arrays, NumPy scalars become tensors
                return found(*[x if isinstance(x, Tensor) or type(x) in (bool, int, float)
                               else as_tensor(x) for x in inputs])
        reduction = _UFUNC_METHODS.get((name, method))
        if reduction is not None and len(inputs) == 1 and set(kwargs) <= {"axis", "keepdims"}:
            if method == "accumulate":
                return getattr(anp, reduction)(inputs[0], kwargs.get("axis", 0))
            return getattr(anp, reduction)(inputs[0], kwargs.get("axis", 0),
                                           keepdims=kwargs.get("keepdims", False))
        shown = name if method == "__call__" else f"{name}.{method}"
        if kwargs and (method == "__call__" and (ufunc in _OPERATOR_UFUNCS
                                                  or hasattr(anp, name))):
            raise TypeError(f"np.{shown} of a Tensor takes no keyword arguments, got "
                            f"{', '.join(kwargs)}")
        raise NotImplementedError(_not_traced(f"np.{shown}", name))

    def __array_function__(self, func, types, args, kwargs):
        """NumPy's functions trace when `anvil_llvm.numpy` has them (`np.sum(x)`,
        `np.linalg.norm(x)`, `np.stack([x, y])`); np.shape, np.ndim and np.size give the static
        shape; any other is a NotImplementedError naming what to use instead."""
        static = _STATIC_FUNCTIONS.get(func)
        if static is not None and len(args) == 1 and not kwargs:
            return static(args[0])
        from . import numpy as anp
        module = func.__module__ or "numpy"
        namespace = anp.linalg if module.endswith("linalg") else anp
        found = getattr(namespace, func.__name__, None) if module.startswith("numpy") else None
        if callable(found):
            return found(*args, **kwargs)
        raise NotImplementedError(_not_traced(f"{module.replace('numpy', 'np', 1)}."
                                              f"{func.__name__}", func.__name__))

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a traced Tensor has no NumPy value while tracing (np.asarray, "
                        "np.array): compute with Tensor operations and the anvil_llvm functions")

    # ---- math methods -----------------------------------------------------------------------
    def sin(self): return _unary(O.SIN, self)
    def cos(self): return _unary(O.COS, self)
    def tan(self): return _unary(O.TAN, self)
    def exp(self): return _unary(O.EXP, self)
    def log(self): return _unary(O.LOG, self)
    def sqrt(self): return _unary(O.SQRT, self)
    def tanh(self): return _unary(O.TANH, self)
    def sinh(self): return _unary(O.SINH, self)
    def cosh(self): return _unary(O.COSH, self)
    def arcsin(self): return _unary(O.ASIN, self)
    def arccos(self): return _unary(O.ACOS, self)
    def arctan(self): return _unary(O.ATAN, self)
    def log1p(self): return _unary(O.LOG1P, self)
    def expm1(self): return _unary(O.EXPM1, self)
    def abs(self): return abs(self)

    def astype(self, dtype) -> "Tensor":
        """This tensor converted to `dtype` (float64, float32, int64 or bool)."""
        return _cast(self, dtypes.from_numpy(dtype))

    # ---- reductions -------------------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Sum over `axis` (all axes when None), as np.sum."""
        x = self.astype(dtypes.int64) if self.dtype == dtypes.bool_ else self
        return _reduce(O.REDUCE_SUM, x, axis, keepdims)

    def prod(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Product over `axis` (all axes when None), as np.prod."""
        x = self.astype(dtypes.int64) if self.dtype == dtypes.bool_ else self
        return _reduce(O.REDUCE_PROD, x, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Maximum over `axis` (all axes when None), as np.max."""
        return _reduce(O.REDUCE_MAX, _numeric(self), axis, keepdims, empty_ok=False)

    def min(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Minimum over `axis` (all axes when None), as np.min."""
        return _reduce(O.REDUCE_MIN, _numeric(self), axis, keepdims, empty_ok=False)

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Arithmetic mean over `axis`, as np.mean (ints and bools give float64)."""
        if self.ndim == 0 and axis is not None and axis != ():
            raise ValueError(f"axis {axis} is out of bounds for a 0-d tensor (np.mean refuses "
                             "any axis of a 0-d array)")
        axes = _axes(axis, self.ndim)
        count = int(np.prod([self.shape[a] for a in axes], dtype=np.int64))
        total = _float(self).sum(axes, keepdims)
        return total / count if count else total * np.nan

    # ---- movement -----------------------------------------------------------------------------
    def reshape(self, *shape) -> "Tensor":
        """This tensor with a new shape of the same size; one dimension may be -1."""
        shape = _shape_arg(shape)
        if shape.count(-1) > 1:
            raise ValueError(f"reshape: at most one -1 in the new shape, got {shape}")
        if -1 in shape:
            known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
            if known == 0 or self.size % known:
                raise ValueError(f"cannot reshape size {self.size} into {shape}")
            shape = tuple(self.size // known if d == -1 else d for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"reshape: negative dimension in {shape}")
        return Tensor(B.reshape(self.node, shape))

    def flatten(self) -> "Tensor":
        return self.reshape(-1)

    ravel = flatten

    def transpose(self, *axes) -> "Tensor":
        """Axes permuted (reversed when none are given), as np.transpose."""
        axes = _shape_arg(axes) if axes else tuple(reversed(range(self.ndim)))
        if len(axes) != self.ndim:
            raise ValueError(f"transpose: axes {axes} do not match {self.ndim} dimensions")
        return Tensor(UOp(O.PERMUTE, (self.node,), tuple(_axis(a, self.ndim) for a in axes)))

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def broadcast_to(self, shape) -> "Tensor":
        """This tensor broadcast to `shape` by NumPy's rules."""
        return _broadcast(self, _shape_arg((shape,)))

    def __getitem__(self, key) -> "Tensor":
        if type(key) is int:                   # scalar code's x[0], first
            found = entry(self.node, key)
            if found is not None:
                return Tensor(found)
        return Tensor(index(self.node, key))

    def dot(self, other) -> "Tensor":
        return matmul(self, other)

    @staticmethod
    def stack(*tensors, axis: int = 0) -> "Tensor":
        """`anvil_llvm.stack`: `Tensor.stack(a, b)` or `Tensor.stack([a, b])`."""
        return stack(*tensors, axis=axis)


# ---- NumPy interop -----------------------------------------------------------------------------
_OPERATOR_UFUNCS = {
    np.add: operator.add, np.subtract: operator.sub, np.multiply: operator.mul,
    np.true_divide: operator.truediv, np.floor_divide: operator.floordiv,
    np.remainder: operator.mod, np.power: operator.pow, np.matmul: operator.matmul,
    np.less: operator.lt, np.less_equal: operator.le, np.greater: operator.gt,
    np.greater_equal: operator.ge, np.equal: operator.eq, np.not_equal: operator.ne,
    np.bitwise_and: operator.and_, np.bitwise_or: operator.or_, np.bitwise_xor: operator.xor,
}
# ufunc methods and the reductions of anvil_llvm.numpy they are
_UFUNC_METHODS = {("add", "reduce"): "sum", ("multiply", "reduce"): "prod",
                  ("maximum", "reduce"): "max", ("minimum", "reduce"): "min",
                  ("logical_and", "reduce"): "all", ("logical_or", "reduce"): "any",
                  ("add", "accumulate"): "cumsum", ("multiply", "accumulate"): "cumprod"}
_UFUNC_METHODS[("logaddexp", "reduce")] = "logsumexp"


def _numpy(name: str):
    """anvil_llvm.numpy's function `name` (imported when first used: it builds on this module)."""
    from . import numpy as anp
    return getattr(anp, name)


def _ndarray_method(name: str):
    def method(self, *args, **kwargs):
        return _numpy(name)(self, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f"`anvil_llvm.numpy.{name}` of this tensor (see its example), as NumPy's "
                      f"`ndarray.{name}`.")
    return method


# ndarray's methods that anvil_llvm.numpy has as functions
for _name in ("clip", "cumsum", "cumprod", "var", "std", "squeeze", "swapaxes", "round", "all",
              "any", "copy", "diagonal", "trace", "take", "repeat"):
    setattr(Tensor, _name, _ndarray_method(_name))
_STATIC_FUNCTIONS = {np.shape: lambda x: x.shape, np.ndim: lambda x: x.ndim,
                     np.size: lambda x: x.size}
def _not_traced(what: str, name: str) -> str:
    """The message for NumPy's `what`, which anvil_llvm.numpy does not have, applied to a
    Tensor: the nearest names it has."""
    from . import numpy as anp
    near = difflib.get_close_matches(name, [n for n in dir(anp) if not n.startswith("_")], 3)
    hint = (f"the nearest supported: {', '.join('anvil_llvm.numpy.' + n for n in near)}" if near
            else "anvil_llvm.numpy lists the supported functions")
    return f"{what} is not supported on traced Tensors; {hint}"


# ---- conversion and promotion helpers -------------------------------------------------------
def as_tensor(value, like: DType | None = None) -> Tensor:
    """A Tensor for a Tensor, NumPy array or Python number (numbers take the dtype `like`)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.generic):
        # NumPy scalars promote by their dtype, as in NumPy 2 (NEP 50); Python numbers are weak.
        if value.dtype.kind not in "biuf":
            raise TypeError(f"cannot use a NumPy {value.dtype} scalar in a traced function; "
                            "expected real numbers or bools")
        return Tensor(O.const(value.item(), dtypes.from_numpy(value.dtype)))
    if isinstance(value, (bool, np.bool_)):
        return Tensor(O.const(bool(value), dtypes.bool_))
    if isinstance(value, numbers.Integral) and not isinstance(value, np.ndarray):
        dtype = like if like is not None and like.kind in "fi" else dtypes.int64
        return Tensor(O.const(int(value), dtype))
    if isinstance(value, numbers.Real) and not isinstance(value, np.ndarray):
        dtype = like if like is not None and like.is_float else dtypes.float64
        return Tensor(O.const(float(value), dtype))
    if isinstance(value, (np.ndarray, list, tuple)):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"cannot use an array of dtype {array.dtype} in a traced function; "
                            "expected real numbers or bools")
        dtype = dtypes.from_numpy(array.dtype)
        if array.ndim == 0:
            return Tensor(O.const(array.item(), dtype))
        return Tensor(const_array(array.astype(dtype.np)))
    raise TypeError(f"expected a Tensor, NumPy array or real number, got {type(value).__name__}")


def _cast(x: Tensor, dtype: DType) -> Tensor:
    return x if x.dtype == dtype else Tensor(UOp(O.CAST, (x.node,), dtype))


def _float(x: Tensor) -> Tensor:
    return _cast(x, dtypes.float_of(x.dtype))


def _numeric(x: Tensor) -> Tensor:
    return _cast(x, dtypes.int64) if x.dtype == dtypes.bool_ else x


def broadcast_shapes(*shapes: tuple) -> tuple:
    """NumPy's broadcast of shapes, with an error naming both shapes."""
    rank = max(len(s) for s in shapes)
    result = [1] * rank
    for shape in shapes:
        for axis, n in enumerate(shape, rank - len(shape)):
            if n != result[axis]:
                if result[axis] != 1 and n != 1:
                    raise ValueError(f"shapes {' and '.join(map(str, shapes))} cannot be "
                                     "broadcast together")
                if n != 1:
                    result[axis] = n
    return tuple(result)


def _broadcast(x: Tensor, shape: tuple) -> Tensor:
    if x.shape == shape:
        return x
    if len(shape) < x.ndim or broadcast_shapes(x.shape, shape) != shape:
        raise ValueError(f"cannot broadcast shape {x.shape} to {shape}")
    node = x.node
    if node.ndim < len(shape):
        node = B.reshape(node, (1,) * (len(shape) - node.ndim) + node.shape)
    return Tensor(UOp(O.EXPAND, (node,), shape))


_NUMBERS: dict[tuple, Tensor] = {}
"""Python numbers as float constants broadcast to a shape (scalar code multiplies by the same
few numbers over and over: one lookup instead of three nodes built)."""
_MAX_NUMBERS = 4096


def _number_like(value: float | int, x: Tensor) -> Tensor:
    """`value` (a Python float or int) as a constant of float `x`'s dtype and shape."""
    key = (value, math.copysign(1.0, value), x.dtype, x.shape)
    found = _NUMBERS.get(key)
    if found is None:
        if len(_NUMBERS) >= _MAX_NUMBERS:
            _NUMBERS.clear()
        found = _NUMBERS[key] = Tensor(B.full(x.shape, value, x.dtype))
    return found


def _promoted(a, b, to_float: bool = False) -> tuple[Tensor, Tensor]:
    """Both operands as tensors of their common dtype (Python numbers take the tensor's)."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a.dtype is b.dtype and (not to_float or a.dtype.is_float):
                return a, b
        elif type(b) in (float, int) and a.dtype.is_float:
            return a, _number_like(b, a)
    elif type(a) in (float, int) and isinstance(b, Tensor) and b.dtype.is_float:
        return _number_like(a, b), b
    like = a.dtype if isinstance(a, Tensor) else b.dtype if isinstance(b, Tensor) else None
    x, y = as_tensor(a, like), as_tensor(b, like)
    dtype = dtypes.promote(x.dtype, y.dtype)
    if to_float:
        dtype = dtypes.float_of(dtype)
    return _cast(x, dtype), _cast(y, dtype)


def _operands(a, b, to_float: bool = False) -> tuple[Tensor, Tensor]:
    x, y = _promoted(a, b, to_float)
    if x.shape == y.shape:
        return x, y
    shape = broadcast_shapes(x.shape, y.shape)
    return _broadcast(x, shape), _broadcast(y, shape)


# NumPy's arithmetic on two bools stays bool: + and maximum are `or`, * and minimum are `and`.
_BOOL_ARITHMETIC = {O.ADD: O.OR, O.MUL: O.AND, O.MAX: O.OR, O.MIN: O.AND}


_FLOATS = frozenset({dtypes.float64, dtypes.float32})


def _binary(op, a, b, to_float: bool = False) -> Tensor:
    # the common cases of traced scalar code first: two float tensors of one shape and dtype,
    # a float tensor and a Python number (what `_operands` would give them, without its steps)
    if type(a) is Tensor:
        x = a.node
        if x.dtype in _FLOATS:
            if type(b) is Tensor:
                y = b.node
                if y.dtype is x.dtype and y.shape == x.shape:
                    return Tensor(UOp(op, (x, y)))
            elif type(b) in (float, int):
                return Tensor(UOp(op, (x, _number_like(b, a).node)))
    elif type(a) in (float, int) and type(b) is Tensor and b.node.dtype in _FLOATS:
        return Tensor(UOp(op, (_number_like(a, b).node, b.node)))
    x, y = _operands(a, b, to_float)
    if x.dtype == dtypes.bool_ and op in _BOOL_ARITHMETIC:
        op = _BOOL_ARITHMETIC[op]
    elif x.dtype == dtypes.bool_ and op is O.SUB:
        raise TypeError("boolean subtract is not supported (as in NumPy); use ^ or "
                        "logical operators, or cast with astype")
    return Tensor(UOp(op, (x.node, y.node)))


def _logic(op, a, b) -> Tensor:
    x, y = _operands(a, b)
    if x.dtype != dtypes.bool_:
        raise TypeError(f"&, | and ^ take bool tensors, got {x.dtype}")
    return Tensor(UOp(op, (x.node, y.node)))


def _unary(op, x) -> Tensor:
    if type(x) is Tensor and x.node.dtype in _FLOATS:
        return Tensor(UOp(op, (x.node,)))
    return Tensor(UOp(op, (_float(as_tensor(x)).node,)))


def _axis(a, ndim: int) -> int:
    if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
        raise TypeError(f"axis: expected an int, got {type(a).__name__}")
    if ndim == 0 and a in (0, -1):
        return 0
    if not -ndim <= a < ndim:
        raise ValueError(f"axis {a} is out of bounds for a tensor of {ndim} dimensions")
    return int(a) % ndim if ndim else 0


def _axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    if ndim == 0:
        for a in axes:
            _axis(a, 0)
        return ()       # NumPy lets reductions of a 0-d array name axis 0 or -1
    result = tuple(sorted(_axis(a, ndim) for a in axes))
    if len(set(result)) != len(result):
        raise ValueError(f"axis: repeated axis in {axis}")
    return result


def _shape_arg(shape) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    for d in shape:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
            raise TypeError(f"shape: expected ints, got {shape!r}")
    return tuple(int(d) for d in shape)


def _reduce(op, x: Tensor, axis, keepdims: bool, empty_ok: bool = True) -> Tensor:
    axes = _axes(axis, x.ndim)
    if not empty_ok and any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"{op.name}: zero-size reduction over axes {axes} of shape {x.shape} "
                         "has no identity")
    out = Tensor(UOp(op, (x.node,), axes))
    if keepdims:
        out = out.reshape(tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return out


# ---- functions --------------------------------------------------------------------------------
def mod(x, y) -> Tensor:
    """x % y elementwise with the sign of y, as np.mod (bools compute as ints); also
    `remainder`.

    >>> import numpy as np, anvil_llvm as av
    >>> f = av.NumericalFunction("m", lambda x: av.mod(x, 3.0), (av.Arg(3),))
    >>> f(np.array([-4.0, 5.5, 3.0])).tolist()
    [2.0, 2.5, 0.0]
    """
    x, y = _operands(x, y)
    if x.dtype == dtypes.bool_:
        x, y = _numeric(x), _numeric(y)
    return Tensor(UOp(O.MOD, (x.node, y.node)))


remainder = mod


def power(base, exponent) -> Tensor:
    """base ** exponent elementwise, with NumPy's exact fast paths for 2, 1, 0.5 and -1;
    integers to integer powers stay integers (wrapping on overflow, as NumPy)."""
    if isinstance(exponent, int) and not isinstance(exponent, bool) and exponent < 0 \
            and isinstance(base, Tensor) and base.dtype.kind in "ib":
        raise ValueError("Integers to negative integer powers are not allowed (as in NumPy); "
                         "use a float base")
    if isinstance(base, Tensor) and isinstance(exponent, (int, float)) \
            and not isinstance(exponent, bool):
        x = base if base.dtype == dtypes.int64 and isinstance(exponent, int) else _float(base)
        if exponent == 2:
            return x * x
        if exponent == 1:
            return x
        if exponent == 0.5:
            return x.sqrt()
        if exponent == -1:
            return 1.0 / x
    x, y = _operands(base, exponent)
    if x.dtype.kind == "b":
        x, y = _numeric(x), _numeric(y)
    if x.dtype.kind != "i":
        x, y = _float(x), _float(y)
    return Tensor(UOp(O.POW, (x.node, y.node)))


def where(condition, x, y) -> Tensor:
    """Elementwise `x` where `condition` holds, else `y` (NumPy broadcasting).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("relu", lambda x: av.where(x > 0, x, 0.0), (av.Arg(3),))
    >>> f([-1.0, 0.5, 2.0]).tolist()
    [0.0, 0.5, 2.0]
    """
    c = as_tensor(condition)
    if c.dtype != dtypes.bool_:
        c = c != 0
    a, b = _operands(x, y)
    shape = broadcast_shapes(c.shape, a.shape)
    return Tensor(UOp(O.WHERE, (_broadcast(c, shape).node, _broadcast(a, shape).node,
                                _broadcast(b, shape).node)))


def maximum(x, y) -> Tensor:
    """Elementwise maximum, NaN-propagating as np.maximum."""
    return _binary(O.MAX, x, y)


def minimum(x, y) -> Tensor:
    """Elementwise minimum, NaN-propagating as np.minimum."""
    return _binary(O.MIN, x, y)


def arctan2(y, x) -> Tensor:
    """Elementwise arctan(y / x) in the right quadrant, as np.arctan2."""
    return _binary(O.ATAN2, y, x, to_float=True)


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's rules for 1-D operands and broadcast batch dimensions."""
    x, y = _promoted(a, b)
    if x.dtype == dtypes.bool_:      # NumPy: a bool product is `any(x and y)`
        return matmul(_numeric(x), _numeric(y)) != 0
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError("matmul: operands must be at least 1-D (use * for scalars)")
    x_vec, y_vec = x.ndim == 1, y.ndim == 1
    if x_vec:
        x = x.reshape(1, x.shape[0])
    if y_vec:
        y = y.reshape(y.shape[0], 1)
    if x.shape[-1] != y.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ: {_shape_of(a)} @ {_shape_of(b)}")
    batch = broadcast_shapes(x.shape[:-2], y.shape[:-2])
    x = _broadcast(x, batch + x.shape[-2:])
    y = _broadcast(y, batch + y.shape[-2:])
    nb = len(batch)
    out = Tensor(UOp(O.CONTRACT, (x.node, y.node),
                     ((nb + 1,), (nb,), tuple(range(nb)), tuple(range(nb)))))
    shape = batch + (() if x_vec else (x.shape[-2],)) + (() if y_vec else (y.shape[-1],))
    return out if out.shape == shape else out.reshape(shape)


def _shape_of(value) -> tuple:
    return value.shape if hasattr(value, "shape") else np.shape(value)


def _joined(name: str, args: tuple, axis: int) -> tuple[list[Tensor], int]:
    """The tensors and axis of `stack` or `concatenate` called NumPy's way, `f([a, b])` or
    `f([a, b], axis)` (one array or tensor is a sequence of its rows, as in NumPy), or with the
    tensors as arguments, `f(a, b, axis=axis)`."""
    if len(args) == 1 and isinstance(args[0], (list, tuple, np.ndarray, Tensor)):
        args = tuple(args[0])
    elif len(args) == 2 and isinstance(args[0], (list, tuple)) \
            and isinstance(args[1], (int, np.integer)) and not isinstance(args[1], bool):
        if axis != 0:
            raise TypeError(f"{name}: axis given twice, as {args[1]} and axis={axis}")
        args, axis = tuple(args[0]), args[1]
    if not args:
        raise ValueError(f"{name}: need at least one tensor")
    return [as_tensor(t) for t in args], axis


def concatenate(*tensors: Tensor | np.ndarray | float | list | tuple, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis, as np.concatenate; the tensors are one sequence
    or separate arguments.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: av.concatenate(x, x[:1] * 2), (av.Arg(2),))
    >>> f([1.0, 2.0]).tolist()
    [1.0, 2.0, 2.0]
    """
    items, axis = _joined("concatenate", tensors, axis)
    if any(t.ndim == 0 for t in items):
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    return _concatenated(items, _axis(axis, items[0].ndim))


def _common(items: list[Tensor]) -> list[UOp]:
    """The nodes of `items` in their common dtype."""
    dtype = items[0].dtype
    for t in items[1:]:
        dtype = dtypes.promote(dtype, t.dtype)
    return [_cast(t, dtype).node for t in items]


def _same_kind(items) -> list[UOp] | None:
    """The nodes of `items` when all are tensors of one shape and dtype, else None."""
    if not items or type(items[0]) is not Tensor:
        return None
    first = items[0].node
    nodes = [first]
    for t in items[1:]:
        if type(t) is not Tensor:
            return None
        node = t.node
        if node.dtype is not first.dtype or node.shape != first.shape:
            return None
        nodes.append(node)
    return nodes


def _concatenated(items: list[Tensor], axis: int, shape: tuple | None = None) -> Tensor:
    """`items` (of one rank) joined along `axis`, in their common dtype, each first reshaped
    to `shape` if given (stack's new axis)."""
    nodes = _common(items)
    if shape is not None:
        nodes = [B.reshape(node, shape) for node in nodes]
    return Tensor(nodes[0] if len(nodes) == 1 else UOp(O.CONCAT, tuple(nodes), axis))


def stack(*tensors: Tensor | np.ndarray | float | list | tuple, axis: int = 0) -> Tensor:
    """Join tensors (or numbers) of one shape along a new axis, as np.stack; the tensors are
    one sequence or separate arguments.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: av.stack(x[1], x[0] * 3), (av.Arg(2),))
    >>> f([1.0, 2.0]).tolist()
    [2.0, 3.0]
    """
    if len(tensors) == 1 and axis == 0 and type(tensors[0]) in (list, tuple):
        nodes = _same_kind(tensors[0])      # scalar code's stack([a, b]): no conversions
        if nodes is not None:
            return Tensor(B.stack(nodes))
    items, axis = _joined("stack", tensors, axis)
    shape = items[0].shape
    if any(t.shape != shape for t in items):
        raise ValueError(f"stack: all inputs must have one shape, got {[t.shape for t in items]}")
    axis = _axis(axis, len(shape) + 1)
    if axis == 0:
        return Tensor(B.stack(_common(items)))
    return _concatenated(items, axis, shape[:axis] + (1,) + shape[axis:])


def pad(x, pad_width) -> Tensor:
    """Zero padding, as np.pad(x, pad_width) in its constant mode (widths may be one int,
    one pair, or one pair per axis)."""
    x = as_tensor(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    if (widths < 0).any():
        raise ValueError(f"pad: pad_width must be non-negative, got {pad_width}")
    return Tensor(UOp(O.PAD, (x.node,), tuple((int(lo), int(hi)) for lo, hi in widths)))


def _math(name: str):
    method = getattr(Tensor, name)

    def fn(x) -> Tensor:
        return method(as_tensor(x))
    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}, as np.{name}."
    return fn


sin, cos, tan, exp, log, sqrt = (_math(n) for n in ("sin", "cos", "tan", "exp", "log", "sqrt"))
tanh, sinh, cosh, log1p, expm1 = (_math(n) for n in ("tanh", "sinh", "cosh", "log1p", "expm1"))
arcsin, arccos, arctan = (_math(n) for n in ("arcsin", "arccos", "arctan"))
asin, acos, atan, atan2 = arcsin, arccos, arctan, arctan2
abs = builtins.abs  # noqa: A001  av.abs works on tensors through __abs__
