"""fori_loop, scan and map: loops that stay loops. The body is traced once and repeated by a
native loop, so the graph, the code and the build time do not grow with the trip count (a
Python `for` loop is traced and unrolled instead: docs/loops.md says when to use which).

Carries, scanned arrays and results are Tensors (or numbers and arrays, converted), or tuples
and lists of them nested in any way, as in JAX.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from .ir import dtypes
from .ir.ops import control
from .tensor import Tensor, as_tensor, concatenate

Tree = Any
"""A Tensor (or number, array), or a tuple or list of trees."""


def fori_loop(lower: int, upper: int, body: Callable[[Tensor, Tree], Tree], init: Tree, *,
              checkpoint: int | None = None) -> Tree:
    """`carry = body(i, carry)` for i = lower, ..., upper - 1 (no iteration when upper <= lower);
    returns the final carry, of the structure, shapes and dtypes of `init`. `checkpoint` as
    in `scan`.

    >>> import numpy as np, anvil_llvm as av
    >>> def f(x):
    ...     return av.fori_loop(0, 3, lambda i, y: y * 2.0 + i, x)
    >>> av.NumericalFunction("f", f, (av.Arg(2),))(np.array([1.0, 0.0]))
    array([12.,  4.])
    """
    lower, upper = _bound(lower, "lower"), _bound(upper, "upper")

    def step(index: Tensor, carry: Tree, x: Tree) -> tuple[Tree, None]:
        return body(index + lower if lower else index, carry), None
    carry, _ = _loop("fori_loop", step, init, None, max(upper - lower, 0), False, checkpoint)
    return carry


def scan(body: Callable[[Tree, Tree], tuple[Tree, Tree]], init: Tree, xs: Tree = None,
         length: int | None = None, reverse: bool = False, *,
         checkpoint: int | None = None) -> tuple[Tree, Tree]:
    """`carry, y = body(carry, x)` for each slice `x` of `xs` along its leading axis (from the
    last when `reverse`); returns the final carry and the ys stacked along a new leading axis
    (JAX's `lax.scan`). Without `xs`, `length` gives the trip count and `x` is None.

    Reverse mode stores the carry of every iteration; with `checkpoint=k` it stores one every
    k iterations and recomputes the iterations between while it runs backwards: about
    length / k + k carries stored, for one more forward pass (k near sqrt(length) stores
    least).

    >>> import numpy as np, anvil_llvm as av
    >>> def cumsum(x):
    ...     return av.scan(lambda c, xi: (c + xi, c + xi), 0.0, x)[1]
    >>> av.NumericalFunction("cumsum", cumsum, (av.Arg(4),))(np.arange(4.0))
    array([0., 1., 3., 6.])
    """
    if not isinstance(reverse, (bool, np.bool_)):
        raise TypeError(f"scan: reverse must be a bool, got {type(reverse).__name__}")
    return _loop("scan", lambda index, carry, x: body(carry, x), init, xs, length, reverse,
                 checkpoint)


def map(body: Callable[[Tree], Tree], xs: Tree) -> Tree:
    """`body(x)` for each slice `x` of `xs` along its leading axis, stacked (JAX's `lax.map`):
    independent stages (multiple shooting) computed by one loop over one traced body.

    >>> import numpy as np, anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: av.map(lambda r: (r * r).sum(), x),
    ...                          (av.Arg((3, 2)),))
    >>> f(np.arange(6.0).reshape(3, 2))
    array([ 1., 13., 41.])
    """
    return _loop("map", lambda index, carry, x: ((), body(x)), (), xs, None, False)[1]


def _bound(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"fori_loop: {name} must be a Python or NumPy integer (the trip count is "
                        f"fixed when the function is traced), got {type(value).__name__}")
    return int(value)


def _loop(name: str, call: Callable, init: Tree, xs: Tree, length: int | None,
          reverse: bool, checkpoint: int | None = None) -> tuple[Tree, Tree]:
    """Trace `call(index, carry, x) -> (carry, y)` once as the body of a loop (of loops of
    `checkpoint` iterations, when given)."""
    init_leaves, init_def = _flatten(init, name, "init")
    x_leaves, x_def = _flatten(xs, name, "xs")
    length = _length(name, x_leaves, length)
    if checkpoint is not None:
        if isinstance(checkpoint, (bool, np.bool_)) or not isinstance(
                checkpoint, numbers.Integral) or checkpoint < 1:
            raise TypeError(f"{name}: checkpoint must be a positive integer, got {checkpoint!r}")
        if length >= 2 * checkpoint:
            return _blocks(name, call, init, xs, length, reverse, int(checkpoint))
    with control.body_depth() as depth:
        index = control.param(depth, 0, (), dtypes.int64)
        carry = [control.param(depth, 1 + i, t.shape, t.dtype) for i, t in enumerate(init_leaves)]
        slices = [control.param(depth, 1 + len(carry) + j, x.shape[1:], x.dtype)
                  for j, x in enumerate(x_leaves)]
        result = call(Tensor(index), _unflatten(init_def, [Tensor(p) for p in carry]),
                      None if xs is None else _unflatten(x_def, [Tensor(p) for p in slices]))
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise TypeError(f"{name}: body must return a pair (carry, y), got "
                        f"{type(result).__name__}")
    new_leaves, new_def = _flatten(result[0], name, "the carry body returns")
    if new_def != init_def:
        raise TypeError(f"{name}: body returned a carry of structure {_spell(new_def)}, "
                        f"expected {_spell(init_def)} (the structure of init)")
    new_leaves = [_same_kind(name, k, new, old) for k, (new, old) in
                  enumerate(zip(new_leaves, init_leaves))]
    y_leaves, y_def = _flatten(result[1], name, "the y body returns")
    nodes = control.loop(index, carry, slices, [], [t.node for t in new_leaves + y_leaves],
                         [t.node for t in init_leaves], [x.node for x in x_leaves], length,
                         reverse)
    tensors = [Tensor(n) for n in nodes]
    return (_unflatten(init_def, tensors[:len(carry)]),
            _unflatten(y_def, tensors[len(carry):]))


def _blocks(name: str, call: Callable, init: Tree, xs: Tree, length: int, reverse: bool,
            k: int) -> tuple[Tree, Tree]:
    """The loop as a loop over blocks of `k` iterations, each a loop (reverse mode then stores
    the carries between blocks, and those within one block while it goes back over it), and
    a loop over the iterations left."""
    blocks = length // k
    x_leaves, x_def = _flatten(xs, name, "xs")
    head = _unflatten(x_def, [x[:blocks * k].reshape((blocks, k) + x.shape[1:])
                              for x in x_leaves])
    tail = _unflatten(x_def, [x[blocks * k:] for x in x_leaves])

    def block(b: Tensor, carry: Tree, x: Tree) -> tuple[Tree, Tree]:
        return _loop(name, lambda j, c, xj: call(b * k + j, c, xj), carry, x, k, reverse)

    def run_head(carry):
        return _loop(name, block, carry, head, blocks, reverse)

    def run_tail(carry):
        return _loop(name, lambda j, c, xj: call(j + blocks * k, c, xj), carry, tail,
                     length - blocks * k, reverse)
    if reverse:
        carry, tail_ys = run_tail(init)
        carry, head_ys = run_head(carry)
    else:
        carry, head_ys = run_head(init)
        carry, tail_ys = run_tail(carry)
    head_leaves, y_def = _flatten(head_ys, name, "ys")
    tail_leaves, _ = _flatten(tail_ys, name, "ys")
    return carry, _unflatten(y_def, [
        concatenate([h.reshape((blocks * k,) + h.shape[2:]), t])
        for h, t in zip(head_leaves, tail_leaves)])


def _length(name: str, xs: list[Tensor], length: int | None) -> int:
    if length is not None and (isinstance(length, (bool, np.bool_))
                               or not isinstance(length, numbers.Integral) or length < 0):
        raise TypeError(f"{name}: length must be a non-negative integer, got {length!r}")
    lengths = {x.shape[0] for x in xs}
    if len(lengths) > 1:
        raise ValueError(f"{name}: the arrays of xs have different lengths "
                         f"{[x.shape[0] for x in xs]} along their leading axis")
    if length is not None and lengths and lengths != {length}:
        raise ValueError(f"{name}: length={length} but xs have length {lengths.pop()}")
    if length is None and not lengths:
        raise ValueError(f"{name}: give xs (arrays to scan along their leading axis) or length")
    return int(length) if length is not None else lengths.pop()


def _flatten(tree: Tree, name: str, what: str) -> tuple[list[Tensor], Any]:
    """The leaves of `tree` as Tensors and its structure: None, "leaf" or (type, children)."""
    if tree is None:
        return [], None
    if isinstance(tree, (tuple, list)):
        leaves, children = [], []
        for item in tree:
            sub, definition = _flatten(item, name, what)
            leaves += sub
            children.append(definition)
        return leaves, (type(tree), tuple(children))
    try:
        tensor = as_tensor(tree)
    except TypeError as e:
        raise TypeError(f"{name}: {what} holds a {type(tree).__name__}; expected Tensors, "
                        "arrays or numbers (in tuples or lists)") from e
    if what == "xs" and not tensor.ndim:
        raise ValueError(f"{name}: xs holds a scalar; each scanned array needs a leading axis")
    return [tensor], "leaf"


def _unflatten(definition, leaves: list) -> Tree:
    items = iter(leaves)

    def build(d):
        if d is None:
            return None
        if d == "leaf":
            return next(items)
        kind, children = d
        return kind(build(c) for c in children)
    return build(definition)


def _spell(definition) -> str:
    if definition is None:
        return "None"
    if definition == "leaf":
        return "*"
    kind, children = definition
    inside = ", ".join(_spell(c) for c in children)
    return f"({inside}{',' if len(children) == 1 else ''})" if kind is tuple else f"[{inside}]"


def _same_kind(name: str, k: int, new: Tensor, old: Tensor) -> Tensor:
    """The carry leaf `new`, checked against the one it replaces."""
    if new.dtype != old.dtype:
        raise TypeError(f"{name}: body returned carry item {k} as {new.dtype}, expected "
                        f"{old.dtype} (the dtype of init; cast with .astype)")
    if new.shape != old.shape:
        raise ValueError(f"{name}: body returned carry item {k} of shape {new.shape}, "
                         f"expected {old.shape} (the shape of init)")
    return new
