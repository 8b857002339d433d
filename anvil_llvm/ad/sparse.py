"""Sparse Jacobians and Hessians as graphs: one directional derivative per colour (batched,
over symbolic colour seeds), each product placed straight into its nonzero's slot in CSC order.

A colour seed is `colors[j] == k` over the O(n) table of colours, never an n x c constant; the
compressed products are laid out as the colouring layer expects (ad/coloring/result.py), and
its direct decompression tables become one placement (the PLACE op: the colour loop stores
each product to its slot, so the compressed matrix is never stored).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._lazy import scipy_sparse as sp
from ..ir import build as B
from ..ir import dtypes
from ..ir.ops import CMPEQ, INPUT, IOTA, RESHAPE
from ..ir.ops.movement import PLACE_UNROLLED
from ..ir.ops.source import const_array
from ..ir.ops.substitute import Program, substitute, tables
from ..ir.uop import UOp
from ..ir.uop import substitute as replaced
from .batching import vmap_graph, with_batch
from .dense import gradient_graph
from .entrywise import entrywise_values
from .forward import jvp_graph
from .reverse import vjp_graph

if TYPE_CHECKING:
    from .coloring import Coloring


def color_seeds(colors: np.ndarray, like: UOp) -> UOp:
    """The seeds of a colouring of `like`'s elements, stacked: shape (c,) + like.shape with
    seed[k] = (colors == k) (a colour of -1 is in no seed)."""
    count = int(colors.max(initial=-1)) + 1
    shape = (count,) + like.shape
    # Colours below 2**24 are exact as float32: half the bytes of int64, and the colour loop
    # reads the whole table once per colour (bratu2d, n = 1e6: 13.6 -> 11.3 ms a call).
    small = count < 2**24
    table = const_array(np.asarray(colors, np.float32 if small else np.int64)
                        .reshape(like.shape))
    table = B.broadcast_to(B.reshape(table, (1,) + like.shape), shape)
    color = UOp(IOTA, (), (shape, 0))
    if small:
        color = B.cast(color, dtypes.float32)
    # In the argument's own shape: indices in a nest over it need no division.
    return B.cast(UOp(CMPEQ, (table, color)), like.dtype)


def _batched(direction: UOp | None, seed: UOp, seeds: UOp, size: int, unroll: bool) -> UOp:
    """`direction` (linear in `seed`) for every seed of `seeds`, in seed order: a loop over the
    seeds (vmap), or one copy of the graph per seed when `unroll`. Its elements are the
    compressed products in order; its shape is the one the products are computed in (seed
    first), which a placement's nest runs over."""
    count = seeds.shape[0]
    if direction is None or not count:
        return B.full((count * size,), 0, seeds.dtype)
    if unroll:
        rows = [_natural(replaced([direction], {seed: B.reshape(B.slice_(seeds, (
            (k, 1, 1),) + tuple((0, 1, n) for n in seed.shape)), seed.shape)})[0])
                for k in range(count)]
        if len({row.shape for row in rows}) > 1:
            rows = [B.reshape(row, (size,)) for row in rows]
        return B.concat([B.reshape(row, (1,) + row.shape) for row in rows], 0)
    ((batched, is_batched),) = vmap_graph([direction], {seed: seeds})
    batched = with_batch(batched, is_batched, count)
    while batched.op is RESHAPE and batched.src[0].shape[:1] == (count,):
        batched = batched.src[0]
    return batched


def _natural(node: UOp) -> UOp:
    """`node` before the reshapes that end it (the same elements in the same order, in the
    shape they are computed in)."""
    while node.op is RESHAPE:
        node = node.src[0]
    return node


def _placeholder(like: UOp) -> UOp:
    return UOp(INPUT, (), (-1, like.shape, like.dtype))


def _decompress(compressed: list[UOp], coloring: Coloring, separate: bool) -> UOp:
    """The nonzeros in CSC order from the compressed products. Direct tables: with `separate`,
    the products are stored, then gathered by a second kernel; else each product is placed
    straight into its nonzero's slot by the nest that computes it (nothing compressed is
    stored and read back). An acyclic colouring's: the substitution program."""
    recovery, nnz = coloring.tables, coloring.pattern.nnz
    flat = [B.reshape(c, (c.size,)) for c in compressed]
    if nnz == 0:
        return B.full((0,), 0, flat[0].dtype)
    source = np.asarray(recovery.source, np.int64)
    if recovery.direct and not separate:
        whole = B.concat(flat, 0) if len(flat) > 1 else compressed[0]
        slots = np.full(whole.size, -1, np.int64)
        slots[source] = np.arange(nnz)
        slots = slots.reshape(whole.shape)
        if len(flat) == 1 and whole.ndim > 2 and whole.shape[0] > PLACE_UNROLLED:
            # Too many colours to compute at each position of the grid (PLACE_UNROLLED): the
            # colours next to the innermost axis, so that the nest writes the nonzeros of a
            # few rows of the grid for every colour before it moves on (they share cache lines).
            inner = tuple(range(1, whole.ndim - 1)) + (0, whole.ndim - 1)
            whole, slots = B.permute(whole, inner), np.moveaxis(slots, 0, -2)
        return B.place(whole, slots, nnz)
    flat = B.concat(flat, 0) if len(flat) > 1 else flat[0]
    if recovery.direct:
        return B.gather(flat, 0, source)
    program = Program(*tables(recovery.source, recovery.target, recovery.subtract), nnz,
                      flat.size)
    return substitute(flat, program)


def _stacked(outputs: list[UOp]) -> UOp:
    """The outputs' elements one after the other (the rows of their Jacobian)."""
    flat = [B.reshape(o, (o.size,)) for o in outputs]
    return B.concat(flat, 0) if len(flat) > 1 else flat[0]


def jacobian_csc(pattern: sp.sparray) -> sp.csc_array:
    """A detected Jacobian pattern in the canonical CSC form of the nonzeros' order."""
    return _canonical(sp.csc_array(pattern))


def hessian_upper(pattern: sp.sparray) -> sp.csc_array:
    """The upper triangle of a detected Hessian pattern, canonical CSC (the nonzeros' order)."""
    return _canonical(sp.csc_array(sp.triu(pattern, format="csc")))


def _canonical(pattern: sp.csc_array) -> sp.csc_array:
    pattern.sum_duplicates()
    return pattern


def entrywise_jacobian(outputs: list[UOp], x: UOp, pattern: sp.csc_array,
                       loops: bool = True) -> UOp | None:
    """The nonzeros of d outputs / d x in CSC order of `pattern`, each computed on its own
    (ad/entrywise.py; `loops`: through maps over stages too), or None where the derivative is
    not of that form."""
    seed = _placeholder(x)
    return entrywise_values(jvp_graph([_stacked(outputs)], {x: seed})[0], seed, pattern,
                            loops=loops)


def entrywise_hessian(output: UOp, x: UOp, upper: sp.csc_array) -> UOp | None:
    """The nonzeros of the upper triangle `upper` of d² output / d x² in CSC order, each
    computed on its own, or None where the gradient's derivative is not of that form."""
    seed = _placeholder(x)
    g = B.reshape(gradient_graph(output, x), (x.size,))
    return entrywise_values(jvp_graph([g], {x: seed})[0], seed, upper, upper=True)


def spjacobian_graph(outputs: list[UOp], x: UOp, coloring: Coloring, unroll: bool = False,
                     separate: bool = False) -> UOp:
    """The nonzeros of d outputs / d x in CSC order of `coloring.pattern` (rows: the outputs'
    elements one after the other; columns: x's elements); `separate`: decompressed by a kernel
    of its own (`_decompress`)."""
    out = _stacked(outputs)
    parts = []
    if coloring.ncolumn_colors:
        seed = _placeholder(x)
        (tangent,) = jvp_graph([out], {x: seed})
        parts.append(_batched(tangent, seed, color_seeds(coloring.column_colors, x), out.size,
                              unroll))
    if coloring.nrow_colors:
        seed = _placeholder(out)
        (ct,) = vjp_graph([out], [seed], [x])
        ct = None if ct is None else B.reshape(ct, (x.size,))
        parts.append(_batched(ct, seed, color_seeds(coloring.row_colors, out), x.size, unroll))
    if not parts:
        return B.full((0,), 0, out.dtype)
    return _decompress(parts, coloring, separate)


def sphessian_graph(output: UOp, x: UOp, coloring: Coloring, unroll: bool = False,
                    separate: bool = False) -> UOp:
    """The nonzeros of the upper triangle of d² output / d x² in CSC order: Hessian-vector
    products (forward over reverse) along the colour seeds; `separate` as for
    `spjacobian_graph`."""
    if not coloring.ncolors:
        return B.full((0,), 0, output.dtype)
    g = B.reshape(gradient_graph(output, x), (x.size,))
    seed = _placeholder(x)
    (tangent,) = jvp_graph([g], {x: seed})
    return _decompress([_batched(tangent, seed, color_seeds(coloring.column_colors, x), x.size,
                             unroll)], coloring, separate)


def csc_structure(pattern: sp.csc_array) -> tuple[np.ndarray, np.ndarray]:
    """(indices, indptr) of a CSC pattern as int32, 0-based."""
    return pattern.indices.astype(np.int32), pattern.indptr.astype(np.int32)


__all__ = ["color_seeds", "csc_structure", "entrywise_hessian", "entrywise_jacobian",
           "hessian_upper", "jacobian_csc", "sphessian_graph", "spjacobian_graph"]
