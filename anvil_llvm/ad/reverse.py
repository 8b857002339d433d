"""Reverse mode: the VJP transform of a graph, driven by each op's `vjp` rule."""
from __future__ import annotations

from typing import Sequence

from ..ir import build as B
from ..ir.uop import UOp, toposort


def vjp_graph(outputs: Sequence[UOp], cotangents: Sequence[UOp | None],
              wrt: Sequence[UOp]) -> list[UOp | None]:
    """Cotangents of the nodes `wrt` given cotangents of `outputs`; None is zero.

    >>> from anvil_llvm.ir import dtypes, ops as O
    >>> x = UOp(O.INPUT, (), (0, (3,), dtypes.float64))
    >>> y = UOp(O.REDUCE_SUM, (UOp(O.MUL, (x, x)),), (0,))
    >>> vjp_graph([y], [O.const(1.0)], [x])[0].shape
    (3,)
    """
    order = _siblings_together(toposort(outputs))
    depends = set(wrt)
    for node in order:
        if node.src and node.dtype.is_float and any(s in depends for s in node.src):
            depends.add(node)
    ct: dict[UOp, UOp] = {}
    for o, c in zip(outputs, cotangents):
        if c is not None and o in depends:
            ct[o] = B.add(ct.get(o), c)
    done: set[UOp] = set()
    for node in reversed(order):
        c = ct.get(node)
        if node.op.siblings is not None and node not in done:
            group = node.op.siblings(node)
            done.update(group)
            c = [ct.get(s) for s in group]
            if all(x is None for x in c):
                continue
        elif c is None or not node.src or node in done:
            continue
        if node.op.vjp is None:
            raise NotImplementedError(f"no vjp rule for op '{node.op.name}' (in reverse mode)")
        for s, sc in zip(node.src, node.op.vjp(B, node, c)):
            if sc is not None and s in depends:
                ct[s] = B.add(ct.get(s), sc)
    return [ct.get(w) for w in wrt]


def _siblings_together(order: list[UOp]) -> list[UOp]:
    """`order` with the results of each multi-result op (siblings) moved next to the first of
    them: every consumer of any of them then comes after all, so their cotangents are complete
    when the op's rule runs once for the group."""
    present = set(order)
    placed: set[UOp] = set()
    grouped = []
    for node in order:
        if node in placed:
            continue
        group = node.op.siblings(node) if node.op.siblings is not None else [node]
        group = [s for s in group if s in present]
        placed.update(group)
        grouped.extend(group)
    return grouped
