"""Products with NumPy's names: dot, outer, tensordot, einsum (contractions of tensors)."""
from __future__ import annotations

import builtins
import string

import numpy as np

from ..tensor import Tensor, as_tensor, matmul
from ._shapes import moveaxis


def dot(a, b) -> Tensor:
    """np.dot: a product for a scalar operand, else the sum over the last axis of `a` and the
    second-to-last of `b` (the last when `b` is 1-D)."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if b.ndim <= 2:
        return matmul(a, b)
    return tensordot(a, b, ((a.ndim - 1,), (b.ndim - 2,)))


def vdot(a, b) -> Tensor:
    return (as_tensor(a).reshape(-1) * as_tensor(b).reshape(-1)).sum()


def inner(a, b) -> Tensor:
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return tensordot(a, b, ((a.ndim - 1,), (b.ndim - 1,)))


def outer(a, b) -> Tensor:
    """a[i] * b[j] over the flattened operands, as np.outer."""
    return as_tensor(a).reshape(-1, 1) * as_tensor(b).reshape(1, -1)


def tensordot(a, b, axes=2) -> Tensor:
    """The sum of products over `axes` (an int: the last of `a` with the first of `b`; or two
    sequences of axes), as np.tensordot: one matrix product of the reordered operands."""
    a, b = as_tensor(a), as_tensor(b)
    if isinstance(axes, (int, np.integer)):
        if axes < 0 or axes > builtins.min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: axes={axes} does not fit shapes {a.shape} and "
                             f"{b.shape}")
        left, right = tuple(range(a.ndim - axes, a.ndim)), tuple(range(axes))
    else:
        left, right = ([x] if isinstance(x, (int, np.integer)) else list(x) for x in axes)
        left = tuple(int(i) % a.ndim for i in left)
        right = tuple(int(i) % b.ndim for i in right)
    if len(left) != len(right) or any(a.shape[i] != b.shape[j] for i, j in zip(left, right)):
        raise ValueError(f"tensordot: shape-mismatch for sum over axes {left} of {a.shape} "
                         f"and {right} of {b.shape}")
    free_a = [i for i in range(a.ndim) if i not in left]
    free_b = [j for j in range(b.ndim) if j not in right]
    k = int(np.prod([a.shape[i] for i in left], dtype=np.int64))
    a2 = a.transpose(*free_a, *left).reshape(-1, k)
    b2 = b.transpose(*right, *free_b).reshape(k, -1)
    return matmul(a2, b2).reshape(tuple(a.shape[i] for i in free_a)
                                  + tuple(b.shape[j] for j in free_b))


def einsum(subscripts: str, *operands) -> Tensor:
    """Einstein summation, as np.einsum with explicit or implicit output (`"ij,jk->ik"`,
    `"ij,ij"`; no ellipsis, no repeated index within one operand: use diagonal/trace): each
    operand is aligned on the labels, multiplied, and summed over the labels not kept."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a string, got {type(subscripts).__name__}")
    text = subscripts.replace(" ", "")
    if "." in text:
        raise NotImplementedError("einsum: ellipsis ('...') subscripts are not supported; "
                                  "write the axes out")
    inputs, arrow, output = text.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {len(terms)} operand subscripts for {len(operands)} operands")
    tensors = [as_tensor(x) for x in operands]
    sizes: dict[str, int] = {}
    for term, t in zip(terms, tensors):
        if builtins.any(c not in string.ascii_letters for c in term):
            raise ValueError(f"einsum: invalid subscript {term!r} (letters only)")
        if len(term) != t.ndim:
            raise ValueError(f"einsum: subscript {term!r} for an operand of shape {t.shape}")
        if len(set(term)) != len(term):
            raise NotImplementedError(f"einsum: repeated index in {term!r}: take the diagonal "
                                      "first (anvil_llvm.numpy.diagonal, trace)")
        for c, d in zip(term, t.shape):
            if sizes.setdefault(c, d) != d:
                raise ValueError(f"einsum: index {c!r} has sizes {sizes[c]} and {d}")
    if not arrow:
        counts = {c: inputs.count(c) for c in sizes}
        output = "".join(sorted(c for c, n in counts.items() if n == 1))
    if builtins.any(c not in sizes for c in output) or len(set(output)) != len(output):
        raise ValueError(f"einsum: output subscript {output!r} must name distinct input indices")
    labels = output + "".join(c for c in sizes if c not in output)
    product = None
    for term, t in zip(terms, tensors):
        order = sorted(range(len(term)), key=lambda i: labels.index(term[i]))
        aligned = t.transpose(*order) if order else t
        present = [term[i] for i in order]
        shape = tuple(sizes[c] if c in present else 1 for c in labels)
        aligned = aligned.reshape(shape)
        product = aligned if product is None else product * aligned
    summed = tuple(range(len(output), len(labels)))
    return product.sum(summed) if summed else product


def matrix_transpose(x) -> Tensor:
    return moveaxis(as_tensor(x), -1, -2)
