"""Forward mode: the JVP transform of a graph, driven by each op's `jvp` rule."""
from __future__ import annotations

from typing import Sequence

from ..ir import build as B
from ..ir.uop import UOp, toposort


def jvp_graph(outputs: Sequence[UOp], seeds: dict[UOp, UOp]) -> list[UOp | None]:
    """Tangents of `outputs` given tangents of some nodes (usually inputs); None is zero.

    >>> from anvil_llvm.ir import dtypes, ops as O
    >>> x = UOp(O.INPUT, (), (0, (3,), dtypes.float64))
    >>> t = UOp(O.INPUT, (), (1, (3,), dtypes.float64))
    >>> jvp_graph([UOp(O.SIN, (x,))], {x: t})[0].op.name
    'mul'
    """
    tangents: dict[UOp, UOp] = dict(seeds)
    for node in toposort(outputs):
        if node in tangents or not node.src or not node.dtype.is_float:
            continue
        ts = [tangents.get(s) for s in node.src]
        if all(t is None for t in ts):
            continue
        if node.op.jvp is None:
            raise NotImplementedError(f"no jvp rule for op '{node.op.name}' (in forward mode)")
        t = node.op.jvp(B, node, ts)
        if t is not None:
            tangents[node] = t
    return [tangents.get(o) for o in outputs]
