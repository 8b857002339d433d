"""`anvil_llvm.numpy.linalg`: solve, inv, det, slogdet, cholesky, qr, eigh, eigvalsh, lstsq,
pinv, norms, multi_dot, matrix_power; and SciPy's
triangular and Cholesky solves (`cho_solve`, `solve_triangular`), kept here beside the
factorisation they complete rather than in a namespace of their own."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import tensor as T
from ..ir.ops.linalg import CHOLESKY, EIGH, QR, SLOGDET, trisolve
from ..ir.ops.linalg import solve as _solve
from ..ir.uop import UOp
from ..tensor import Tensor, as_tensor
from . import _products, _shapes
from ._elementwise import exp, maximum, sqrt
from ._shapes import swapaxes
from ._unsupported import LINALG_HINTS as _LINALG_HINTS
from ._unsupported import refusal as _refusal


def _matrices(name: str, a) -> Tensor:
    """`a` as float square matrices (..., n, n)."""
    a = T._float(as_tensor(a))
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name}: `a` must be square over its last two axes, got shape {a.shape}")
    return a


def _with_right_sides(name: str, a, b, build) -> Tensor:
    """`build(a, b)` on square `a` and right sides `b` as NumPy's solve takes them: (..., n)
    when 1-D, else (..., n, k); batch axes broadcast; one float dtype."""
    a, b = _matrices(name, a), T._float(as_tensor(b))
    if a.dtype != b.dtype:
        a, b = (x.astype(np.float64) for x in (a, b))
    vector = b.ndim == 1
    if vector:
        b = b.reshape(b.shape[0], 1)
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise ValueError(f"{name}: `b` of shape {b.shape} does not fit `a` of shape {a.shape}")
    batch = T.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    x = Tensor(build(a.broadcast_to(batch + a.shape[-2:]).node,
                     b.broadcast_to(batch + b.shape[-2:]).node))
    return x.reshape(x.shape[:-1]) if vector else x


def solve(a, b) -> Tensor:
    """x with a @ x == b, as np.linalg.solve: `a` (..., n, n), `b` (..., n) when 1-D, else
    (..., n, k), batch axes broadcast. Gaussian elimination with partial pivoting in native
    loops; a singular matrix gives inf/NaN where NumPy raises.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.linalg.solve, (av.Arg((2, 2)), av.Arg(2)))
    >>> f(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 5.0]))
    array([0.8, 1.4])
    """
    return _with_right_sides("solve", a, b, _solve)


def inv(a) -> Tensor:
    """The inverse of square matrices (..., n, n), as np.linalg.inv (solve with the identity).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.linalg.inv, (av.Arg((2, 2)),))
    >>> f(np.array([[2.0, 0.0], [0.0, 4.0]]))
    array([[0.5 , 0.  ],
           [0.  , 0.25]])
    """
    a = _matrices("inv", a)
    return solve(a, np.broadcast_to(np.eye(a.shape[-1], dtype=a.dtype.np), a.shape))


class SlogdetResult(NamedTuple):
    """What `slogdet` returns, as NumPy's: the sign and the log of the absolute value."""

    sign: Tensor
    logabsdet: Tensor


def slogdet(a) -> SlogdetResult:
    """The sign and log|det| of square matrices (..., n, n), as np.linalg.slogdet: LU with
    partial pivoting in native loops; a singular matrix gives (0, -inf), as NumPy. The
    derivative of logabsdet is a^-T, so at a singular matrix it is not finite.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.linalg.slogdet, (av.Arg((2, 2)),))
    >>> sign, logabsdet = f(np.array([[0.0, 2.0], [1.0, 0.0]]))
    >>> float(sign), bool(np.isclose(logabsdet, np.log(2.0)))
    (-1.0, True)
    """
    a = _matrices("slogdet", a)
    packed = Tensor(UOp(SLOGDET, (a.node,)))
    return SlogdetResult(packed[..., 0], packed[..., 1])


def det(a) -> Tensor:
    """The determinant of square matrices (..., n, n), as np.linalg.det: sign * exp(logabsdet)
    from `slogdet` (NumPy computes it so too); 0 for a singular matrix, where its derivative
    (det * a^-T) is NaN.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.linalg.det, (av.Arg((2, 2)),))
    >>> float(f(np.array([[1.0, 2.0], [3.0, 4.0]])))
    -2.0000000000000004
    """
    sign, logabsdet = slogdet(a)
    return sign * exp(logabsdet)


def cholesky(a, /, *, upper: bool = False) -> Tensor:
    """The Cholesky factor L (lower, L @ L.T == a) of symmetric positive definite matrices
    (..., n, n), as np.linalg.cholesky: only the lower triangle of `a` is read; `upper=True`
    gives L.T. A matrix that is not positive definite gives NaN everywhere (as JAX; NumPy
    raises LinAlgError, which native code cannot).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.linalg.cholesky, (av.Arg((2, 2)),))
    >>> f(np.array([[4.0, 2.0], [2.0, 5.0]]))
    array([[2., 0.],
           [1., 2.]])
    """
    l = Tensor(UOp(CHOLESKY, (_matrices("cholesky", a).node,)))
    return swapaxes(l, -1, -2) if upper else l


def solve_triangular(a, b, trans=0, lower: bool = False) -> Tensor:
    """x with op(a) @ x == b for triangular `a`, as scipy.linalg.solve_triangular (`trans` 0 or
    'N': op(a) = a, 1 or 'T': a.T; only the triangle of `lower` is read): substitution in
    native loops. Batch axes broadcast as in `solve`.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda a, b: anp.linalg.solve_triangular(a, b, lower=True),
    ...                          (av.Arg((2, 2)), av.Arg(2)))
    >>> f(np.array([[2.0, 0.0], [1.0, 1.0]]), np.array([2.0, 3.0]))
    array([1., 2.])
    """
    transposed = {0: False, "N": False, 1: True, "T": True, 2: True, "C": True}.get(trans)
    if transposed is None:
        raise ValueError(f"solve_triangular: `trans` must be 0, 1, 2, 'N', 'T' or 'C', "
                         f"got {trans!r}")
    return _with_right_sides("solve_triangular", a, b,
                             lambda t, r: trisolve(t, r, bool(lower), transposed))


def cho_solve(c_and_lower, b) -> Tensor:
    """x with a @ x == b from the Cholesky factor of `a`, as scipy.linalg.cho_solve:
    `c_and_lower` is `(c, lower)`, c lower (c @ c.T == a) or upper (c.T @ c == a); two
    triangular solves.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> def f(a, b):
    ...     return anp.linalg.cho_solve((anp.linalg.cholesky(a), True), b)
    >>> g = av.NumericalFunction("g", f, (av.Arg((2, 2)), av.Arg(2)))
    >>> g(np.array([[4.0, 2.0], [2.0, 5.0]]), np.array([6.0, 7.0]))
    array([1., 1.])
    """
    if not (isinstance(c_and_lower, tuple) and len(c_and_lower) == 2):
        raise TypeError("cho_solve: `c_and_lower` must be a pair (factor, lower), got "
                        f"{type(c_and_lower).__name__}")
    c, lower = c_and_lower
    lower = bool(lower)
    return _with_right_sides("cho_solve", c, b, lambda t, r: trisolve(
        t, trisolve(t, r, lower, not lower), lower, lower))


class EighResult(NamedTuple):
    """What `eigh` returns, as NumPy's: the eigenvalues and the eigenvectors (columns)."""

    eigenvalues: Tensor
    eigenvectors: Tensor


def _eigh(a, UPLO: str, name: str) -> Tensor:
    """The packed EIGH result of the symmetric matrices read from `UPLO`'s triangle."""
    if UPLO not in ("L", "U"):
        raise ValueError(f"{name}: `UPLO` must be 'L' or 'U', got {UPLO!r}")
    a = _matrices(name, a)
    return Tensor(UOp(EIGH, ((a if UPLO == "L" else swapaxes(a, -1, -2)).node,)))


def eigh(a, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices (..., n, n), as
    np.linalg.eigh, reading the lower (`UPLO='L'`) or upper triangle: cyclic Jacobi rotations
    in native loops. Each eigenvector's entry of largest magnitude is positive (NumPy leaves the
    sign to LAPACK). The derivatives assume distinct eigenvalues (dV divides by their gaps).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.linalg.eigh, (av.Arg((2, 2)),))
    >>> w, v = f(np.array([[3.0, 0.0], [0.0, -1.0]]))
    >>> w, v
    (array([-1.,  3.]), array([[0., 1.],
           [1., 0.]]))
    """
    packed = _eigh(a, UPLO, "eigh")
    n = packed.shape[-1]
    return EighResult(packed[..., 0, :], packed[..., 1:, :].reshape(packed.shape[:-2] + (n, n)))


def eigvalsh(a, UPLO: str = "L") -> Tensor:
    """The eigenvalues (ascending) of symmetric matrices (..., n, n), as np.linalg.eigvalsh
    (see `eigh`).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.linalg.eigvalsh, (av.Arg((2, 2)),))
    >>> f(np.array([[2.0, 0.0], [0.0, -1.0]]))
    array([-1.,  2.])
    """
    return _eigh(a, UPLO, "eigvalsh")[..., 0, :]


class QRResult(NamedTuple):
    """What `qr` returns, as NumPy's tuple."""

    Q: Tensor
    R: Tensor


def _factor(a: Tensor) -> tuple[Tensor, Tensor]:
    """Q (..., m, k) and R (..., k, n), k = min(m, n), of `a` (..., m, n): the QR op on the
    first k columns, then R's other columns Q^T a (what LAPACK's reflectors give them)."""
    m, n = a.shape[-2:]
    k = min(m, n)
    if k == 0:
        return (T.as_tensor(np.zeros(a.shape[:-2] + (m, 0), a.dtype.np)),
                T.as_tensor(np.zeros(a.shape[:-2] + (0, n), a.dtype.np)))
    packed = Tensor(UOp(QR, ((a[..., :, :m] if n > m else a).node,)))
    q, r = packed[..., :m, :], packed[..., m:, :]
    if n > k:
        r = T.concatenate(r, swapaxes(q, -1, -2) @ a[..., :, k:], axis=-1)
    return q, r


def qr(a, mode: str = "reduced"):
    """The QR decomposition of matrices (..., m, n), as np.linalg.qr with `mode` "reduced"
    (Q (..., m, k), R (..., k, n), k = min(m, n)), "r" (R only) or, for m <= n, "complete"
    (the same as "reduced" there): Householder reflections in native loops, with LAPACK's
    signs, so the result is NumPy's (to rounding; like NumPy's, it jumps in sign where a
    reflection's diagonal entry crosses zero or meets a column already zero below it).
    Derivatives of every order where the first k columns have full rank.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda a: anp.linalg.qr(a).R, (av.Arg((2, 2)),))
    >>> f(np.array([[3.0, 1.0], [4.0, 2.0]]))
    array([[-5. , -2.2],
           [ 0. ,  0.4]])
    """
    if mode not in ("reduced", "r", "complete"):
        raise (NotImplementedError if mode == "raw" else ValueError)(
            f"qr: mode must be 'reduced', 'r' or 'complete', got {mode!r}" + (
                " (LAPACK's reflectors are not returned)" if mode == "raw" else ""))
    a = _matrix("qr", a)
    m, n = a.shape[-2:]
    if mode == "complete" and m > n:
        raise NotImplementedError(f"qr: mode 'complete' of a matrix with more rows than columns "
                                  f"(shape {a.shape}) needs an orthogonal complement of Q, which "
                                  "is not supported; 'reduced' gives the first n columns")
    q, r = _factor(a)
    return r if mode == "r" else QRResult(q, r)


def _qr_solve(a: Tensor, b: Tensor) -> Tensor:
    """The least-squares (m >= n) or least-norm (m < n) solution of a @ x = b for `a` of full
    rank, through QR: R x = Q^T b, or x = Q R^-T b with a^T = Q R (error of order cond(a)
    times the rounding, where the normal equations give cond(a)^2)."""
    if a.shape[-2] >= a.shape[-1]:
        q, r = _factor(a)
        return solve_triangular(r, swapaxes(q, -1, -2) @ b)
    q, r = _factor(swapaxes(a, -1, -2))
    return q @ solve_triangular(r, b, trans="T")


def _matrix(name: str, a) -> Tensor:
    a = T._float(as_tensor(a))
    if a.ndim < 2:
        raise ValueError(f"{name}: `a` must be a matrix (..., m, n), got shape {a.shape}")
    return a


def pinv(a, rcond=None, hermitian: bool = False) -> Tensor:
    """The pseudo-inverse of matrices (..., m, n) of full rank, as np.linalg.pinv: through QR
    (R^-1 Q^T, or Q R^-T from the QR of a^T when m < n). A matrix of lower rank gives inf or NaN
    (no singular value cut-off: `rcond` must stay None).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.linalg.pinv, (av.Arg((3, 1)),))
    >>> f(np.array([[1.0], [2.0], [2.0]])) * 9.0
    array([[1., 2., 2.]])
    """
    if rcond is not None or hermitian:
        raise NotImplementedError("pinv: `rcond` and `hermitian` need singular values with a "
                                  "cut-off, which are not supported; pinv of a matrix of full "
                                  "rank takes neither")
    a = _matrix("pinv", a)
    m = a.shape[-2]
    return _qr_solve(a, np.broadcast_to(np.eye(m, dtype=a.dtype.np), a.shape[:-2] + (m, m)))


class LstsqResult(NamedTuple):
    """What `lstsq` returns, as NumPy's tuple."""

    x: Tensor
    residuals: Tensor
    rank: Tensor
    s: Tensor


def lstsq(a, b, rcond=None) -> LstsqResult:
    """The least-squares solution of a @ x = b for `a` (m, n) of full rank, as np.linalg.lstsq:
    (x, residuals, rank, s). x through QR (`qr`: R x = Q^T b; the least-norm solution from the
    QR of a^T when m < n), whose error grows as cond(a) (the normal equations' as cond(a)^2);
    derivatives of every order, through the QR op's rules. residuals: the squared norms of
    the columns of b - a @ x when m > n (shape (k,), (1,) for 1-D b), else empty (full rank
    assumed: NumPy also gives none below it). s: the singular values, descending, as the square
    roots of the eigenvalues of the Gram matrix (accurate relative to the largest); rank: how
    many exceed rcond * max(m, n) * s[0] (rcond None: the machine epsilon), an int64 Tensor.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda a, b: anp.linalg.lstsq(a, b)[0],
    ...                          (av.Arg((3, 2)), av.Arg(3)))
    >>> (f(np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]), np.array([1.0, 2.0, 4.0])) * 6).round(9)
    array([5., 9.])
    """
    a, b = _matrix("lstsq", a), T._float(as_tensor(b))
    if a.ndim != 2 or b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ValueError(f"lstsq: `a` (m, n) and `b` (m,) or (m, k) expected, got shapes "
                         f"{a.shape} and {b.shape}")
    m, n = a.shape
    column = b.reshape(m, 1) if b.ndim == 1 else b
    x = _qr_solve(a, column)
    if m > n:
        residuals = ((column - a @ x) ** 2).sum(axis=0)
    else:
        residuals = T.as_tensor(np.zeros(0, a.dtype.np))
    t = swapaxes(a, -1, -2)
    gram = t @ a if m >= n else a @ t
    s = sqrt(maximum(eigvalsh(gram), 0.0))[::-1]
    cutoff = (np.finfo(a.dtype.np).eps if rcond is None else float(rcond)) * max(m, n)
    rank = (s > cutoff * s[0]).astype(np.int64).sum()
    return LstsqResult(x.reshape(n) if b.ndim == 1 else x, residuals, rank, s)


def norm(x, ord=None, axis=None, keepdims: bool = False) -> Tensor:
    """Vector norms (`ord` None or 2, 1, inf, -inf, 0, any p) over one axis, and the
    Frobenius, 1 and inf norms of matrices over two, as np.linalg.norm.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.linalg.norm(x, 1), (av.Arg(3),))
    >>> float(f(np.array([1.0, -2.0, 3.0])))
    6.0
    """
    x = T._float(as_tensor(x))
    if axis is None:
        if ord is None:
            out = sqrt((x * x).sum())
            return out.reshape((1,) * x.ndim) if keepdims else out
        if x.ndim not in (1, 2):
            raise ValueError(f"norm: improper number of dimensions to norm ({x.ndim}) for "
                             f"ord={ord!r}; pass axis")
        axis = tuple(range(x.ndim))
    axes = tuple(T._axis(a, x.ndim) for a in (axis if isinstance(axis, (tuple, list))
                                                else (axis,)))
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes, keepdims)
    raise ValueError(f"norm: improper number of axes {axis}")


def _vector_norm(x: Tensor, ord, axis: int, keepdims: bool) -> Tensor:
    if ord is None or ord == 2:
        return sqrt((x * x).sum(axis, keepdims))
    if ord == np.inf:
        return abs(x).max(axis, keepdims)
    if ord == -np.inf:
        return abs(x).min(axis, keepdims)
    if ord == 0:
        return (x != 0).astype(x.dtype.np).sum(axis, keepdims)
    if ord == 1:
        return abs(x).sum(axis, keepdims)
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")  # noqa: TRY004
    return (abs(x) ** float(ord)).sum(axis, keepdims) ** (1.0 / float(ord))


def _matrix_norm(x: Tensor, ord, axes: tuple, keepdims: bool) -> Tensor:
    rows, cols = axes
    if ord in (None, "fro"):
        out = sqrt((x * x).sum(axes, keepdims=True))
    elif ord in (1, -1, np.inf, -np.inf):
        summed, reduced = (rows, cols) if ord in (1, -1) else (cols, rows)
        sums = abs(x).sum(summed, keepdims=True)
        out = sums.max(reduced, keepdims=True) if ord > 0 else sums.min(reduced, keepdims=True)
    else:
        raise NotImplementedError(f"norm: ord={ord!r} of a matrix needs singular values, which "
                                  "are not supported yet; use 'fro', 1 or inf")
    return out if keepdims else out.reshape(tuple(d for i, d in enumerate(out.shape)
                                                  if i not in axes))


def multi_dot(arrays, *, out=None) -> Tensor:
    """The product of a chain of matrices (the first and last may be vectors), as
    np.linalg.multi_dot, multiplied in the order that needs the fewest operations.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda a: anp.linalg.multi_dot([a, a, a[0]]),
    ...                          (av.Arg((2, 2)),))
    >>> f(np.array([[1.0, 1.0], [0.0, 1.0]]))
    array([3., 1.])
    """
    if out is not None:
        raise TypeError("multi_dot: out= is not supported (a NumPy array cannot hold a traced "
                        "value)")
    items = [as_tensor(a) for a in arrays]
    if len(items) < 2:
        raise ValueError(f"multi_dot: expected at least two arrays, got {len(items)}")
    first, last = items[0].ndim == 1, items[-1].ndim == 1
    if first:
        items[0] = items[0].reshape(1, -1)
    if last:
        items[-1] = items[-1].reshape(-1, 1)
    dims = [items[0].shape[0]] + [m.shape[1] for m in items]
    order = _chain_order(dims)
    result = _chain(items, order, 0, len(items) - 1)
    return result.reshape(result.shape[int(first):2 - int(last)])


def _chain_order(dims: list[int]) -> dict:
    """The split of each sub-chain i..j minimising the operations (matrix chain order)."""
    n = len(dims) - 1
    cost = {(i, i): 0 for i in range(n)}
    split = {}
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i, j], split[i, j] = min((cost[i, k] + cost[k + 1, j]
                                           + dims[i] * dims[k + 1] * dims[j + 1], k)
                                          for k in range(i, j))
    return split


def _chain(items: list, split: dict, i: int, j: int) -> Tensor:
    if i == j:
        return items[i]
    k = split[i, j]
    return _chain(items, split, i, k) @ _chain(items, split, k + 1, j)


def matrix_power(a, n: int) -> Tensor:
    """Square matrices (..., m, m) to the integer power `n` by repeated squaring (negative `n`:
    of the inverse), as np.linalg.matrix_power.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda a: anp.linalg.matrix_power(a, 3), (av.Arg((2, 2)),))
    >>> f(np.array([[1.0, 1.0], [0.0, 1.0]]))
    array([[1., 3.],
           [0., 1.]])
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"matrix_power: exponent must be an integer, got {type(n).__name__}")
    a = as_tensor(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"matrix_power: `a` must be square over its last two axes, got shape "
                         f"{a.shape}")
    if n < 0:
        a, n = inv(a), -n
    result, square = None, a
    while n:
        if n & 1:
            result = square if result is None else result @ square
        n >>= 1
        if n:
            square = square @ square
    if result is None:
        return as_tensor(np.broadcast_to(np.eye(a.shape[-1], dtype=a.dtype.np), a.shape))
    return result


# ---- the array API's names in np.linalg: NumPy's functions over the last axes ------------------
LinAlgError = np.linalg.LinAlgError
matmul = T.matmul
tensordot = _products.tensordot
matrix_transpose = _products.matrix_transpose


def cross(x1, x2, /, *, axis: int = -1) -> Tensor:
    """The cross product of 3-vectors along `axis`, as np.linalg.cross."""
    return _products.cross(x1, x2, axis)


def vecdot(x1, x2, /, *, axis: int = -1) -> Tensor:
    """The dot products of vectors along `axis` (batch axes broadcast), as np.linalg.vecdot."""
    return _products.vecdot(x1, x2, axis)


def outer(x1, x2, /) -> Tensor:
    """x1[i] * x2[j] of two vectors, as np.linalg.outer (which takes 1-D arrays only)."""
    x1, x2 = as_tensor(x1), as_tensor(x2)
    if x1.ndim != 1 or x2.ndim != 1:
        raise ValueError(f"outer: expected two 1-D arrays, got shapes {x1.shape} and "
                         f"{x2.shape}")
    return _products.outer(x1, x2)


def diagonal(x, /, *, offset: int = 0) -> Tensor:
    """The `offset`-th diagonals of the matrices over the last two axes, as
    np.linalg.diagonal.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.linalg.diagonal(x), (av.Arg((2, 2, 2)),))
    >>> f(np.arange(8.0).reshape(2, 2, 2))
    array([[0., 3.],
           [4., 7.]])
    """
    return _shapes.diagonal(x, offset, -2, -1)


def trace(x, /, *, offset: int = 0) -> Tensor:
    """The sums of the `offset`-th diagonals of the matrices over the last two axes, as
    np.linalg.trace."""
    return _shapes.trace(x, offset, -2, -1)


def vector_norm(x, /, *, axis=None, keepdims: bool = False, ord=2) -> Tensor:
    """Vector norms over `axis` (None: all elements; a tuple: those axes as one vector), as
    np.linalg.vector_norm; `ord` as in `norm`.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.linalg.vector_norm(x, ord=1),
    ...                          (av.Arg((2, 2)),))
    >>> float(f(np.array([[1.0, -2.0], [3.0, -4.0]])))
    10.0
    """
    x = T._float(as_tensor(x))
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        T._axis(a, x.ndim) for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))
    if len(set(axes)) != len(axes):
        raise ValueError(f"vector_norm: repeated axis in {axis}")
    rest = [k for k in range(x.ndim) if k not in axes]
    flat = _shapes.transpose(x, rest + list(axes)).reshape(
        tuple(x.shape[k] for k in rest) + (-1,))
    out = _vector_norm(flat, ord, flat.ndim - 1, False)
    if keepdims:
        out = out.reshape(tuple(1 if k in axes else n for k, n in enumerate(x.shape)))
    return out


def matrix_norm(x, /, *, keepdims: bool = False, ord="fro") -> Tensor:
    """Norms of the matrices over the last two axes (`ord` "fro", 1, -1, inf, -inf), as
    np.linalg.matrix_norm."""
    return norm(x, ord, (-2, -1), keepdims)


__all__ = ["EighResult", "LinAlgError", "LstsqResult", "QRResult", "SlogdetResult",
           "cho_solve", "cholesky", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv",
           "lstsq", "matmul", "matrix_norm", "matrix_power", "matrix_transpose", "multi_dot",
           "norm", "outer", "pinv", "qr", "slogdet", "solve", "solve_triangular", "tensordot",
           "trace", "vecdot", "vector_norm"]


def __dir__() -> list[str]:
    """The public functions and result types only (not the helpers this module imports)."""
    return sorted(__all__)


def __getattr__(name: str):
    """np.linalg's functions that cannot trace yet: a function raising NotImplementedError with
    what to write instead."""
    if name in _LINALG_HINTS:
        return _refusal(name, _LINALG_HINTS, "np.linalg.")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
