"""Dense derivative operators built from the JVP, VJP and vmap transforms.

Each operator takes a function (a NumericalFunction, or a plain Python callable traced on first
call) and returns a new function of the same kind, so results are callable, differentiable again
and exportable.
"""
from __future__ import annotations

import numpy as np

from ..ir import build as B
from ..ir.ops import INPUT
from ..ir.signature import Arg
from ..ir.uop import UOp, substitute
from .batching import vmap_graph, with_batch
from .forward import jvp_graph
from .reverse import vjp_graph


# ---- arguments and results -------------------------------------------------------------------
Structure = "int | tuple[Structure, ...]"
"""How a function returns its outputs: i is outputs[i] alone, a tuple nests (as JAX's pytrees)."""


def argnums_of(fn, argnum, argnums=None) -> tuple[tuple[int, ...], bool]:
    """`argnum` (or JAX's `argnums`; giving both is an error unless they are equal; neither is 0)
    as a tuple of positions, and whether a single int was given."""
    if argnums is not None:
        if argnum is not None and _listed(argnum) != _listed(argnums):
            raise TypeError(f"argnum and argnums name one parameter (argnums is JAX's name): "
                            f"give one of them, got argnum={argnum!r} and argnums={argnums!r}")
        argnum = argnums
    argnum = 0 if argnum is None else argnum
    single = not isinstance(argnum, (tuple, list))
    nums = (argnum,) if single else tuple(argnum)
    if not nums:
        raise ValueError("argnum: expected at least one argument position, got ()")
    for a in nums:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"argnum: expected an int or a tuple of ints, got {argnum!r}")
        if not -len(fn.args) <= a < len(fn.args):
            raise ValueError(f"argnum: {a} is out of range for {fn.name}, which takes "
                             f"{len(fn.args)} argument(s)")
    nums = tuple(int(a) % len(fn.args) for a in nums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"argnum: an argument position is given twice in {argnum!r}")
    for a in nums:
        if not fn.args[a].dtype.is_float:
            raise TypeError(f"argnum: argument {a} ('{fn.arg_names[a]}') of {fn.name} has dtype "
                            f"{fn.args[a].dtype}; only float arguments can be differentiated")
    return nums, single


def _listed(argnum):
    return tuple(argnum) if isinstance(argnum, (tuple, list)) else argnum


def float_outputs(fn, operator: str) -> None:
    """TypeError unless every output of `fn` is a float (only those have derivatives)."""
    for j, o in enumerate(fn.outputs):
        if not o.dtype.is_float:
            raise TypeError(f"{operator}: output {j} of {fn.name} has dtype {o.dtype}; only "
                            "float outputs can be differentiated")


def scalar_output(fn, operator: str) -> UOp:
    if len(fn.outputs) != 1 or fn.outputs[0].shape != ():
        shapes = [o.shape for o in fn.outputs]
        raise ValueError(f"{operator}: {fn.name} must return one scalar (shape ()), it returns "
                         f"shapes {shapes}; use jacobian for vector outputs")
    float_outputs(fn, operator)
    return fn.outputs[0]


def new_input(fn, offset: int, like: UOp) -> UOp:
    """An INPUT node placed after `fn`'s arguments, with `like`'s shape and dtype."""
    return UOp(INPUT, (), (len(fn.args) + offset, like.shape, like.dtype))


def structure_of(fn) -> Structure:
    """How `fn` returns its outputs."""
    found = getattr(fn, "structure", None)
    if found is not None:
        return found
    return tuple(range(len(fn.outputs))) if fn.multiple else 0


def map_leaves(structure: Structure, leaf) -> Structure:
    """`structure` with each leaf i replaced by `leaf(i)`."""
    if isinstance(structure, tuple):
        return tuple(map_leaves(s, leaf) for s in structure)
    return leaf(structure)


def per_argnum(leaves, single: bool) -> Structure:
    """One result per argument position: the leaf itself for a single int `argnum`."""
    leaves = tuple(leaves)
    return leaves[0] if single else leaves


def function_of(fn, name: str, outputs: list[UOp], structure: Structure,
                extra: list[tuple[UOp, str]] = ()):
    """A function of `fn`'s arguments plus `extra` (new INPUT nodes and their names, renamed
    where `fn` has an argument of that name) returning `outputs` as `structure`."""
    args = list(fn.args) + [Arg(node.shape, node.dtype) for node, _ in extra]
    names = list(fn.arg_names)
    for _, base in extra:
        arg_name, k = base, 0
        while arg_name in names:
            k += 1
            arg_name = f"{base}_{k}"
        names.append(arg_name)
    return function_like(fn, name, args, names, outputs, structure)


def function_like(fn, name: str, args: list, names: list[str], outputs: list[UOp],
                  structure: Structure):
    """A function of `fn`'s kind with these arguments and outputs. A flat structure (one output,
    or a tuple of all in order) gives a plain function, called natively; another one a function
    whose call nests the native flat results (fn.native keeps them flat)."""
    cls = getattr(type(fn), "flat_class", type(fn))
    result = cls.from_graph(name, args, outputs, isinstance(structure, tuple), names)
    result.origin = getattr(fn, "origin", None)
    if isinstance(structure, tuple) and structure != tuple(range(len(outputs))):
        nest(result, structure)
    return result


def nest(fn, structure) -> None:
    """Make `fn`'s call return its flat results nested as `structure`."""
    fn.__class__ = _nested_class(type(fn))
    fn.structure = structure


_NESTED: dict[type, type] = {}


def _nested_class(cls: type) -> type:
    """The subclass of function class `cls` whose call returns results nested as `structure`."""
    found = _NESTED.get(cls)
    if found is None:
        def __call__(self, *args, **kwargs):
            return map_leaves(self.structure, cls.__call__(self, *args, **kwargs).__getitem__)
        found = _NESTED.setdefault(cls, type(cls.__name__, (cls,), {
            "__call__": __call__, "flat_class": cls, "__module__": cls.__module__,
            "__qualname__": cls.__qualname__}))
    return found


# ---- graph-level derivatives ---------------------------------------------------------------------
REVERSE_COST = 2
"""What a reverse direction costs against a forward one, about: its sweep runs the function,
stores what the derivatives read and reads it back (a loop: a trajectory). Measured: the RK4
pendulum's 2x3 Jacobian over 200 steps, 3 forward directions 10.0 us, 2 reverse 16.8 us;
multiple shooting's 8 column colours 65 us, 7 row colours 84 us."""


def _placeholder(like: UOp) -> UOp:
    """A seed node standing for a direction until it is substituted or batched away."""
    return UOp(INPUT, (), (-1, like.shape, like.dtype))


def _basis_vector(shape: tuple, dtype, k: int) -> UOp:
    basis = B.basis(shape, dtype)
    row = B.slice_(basis, ((k, 1, 1),) + tuple((0, 1, n) for n in shape))
    return B.reshape(row, shape)


def _stack_directions(direction_graph: UOp, seed: UOp, unroll: bool) -> UOp:
    """`direction_graph` (linear in `seed`) for every basis seed, stacked on a leading axis."""
    n = seed.size
    if unroll:
        rows = [B.reshape(substitute([direction_graph], {seed: _basis_vector(
            seed.shape, seed.dtype, k)})[0], (1,) + direction_graph.shape) for k in range(n)]
        return B.concat(rows, 0) if rows else B.full((0,) + direction_graph.shape, 0,
                                                     direction_graph.dtype)
    ((batched, is_batched),) = vmap_graph([direction_graph],
                                          {seed: B.basis(seed.shape, seed.dtype)})
    return with_batch(batched, is_batched, n)


def jacobian_graph(output: UOp, x: UOp, mode: str = "auto", unroll: bool = False) -> UOp:
    """d output / d x as a node of shape output.shape + x.shape. "auto": through the
    Jacobian's sparsity where that needs at most half the directions (ad/compressed.py), else
    forward mode unless reverse needs fewer than 1 / REVERSE_COST as many directions."""
    if mode == "auto":
        if not unroll:
            from .compressed import compressed_jacobian
            found = compressed_jacobian(output, x)
            if found is not None:
                return found
        mode = "fwd" if x.size <= REVERSE_COST * output.size else "rev"
    if mode == "fwd":
        seed = _placeholder(x)
        (tangent,) = jvp_graph([output], {x: seed})
        if tangent is None:
            return B.full(output.shape + x.shape, 0, output.dtype)
        stacked = _stack_directions(tangent, seed, unroll)             # (n,) + out
        moved = B.permute(stacked, tuple(range(1, output.ndim + 1)) + (0,))
        return B.reshape(moved, output.shape + x.shape)
    if mode == "rev":
        seed = _placeholder(output)
        (ct,) = vjp_graph([output], [seed], [x])
        if ct is None:
            return B.full(output.shape + x.shape, 0, output.dtype)
        return B.reshape(_stack_directions(ct, seed, unroll), output.shape + x.shape)
    raise ValueError(f"mode: expected 'auto', 'fwd' or 'rev', got {mode!r}")


def hessian_block_graph(gradient: UOp, x_row: UOp) -> UOp:
    """The Hessian block d^2 f / (d x_row d x_col) from `gradient` = df/dx_col: the JVPs of the
    gradient along x_row's basis, stacked first. This is the forward-mode Jacobian of the
    gradient without its final transpose: second derivatives are symmetric, so each entry
    H[k, l] is computed as d/dx_row[k] (df/dx_col[l]), which equals d/dx_col[l] (df/dx_row[k])
    up to rounding, and the result is written in the order it is computed."""
    seed = _placeholder(x_row)
    (tangent,) = jvp_graph([gradient], {x_row: seed})
    if tangent is None:
        return B.full(x_row.shape + gradient.shape, 0, gradient.dtype)
    return B.reshape(_stack_directions(tangent, seed, False), x_row.shape + gradient.shape)


def gradient_graph(output: UOp, x: UOp) -> UOp:
    (g,) = vjp_graph([output], [B.full((), 1, output.dtype)], [x])
    return B.materialise(g, x)
