"""Decompression tables: which product entry (slot) each nonzero is read from, and in what order.

A slot (v, c) is entry v of the directional derivative for colour c: row v of J·S or H·S for
colour c, or entry v of Sᵀ·J. ``direct_slots`` implements direct recovery for star colourings
and star bicolourings (Gebremedhin, Manne, Pothen, SIAM Review 47(4), 2005, section 4.2, with
the colour post-processing of SparseMatrixColorings.jl: of the two slots that hold a nonzero,
prefer one whose colour is already needed, so unneeded colours are dropped). ``substitution``
implements recovery by substitution for acyclic colourings (GMP 2005, section 5.2; Gebremedhin,
Tarafdar, Manne, Pothen, SIAM J. Sci. Comput. 29(3), 2007, section 4.2): peel the leaves of the
2-coloured trees, each solved value subtracted from the other slot that holds it.
"""

from __future__ import annotations

import numba
import numpy as np

from .patterns import Adjacency


@numba.njit(cache=True)
def unique_color_in_row(indptr, indices, colors):
    """Per position p of row v: is ``colors[indices[p]] >= 0`` and unique within row v."""
    top = 0  # colors.max() would fail on an empty array (no columns)
    for c in colors:
        top = max(top, c)
    count = np.zeros(top + 1, np.int64)
    unique = np.empty(indices.size, np.bool_)
    for v in range(indptr.size - 1):
        for p in range(indptr[v], indptr[v + 1]):
            c = colors[indices[p]]
            if c >= 0:
                count[c] += 1
        for p in range(indptr[v], indptr[v + 1]):
            c = colors[indices[p]]
            unique[p] = c >= 0 and count[c] == 1
        for p in range(indptr[v], indptr[v + 1]):
            c = colors[indices[p]]
            if c >= 0:
                count[c] = 0
    return unique


@numba.njit(cache=True)
def _direct_slots(indptr, indices, tpos, eid, colors, needed):
    # For each edge, the position p whose slot (row of p, colour of indices[p]) holds it alone,
    # as that slot's (row, colour). Edges with a single choice go first, then the rest prefer a
    # colour already needed.
    unique = unique_color_in_row(indptr, indices, colors)
    nedges = indices.size // 2
    done = np.zeros(nedges, np.bool_)
    vertex = np.empty(nedges, np.int64)
    color = np.empty(nedges, np.int64)
    for free_pass in (False, True):
        for v in range(indptr.size - 1):
            for p in range(indptr[v], indptr[v + 1]):
                w = indices[p]
                e = eid[p]
                if w < v or done[e]:
                    continue
                a = unique[p]
                b = unique[tpos[p]]
                if not (a or b):
                    return vertex, color, v, w
                if a and b:
                    if not free_pass:
                        continue
                    if needed[colors[v]] and not needed[colors[w]]:
                        a = False
                done[e] = True
                vertex[e] = v if a else w
                color[e] = colors[w] if a else colors[v]
                needed[color[e]] = True
    return vertex, color, -1, -1


def direct_slots(graph: Adjacency, colors: np.ndarray, needed: np.ndarray) -> tuple:
    """Slot (vertex, colour) per edge for direct recovery from a star colouring.

    ``needed`` flags colours already required (for instance by diagonal entries); it is updated.
    Raises ``ValueError`` naming an edge that no single slot holds alone (not a star colouring).
    """
    vertex, color, bad_row, bad_col = _direct_slots(
        graph.indptr, graph.indices, graph.tpos, graph.eid, colors, needed
    )
    if bad_row >= 0:
        raise ValueError(
            f"not a star colouring: entry ({bad_row}, {bad_col}) shares both of its "
            "rows of the compressed matrix with another entry of the same colour"
        )
    return vertex, color


@numba.njit(cache=True)
def _substitution(indptr, indices, tpos, colors):
    npos = indices.size
    # slot id per position: (row v, colour of the neighbour)
    slot = np.empty(npos, np.int64)
    slot_vertex = np.empty(npos, np.int64)
    slot_color = np.empty(npos, np.int64)
    top = 0
    for c in colors:
        top = max(top, c)
    last = np.full(top + 1, -1, np.int64)
    slot_of = np.empty_like(last)
    nslots = 0
    for v in range(indptr.size - 1):
        for p in range(indptr[v], indptr[v + 1]):
            c = colors[indices[p]]
            if last[c] != v:
                last[c] = v
                slot_of[c] = nslots
                slot_vertex[nslots] = v
                slot_color[nslots] = c
                nslots += 1
            slot[p] = slot_of[c]
    # unknowns per slot; the xor of their positions names the last one
    unknown = np.zeros(nslots, np.int64)
    last_pos = np.zeros(nslots, np.int64)
    for p in range(npos):
        unknown[slot[p]] += 1
        last_pos[slot[p]] ^= p
    queue = np.empty(nslots, np.int64)
    tail = 0
    for s in range(nslots):
        if unknown[s] == 1:
            queue[tail] = s
            tail += 1
    read = np.empty(npos // 2, np.int64)
    subtract = np.empty(npos // 2, np.int64)
    nsteps = 0
    for h in range(nslots):
        if h == tail:
            break
        s = queue[h]
        if unknown[s] != 1:
            continue
        p = last_pos[s]
        t = tpos[p]
        other = slot[t]
        unknown[s] = 0
        unknown[other] -= 1
        last_pos[other] ^= t
        read[nsteps] = p
        subtract[nsteps] = other if unknown[other] > 0 else -1
        nsteps += 1
        if unknown[other] == 1:
            queue[tail] = other
            tail += 1
    read = read[:nsteps]
    read_row = np.empty(nsteps, np.int64)
    for k in range(nsteps):
        read_row[k] = slot_vertex[slot[read[k]]]
    return read, read_row, subtract[:nsteps], slot_vertex[:nslots], slot_color[:nslots]


def substitution(graph: Adjacency, colors: np.ndarray) -> tuple:
    """Substitution order for an acyclic colouring: per step, the edge solved, its slot, and the
    slot to subtract it from (vertex -1 when none).

    Returns (edge, vertex, colour, subtract_vertex, subtract_colour). Raises ``ValueError`` if
    some 2-coloured subgraph has a cycle (not an acyclic colouring).
    """
    read, read_row, other, slot_vertex, slot_color = _substitution(
        graph.indptr, graph.indices, graph.tpos, colors
    )
    if read.size < graph.nedges:
        raise ValueError("not an acyclic colouring: a 2-coloured subgraph has a cycle")
    has = other >= 0
    sub_vertex = np.where(has, slot_vertex[other], -1)
    sub_color = np.where(has, slot_color[other], -1)
    return graph.eid[read], read_row, colors[graph.indices[read]], sub_vertex, sub_color
