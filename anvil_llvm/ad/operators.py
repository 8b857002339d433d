"""The public derivative operators and vmap. Each takes a NumericalFunction (or a plain callable,
traced at first call for the shapes and dtypes it is given, as jax.jit does) and returns one.

With a tuple `argnum` the results nest as JAX's do (`value_and_grad` gives `(value, (g0, g1))`);
the compiled function returns them flat and a thin layer nests them, so a single `argnum` keeps
the native call."""
from __future__ import annotations

import functools

import inspect
import re
import threading
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from .. import progress
from ..ir import build as B
from ..ir.dtypes import DType
from ..ir.signature import Arg
from ..ir.uop import UOp
from .batching import vmap_graph, with_batch
from .dense import (argnums_of, float_outputs, function_like, function_of, gradient_graph,
                    hessian_block_graph, jacobian_graph, map_leaves, new_input, per_argnum,
                    scalar_output, structure_of)
from .forward import jvp_graph
from .reverse import vjp_graph

Argnum = "int | Sequence[int] | None"
"""An argument position (None: 0) or a tuple of them."""

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


def _named(wrapper, name: str, parameters: Sequence[str]) -> None:
    """Give a callable object the name Python's own call errors use (a keyword given twice) and
    the signature of its parameters (so that operators can trace it in turn)."""
    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__module__ = None
    wrapper.__signature__ = inspect.Signature(
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in parameters])


class Traced:
    """A plain Python function with operators applied to it, traced per argument signature.

    >>> from anvil_llvm.ad import grad
    >>> g = grad(lambda x: (x * x).sum())
    >>> g(np.array([1.0, 2.0])).tolist()
    [2.0, 4.0]
    """

    def __init__(self, fn: Callable, stages: tuple = ()):
        self.fn, self.stages = fn, stages
        self.parameters = _parameters(fn)
        self.arity = len(self.parameters)
        name = re.sub(r"\W", "_", getattr(fn, "__name__", "fn"))
        self.name = name if re.match(r"[A-Za-z_]", name) and name != "_lambda_" else "fn"
        _named(self, self.name, self.parameters)
        self._cache: OrderedDict = OrderedDict()

    def then(self, stage) -> "Traced":
        return Traced(self.fn, self.stages + (stage,))

    def specialise(self, *args):
        """The NumericalFunction for the shapes and dtypes of the function's own arguments
        (the leading `arity` of `args`; operators such as jvp append tangents after them).
        Integer arguments stay integers, and differentiating one is an error (as in JAX)."""
        return self.function_for([_shape_and_dtype(a) for a in args[:self.arity]])

    def function_for(self, specs: list[tuple[tuple, np.dtype]]):
        """The NumericalFunction for arguments of these (shape, dtype)s."""
        from ..function import NumericalFunction

        def make():
            found = NumericalFunction(self.name, self.fn, [Arg(s, d) for s, d in specs])
            for stage in self.stages:
                found = stage(found)
            return found
        return _cached(self._cache, tuple((s, d.str) for s, d in specs), make)

    def __call__(self, *args, **kwargs):
        own = _leading_arguments(self.name, self.parameters, args, kwargs)
        return self.specialise(*own)(*args, **kwargs)


def _parameters(fn: Callable) -> list[str]:
    """The positional parameters of a plain function without defaults (traced as inputs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        raise TypeError(f"cannot read the signature of {fn!r}; wrap it in a "
                        "NumericalFunction with explicit Args") from None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} takes *args; wrap it in a "
                        "NumericalFunction with explicit Args")
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.default is p.empty]


def _leading_arguments(name: str, parameters: Sequence[str], args: tuple, kwargs: dict) -> list:
    """The values of `parameters` in a call, by position or keyword; the function called checks
    the rest of the call."""
    own = list(args[:len(parameters)])
    for p in parameters[len(own):]:
        if p not in kwargs:
            raise TypeError(f"{name}() missing argument {p!r}")
        own.append(kwargs[p])
    return own


def _shape_and_dtype(value) -> tuple[tuple, np.dtype]:
    """The shape and dtype an argument is traced for (a Tensor's own, inside another trace)."""
    if isinstance(getattr(value, "dtype", None), DType):
        return value.shape, value.dtype.np
    array = np.asarray(value)
    return array.shape, array.dtype


def _as_function(fn):
    """A NumericalFunction (or Traced) as it is, a plain callable as a Traced."""
    if isinstance(fn, Traced) or hasattr(fn, "outputs") and hasattr(fn, "from_graph"):
        return fn
    if callable(fn):
        return Traced(fn)
    raise TypeError(f"expected a NumericalFunction or a callable, got {type(fn).__name__}")


def _operator(build: Callable) -> Callable:
    """Make `build(fn, ...)` accept plain callables (and Traced) as well as functions."""
    def operator(fn, *args, **kwargs):
        fn = _as_function(fn)

        def stage(f):
            with progress.stage(build.__name__, f.name):
                return build(f, *args, **kwargs)
        return fn.then(stage) if isinstance(fn, Traced) else stage(fn)
    operator.__name__ = build.__name__
    operator.__doc__ = build.__doc__
    return operator


def _name(name, fn, suffix: str) -> str:
    return name if name is not None else f"{fn.name}_{suffix}"


def _flat(count: int) -> tuple[int, ...]:
    return tuple(range(count))


def _shifted(structure, offset: int):
    return map_leaves(structure, lambda i: i + offset)


@_operator
def jvp(fn, argnum: Argnum = None, *, name: str | None = None, argnums: Argnum = None):
    """Forward mode: a function of `(*inputs, tangent)` returning `(*outputs, *J·tangent)`.
    With a tuple `argnum`, one tangent per position follows the inputs (tangent0, tangent1, ...)
    and each J·t sums over them, as JAX's jvp.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * x, (av.Arg(2),))
    >>> y, t = jvp(f)(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    >>> t.tolist()
    [2.0, 0.0]
    >>> g = av.NumericalFunction("g", lambda x, y: x * y, (av.Arg(2), av.Arg(2)))
    >>> one, zero = np.ones(2), np.zeros(2)
    >>> jvp(g, argnum=(0, 1))(np.array([1.0, 2.0]), np.array([3.0, 4.0]), one, zero)[1].tolist()
    [3.0, 4.0]
    """
    nums, single = argnums_of(fn, argnum, argnums)
    float_outputs(fn, "jvp")
    xs = [fn.inputs[a] for a in nums]
    seeds = [new_input(fn, k, x) for k, x in enumerate(xs)]
    tangents = jvp_graph(fn.outputs, dict(zip(xs, seeds)))
    outputs = list(fn.outputs) + [B.materialise(d, o) for d, o in zip(tangents, fn.outputs)]
    names = ["tangent"] if single else [f"tangent{k}" for k in range(len(xs))]
    return function_of(fn, _name(name, fn, "jvp"), outputs, _flat(len(outputs)),
                       list(zip(seeds, names)))


@_operator
def vjp(fn, argnum: Argnum = None, *, name: str | None = None, argnums: Argnum = None):
    """Reverse mode: a function of `(*inputs, *cotangents)` returning `Jᵀ·v` (one cotangent per
    output, shaped like it); for a tuple `argnum`, a tuple with one result per position, as the
    pullback of JAX's vjp.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * x, (av.Arg(2),))
    >>> vjp(f)(np.array([1.0, 2.0]), np.array([1.0, 1.0])).tolist()
    [2.0, 4.0]
    """
    nums, single = argnums_of(fn, argnum, argnums)
    float_outputs(fn, "vjp")
    xs = [fn.inputs[a] for a in nums]
    cts = [new_input(fn, j, o) for j, o in enumerate(fn.outputs)]
    grads = [B.materialise(g, x) for g, x in zip(vjp_graph(fn.outputs, cts, xs), xs)]
    names = ["cotangent"] if len(cts) == 1 else [f"cotangent{j}" for j in range(len(cts))]
    return function_of(fn, _name(name, fn, "vjp"), grads, per_argnum(range(len(xs)), single),
                       list(zip(cts, names)))


def _one_argnum(fn, argnum, argnums, operator: str) -> int:
    nums, single = argnums_of(fn, argnum, argnums)
    if not single:
        raise TypeError(f"{operator}: argnum: expected one argument position (an int), got "
                        f"{argnums if argnums is not None else argnum!r}")
    return nums[0]


@_operator
def hvp(fn, argnum: int | None = None, *, name: str | None = None, argnums: int | None = None):
    """Hessian-vector product (forward over reverse): a function of `(*inputs, v)` returning H·v.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x * x * x).sum(), (av.Arg(2),))
    >>> hvp(f)(np.array([1.0, 2.0]), np.array([1.0, 1.0])).tolist()
    [6.0, 12.0]
    """
    x = fn.inputs[_one_argnum(fn, argnum, argnums, "hvp")]
    g = gradient_graph(scalar_output(fn, "hvp"), x)
    v = new_input(fn, 0, x)
    (hv,) = jvp_graph([g], {x: v})
    return function_of(fn, _name(name, fn, "hvp"), [B.materialise(hv, x)], 0, [(v, "v")])


def _gradients(fn, argnum, argnums, operator: str):
    nums, single = argnums_of(fn, argnum, argnums)
    out = scalar_output(fn, operator)
    return out, nums, [gradient_graph(out, fn.inputs[a]) for a in nums], single


@_operator
def gradient(fn, argnum: Argnum = None, *, name: str | None = None, argnums: Argnum = None):
    """The gradient of a scalar function, shaped like the input; for a tuple `argnum`, a tuple of
    gradients (as jax.grad).

    >>> import anvil_llvm as av
    >>> cost = av.NumericalFunction("cost", lambda x: (x * x).sum(), (av.Arg(3),))
    >>> gradient(cost)(np.array([1.0, 2.0, 3.0])).tolist()
    [2.0, 4.0, 6.0]
    """
    _, _, grads, single = _gradients(fn, argnum, argnums, "gradient")
    return function_of(fn, _name(name, fn, "grad"), grads, per_argnum(range(len(grads)), single))


@_operator
def value_and_gradient(fn, argnum: Argnum = None, *, name: str | None = None,
                       argnums: Argnum = None):
    """`(value, gradient)` of a scalar function in one call; for a tuple `argnum`,
    `(value, (g0, g1, ...))` (as jax.value_and_grad).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda w, b: (w * b).sum(), (av.Arg(2), av.Arg(())))
    >>> value, (dw, db) = value_and_gradient(f, argnum=(0, 1))(np.array([1.0, 2.0]), 3.0)
    >>> float(value), dw.tolist(), float(db)
    (9.0, [3.0, 3.0], 3.0)
    """
    out, _, grads, single = _gradients(fn, argnum, argnums, "value_and_gradient")
    return function_of(fn, _name(name, fn, "value_and_grad"), [out] + grads,
                       (0, per_argnum(range(1, len(grads) + 1), single)))


def _jacobians(fn, argnum, argnums, mode, unroll, operator: str):
    """The Jacobian blocks, outputs major, and their structure: per output, one block per
    argument position (as jax.jacfwd)."""
    nums, single = argnums_of(fn, argnum, argnums)
    float_outputs(fn, operator)
    if not isinstance(unroll, (bool, np.bool_)):
        raise TypeError(f"unroll: expected a bool, got {unroll!r}")
    jacs = [jacobian_graph(o, fn.inputs[a], mode, bool(unroll)) for o in fn.outputs for a in nums]
    k = len(nums)
    return jacs, map_leaves(structure_of(fn), lambda o: per_argnum(range(o * k, o * k + k),
                                                                    single))


@_operator
def jacobian(fn, argnum: Argnum = None, mode: str = "auto", unroll: bool = False, *,
             name: str | None = None, argnums: Argnum = None):
    """The Jacobian, shaped output.shape + input.shape (an (m, n) matrix for vectors).

    mode: "fwd" (vmap of the JVP over basis seeds), "rev" (vmap of the VJP), or "auto": where
    the Jacobian is sparse, one direction per colour of its columns or rows (at most half as
    many; its entries placed into the dense result, as CasADi does), else forward mode unless
    reverse needs fewer than half as many directions (each costs about two forward ones). unroll=True expands the directions at trace time instead of a loop. Several
    outputs give a tuple, one per output; a tuple `argnum` one block per position in each
    (as jax.jacfwd: `J[output][position]`).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: av.Tensor.stack(x[0] * x[1], x[1] ** 2),
    ...                          (av.Arg(2),))
    >>> jacobian(f)(np.array([3.0, 4.0])).tolist()
    [[4.0, 3.0], [0.0, 8.0]]
    """
    jacs, structure = _jacobians(fn, argnum, argnums, mode, unroll, "jacobian")
    return function_of(fn, _name(name, fn, "jac"), jacs, structure)


@_operator
def value_and_jacobian(fn, argnum: Argnum = None, mode: str = "auto", unroll: bool = False, *,
                       name: str | None = None, argnums: Argnum = None):
    """`(value, jacobian)` in one call, each as the function and `jacobian` return them.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * x, (av.Arg(2),))
    >>> y, J = value_and_jacobian(f)(np.array([1.0, 2.0]))
    >>> y.tolist(), J.tolist()
    ([1.0, 4.0], [[2.0, 0.0], [0.0, 4.0]])
    """
    jacs, structure = _jacobians(fn, argnum, argnums, mode, unroll, "value_and_jacobian")
    outputs = list(fn.outputs)
    return function_of(fn, _name(name, fn, "value_and_jac"), outputs + jacs,
                       (structure_of(fn), _shifted(structure, len(outputs))))


def _hessians(fn, argnum, argnums, operator: str):
    """The value, gradients and Hessian blocks H[i][j] (rows by position i) with the structures
    of the gradients and of the blocks (as jax.hessian)."""
    out, nums, grads, single = _gradients(fn, argnum, argnums, operator)
    k = len(nums)
    blocks = [hessian_block_graph(grads[j], fn.inputs[a]) for a in nums for j in range(k)]
    rows = [per_argnum(range(i * k, i * k + k), single) for i in range(k)]
    return out, grads, blocks, per_argnum(range(k), single), per_argnum(rows, single)


@_operator
def hessian(fn, argnum: Argnum = None, *, name: str | None = None, argnums: Argnum = None):
    """The Hessian of a scalar function (forward over reverse), shaped input.shape * 2; for a
    tuple `argnum`, the blocks `H[i][j]` = d²f / (d arg_i d arg_j) as a tuple of tuples (as
    jax.hessian). Entry H[k, l] is computed as d/dx[k] (df/dx[l]) (no transposing pass; equal
    to the other order up to rounding).

    >>> import anvil_llvm as av
    >>> c = av.NumericalFunction("c", lambda x: x[0] ** 2 + x[0] * x[1] + x[1] ** 2,
    ...                          (av.Arg(2),))
    >>> hessian(c)(np.array([1.0, 1.0])).tolist()
    [[2.0, 1.0], [1.0, 2.0]]
    """
    _, _, blocks, _, structure = _hessians(fn, argnum, argnums, "hessian")
    return function_of(fn, _name(name, fn, "hess"), blocks, structure)


@_operator
def value_gradient_and_hessian(fn, argnum: Argnum = None, *, name: str | None = None,
                               argnums: Argnum = None):
    """`(value, gradient, hessian)` in one call, the last two as `gradient` and `hessian`
    return them."""
    out, grads, blocks, grad_structure, hess_structure = _hessians(
        fn, argnum, argnums, "value_gradient_and_hessian")
    return function_of(fn, _name(name, fn, "value_grad_hess"), [out] + grads + blocks,
                       (0, _shifted(grad_structure, 1),
                        _shifted(hess_structure, 1 + len(grads))))


def _sparse(fn, values: UOp, coloring, name: str, pattern=None):
    from ..function import SparseNumericalFunction
    return SparseNumericalFunction.from_coloring(name, fn, values, coloring, pattern)


def _check_bool(value, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what}: expected a bool, got {value!r}")
    return bool(value)


@_operator
def spjacobian(fn, argnum: int | None = None, unroll: bool = False, *, partition: str = "auto",
               order: str = "best", name: str | None = None, argnums: int | None = None,
               sep_uncompression: bool = False, entrywise: bool = True):
    """The sparse Jacobian: a SparseNumericalFunction returning its nonzeros in CSC order
    (rows: the outputs' elements one after the other; columns: argument `argnum`'s elements),
    computed with one directional derivative per colour of the detected pattern; or, with
    `entrywise` (the default) and where the derivative is a sum of coefficients times shifted
    copies of the direction (elementwise code on slices and pads of x: stencils, chains), each
    nonzero computed on its own, with no colours evaluated (docs/sparsity.md); `unroll` and
    `sep_uncompression` ask for forms of the colour loop, so they turn it off.

    partition: "column" (JVPs along column colours), "row" (VJPs along row colours),
    "bidirectional" (both) or "auto" (the fewest derivatives); order: the colouring's vertex
    order (anvil_llvm.ad.coloring.JACOBIAN_ORDERS). unroll=True writes one copy of the
    derivative graph per colour instead of a loop over the colours. sep_uncompression=True
    stores the compressed products and gathers the nonzeros from them in a second kernel; by
    default the colour loop writes each nonzero straight to its CSC slot (less memory, and as
    fast or faster: docs/sparsity.md).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x[1:] ** 2 - x[:-1], (av.Arg(5),))
    >>> J = spjacobian(f)
    >>> J.shape, J.nnz, J.ncolors, J(np.arange(5.0)).tolist()
    ((4, 5), 8, 2, [-1.0, 2.0, -1.0, 4.0, -1.0, 6.0, -1.0, 8.0])
    """
    from .coloring.options import check_jacobian_options
    from .sparse import entrywise_jacobian, jacobian_csc, spjacobian_graph
    from .sparsity import jacobian_pattern
    a = _one_argnum(fn, argnum, argnums, "spjacobian")
    float_outputs(fn, "spjacobian")
    unroll = _check_bool(unroll, "spjacobian: unroll")
    separate = _check_bool(sep_uncompression, "spjacobian: sep_uncompression")
    entrywise = _check_bool(entrywise, "spjacobian: entrywise")
    check_jacobian_options(partition, order)
    x = fn.inputs[a]
    with progress.stage("sparsity", fn.name):
        pattern = jacobian_pattern(fn.outputs, [x])
    colour = functools.partial(_coloured, "jacobian", fn.name, partition=partition,
                               order=order)
    if entrywise and not (unroll or separate):
        csc = jacobian_csc(pattern)
        values = entrywise_jacobian(list(fn.outputs), x, csc)
        if values is not None:      # coloured on demand from the pattern the function keeps
            return _sparse(fn, values, functools.partial(colour, csc), _name(name, fn, "jac"),
                           csc)
    coloring = colour(pattern)
    return _sparse(fn, spjacobian_graph(list(fn.outputs), x, coloring, unroll, separate),
                   coloring, _name(name, fn, "jac"))


@_operator
def sphessian(fn, argnum: int | None = None, unroll: bool = False, *, method: str = "star",
              order: str = "best", name: str | None = None, argnums: int | None = None,
              sep_uncompression: bool = False, entrywise: bool = True):
    """The sparse Hessian of a scalar function: a SparseNumericalFunction returning the
    nonzeros of its upper triangle in CSC order, from one Hessian-vector product (forward over
    reverse) per colour of a colouring of the detected pattern; or, with `entrywise` and where
    the gradient's derivative allows it, each nonzero on its own (as for `spjacobian`).

    method: "star" (direct decompression) or "acyclic" (fewer colours; the
    nonzeros recovered by substitution, a sequential pass); order: the colouring's vertex
    order (anvil_llvm.ad.coloring.HESSIAN_ORDERS). unroll=True writes one copy of the derivative
    graph per colour instead of a loop over the colours. sep_uncompression: as for
    `spjacobian` (star only; substitution is always a pass of its own).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x[1:] * x[:-1]).sum() + (x ** 3).sum(),
    ...                          (av.Arg(3),))
    >>> H = sphessian(f)
    >>> H.csc(np.ones(3)).toarray().tolist()
    [[6.0, 1.0, 0.0], [0.0, 6.0, 1.0], [0.0, 0.0, 6.0]]
    """
    from .coloring.options import check_hessian_options
    from .sparse import entrywise_hessian, hessian_upper, sphessian_graph
    from .sparsity import hessian_pattern
    a = _one_argnum(fn, argnum, argnums, "sphessian")
    out = scalar_output(fn, "sphessian")
    unroll = _check_bool(unroll, "sphessian: unroll")
    separate = _check_bool(sep_uncompression, "sphessian: sep_uncompression")
    entrywise = _check_bool(entrywise, "sphessian: entrywise")
    check_hessian_options(method, order)
    x = fn.inputs[a]
    with progress.stage("sparsity", fn.name):
        pattern = hessian_pattern(out, [x])
    colour = functools.partial(_coloured, "hessian", fn.name, pattern, method=method,
                               order=order)     # of the whole symmetric pattern
    if entrywise and not (unroll or separate):
        upper = hessian_upper(pattern)
        values = entrywise_hessian(out, x, upper)
        if values is not None:
            return _sparse(fn, values, colour, _name(name, fn, "hess"), upper)
    coloring = colour()
    return _sparse(fn, sphessian_graph(out, x, coloring, unroll, separate), coloring,
                   _name(name, fn, "hess"))


def _coloured(kind: str, name: str, pattern, **options):
    """The colouring of the detected pattern of function `name` that `spjacobian` or
    `sphessian` (`kind`) uses (made on demand where the nonzeros are computed entry by
    entry)."""
    from . import coloring
    with progress.stage("colouring", name):
        return getattr(coloring, f"{kind}_coloring")(pattern, **options)


def _scalar_input(fn, argnum, operator: str) -> int:
    a = _one_argnum(fn, argnum, None, operator)
    if fn.args[a].shape != ():
        raise ValueError(f"{operator}: argument {a} of {fn.name} must be a scalar (shape ()), "
                         f"got shape {fn.args[a].shape}; use jacobian")
    float_outputs(fn, operator)
    return a


@_operator
def derivative(fn, argnum: int = 0, *, name: str | None = None):
    """d f / d x for a scalar input x (shaped like the output).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x ** 3, (av.Arg(()),))
    >>> float(derivative(f)(2.0))
    12.0
    """
    x = fn.inputs[_scalar_input(fn, argnum, "derivative")]
    outs = [jacobian_graph(o, x, "fwd") for o in fn.outputs]
    return function_of(fn, _name(name, fn, "deriv"), outs, structure_of(fn))


@_operator
def second_derivative(fn, argnum: int = 0, *, name: str | None = None):
    """d² f / d x² for a scalar input x.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x ** 3, (av.Arg(()),))
    >>> float(second_derivative(f)(2.0))
    12.0
    """
    x = fn.inputs[_scalar_input(fn, argnum, "second_derivative")]
    outs = [jacobian_graph(jacobian_graph(o, x, "fwd"), x, "fwd") for o in fn.outputs]
    return function_of(fn, _name(name, fn, "deriv2"), outs, structure_of(fn))


# ---- vmap -------------------------------------------------------------------------------------
def _moved_to_front(node: UOp, axis: int) -> UOp:
    if axis == 0:
        return node
    order = (axis,) + tuple(i for i in range(node.ndim) if i != axis)
    return B.permute(node, order)


def _in_axes(in_axes, parameters: Sequence[str], name: str) -> tuple[int | None, ...]:
    """`in_axes` (one entry for all arguments, or one per argument) as an int or None per
    argument of the function `name`."""
    if isinstance(in_axes, (tuple, list)):
        if len(in_axes) != len(parameters):
            raise ValueError(f"in_axes: expected one entry per argument of {name} "
                             f"({len(parameters)}: {', '.join(parameters)}), got "
                             f"{len(in_axes)}: {in_axes!r}")
        axes = tuple(in_axes)
    else:
        axes = (in_axes,) * len(parameters)
    for axis in axes:
        if axis is not None and (not isinstance(axis, (int, np.integer))
                                 or isinstance(axis, (bool, np.bool_))):
            raise TypeError(f"in_axes: expected an int or None, or a tuple of them (one per "
                            f"argument), got {in_axes!r}")
    if all(axis is None for axis in axes):
        raise ValueError(f"in_axes: at least one argument must be batched, got {in_axes!r}")
    return tuple(None if axis is None else int(axis) for axis in axes)


def _batch_axis(i: int, axis: int, ndim: int, argument: str) -> int:
    """in_axes[i] as an axis of `argument`, which has `ndim` dimensions with its batch axis."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"in_axes[{i}] = {axis} is out of range: {argument} has {ndim} "
                         f"dimension{'s' * (ndim != 1)} with its batch axis")
    return axis % ndim


def _vmap(fn, in_axes, axis_size: int, *, name: str | None = None):
    axes = _in_axes(in_axes, fn.arg_names, fn.name)
    if not isinstance(axis_size, (int, np.integer)) or isinstance(axis_size, bool):
        raise TypeError(f"axis_size: expected an int, got {axis_size!r}")
    if axis_size < 0:
        raise ValueError(f"axis_size: expected a non-negative int, got {axis_size}")
    args, mapping = [], {}
    for i, (arg, axis) in enumerate(zip(fn.args, axes)):
        if axis is None:
            args.append(arg)
            continue
        axis = _batch_axis(i, axis, len(arg.shape) + 1,
                           f"argument {i} ('{fn.arg_names[i]}') of {fn.name}")
        shape = arg.shape[:axis] + (axis_size,) + arg.shape[axis:]
        args.append(Arg(shape, arg.dtype))
        batched_input = UOp(fn.inputs[i].op, (), (i, shape, arg.dtype))
        mapping[fn.inputs[i]] = _moved_to_front(batched_input, axis)
    outs = [with_batch(n, b, axis_size) for n, b in vmap_graph(fn.outputs, mapping)]
    return function_like(fn, _name(name, fn, "vmap"), args, fn.arg_names, outs,
                         structure_of(fn))


class _LazyVmap:
    """vmap whose batch size (and, for a plain callable, the shapes traced) is read from the
    arguments at call time."""

    def __init__(self, fn, in_axes, name: str | None):
        self.fn, self.name = fn, name
        self.parameters = fn.parameters if isinstance(fn, Traced) else list(fn.arg_names)
        self.in_axes = _in_axes(in_axes, self.parameters, fn.name)
        self.label = _name(name, fn, "vmap")
        if not isinstance(fn, Traced):
            for i, (arg, axis) in enumerate(zip(fn.args, self.in_axes)):
                if axis is not None:
                    _batch_axis(i, axis, len(arg.shape) + 1,
                                f"argument {i} ('{fn.arg_names[i]}') of {fn.name}")
        _named(self, self.label, self.parameters)
        self._cache: OrderedDict = OrderedDict()

    def __call__(self, *args, **kwargs):
        values = _leading_arguments(self.label, self.parameters, args, kwargs)
        size, first, specs = None, None, []
        for i, (value, axis) in enumerate(zip(values, self.in_axes)):
            shape, dtype = _shape_and_dtype(value)
            if axis is not None:
                argument = f"argument {i} ('{self.parameters[i]}')"
                axis = _batch_axis(i, axis, len(shape), f"{argument} of {self.label}()")
                if size is None:
                    size, first = shape[axis], argument
                elif shape[axis] != size:
                    raise ValueError(f"{self.label}(): batched arguments must share one batch "
                                     f"size: {argument} has {shape[axis]} along axis {axis}, "
                                     f"{first} has {size}")
                shape = shape[:axis] + shape[axis + 1:]
            specs.append((shape, dtype))
        fn = self.fn.function_for(specs) if isinstance(self.fn, Traced) else self.fn
        # keyed by the function itself (not its id, which a freed function's successor reuses)
        return _cached(self._cache, (fn, size),
                       lambda: _vmap(fn, self.in_axes, size, name=self.name))(*args, **kwargs)


def vmap(fn, in_axes=0, axis_size: int | None = None, *, name: str | None = None):
    """Vectorise `fn` over a batch axis of its arguments (`in_axes`: an axis or None per
    argument); results carry the batch as their leading axis. With `axis_size` a
    NumericalFunction of the batched shapes is returned; otherwise the size is read at call.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(3),))
    >>> vmap(f)(np.ones((4, 3))).tolist()
    [3.0, 3.0, 3.0, 3.0]
    """
    fn = _as_function(fn)
    if isinstance(fn, Traced) or axis_size is None:
        return _LazyVmap(fn, in_axes, name)
    return _vmap(fn, in_axes, axis_size, name=name)


grad = gradient
value_and_grad = value_and_gradient


def jacfwd(fn, argnum: Argnum = None, **kwargs):
    """`jacobian` in forward mode (JAX's name)."""
    return jacobian(fn, argnum, mode="fwd", **kwargs)


def jacrev(fn, argnum: Argnum = None, **kwargs):
    """`jacobian` in reverse mode (JAX's name)."""
    return jacobian(fn, argnum, mode="rev", **kwargs)
