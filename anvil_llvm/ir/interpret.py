"""The NumPy reference interpreter: any graph evaluated by each op's `numpy` rule (the oracle)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .ops import INPUT
from .uop import UOp, toposort


def evaluate(outputs: Sequence[UOp], inputs: Sequence[np.ndarray],
             bound: dict[UOp, np.ndarray] | None = None,
             order: list[UOp] | None = None) -> list[np.ndarray]:
    """Evaluate `outputs` with NumPy, the function's inputs bound by position and the nodes of
    `bound` (a loop body's params) to its values; `order` is `toposort(outputs)` if known.

    >>> from anvil_llvm.ir.ops import INPUT, MUL
    >>> from anvil_llvm.ir import dtypes
    >>> x = UOp(INPUT, (), (0, (3,), dtypes.float64))
    >>> evaluate([UOp(MUL, (x, x))], [np.array([1.0, 2.0, 3.0])])[0]
    array([1., 4., 9.])
    """
    values: dict[UOp, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for node in toposort(outputs) if order is None else order:
            if bound and node in bound:
                value = np.asarray(bound[node], dtype=node.dtype.np)
            elif node.op is INPUT:
                position, shape, dtype = node.arg
                value = np.asarray(inputs[position], dtype=dtype.np).reshape(shape)
            else:
                value = np.asarray(node.op.numpy(node.arg, *[values[s] for s in node.src]))
                value = value.astype(node.dtype.np, copy=False)
            if value.shape != node.shape:
                raise AssertionError(f"{node.op.name}: numpy gave shape {value.shape}, "
                                     f"the shape rule {node.shape}")
            values[node] = value
    return [np.array(values[o]) for o in outputs]
