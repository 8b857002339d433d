"""The graph verifier: every node's sources, shape and dtype agree with its op's rules.

Nodes are checked when they are built, so a failure here means a rule or a transform broke an
invariant after the fact (a node unpickled from another version, a rule that changed). Run
before lowering when ANVIL_LLVM_VERIFY is set (the tests set it).
"""
from __future__ import annotations

import os

from .uop import UOp, toposort


class VerifyError(ValueError):
    """A graph or schedule breaks an invariant; the message names the node."""


def enabled() -> bool:
    """Whether ANVIL_LLVM_VERIFY asks for verification before code generation."""
    return os.environ.get("ANVIL_LLVM_VERIFY", "").strip().lower() in ("1", "true", "yes", "on")


def verify_graph(outputs: list[UOp]) -> None:
    """Raise VerifyError naming the first node whose arity, shape or dtype disagrees with its
    op's rules.

    >>> from anvil_llvm.ir import build as B, dtypes
    >>> from anvil_llvm.ir.ops import INPUT
    >>> x = UOp(INPUT, (), (0, (3,), dtypes.float64))
    >>> verify_graph([B.add(x, x)])
    """
    for node in toposort(outputs):
        op = node.op
        if op.arity is not None and len(node.src) != op.arity:
            raise VerifyError(f"{node}: op '{op.name}' takes {op.arity} sources, "
                              f"has {len(node.src)}")
        try:
            shape = tuple(op.shape(tuple(s.shape for s in node.src), node.arg))
            dtype = op.dtype(tuple(s.dtype for s in node.src), node.arg)
        except (TypeError, ValueError) as e:
            raise VerifyError(f"{node}: its sources break the rules of '{op.name}': {e}") from e
        if shape != node.shape or dtype != node.dtype:
            raise VerifyError(f"{node}: op '{op.name}' gives {dtype}{list(shape)} for these "
                              f"sources, the node says {node.dtype}{list(node.shape)}")
        if node.size < 0 or any(d < 0 for d in node.shape):
            raise VerifyError(f"{node}: negative extent in shape {node.shape}")
