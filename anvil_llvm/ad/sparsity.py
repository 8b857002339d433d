"""Sparsity detection: the exact Jacobian and Hessian patterns of a traced graph, from the ops'
rules, as boolean scipy.sparse arrays (cost and memory O(nonzeros), never n x n).

Each node's pattern P (node elements x input elements) says which input elements each of its
elements depends on; an op's `dependence` rule maps its sources' patterns to its own (an
elementwise op: the union of its float sources'). The Hessian pattern of a scalar output is
the union, over the nodes that are not linear, of their second-order interactions, counting
only the node elements the output depends on (found by a backward pass): a nonlinear
elementwise node adds Pᵀ P, a product x * y adds Pxᵀ Py + Pyᵀ Px (no diagonal entry for two
distinct inputs), a quotient x / y adds Pxᵀ Py + Pyᵀ Px + Pyᵀ Py (it is linear in x), and
other ops their `pairs` (the global mode of SparseConnectivityTracer.jl).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .._lazy import scipy_sparse as sp
from ..ir.uop import Linearity, OpKind, UOp, consumers, toposort


SAME = "same position"


def _local(node: UOp) -> list:
    """Per source: how the node's elements read it (a pattern), SAME (each at its own
    position), or None (no derivative through it)."""
    if node.op.kind is OpKind.ELEMENTWISE and node.op.dependence is None:
        if node.op.linearity is Linearity.CONSTANT or not node.dtype.is_float:
            return [None] * len(node.src)
        return [SAME if s.dtype.is_float else None for s in node.src]
    if node.op.dependence is None:
        raise NotImplementedError(f"no sparsity rule for op '{node.op.name}' "
                                  "(in sparsity detection)")
    return node.op.dependence(node)


def compact(pattern: sp.csr_array) -> sp.csr_array:
    """`pattern` with 32-bit indices where they fit (SciPy keeps the index type of its
    operands, so patterns that start so stay so: 5 bytes per entry instead of 9).

    >>> compact(sp.csr_array(np.eye(3, dtype=bool))).indices.dtype
    dtype('int32')
    """
    if pattern.indices.dtype == np.int32 or max(pattern.shape + (pattern.nnz,)) >= 2 ** 31:
        return pattern
    pattern.indices = pattern.indices.astype(np.int32)
    pattern.indptr = pattern.indptr.astype(np.int32)
    return pattern


def identity_seeds(wrt: Sequence[UOp]) -> dict[UOp, sp.csr_array]:
    """The patterns of `wrt` themselves: their elements are the columns, one after the other."""
    n = sum(w.size for w in wrt)
    seeds, start = {}, 0
    for w in wrt:
        seeds[w] = compact(sp.csr_array(sp.eye_array(w.size, n, k=start, dtype=bool,
                                                     format="csr")))
        start += w.size
    return seeds


class TooDense(Exception):
    """A node's pattern has more entries than the detection's budget."""


def propagate(outputs: Sequence[UOp], seeds: dict[UOp, sp.csr_array], keep: bool,
              budget: int | None = None):
    """The pattern of every node given those of the `seeds` nodes (None: independent of them),
    with the order and, if `keep`, every node's local rules (else the patterns nobody needs
    any more are dropped as it goes); TooDense as soon as a node's pattern has more than
    `budget` entries."""
    order = toposort(outputs)
    users = consumers(order)
    remaining = {node: len(set(users[node])) for node in order}
    kept = set(outputs)
    patterns: dict[UOp, sp.csr_array | None] = dict(seeds)
    locals_: dict[UOp, list] = {}
    for node in order:
        if node not in patterns:
            if not node.src or not node.dtype.is_float or all(
                    patterns.get(s) is None for s in node.src):
                patterns[node] = None
            else:
                rules = [rule if rule is None or rule is SAME else compact(sp.csr_array(rule))
                         for rule in _local(node)]
                if keep:
                    locals_[node] = rules
                parts = [patterns[s] if rule is SAME else rule @ patterns[s]
                         for s, rule in zip(node.src, rules)
                         if rule is not None and patterns[s] is not None]
                patterns[node] = _union(parts)
                if budget is not None and patterns[node] is not None and \
                        patterns[node].nnz > budget:
                    raise TooDense(node)
        if not keep:
            for s in set(node.src):
                remaining[s] -= 1
                if remaining[s] == 0 and s not in kept:
                    patterns.pop(s, None)
    return order, patterns, locals_


def _union(parts: list) -> sp.csr_array | None:
    if not parts:
        return None
    total = parts[0]
    for p in parts[1:]:
        total = total + p if p is not total else total
    return compact(sp.csr_array(total))


def jacobian_pattern(outputs: Sequence[UOp], wrt: Sequence[UOp],
                     budget: int | None = None) -> sp.csr_array:
    """The Jacobian pattern of `outputs` (rows: their elements, one after the other) with
    respect to `wrt` (columns: their elements, one after the other); TooDense if a node on the
    way has more than `budget` entries.

    >>> from anvil_llvm.ir import dtypes, ops as O
    >>> x = UOp(O.INPUT, (), (0, (3,), dtypes.float64))
    >>> first = UOp(O.SLICE, (x,), ((0, 1, 2),))
    >>> jacobian_pattern([UOp(O.MUL, (first, first))], [x]).toarray().astype(int)
    array([[1, 0, 0],
           [0, 1, 0]])
    """
    outputs = list(outputs)
    _, patterns, _ = propagate(outputs, identity_seeds(wrt), keep=False, budget=budget)
    n = sum(w.size for w in wrt)
    rows = [patterns.get(o) if patterns.get(o) is not None else
            sp.csr_array((o.size, n), dtype=bool) for o in outputs]
    return sp.csr_array(sp.vstack(rows, format="csr", dtype=bool)) if rows else \
        sp.csr_array((0, n), dtype=bool)


def hessian_pattern(output: UOp, wrt: Sequence[UOp]) -> sp.csr_array:
    """The (symmetric) Hessian pattern of the scalar `output` with respect to `wrt`.

    >>> from anvil_llvm.ir import dtypes, ops as O
    >>> x = UOp(O.INPUT, (), (0, (3,), dtypes.float64))
    >>> first, last = (UOp(O.SLICE, (x,), ((k, 1, 1),)) for k in (0, 2))
    >>> y = UOp(O.REDUCE_SUM, (UOp(O.MUL, (first, last)),), (0,))
    >>> hessian_pattern(y, [x]).toarray().astype(int)
    array([[0, 0, 1],
           [0, 0, 0],
           [1, 0, 0]])
    """
    if output.size != 1:
        raise ValueError(f"hessian_pattern: the output must be a scalar, got shape "
                         f"{output.shape}")
    n = sum(w.size for w in wrt)
    terms, _ = second_order_terms([output], identity_seeds(wrt), {output: np.ones(1, bool)})
    return symmetric(terms, n)


def symmetric(terms: list, n: int) -> sp.csr_array:
    """The n x n pattern of Lᵀ R + Rᵀ L over the (L, R) pairs of `terms`, which it empties
    (each pattern is freed once stacked: the peak of a Hessian's detection)."""
    if not terms:
        return sp.csr_array((n, n), dtype=bool)
    # Stacked, the pairs' rows line up: Lᵀ R is the sum of the pairs' products, in one product.
    left = sp.vstack([pair[0] for pair in terms], format="csr", dtype=bool)
    right = sp.vstack([pair[1] for pair in terms], format="csr", dtype=bool)
    terms.clear()
    product = compact(sp.csr_array(left.T @ right))
    del left, right
    total = product + product.T
    # SciPy sizes a sum for both operands' entries: keep only its own
    return sp.csr_array((total.data[:total.nnz].copy(), total.indices[:total.nnz].copy(),
                         total.indptr), shape=total.shape)


def second_order_terms(outputs: Sequence[UOp], seeds: dict[UOp, sp.csr_array],
                       live: dict[UOp, np.ndarray]) -> tuple[list, dict[UOp, np.ndarray]]:
    """The (L, R) pairs whose Lᵀ R + Rᵀ L make the Hessian pattern of the `live` elements of
    `outputs` (each a boolean array over its elements), given the `seeds`' patterns, and
    which elements of each seed those output elements depend on."""
    order, patterns, rules = propagate(outputs, seeds, keep=True)
    live = dict(live)
    reached_seeds: dict[UOp, np.ndarray] = {}
    terms = []
    for node in reversed(order):
        alive = live.pop(node, None)
        if alive is None or not alive.any():
            continue
        if node in seeds:
            reached_seeds[node] = alive
        if node not in rules:
            continue
        local = rules[node]
        for s, rule in zip(node.src, local):
            if rule is None or patterns[s] is None:
                continue
            reached = alive if rule is SAME else rule.T @ alive
            live[s] = reached if s not in live else live[s] | reached
        terms += _second_order(node, local, alive, patterns)
    return terms, reached_seeds


def _second_order(node: UOp, local: list, alive: np.ndarray, patterns: dict) -> list:
    """(L, R) pairs whose Lᵀ R (and its transpose) the node adds to the Hessian pattern."""
    linearity = node.op.linearity
    if linearity in (Linearity.LINEAR, Linearity.CONSTANT):
        return []
    if node.op.kind is OpKind.ELEMENTWISE:
        every = bool(alive.all())   # then the rows need no selection (a copy of the pattern)
        rows = [(patterns[s] if every else patterns[s][alive])
                if rule is not None and patterns[s] is not None else None
                for s, rule in zip(node.src, local)]
        if linearity is Linearity.BILINEAR:
            x, y = rows
            return [(x, y)] if x is not None and y is not None else []
        if linearity is Linearity.QUOTIENT:
            x, y = rows
            return [] if y is None else [(y, y)] + ([(x, y)] if x is not None else [])
        if linearity is Linearity.NONLINEAR:
            present = [r for r in rows if r is not None]
            union = _union(present)
            return [] if union is None else [(union, union)]
        raise NotImplementedError(f"no second-order rule for op '{node.op.name}' "
                                  "(linearity not declared, in Hessian sparsity)")
    if node.op.pairs is None:
        raise NotImplementedError(f"no second-order rule for op '{node.op.name}' "
                                  "(in Hessian sparsity)")
    found = []
    for i, j, meets in node.op.pairs(node, alive):
        left, right = patterns[node.src[i]], patterns[node.src[j]]
        if left is not None and right is not None and meets.nnz:
            found.append((left, compact(sp.csr_array(meets @ right))))
    return found


def _argument(fn, argnum: int, operator: str) -> UOp:
    inputs = getattr(fn, "inputs", None)
    if inputs is None or not hasattr(fn, "outputs"):
        raise TypeError(f"{operator}: fn must be a NumericalFunction (its argument shapes "
                        f"decide the pattern), got {type(fn).__name__}")
    if isinstance(argnum, bool) or not isinstance(argnum, (int, np.integer)):
        raise TypeError(f"{operator}: argnum must be an int, got {type(argnum).__name__}")
    if not -len(inputs) <= argnum < len(inputs):
        raise ValueError(f"{operator}: argnum {argnum} is out of range for a function of "
                         f"{len(inputs)} arguments")
    x = inputs[argnum]
    if not x.dtype.is_float:
        raise TypeError(f"{operator}: argument {argnum} is {x.dtype}; only float arguments "
                        "have derivatives")
    return x


def jacobian_sparsity(fn, argnum: int = 0) -> sp.csr_array:
    """The exact pattern of the Jacobian of `fn` (a NumericalFunction) with respect to argument
    `argnum`, for the traced graph: a boolean scipy.sparse array with a row per output element
    (the outputs' elements one after the other, each in C order) and a column per element of
    the argument.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x[1:] * x[:-1], (av.Arg(4),))
    >>> jacobian_sparsity(f).toarray().astype(int)
    array([[1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    x = _argument(fn, argnum, "jacobian_sparsity")
    return jacobian_pattern(fn.outputs, [x])


def hessian_sparsity(fn, argnum: int = 0) -> sp.csr_array:
    """The exact pattern of the Hessian of the scalar function `fn` (a NumericalFunction) with
    respect to argument `argnum`: a symmetric boolean scipy.sparse array.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x[1:] * x[:-1]).sum(), (av.Arg(3),))
    >>> hessian_sparsity(f).toarray().astype(int)
    array([[0, 1, 0],
           [1, 0, 1],
           [0, 1, 0]])
    """
    x = _argument(fn, argnum, "hessian_sparsity")
    if len(fn.outputs) != 1 or fn.outputs[0].size != 1:
        raise ValueError(f"hessian_sparsity: fn must return one scalar, it returns shapes "
                         f"{[o.shape for o in fn.outputs]}")
    return hessian_pattern(fn.outputs[0], [x])
