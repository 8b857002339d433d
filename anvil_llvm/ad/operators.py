"""The public derivative operators and vmap. Each takes a NumericalFunction (or a plain callable,
traced at first call for the shapes and dtypes it is given, as jax.jit does) and returns one."""
from __future__ import annotations

import inspect
import re
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from ..ir import build as B
from ..ir.uop import UOp
from .batching import vmap_graph, with_batch
from .dense import (argnums_of, gradient_graph, hessian_block_graph, jacobian_graph, new_input,
                    scalar_output, with_inputs)
from .forward import jvp_graph
from .reverse import vjp_graph


SIGNATURES_KEPT = 64     # compiled signatures a traced callable (or lazy vmap) keeps, LRU


_cache_lock = threading.Lock()


def _cached(cache: OrderedDict, key, make):
    """`cache[key]`, made on a miss (outside the lock: tracing may take long); the least
    recently used entry goes past SIGNATURES_KEPT."""
    with _cache_lock:
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
            return found
    found = make()
    with _cache_lock:
        found = cache.setdefault(key, found)
        if len(cache) > SIGNATURES_KEPT:
            cache.popitem(last=False)
    return found


class Traced:
    """A plain Python function with operators applied to it, traced per argument signature.

    >>> from anvil_llvm.ad import grad
    >>> g = grad(lambda x: (x * x).sum())
    >>> g(np.array([1.0, 2.0])).tolist()
    [2.0, 4.0]
    """

    def __init__(self, fn: Callable, stages: tuple = ()):
        self.fn, self.stages = fn, stages
        self.arity = _arity(fn)
        self._cache: OrderedDict = OrderedDict()

    def then(self, stage) -> "Traced":
        return Traced(self.fn, self.stages + (stage,))

    def specialise(self, *args):
        """The NumericalFunction for the shapes and dtypes of the function's own arguments
        (the leading `arity` of `args`; operators such as jvp append tangents after them).
        Integer arguments stay integers, and differentiating one is an error (as in JAX)."""
        from ..function import Arg, NumericalFunction
        arrays = [np.asarray(a) for a in args[:self.arity]]
        key = tuple((a.shape, a.dtype.str) for a in arrays)

        def make():
            name = re.sub(r"\W", "_", getattr(self.fn, "__name__", "fn"))
            name = name if re.match(r"[A-Za-z_]", name) and name != "_lambda_" else "fn"
            found = NumericalFunction(name, self.fn, [Arg(a.shape, a.dtype) for a in arrays])
            for stage in self.stages:
                found = stage(found)
            return found
        return _cached(self._cache, key, make)

    def __call__(self, *args, **kwargs):
        return self.specialise(*args)(*args, **kwargs)


def _arity(fn: Callable) -> int:
    """The number of positional parameters of a plain function (they are traced as inputs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        raise TypeError(f"cannot read the signature of {fn!r}; wrap it in a "
                        "NumericalFunction with explicit Args") from None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} takes *args; wrap it in a "
                        "NumericalFunction with explicit Args")
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               and p.default is p.empty)


def _operator(build: Callable) -> Callable:
    """Make `build(fn, ...)` accept plain callables (and Traced) as well as functions."""
    def operator(fn, *args, **kwargs):
        stage = lambda f: build(f, *args, **kwargs)      # noqa: E731
        if isinstance(fn, Traced):
            return fn.then(stage)
        if hasattr(fn, "outputs") and hasattr(fn, "from_graph"):
            return stage(fn)
        if callable(fn):
            return Traced(fn).then(stage)
        raise TypeError(f"expected a NumericalFunction or a callable, got {type(fn).__name__}")
    operator.__name__ = build.__name__
    operator.__doc__ = build.__doc__
    return operator


def _name(name, fn, suffix: str) -> str:
    return name if name is not None else f"{fn.name}_{suffix}"


@_operator
def jvp(fn, argnum: int = 0, *, name: str | None = None, argnums=None):
    """Forward mode: a function of `(*inputs, tangent)` returning `(*outputs, *J·tangent)`.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * x, (av.Arg(2),))
    >>> y, t = jvp(f)(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    >>> t.tolist()
    [2.0, 0.0]
    """
    a = _one_argnum(fn, argnum, argnums)
    x = fn.inputs[a]
    t = new_input(fn, 0, x)
    tangents = jvp_graph(fn.outputs, {x: t})
    outputs = list(fn.outputs) + [B.materialise(d, o) for d, o in zip(tangents, fn.outputs)]
    return with_inputs(fn, _name(name, fn, "jvp"), outputs, True, [(t, "tangent")])


def _one_argnum(fn, argnum, argnums) -> int:
    """The single argument position of jvp, vjp and hvp (a tuple is a clear error)."""
    nums, single = argnums_of(fn, argnum, argnums)
    if not single or len(nums) != 1:
        raise ValueError(f"argnum: this operator takes one argument position, got "
                         f"{argnums if argnums is not None else argnum!r}")
    return nums[0]


@_operator
def vjp(fn, argnum: int = 0, *, name: str | None = None, argnums=None):
    """Reverse mode: a function of `(*inputs, *cotangents)` returning `Jᵀ·v` (one cotangent per
    output, shaped like it).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * x, (av.Arg(2),))
    >>> vjp(f)(np.array([1.0, 2.0]), np.array([1.0, 1.0])).tolist()
    [2.0, 4.0]
    """
    a = _one_argnum(fn, argnum, argnums)
    x = fn.inputs[a]
    cts = [new_input(fn, j, o) for j, o in enumerate(fn.outputs)]
    (g,) = vjp_graph(fn.outputs, cts, [x])
    names = ["cotangent"] if len(cts) == 1 else [f"cotangent{j}" for j in range(len(cts))]
    return with_inputs(fn, _name(name, fn, "vjp"), [B.materialise(g, x)], False,
                       list(zip(cts, names)))


@_operator
def hvp(fn, argnum: int = 0, *, name: str | None = None, argnums=None):
    """Hessian-vector product (forward over reverse): a function of `(*inputs, v)` returning H·v.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x * x * x).sum(), (av.Arg(2),))
    >>> hvp(f)(np.array([1.0, 2.0]), np.array([1.0, 1.0])).tolist()
    [6.0, 12.0]
    """
    a = _one_argnum(fn, argnum, argnums)
    x = fn.inputs[a]
    g = gradient_graph(scalar_output(fn, "hvp"), x)
    v = new_input(fn, 0, x)
    (hv,) = jvp_graph([g], {x: v})
    return with_inputs(fn, _name(name, fn, "hvp"), [B.materialise(hv, x)], False, [(v, "v")])


def _gradients(fn, argnum, argnums, operator: str) -> tuple[UOp, list[UOp], bool]:
    nums, single = argnums_of(fn, argnum, argnums)
    out = scalar_output(fn, operator)
    return out, [gradient_graph(out, fn.inputs[a]) for a in nums], single


@_operator
def gradient(fn, argnum=0, *, name: str | None = None, argnums=None):
    """The gradient of a scalar function (shaped like the input; a tuple for a tuple `argnum`).

    >>> import anvil_llvm as av
    >>> cost = av.NumericalFunction("cost", lambda x: (x * x).sum(), (av.Arg(3),))
    >>> gradient(cost)(np.array([1.0, 2.0, 3.0])).tolist()
    [2.0, 4.0, 6.0]
    """
    _, grads, single = _gradients(fn, argnum, argnums, "gradient")
    return with_inputs(fn, _name(name, fn, "grad"), grads, not single)


@_operator
def value_and_gradient(fn, argnum=0, *, name: str | None = None, argnums=None):
    """`(value, gradient)` of a scalar function in one call (gradients flattened after value)."""
    out, grads, _ = _gradients(fn, argnum, argnums, "value_and_gradient")
    return with_inputs(fn, _name(name, fn, "value_and_grad"), [out] + grads, True)


def _jacobians(fn, argnum, argnums, mode, unroll) -> tuple[list[UOp], bool]:
    nums, single = argnums_of(fn, argnum, argnums)
    jacs = [jacobian_graph(o, fn.inputs[a], mode, unroll) for o in fn.outputs for a in nums]
    return jacs, fn.multiple or not single


@_operator
def jacobian(fn, argnum=0, mode: str = "auto", unroll: bool = False, *,
             name: str | None = None, argnums=None):
    """The Jacobian, shaped output.shape + input.shape (an (m, n) matrix for vectors).

    mode: "fwd" (vmap of the JVP over basis seeds), "rev" (vmap of the VJP), or "auto" (fewer
    directions). unroll=True expands the directions at trace time instead of a loop. Several
    outputs or argument positions give a tuple, outputs major.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: av.Tensor.stack(x[0] * x[1], x[1] ** 2),
    ...                          (av.Arg(2),))
    >>> jacobian(f)(np.array([3.0, 4.0])).tolist()
    [[4.0, 3.0], [0.0, 8.0]]
    """
    jacs, multiple = _jacobians(fn, argnum, argnums, mode, unroll)
    return with_inputs(fn, _name(name, fn, "jac"), jacs, multiple)


@_operator
def value_and_jacobian(fn, argnum=0, mode: str = "auto", unroll: bool = False, *,
                       name: str | None = None, argnums=None):
    """`(*outputs, *jacobians)` in one call."""
    jacs, _ = _jacobians(fn, argnum, argnums, mode, unroll)
    return with_inputs(fn, _name(name, fn, "value_and_jac"), list(fn.outputs) + jacs, True)


def _hessians(fn, argnum, argnums, operator: str):
    nums, single = argnums_of(fn, argnum, argnums)
    out = scalar_output(fn, operator)
    grads = [gradient_graph(out, fn.inputs[a]) for a in nums]
    blocks = [hessian_block_graph(grads[j], fn.inputs[a]) for a in nums for j in range(len(nums))]
    return out, grads, blocks, single


@_operator
def hessian(fn, argnum=0, *, name: str | None = None, argnums=None):
    """The Hessian of a scalar function (forward over reverse), shaped input.shape * 2; for a
    tuple `argnum`, the blocks H[i][j] flattened row-major. Entry H[k, l] is computed as
    d/dx[k] (df/dx[l]) (no transposing pass; equal to the other order up to rounding).

    >>> import anvil_llvm as av
    >>> c = av.NumericalFunction("c", lambda x: x[0] ** 2 + x[0] * x[1] + x[1] ** 2,
    ...                          (av.Arg(2),))
    >>> hessian(c)(np.array([1.0, 1.0])).tolist()
    [[2.0, 1.0], [1.0, 2.0]]
    """
    _, _, blocks, single = _hessians(fn, argnum, argnums, "hessian")
    return with_inputs(fn, _name(name, fn, "hess"), blocks, not single)


@_operator
def value_gradient_and_hessian(fn, argnum=0, *, name: str | None = None, argnums=None):
    """`(value, *gradients, *hessian blocks)` in one call."""
    out, grads, blocks, _ = _hessians(fn, argnum, argnums, "value_gradient_and_hessian")
    return with_inputs(fn, _name(name, fn, "value_grad_hess"), [out] + grads + blocks, True)


def _scalar_input(fn, argnum, operator: str) -> int:
    (a,), _ = argnums_of(fn, argnum)
    if fn.args[a].shape != ():
        raise ValueError(f"{operator}: argument {a} of {fn.name} must be a scalar (shape ()), "
                         f"got shape {fn.args[a].shape}; use jacobian")
    return a


@_operator
def derivative(fn, argnum: int = 0, *, name: str | None = None):
    """d f / d x for a scalar input x (shaped like the output).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x ** 3, (av.Arg(()),))
    >>> float(derivative(f)(2.0))
    12.0
    """
    a = _scalar_input(fn, argnum, "derivative")
    outs = [jacobian_graph(o, fn.inputs[a], "fwd") for o in fn.outputs]
    return with_inputs(fn, _name(name, fn, "deriv"), outs, fn.multiple)


@_operator
def second_derivative(fn, argnum: int = 0, *, name: str | None = None):
    """d² f / d x² for a scalar input x."""
    a = _scalar_input(fn, argnum, "second_derivative")
    x = fn.inputs[a]
    outs = [jacobian_graph(jacobian_graph(o, x, "fwd"), x, "fwd") for o in fn.outputs]
    return with_inputs(fn, _name(name, fn, "deriv2"), outs, fn.multiple)


def _moved_to_front(node: UOp, axis: int) -> UOp:
    if axis == 0:
        return node
    order = (axis,) + tuple(i for i in range(node.ndim) if i != axis)
    return B.permute(node, order)


def _vmap(fn, in_axes=0, axis_size: int | None = None, *, name: str | None = None):
    from ..function import Arg
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(fn.args)
    if len(axes) != len(fn.args):
        raise ValueError(f"in_axes: expected one entry per argument ({len(fn.args)}), got "
                         f"{len(axes)}")
    if all(a is None for a in axes):
        raise ValueError("in_axes: at least one argument must be batched")
    if axis_size is None or not isinstance(axis_size, (int, np.integer)) or axis_size < 0:
        raise ValueError(f"axis_size: expected a non-negative int, got {axis_size!r}")
    args, mapping = [], {}
    for i, (arg, axis) in enumerate(zip(fn.args, axes)):
        if axis is None:
            args.append(arg)
            continue
        ndim = len(arg.shape)
        if not isinstance(axis, (int, np.integer)) or not -ndim - 1 <= axis <= ndim:
            raise ValueError(f"in_axes[{i}]: {axis!r} is not an axis of a {len(arg.shape) + 1}-d "
                             "batched argument")
        axis = int(axis) % (len(arg.shape) + 1)
        shape = arg.shape[:axis] + (axis_size,) + arg.shape[axis:]
        args.append(Arg(shape, arg.dtype))
        batched_input = UOp(fn.inputs[i].op, (), (i, shape, arg.dtype))
        mapping[fn.inputs[i]] = _moved_to_front(batched_input, axis)
    outs = [with_batch(n, b, axis_size) for n, b in vmap_graph(fn.outputs, mapping)]
    return type(fn).from_graph(_name(name, fn, "vmap"), args, outs, fn.multiple, fn.arg_names)


class _LazyVmap:
    """vmap whose batch size is read from the arguments at call time."""

    def __init__(self, fn, in_axes, name):
        self.fn, self.in_axes, self.name = fn, in_axes, name
        self._cache: OrderedDict = OrderedDict()

    def __call__(self, *args):
        fn = self.fn.specialise(*_unbatched(args, self.in_axes)) \
            if isinstance(self.fn, Traced) else self.fn
        axes = self.in_axes if isinstance(self.in_axes, (tuple, list)) else \
            (self.in_axes,) * len(args)
        sizes = {np.shape(a)[ax] for a, ax in zip(args, axes) if ax is not None}
        if len(sizes) != 1:
            raise ValueError(f"vmap: batched arguments must share one batch size, got {sizes}")
        size = sizes.pop()
        # keyed by the function itself (not its id, which a freed function's successor reuses)
        return _cached(self._cache, (fn, size),
                       lambda: _vmap(fn, self.in_axes, size, name=self.name))(*args)


def _unbatched(args, in_axes):
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    return [np.asarray(a) if ax is None else np.take(np.asarray(a), 0, axis=ax)
            for a, ax in zip(args, axes)]


def vmap(fn, in_axes=0, axis_size: int | None = None, *, name: str | None = None):
    """Vectorise `fn` over a batch axis of its arguments (`in_axes`: an axis or None per
    argument); results carry the batch as their leading axis. With `axis_size` a
    NumericalFunction of the batched shapes is returned; otherwise the size is read at call.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(3),))
    >>> vmap(f)(np.ones((4, 3))).tolist()
    [3.0, 3.0, 3.0, 3.0]
    """
    if isinstance(fn, Traced) or not (hasattr(fn, "outputs") or not callable(fn)):
        fn = fn if isinstance(fn, Traced) else Traced(fn)
        return _LazyVmap(fn, in_axes, name)
    if axis_size is None:
        return _LazyVmap(fn, in_axes, name)
    return _vmap(fn, in_axes, axis_size, name=name)


grad = gradient
value_and_grad = value_and_gradient


def jacfwd(fn, argnum=0, **kwargs):
    """`jacobian` in forward mode (JAX's name)."""
    return jacobian(fn, argnum, mode="fwd", **kwargs)


def jacrev(fn, argnum=0, **kwargs):
    """`jacobian` in reverse mode (JAX's name)."""
    return jacobian(fn, argnum, mode="rev", **kwargs)
