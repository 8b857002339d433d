"""Sparse derivatives computed nonzero by nonzero, without colours.

Elementwise code on shifted, sliced or padded copies of its input (a stencil: finite
differences on a grid, a chained sum, a residual of neighbours) has directional derivatives of
one form: a sum of terms `coefficient * view(direction)`, each view a chain of movement ops
(slices, pads, reshapes, broadcasts, concatenations) of the direction. At each output position
a view reads at most one input element, so the term's coefficient there is the derivative of
that output element with respect to that input element: a nonzero. `entrywise_values` finds the
terms (`linear_terms`), works out from the views' index maps which nonzero each coefficient is
(`_slots`), and places every coefficient straight into its slot in CSC order: one loop nest
computes all of them at each position. A colouring instead evaluates the whole directional
derivative once per colour, its seeds read from a table and compared at every position.

Where the derivative has another form (reductions, contractions, products of two views),
`entrywise_values` returns None and the colouring is used.
"""
from __future__ import annotations

import numpy as np

from .._lazy import scipy_sparse as sp
from ..ir import build as B
from ..ir.ops import (ADD, CAST, CONCAT, DIV, LOOP, MUL, NEG, PAD, PLACE, RESHAPE, STACK, SUB,
                      WHERE, control)
from ..ir.ops.movement import PLACE_UNROLLED
from ..ir.ops.source import const_array
from ..ir.uop import OpKind, UOp, toposort

Terms = dict
"""view (a graph of movement ops on the direction) -> its coefficient (None: one)."""

MAX_TERMS = 4 * PLACE_UNROLLED
"""More terms than this at a node (before views reading the same elements are joined): not
computed entrywise (code written element by element, stacked, would make a view per element)."""


def linear_terms(tangent: UOp, direction: UOp) -> Terms | None:
    """`tangent` (a graph linear in the placeholder `direction`) as {view: coefficient}, the
    views of `tangent`'s shape; None where it is not of that form.

    >>> from anvil_llvm.ir import dtypes
    >>> from anvil_llvm.ir.ops import INPUT
    >>> d = UOp(INPUT, (), (-1, (4,), dtypes.float64))
    >>> t = B.sub(B.slice_(d, ((1, 1, 3),)), B.mul(B.slice_(d, ((0, 1, 3),)), B.full((3,), 2.0)))
    >>> sorted(view.arg for view in linear_terms(t, d))
    [((0, 1, 3),), ((1, 1, 3),)]
    """
    return _terms(tangent, (direction,), loops=True)


def _terms(tangent: UOp, directions: tuple[UOp, ...], loops: bool) -> Terms | None:
    """`linear_terms` in several directions at once (a loop body's scanned tangents): views of
    any of them; `loops`: through maps too (`_mapped`)."""
    terms: dict[UOp, Terms] = {d: {d: None} for d in directions}
    small = sum(d.size for d in directions) <= MAX_CANONICAL
    reads: dict[UOp, tuple] = {}
    for node in toposort([tangent], directions):
        if any(s in terms for s in node.src):
            found = _rule(node, terms, loops)
            if found is not None and len(found) > PLACE_UNROLLED and small \
                    and node.size <= MAX_CANONICAL:
                found = _canonical(found, node, directions, reads)
            if found is None or len(found) > MAX_TERMS:
                return None
            terms[node] = found
    return terms.get(tangent)


MAX_CANONICAL = 4096
"""Views are joined by the elements they read (`_canonical`) only at nodes of at most this many
elements, in directions of at most this many in all (their index maps are computed there)."""


def _canonical(found: Terms, node: UOp, directions: tuple[UOp, ...], reads: dict) -> Terms:
    """`found` with views that read the same elements at the same positions joined (their
    coefficients added) and views reading nothing dropped: scalar code reaches an element
    along many paths (x[1], (x + h k)[1], a stack's slice), each a view of its own."""
    out: Terms = {}
    first: dict[tuple, UOp] = {}
    for view, coefficient in found.items():
        key = reads.get(view)
        if key is None:
            (direction,) = [d for d in toposort([view]) if d in directions]
            read = read_by([view], direction)[0]
            key = reads[view] = (direction, read.tobytes()) if (read >= 0).any() else ()
        if key:
            out = _merged([out, {first.setdefault(key, view): coefficient}], node)
    return out


def _one(coefficient: UOp | None, like: UOp) -> UOp:
    return B.scalar(1.0, like) if coefficient is None else coefficient


def _scaled(terms: Terms, by, like: UOp) -> Terms:
    """Each coefficient mapped by `by(coefficient)` (coefficients materialised)."""
    return {view: by(_one(c, like)) for view, c in terms.items()}


def _merged(parts: list[Terms], like: UOp) -> Terms:
    """The sum of several term sets: a view in more than one adds its coefficients."""
    out: Terms = {}
    for part in parts:
        for view, c in part.items():
            out[view] = c if view not in out else B.add(_one(out[view], like), _one(c, like))
    return out


def _rule(node: UOp, terms: dict, loops: bool) -> Terms | None:
    """The terms of `node` from its sources' (None: not linear in the direction so)."""
    mine = [terms.get(s) for s in node.src]
    if node.op.kind is OpKind.MOVEMENT:
        return _moved(node, mine)
    if node.op is LOOP:
        return _mapped(node, mine) if loops else None
    if node.op.kind is not OpKind.ELEMENTWISE or any(s.shape != node.shape for s in node.src):
        return None
    op = node.op
    if op is ADD or op is SUB:
        if any(t is None for t in mine):
            return None                       # a term free of the direction: not linear
        right = mine[1] if op is ADD else _scaled(mine[1], B.neg, node)
        return _merged([mine[0], right], node)
    if op is NEG:
        return _scaled(mine[0], B.neg, node)
    if op is MUL and (mine[0] is None) != (mine[1] is None):
        scale = node.src[1] if mine[1] is None else node.src[0]
        return _scaled(mine[0] if mine[1] is None else mine[1], lambda c: B.mul(c, scale), node)
    if op is DIV and mine[1] is None:
        return _scaled(mine[0], lambda c: B.div(c, node.src[1]), node)
    if op is WHERE and mine[0] is None:
        zero = B.scalar(0.0, node)
        return _merged([_scaled(t, (lambda c: B.where(node.src[0], c, zero)) if i == 1 else
                                (lambda c: B.where(node.src[0], zero, c)), node)
                        for i, t in ((1, mine[1]), (2, mine[2])) if t is not None], node)
    if op is CAST and node.dtype.is_float:
        return {view: None if c is None else B.cast(c, node.dtype)
                for view, c in mine[0].items()}
    return None


def _moved(node: UOp, mine: list) -> Terms | None:
    """A movement op moves views and coefficients alike, so that a coefficient is zero where
    its view reads no element (a pad's edge: a coefficient of one is made explicit there);
    a concatenation or a stack fills the other sources' parts with zeros."""
    if node.op is not CONCAT and node.op is not STACK:
        if len(node.src) != 1:
            return None
        ones = node.op in (PAD, PLACE)
        return {UOp(node.op, (view,), node.arg):
                None if c is None and not ones else UOp(node.op, (_one(c, view),), node.arg)
                for view, c in mine[0].items()}
    if sum(len(part or ()) for part in mine) > MAX_TERMS:
        return None
    out: Terms = {}
    for i, part in enumerate(mine):
        for view, c in (part or {}).items():
            zeros = [B.zeros_like(s) for s in node.src]
            views = zeros[:i] + [view] + zeros[i + 1:]
            coefficients = zeros[:i] + [_one(c, node.src[i])] + zeros[i + 1:]
            out = _merged([out, {UOp(node.op, tuple(views), node.arg):
                                 UOp(node.op, tuple(coefficients), node.arg)}], node)
    return out


def _mapped(node: UOp, mine: list) -> Terms | None:
    """A loop without carries whose iterations read their own slices of the direction (a map
    over stages, `av.map`): iteration i's tangent is the body's terms in the scanned tangents'
    slices, so the loop's result (iterations stacked) has the body's views batched over the
    iterations, applied to the scanned tangents' views, and as coefficients those the body
    computes at each iteration (a loop of the body's coefficients, stacked) times the
    scanned tangents' own, moved alike. Not of the form: carries (a tangent would flow from
    one iteration to the next), a tangent every iteration reads (`consts`)."""
    from .batching import vmap_graph
    arg = node.arg
    index, _, xps, kps = arg.roles()
    _, xs_terms, const_terms = arg.split(mine)
    _, xs, consts = arg.split(node.src)
    if arg.carries or any(t is not None for t in const_terms):
        return None
    moving = {xps[j]: t for j, t in enumerate(xs_terms) if t is not None}
    body = _terms(arg.body.outputs[arg.output], tuple(moving), loops=True)
    if not body or len(body) > PLACE_UNROLLED:
        return None         # more coefficient arrays than colours would cost (measured)
    views = list(body)
    primal = [j for j, t in enumerate(xs_terms) if t is None]
    stacked = control.loop(index, [], [xps[j] for j in primal], list(zip(kps, consts)),
                           [_one(body[v], v) for v in views], [], [xs[j] for j in primal],
                           arg.length, arg.reverse)
    out: Terms = {}
    for view, coefficient in zip(views, stacked):
        (scanned,) = [p for p in toposort([view]) if p in moving]
        for outer, outer_coefficient in moving[scanned].items():
            (moved,) = vmap_graph([view], {scanned: outer})
            factor = coefficient if outer_coefficient is None else B.mul(coefficient, (
                vmap_graph([view], {scanned: outer_coefficient})[0][0]))
            out = _merged([out, {moved[0]: factor}], node)
    return out


def read_by(views: list[UOp], direction: UOp) -> list[np.ndarray]:
    """For each view, the element of `direction` each of its positions reads (flat, -1:
    none), by running the views' NumPy rules on element numbers."""
    values = {direction: np.arange(1, direction.size + 1, dtype=np.int64)
              .reshape(direction.shape)}
    for node in toposort(views, (direction,)):
        values[node] = node.op.numpy(node.arg, *(values[s] for s in node.src))
    return [np.asarray(values[v], np.int64).reshape(-1) - 1 for v in views]


def _slots(reads: list[np.ndarray], pattern: sp.csc_array, upper: bool):
    """The CSC slot of entry (position, element read) for each group and position (-1: none
    or, with `upper`, below the diagonal), int32 where they fit, and where a group's entry is
    one an earlier group has (x[0] * x reads element 0 twice at position 0): (group, owner,
    positions) for each such pair, those slots -1; None if an entry is not in `pattern`."""
    # Column j of a CSC pattern is row j of its transpose in CSR: SciPy looks the entries up.
    small = pattern.nnz < 2 ** 31
    numbered = sp.csr_array((np.arange(1, pattern.nnz + 1, dtype=np.int32 if small else np.int64),
                             pattern.indices, pattern.indptr), shape=pattern.shape[::-1])
    slots = np.full((len(reads), reads[0].size), -1, numbered.dtype)
    position = np.arange(slots.shape[1], dtype=np.int64)
    owner = np.full(pattern.nnz, -1, np.int16)
    shared = []
    for q, read in enumerate(reads):
        kept = read >= 0
        if upper:
            kept &= position <= read
        if not kept.any():
            continue
        found = np.asarray(numbered[read[kept], position[kept]]).reshape(-1) - 1
        if found.min() < 0:
            return None
        owners = owner[found]
        for first in np.unique(owners[owners >= 0]):
            mask = np.zeros(slots.shape[1], bool)
            mask[position[kept][owners == first]] = True
            shared.append((q, int(first), mask))
        fresh = owners < 0
        owner[found[fresh]] = q
        slots[q, position[kept][fresh]] = found[fresh]
    return slots, shared


def entrywise_values(tangent: UOp | None, direction: UOp, pattern: sp.csc_array,
                     upper: bool = False, loops: bool = True) -> UOp | None:
    """The nonzeros of `pattern` (rows: `tangent`'s elements, columns: `direction`'s) in CSC
    order, each the coefficient of its term, placed by one nest (None: not of that form, or
    more terms than a nest computes at each position). `upper`: only entries on or above the
    diagonal (a Hessian's upper triangle). `loops`: through maps over stages too."""
    if tangent is None or pattern.shape[0] != tangent.size:
        return None
    while tangent.op is RESHAPE:
        tangent = tangent.src[0]      # the shape it is computed in: the same flat order
    terms = _terms(tangent, (direction,), loops)
    if not terms:
        return None
    views = list(terms)
    groups = _grouped(read_by(views, direction))
    if len(groups) > PLACE_UNROLLED:
        return None
    found = _slots([read for _, read in groups], pattern, upper)
    if found is None:
        return None
    slots, shared = found
    coefficients = [_sum([_one(terms[views[q]], tangent) for q in members])
                    for members, _ in groups]
    zero = B.scalar(0.0, tangent)
    for q, first, mask in shared:       # a shared slot: the owner's coefficient adds q's there
        where = const_array(mask.reshape(tangent.shape))
        coefficients[first] = B.add(coefficients[first], B.where(where, coefficients[q], zero))
    stacked = B.concat([B.reshape(B.cast(c, tangent.dtype), (1,) + tangent.shape)
                        for c in coefficients], 0)
    return B.place(stacked, slots.reshape((len(groups),) + tangent.shape), pattern.nnz,
                   distinct=True)


def _sum(nodes: list[UOp]) -> UOp:
    total = nodes[0]
    for node in nodes[1:]:
        total = B.add(total, node)
    return total


def _grouped(reads: list[np.ndarray]) -> list[tuple[list[int], np.ndarray]]:
    """The views joined where they read the same element wherever both read one (a diagonal
    reached through two pads): (the views, what the group reads) per group. A coefficient is
    zero where its view reads nothing, so a group's coefficient is its views' sum."""
    groups: list[tuple[list[int], np.ndarray]] = []
    for q, read in enumerate(reads):
        for members, joined in groups:
            both = (joined >= 0) & (read >= 0)
            if np.array_equal(joined[both], read[both]):
                members.append(q)
                np.maximum(joined, read, out=joined)
                break
        else:
            groups.append(([q], read.copy()))
    return groups


__all__ = ["entrywise_values", "linear_terms", "read_by"]
