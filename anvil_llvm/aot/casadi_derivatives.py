"""The derivative functions CasADi's `external()` looks up by name, built with anvil_llvm's AD
(`casadi_derivatives=True`, docs/export.md): for a function `f`

    jac_f        (inputs..., out_<o>...) -> jac_<o>_<i> for each output o and input i
    adj1_f       (inputs..., out_<o>..., adj_<o>...) -> adj_<i>...     (reverse mode, Jᵀ·v)
    jac_adj1_f   the Jacobian of adj1_f, by the same rule as jac_f

in CasADi's own signatures (those of `Function.jacobian()` and `Function.reverse(1)`): the
nominal outputs among the inputs have no nonzeros (they are never read), and every block is a
sparse matrix (output elements x input elements) with the pattern our sparsity detection found,
its nonzeros computed by `spjacobian`. CasADi differentiates through them: `jac_f` gives
`nlpsol` its constraint Jacobian, `adj1_f` gradients, and `jac_adj1_f` (whose block wrt `x` is
the Hessian of adj·f) the exact Hessian of the Lagrangian.

A function returning a sparse matrix (a SparseNumericalFunction: `spjacobian` of constraints,
say) computes its nonzeros; CasADi numbers a sparse output's (or input's) elements in column
major order over the whole matrix, so a Jacobian block's rows (or columns) are the nonzeros'
places there (`_places`): the same values, in the same order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..function import NumericalFunction
from .casadi import Signature, Slot, dense_signature, empty
from .exported import Sparsity


@dataclass(frozen=True)
class Derived:
    """A CasADi function backed by `function` (its C-ABI callee): the slots of `signature`
    name the callee's arguments and outputs by position."""

    function: NumericalFunction
    signature: Signature


def base(fn: NumericalFunction) -> Derived:
    """`fn` as CasADi sees it: inputs and outputs column vectors of their elements, a sparse
    result its matrix with its CSC pattern."""
    inputs, outputs = fn._specs()
    sparsity = None
    if hasattr(fn, "indptr"):
        sparsity = Sparsity(*fn.shape, np.asarray(fn.indptr, np.int64),
                            np.asarray(fn.indices, np.int64))
    return Derived(fn, dense_signature(fn.name, inputs, outputs, sparsity))


def _places(slot: Slot) -> np.ndarray | None:
    """Where a sparse slot's nonzeros are among its matrix's elements, column major (None:
    dense, its elements are its nonzeros)."""
    if slot.colind is None:
        return None
    columns = np.repeat(np.arange(slot.cols, dtype=np.int64), np.diff(slot.colind))
    return columns * slot.rows + np.asarray(slot.row, np.int64)


def _spread(indptr: np.ndarray, places: np.ndarray, count: int) -> np.ndarray:
    """Column pointers over `count` columns, the columns of `indptr` moved to `places`."""
    sizes = np.zeros(count, np.int64)
    sizes[places] = np.diff(indptr)
    return np.concatenate([[0], np.cumsum(sizes)])


def _output(fn: NumericalFunction, j: int) -> NumericalFunction:
    """The function of `fn`'s arguments returning its output `j` only."""
    return NumericalFunction.from_graph(fn.name, fn.args, [fn.outputs[j]], False, fn.arg_names)


def _nominal(outputs: tuple[Slot, ...]) -> tuple[Slot, ...]:
    """The nominal outputs as a derivative's inputs: `out_<name>`, no nonzeros."""
    return tuple(empty(f"out_{o.name}", o.rows, o.cols) for o in outputs)


def jacobian(g: Derived) -> Derived:
    """`jac_<g>`: one output per (output, input) pair of `g`, outputs major, each the sparse
    Jacobian block of that output wrt that input.

    >>> import numpy as np, anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x, y: x * y[0], (av.Arg(3), av.Arg(2)))
    >>> J = jacobian(base(f))
    >>> [(s.name, s.rows, s.cols) for s in J.signature.outputs]
    [('jac_out_x', 3, 3), ('jac_out_y', 3, 2)]
    >>> J.signature.outputs[1].pattern().tolist()
    [3, 2, 0, 3, 3, 0, 1, 2]
    """
    from ..ad import spjacobian
    sig, fn = g.signature, g.function
    outputs, values = [], []
    for o in sig.outputs:
        for i in sig.inputs:
            label = f"jac_{o.name}_{i.name}"
            rows, cols = o.rows * o.cols, i.rows * i.cols
            block = None
            if o.source is not None and i.source is not None:
                block = spjacobian(_output(fn, o.source), argnum=i.source, name=label)
            if block is None or block.nnz == 0:
                outputs.append(empty(label, rows, cols))
                continue
            indptr, indices = block.indptr.astype(np.int64), block.indices.astype(np.int64)
            across, down = _places(i), _places(o)
            if across is not None:
                indptr = _spread(indptr, across, cols)
            if down is not None:
                indices = down[indices]
            outputs.append(Slot(label, rows, cols, indptr, indices, len(values)))
            values.append(block.outputs[0])
    name = f"jac_{sig.name}"
    if not values:
        raise ValueError(f"casadi_derivatives: {name}: the outputs of {sig.name!r} do not depend "
                         "on its inputs (every Jacobian block is zero)")
    callee = NumericalFunction.from_graph(name, fn.args, values, True, fn.arg_names)
    callee.origin = getattr(fn, "origin", None)
    return Derived(callee, Signature(name, sig.inputs + _nominal(sig.outputs), tuple(outputs)))


def reverse(g: Derived) -> Derived:
    """`adj1_<g>`: the vector-Jacobian product of `g` (a function of dense arrays, `base`).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(3),))
    >>> [(s.name, s.source) for s in reverse(base(f)).signature.inputs]
    [('x', 0), ('out_out', None), ('adj_out', 1)]
    """
    from ..ad import vjp
    sig, fn = g.signature, g.function
    name = f"adj1_{sig.name}"
    callee = vjp(fn, argnum=tuple(range(len(fn.args))), name=name)
    callee.origin = getattr(fn, "origin", None)
    seeds = tuple(Slot(f"adj_{o.name}", o.rows, o.cols, o.colind, o.row,
                       source=len(fn.args) + j) for j, o in enumerate(sig.outputs))
    results = tuple(Slot(f"adj_{i.name}", i.rows, i.cols, source=k)
                    for k, i in enumerate(sig.inputs))
    return Derived(callee, Signature(name, sig.inputs + _nominal(sig.outputs) + seeds, results))


def derivatives(fn: NumericalFunction) -> list[Derived]:
    """`jac_f`, `adj1_f` and `jac_adj1_f` of `fn` (float64 arrays in and out), or ValueError.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(3),))
    >>> [d.signature.name for d in derivatives(f)]
    ['jac_f', 'adj1_f', 'jac_adj1_f']
    """
    for node, label in [(x, f"argument {n!r}") for x, n in zip(fn.inputs, fn.arg_names)] + \
            [(o, f"output {j}") for j, o in enumerate(fn.outputs)]:
        if node.dtype.np != np.float64:
            raise ValueError(f"casadi_derivatives: function {fn.name!r} has {label} of dtype "
                             f"{node.dtype.np}; CasADi's API passes float64 only")
    f = base(fn)
    adj = reverse(f)
    return [jacobian(f), adj, jacobian(adj)]
