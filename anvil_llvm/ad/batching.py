"""vmap: the batching transform of a graph, driven by each op's `batch` rule.

Batched nodes carry the batch as their leading axis; nodes that do not depend on a batched input
are kept as they are, so the work independent of the batch is done once.
"""
from __future__ import annotations

from typing import Sequence

from ..ir import build as B
from ..ir.uop import UOp, toposort


def vmap_graph(outputs: Sequence[UOp], batched: dict[UOp, UOp]) -> list[tuple[UOp, bool]]:
    """Replace each key of `batched` by its value (same shape plus a leading batch axis).

    Returns, per output, the new node and whether it carries the batch axis.

    >>> from anvil_llvm.ir import dtypes, ops as O
    >>> x = UOp(O.INPUT, (), (0, (3,), dtypes.float64))
    >>> xs = UOp(O.INPUT, (), (1, (4, 3), dtypes.float64))
    >>> [(n.shape, b) for n, b in vmap_graph([UOp(O.SIN, (x,))], {x: xs})]
    [((4, 3), True)]
    """
    new: dict[UOp, UOp] = {}
    has_batch: dict[UOp, bool] = {}
    for node in toposort(outputs):
        if node in batched:
            new[node], has_batch[node] = batched[node], True
            continue
        flags = tuple(has_batch[s] for s in node.src)
        if not any(flags):
            new[node], has_batch[node] = node, False
            continue
        if node.op.batch is None:
            raise NotImplementedError(f"no batching rule for op '{node.op.name}' (in vmap)")
        new[node] = node.op.batch(B, node, tuple(new[s] for s in node.src), flags)
        has_batch[node] = True
    return [(new[o], has_batch[o]) for o in outputs]


def with_batch(node: UOp, is_batched: bool, size: int) -> UOp:
    """`node` with a leading batch axis of `size` (broadcast when it does not depend on it)."""
    return node if is_batched else B.broadcast_to(node, (size,) + node.shape)
