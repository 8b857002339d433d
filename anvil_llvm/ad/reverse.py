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
    order = toposort(outputs)
    depends = set(wrt)
    for node in order:
        if node.src and node.dtype.is_float and any(s in depends for s in node.src):
            depends.add(node)
    ct: dict[UOp, UOp] = {}
    for o, c in zip(outputs, cotangents):
        if c is not None and o in depends:
            ct[o] = B.add(ct.get(o), c)
    for node in reversed(order):
        c = ct.get(node)
        if c is None or not node.src:
            continue
        if node.op.vjp is None:
            raise NotImplementedError(f"no vjp rule for op '{node.op.name}' (in reverse mode)")
        for s, sc in zip(node.src, node.op.vjp(B, node, c)):
            if sc is not None and s in depends:
                ct[s] = B.add(ct.get(s), sc)
    return [ct.get(w) for w in wrt]
