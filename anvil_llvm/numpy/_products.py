"""Products with NumPy's names: dot, outer, tensordot, einsum (contractions of tensors)."""
from __future__ import annotations

import builtins
import string

import numpy as np

from ..tensor import Tensor, as_tensor, matmul, stack
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


def einsum(subscripts: str, *operands, optimize=False) -> Tensor:
    """Einstein summation, as np.einsum with explicit or implicit output (`"ij,jk->ik"`,
    `"ij,ij"`), ellipses for broadcast axes (`"...ij,...jk->...ik"`) and indices repeated
    within one operand (its diagonal: `"ii->i"`, `"ii"` the trace): each operand is aligned on
    the labels, multiplied, and summed over the labels not kept (`optimize`, NumPy's choice of
    contraction order, is accepted and left to the compiler, which fuses the loops).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.einsum("...ii->...", x), (av.Arg((2, 2, 2)),))
    >>> f(np.arange(8.0).reshape(2, 2, 2))
    array([ 3., 11.])
    """
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a string, got {type(subscripts).__name__}")
    inputs, arrow, output = subscripts.replace(" ", "").partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {len(terms)} operand subscripts for {len(operands)} operands")
    tensors = [as_tensor(x) for x in operands]
    spare = [c for c in string.ascii_letters if c not in subscripts]
    broadcast = builtins.max((t.ndim - len(term.replace("...", ""))
                              for term, t in zip(terms, tensors) if "..." in term), default=0)
    dots = "".join(spare[:broadcast])       # labels of the broadcast axes, right-aligned
    sizes: dict[str, int] = {}
    aligned_terms = []
    for term, t in zip(terms, tensors):
        term = _expand_ellipsis(term, t, dots)
        for c, d in zip(term, t.shape):
            known = sizes.setdefault(c, d)
            if known != d and not (c in dots and 1 in (known, d)):
                raise ValueError(f"einsum: index {c!r} has sizes {known} and {d}")
            sizes[c] = builtins.max(known, d) if c in dots else known
        aligned_terms.append(term)
    terms = aligned_terms
    if arrow:
        if "..." not in output and broadcast and builtins.any(
                "..." in term for term in inputs.split(",")):
            raise ValueError("einsum: output has more dimensions than subscripts given; add "
                             "'...' to the output to keep the broadcast axes")
        output = output.replace("...", dots)
        if builtins.any(c not in string.ascii_letters for c in output):
            raise ValueError(f"einsum: invalid output subscript {output!r}")
    else:
        counts = {c: "".join(terms).count(c) for c in sizes if c not in dots}
        output = dots + "".join(sorted(c for c, n in counts.items() if n == 1))
    if builtins.any(c not in sizes for c in output) or len(set(output)) != len(output):
        raise ValueError(f"einsum: output subscript {output!r} must name distinct input indices")
    labels = output + "".join(c for c in sizes if c not in output)
    product = None
    for term, t in zip(terms, tensors):
        term, t = _diagonals(term, t)
        order = sorted(range(len(term)), key=lambda i: labels.index(term[i]))
        aligned = t.transpose(*order) if order else t
        present = [term[i] for i in order]
        shape = tuple(aligned.shape[present.index(c)] if c in present else 1 for c in labels)
        aligned = aligned.reshape(shape)
        product = aligned if product is None else product * aligned
    product = product.broadcast_to(tuple(sizes[c] for c in labels))
    summed = tuple(range(len(output), len(labels)))
    return product.sum(summed) if summed else product


def _expand_ellipsis(term: str, t: Tensor, dots: str) -> str:
    """`term` with its '...' replaced by the labels of the broadcast axes it covers (the last
    of `dots`), checked against the operand's rank."""
    named = term.replace("...", "")
    if builtins.any(c not in string.ascii_letters for c in named) or term.count("...") > 1 \
            or "." in term.replace("...", ""):
        raise ValueError(f"einsum: invalid subscript {term!r} (letters and one '...')")
    if "..." in term:
        covered = t.ndim - len(named)
        if covered < 0:
            raise ValueError(f"einsum: subscript {term!r} for an operand of shape {t.shape}")
        return term.replace("...", dots[len(dots) - covered:])
    if len(term) != t.ndim:
        raise ValueError(f"einsum: subscript {term!r} for an operand of shape {t.shape}")
    return term


def _diagonals(term: str, t: Tensor) -> tuple[str, Tensor]:
    """An index repeated within one operand: its diagonal, as one axis at the end."""
    for c in dict.fromkeys(term):
        while term.count(c) > 1:
            first = term.index(c)
            second = term.index(c, first + 1)
            n = t.shape[first]
            rest = [i for i in range(t.ndim) if i not in (first, second)]
            moved = t.transpose(*rest, first, second).reshape(
                tuple(t.shape[i] for i in rest) + (n * n,))
            t = moved[..., np.arange(n) * (n + 1)]
            term = "".join(term[i] for i in rest) + c
    return term, t


def cross(a, b, axis: int = -1) -> Tensor:
    """The cross product of 3-vectors along `axis` (batch axes broadcast), as np.cross.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.cross(x, [0.0, 0.0, 1.0]), (av.Arg(3),))
    >>> f(np.array([1.0, 0.0, 0.0]))
    array([ 0., -1.,  0.])
    """
    a, b = moveaxis(as_tensor(a), axis, -1), moveaxis(as_tensor(b), axis, -1)
    if a.shape[-1] != 3 or b.shape[-1] != 3:
        raise ValueError(f"cross: vectors of length 3 expected along axis {axis}, got shapes "
                         f"{a.shape} and {b.shape}")
    a0, a1, a2 = (a[..., i] for i in range(3))
    b0, b1, b2 = (b[..., i] for i in range(3))
    return moveaxis(stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1),
                    -1, axis)


def vecdot(x1, x2, axis: int = -1) -> Tensor:
    """The dot product of vectors along `axis` (batch axes broadcast), as np.vecdot.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.vecdot(x, x), (av.Arg((2, 2)),))
    >>> f(np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([ 5., 25.])
    """
    return (as_tensor(x1) * x2).sum(axis)


def kron(a, b) -> Tensor:
    """The Kronecker product, as np.kron: blocks a[i, j] * b.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.kron(x, np.ones(2)), (av.Arg(2),))
    >>> f(np.array([1.0, 2.0]))
    array([1., 1., 2., 2.])
    """
    a, b = as_tensor(a), as_tensor(b)
    ndim = builtins.max(a.ndim, b.ndim)
    a = a.reshape((1,) * (ndim - a.ndim) + a.shape)
    b = b.reshape((1,) * (ndim - b.ndim) + b.shape)
    spread_a = tuple(x for d in a.shape for x in (d, 1))
    spread_b = tuple(x for d in b.shape for x in (1, d))
    return (a.reshape(spread_a) * b.reshape(spread_b)).reshape(
        tuple(p * q for p, q in zip(a.shape, b.shape)))


def matrix_transpose(x) -> Tensor:
    return moveaxis(as_tensor(x), -1, -2)
