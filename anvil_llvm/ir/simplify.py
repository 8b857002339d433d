"""Graph simplification as data: rewrite rows `(op, rule)` applied bottom-up until none fires.

Constant folding stops at `FOLD_LIMIT` elements so structured constants (broadcast scalars,
iotas) are never expanded into large arrays.
"""
from __future__ import annotations

from typing import Callable, Sequence

import math

import numpy as np

from .ops import (ADD, CAST, CONST, CONST_ARRAY, DIV, EXPAND, MUL, NEG, PAD, PERMUTE, REDUCE_SUM,
                  RESHAPE, SLICE, SUB, WHERE, const)
from .ops.control import merge_loops
from .ops.source import const_array
from .build import full, slice_
from .uop import SMALL_SIZE, OpDef, OpKind, UOp, toposort

FOLD_LIMIT = 64


_VALUE_PRESERVING = (EXPAND, RESHAPE, SLICE, PERMUTE)   # each element is some source element


def scalar_value(node: UOp):
    """The value of a node that is one scalar constant at every position, else None."""
    while node.op in _VALUE_PRESERVING:
        node = node.src[0]
    return node.arg.value if node.op is CONST else None


def _is(node: UOp, value) -> bool:
    v = scalar_value(node)
    return v is not None and v == value


def _fold(node: UOp):
    if not node.src or node.op.kind in (OpKind.SOURCE, OpKind.LOOP):
        return None
    scalars = [scalar_value(s) for s in node.src]
    if node.op.kind is OpKind.ELEMENTWISE and all(v is not None for v in scalars):
        values = [np.array(v, dtype=s.dtype.np) for v, s in zip(scalars, node.src)]
        with np.errstate(all="ignore"):
            folded = np.asarray(node.op.numpy(node.arg, *values)).astype(node.dtype.np)
        return full(node.shape, folded.item(), node.dtype)
    if node.op in _VALUE_PRESERVING and scalars[0] is not None:
        canonical = full(node.shape, scalars[0], node.dtype)
        return canonical if canonical is not node else None
    if not all(s.op in (CONST, CONST_ARRAY) for s in node.src) or node.size > FOLD_LIMIT:
        return None
    from .interpret import evaluate
    (value,) = evaluate([node], [])
    return const(value.item(), node.dtype) if value.ndim == 0 else const_array(value)


def _is_zero(node: UOp, negative: bool) -> bool:
    """Whether `node` is a zero of the given sign (either zero for integers)."""
    v = scalar_value(node)
    if v is None or v != 0:
        return False
    return not node.dtype.is_float or (math.copysign(1.0, v) < 0) == negative


def _is_additive_identity(node: UOp) -> bool:
    """Zero that leaves every x unchanged under +: -0.0 for floats (x + 0.0 turns -0.0 into 0.0)."""
    return _is_zero(node, negative=True)


def _merge_pads(node: UOp):
    inner = node.src[0]
    if inner.op is not PAD:
        return None
    widths = tuple((a + c, b + d) for (a, b), (c, d) in zip(node.arg, inner.arg))
    return UOp(PAD, (inner.src[0],), widths)


def _slice_of_pad(node: UOp):
    """A slice that reads only the unpadded region is a slice of the pad's source."""
    pad = node.src[0]
    if pad.op is not PAD:
        return None
    spec = []
    for (start, step, count), (lo, _), n in zip(node.arg, pad.arg, pad.src[0].shape):
        first, last = start - lo, start - lo + step * (count - 1)
        if count and not (0 <= first < n and 0 <= last < n):
            return None
        spec.append((first if count else 0, step, count))
    return UOp(SLICE, (pad.src[0],), tuple(spec))


def _slice_through_elementwise(node: UOp):
    """Slicing commutes with elementwise ops: compute only the elements that are kept (not for
    small arrays, which are scalar code anyway: there it would only multiply the nodes of long
    traced chains of a few numbers)."""
    inner = node.src[0]
    if (inner.op.kind is not OpKind.ELEMENTWISE or node.size >= inner.size
            or inner.size <= SMALL_SIZE):
        return None
    return UOp(inner.op, tuple(UOp(SLICE, (s,), node.arg) for s in inner.src), inner.arg)


def _identity_unless(pred: Callable[[UOp], bool]):
    return lambda n: n.src[0] if pred(n) else None


RULES: list[tuple[OpDef | None, Callable[[UOp], UOp | None]]] = [
    (None, _fold),
    (ADD, lambda n: n.src[0] if _is_additive_identity(n.src[1]) else n.src[1]
     if _is_additive_identity(n.src[0]) else None),
    # x - 0.0 == x (but x - (-0.0) turns -0.0 into 0.0); -0.0 - x == -x (0.0 - 0.0 is 0.0).
    (SUB, lambda n: n.src[0] if _is_zero(n.src[1], negative=False) else UOp(NEG, (n.src[1],))
     if _is_additive_identity(n.src[0]) else None),
    (MUL, lambda n: n.src[0] if _is(n.src[1], 1) else n.src[1] if _is(n.src[0], 1) else None),
    (MUL, lambda n: UOp(NEG, (n.src[0],)) if _is(n.src[1], -1) else None),
    (DIV, lambda n: n.src[0] if _is(n.src[1], 1) else None),
    (NEG, lambda n: n.src[0].src[0] if n.src[0].op is NEG else None),
    (CAST, _identity_unless(lambda n: n.src[0].dtype == n.dtype)),
    (RESHAPE, _identity_unless(lambda n: n.src[0].shape == n.shape)),
    (RESHAPE, lambda n: UOp(RESHAPE, (n.src[0].src[0],), n.arg)
     if n.src[0].op is RESHAPE else None),
    (EXPAND, _identity_unless(lambda n: n.src[0].shape == n.shape)),
    (EXPAND, lambda n: UOp(EXPAND, (n.src[0].src[0],), n.arg)
     if n.src[0].op is EXPAND and n.src[0].src[0].ndim == n.ndim else None),
    (PERMUTE, _identity_unless(lambda n: n.arg == tuple(range(n.ndim)))),
    (PERMUTE, lambda n: UOp(PERMUTE, (n.src[0].src[0],), tuple(n.src[0].arg[p] for p in n.arg))
     if n.src[0].op is PERMUTE else None),
    (SLICE, lambda n: slice_(n.src[0], n.arg)
     if n.src[0].op is SLICE or n.shape == n.src[0].shape else None),
    (SLICE, _slice_of_pad),
    (SLICE, _slice_through_elementwise),
    (PAD, _merge_pads),
    # NumPy adds the identity +0.0 even over no axes, turning -0.0 into 0.0.
    (REDUCE_SUM, lambda n: (UOp(ADD, (n.src[0], full(n.shape, 0, n.dtype)))
                            if n.dtype.is_float else n.src[0]) if n.arg == () else None),
    (WHERE, lambda n: n.src[1] if _is(n.src[0], True) else n.src[2] if _is(n.src[0], False)
     else n.src[1] if n.src[1] is n.src[2] else None),
]

# Per op, its own rows then the general ones (op None), in table order.
_GENERAL = [rule for op, rule in RULES if op is None]
_BY_OP: dict[OpDef, list[Callable]] = {}
for _op, _rule in RULES:
    if _op is not None:
        _BY_OP.setdefault(_op, []).append(_rule)
for _rules in _BY_OP.values():
    _rules.extend(_GENERAL)


MAX_NESTING = 64    # rewrites of rewrites simplified at once; deeper ones wait for a later pass


def _simplified(roots: Sequence[UOp], memo: dict, nesting: int = 0) -> bool:
    """Simplify the graph of `roots` into `memo` (node -> its simplified form; simplified nodes
    map to themselves), sources first. A rule's result is simplified at once, its new nodes
    included, so one traversal reaches the fixed point; returns False when rewrites nested
    deeper than MAX_NESTING were left for another traversal."""
    complete = True
    for node in toposort(roots, memo):
        src = tuple(memo[s] for s in node.src)
        rebuilt = node if all(a is b for a, b in zip(src, node.src)) else UOp(node.op, src,
                                                                              node.arg)
        result = memo.get(rebuilt)
        if result is None:
            result = rebuilt
            for rule in _BY_OP.get(rebuilt.op, _GENERAL):
                new = rule(rebuilt)
                if new is not None and new is not rebuilt:
                    if nesting < MAX_NESTING:
                        complete &= _simplified([new], memo, nesting + 1)
                        result = memo[new]
                    else:
                        result, complete = new, False
                    break
        memo[node] = memo[rebuilt] = result
        memo.setdefault(result, result)
    return complete


def simplify(outputs: Sequence[UOp], max_passes: int = 8) -> list[UOp]:
    """Apply the rewrite rules bottom-up until none fires: a rule's result is simplified in
    turn (a slice pushed through an elementwise op meets the next op), so one traversal
    usually suffices; very deep chains of rewrites take up to `max_passes`.

    >>> from anvil_llvm.ir.ops import INPUT
    >>> from anvil_llvm.ir import dtypes
    >>> x = UOp(INPUT, (), (0, (3,), dtypes.float64))
    >>> one = UOp(EXPAND, (UOp(RESHAPE, (const(1.0),), (1,)),), (3,))
    >>> simplify([UOp(MUL, (x, one))])[0] is x
    True
    """
    outputs = list(outputs)
    for _ in range(max_passes):
        memo: dict[UOp, UOp] = {}
        complete = _simplified(outputs, memo)
        outputs = [memo[o] for o in outputs]
        if complete:
            break
    return merge_loops(outputs)
