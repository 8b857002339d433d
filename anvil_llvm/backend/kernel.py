"""The loop-nest IR: buffers, kernels (a loop nest and the nodes it stores) and symbolic indices."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..ir.ops import PLACE, REDUCE_PROD, REDUCE_SUM
from ..ir.ops.movement import PLACE_UNROLLED
from ..ir.uop import OpKind, UOp


@dataclass(frozen=True)
class Buffer:
    """Where a realised node lives: an input, an output, a workspace slot or a constant table."""

    kind: str          # "input" | "output" | "work" | "const"
    position: int      # argument position (input/output), byte offset (work), table id (const)
    dtype: object
    size: int
    offset: int = 0    # elements before it in an output it is a block of


def accumulates(node: UOp) -> bool:
    """Whether a reduction runs as a loop nest over its source in the source's order, folding
    each element into the output buffer: when the source's innermost axis (of extent > 1) is
    kept, e.g. a column sum, or when a sum or product reduces every axis to one number. The
    inner loop then reads and writes contiguous memory and vectorises across the kept elements
    (reducing innermost would make LLVM gather strided elements: slow code that takes it tens
    of milliseconds to build), or into one accumulator (`reassoc`, as a reduction kernel's),
    the folding order of kept axes is the sequential one NumPy uses, and the nest can be
    shared with other kernels over the source's shape: a loss summed in the nest that
    computes it stores none of its terms."""
    if node.op.kind is not OpKind.REDUCE:
        return False
    src = node.src[0]
    inner = [axis for axis in range(src.ndim) if src.shape[axis] > 1]
    if not inner:
        return False
    if node.size == 1:
        return node.op in (REDUCE_SUM, REDUCE_PROD) and all(a in node.arg for a in inner)
    return inner[-1] not in node.arg


def over_source(node: UOp) -> bool:
    """Whether `node`'s kernel is a loop nest over its source's shape rather than its own: an
    accumulating reduction, or a placement (each source element stored to its slot)."""
    return node.op is PLACE or accumulates(node)


def unrolled_seeds(node: UOp) -> int:
    """How many values of its source's leading axis a placement computes at each position of
    its nest, which runs over the other axes (`PLACE_UNROLLED`); 0 when the nest runs over the
    whole source."""
    if node.op is not PLACE:
        return 0
    src, slots = node.src[0], node.arg[0].array
    if slots.ndim < 2 or src.ndim != slots.ndim or src.shape[0] > PLACE_UNROLLED:
        return 0
    return src.shape[0]


def nest_shape(node: UOp) -> tuple[int, ...]:
    """The shape of the loop nest that computes `node` (see `over_source`, `unrolled_seeds`)."""
    if over_source(node):
        return node.src[0].shape[1 if unrolled_seeds(node) else 0:]
    return node.shape


def innermost_reads(roots: list[UOp], rank: int, realised) -> Iterator[tuple[UOp, tuple | None]]:
    """Every node the fused code of a nest of `rank` axes storing `roots` reaches, with where
    it is read along the nest's innermost axis i: `(scale, offset, aligned)` for position
    `scale * i + offset` of its last axis (`aligned` when each other axis is read at the nest's
    own position), or None when an op on the way is not followed (elementwise ops and the ops'
    `last_axis` rules are). Realised nodes other than the roots are reached, not entered."""
    # each node with the rank it is read at: one more under a placement computing its seeds
    # at each position (their leading axis is not one of the nest's)
    stack, seen = [(root, (1, 0, True), rank) for root in roots], set()
    while stack:
        node, at, depth = stack.pop()
        if (node, at) in seen:
            continue
        seen.add((node, at))
        yield node, at
        if node not in roots and node in realised:
            continue
        if at is not None and node in roots and over_source(node):
            # its nest runs over the source
            stack.append((node.src[0], at, depth + (unrolled_seeds(node) > 0)))
        elif at is not None and node.ndim == depth and node.op.kind is OpKind.ELEMENTWISE:
            stack.extend((s, at if s.shape == node.shape else None, depth) for s in node.src)
        elif at is not None and node.ndim == depth and node.op.last_axis is not None:
            scale, offset, aligned = at
            _, reads, kept = node.op.last_axis(node)
            # (a source of another rank, the scalars of a stack, is not read along the axis)
            stack.extend((s, (scale * step, step * offset + shift, aligned and kept)
                          if s.ndim == node.ndim else None, depth) for s, step, shift in reads)
        else:
            stack.extend((s, None, depth) for s in node.src)


@dataclass
class Kernel:
    """One loop nest over `shape` storing `roots` (a reduction or contraction kernel has one root
    whose reduced loops nest inside; an accumulating reduction or a placement is a root of a
    nest over its source's shape). Kernels of scalars and small arrays (`schedule.is_small`)
    may be grouped into a chunk: one `noinline` LLVM function, so that huge scalar graphs
    compile in linear time."""

    shape: tuple[int, ...]
    roots: list[UOp]
    flat: bool = False        # iterate the elements with one flat counter (no movement inside)
    chunk: int | None = None  # chunk id of grouped scalar and small kernels
    ops: int = 1              # operations emitted per position (roots and what fuses into them)
    stores: list[tuple[UOp, Buffer]] = field(default_factory=list)
    # nodes computed once per position of the innermost loop and kept for the next iterations,
    # which read them at the offsets (lowest, highest) from the loop's counter
    windows: dict[UOp, tuple[int, int]] = field(default_factory=dict)
    # a loop's kernel (backend/loop.py): its body's schedule, and the workspace it borrows
    # while it runs (carries and the body's workspace) at byte offset `scratch`
    body: "object | None" = None
    scratch_bytes: int = 0
    scratch: int = 0
    in_place: bool = False    # a program working on its first source (OpDef.in_place)

    @property
    def reduction(self) -> UOp | None:
        root = self.roots[0]
        folds = root.op.kind in (OpKind.REDUCE, OpKind.CONTRACT) and not accumulates(root)
        return root if folds else None


class Index:
    """A position in an array of `shape`, known as per-axis values, as a flat offset, or both.

    Values are LLVM i64 operands (SSA names or literals); each form is derived on demand, so a
    chain of reshapes of a flat loop never divides, and an axis-wise loop never multiplies twice.
    """

    __slots__ = ("shape", "key", "_dims", "_flat")

    def __init__(self, shape: tuple, dims: tuple | None = None, flat: str | None = None):
        self.shape, self._dims, self._flat = shape, dims, flat
        self.key = (shape, dims, None) if dims is not None else (shape, None, flat)

    def dims(self, e) -> tuple[str, ...]:
        if self._dims is None:
            dims, rest = [], self._flat
            for n in reversed(self.shape[1:]):
                dims.append("0" if n == 1 else e.rem_i(rest, n))
                rest = e.div_i(rest, n)
            if self.shape:
                dims.append("0" if self.shape[0] == 1 else rest)
            self._dims = tuple(reversed(dims))
        return self._dims

    def flat(self, e) -> str:
        if self._flat is None:
            self._flat = e.flatten(self._dims, self.shape)
        return self._flat

    def reshape(self, e, shape: tuple) -> "Index":
        """The same element seen in an array of `shape` (same size): where each new axis
        merges whole old axes, its value combines theirs (no division), else through the
        flat offset."""
        if self._dims is not None:
            merged = _merged(e, self._dims, self.shape, shape)
            if merged is not None:
                return Index(shape, dims=merged)
        return Index(shape, flat=self.flat(e))


def _merged(e, dims: tuple, old: tuple, new: tuple) -> tuple | None:
    """The values of the axes of `new` when each is a run of whole axes of `old` (axes of
    extent 1 aside), else None."""
    kept = [(d, n) for d, n in zip(dims, old) if n != 1]
    out, k = [], 0
    for n in new:
        if n == 1:
            out.append("0")
            continue
        group, size = [], 1
        while size < n and k < len(kept):
            group.append(kept[k])
            size *= kept[k][1]
            k += 1
        if size != n:
            return None
        out.append(group[0][0] if len(group) == 1 else
                   e.flatten(tuple(d for d, _ in group), tuple(m for _, m in group)))
    return tuple(out) if k == len(kept) else None


def buffer_nbytes(dtype, size: int) -> int:
    return int(np.dtype(dtype.np).itemsize) * size
