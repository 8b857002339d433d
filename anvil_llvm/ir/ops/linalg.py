"""Dense linear algebra as ops of their own, every axis before the last two a batch:

- SOLVE(A, B) = A^-1 B for square A (..., n, n) and right sides B (..., n, k): Gaussian
  elimination with partial pivoting;
- TRISOLVE(T, B) = op(T)^-1 B for triangular T, op(T) = T or T^T (arg `(lower, trans)`):
  substitution, reading only T's triangle;
- SLOGDET(A) = (sign, log|det A|) packed on a last axis of 2: the same elimination;
- CHOLESKY(A) = L, lower, with L L^T = A, reading only A's lower triangle (as NumPy);
- EIGH(A) = (w, V) packed as (..., n + 1, n): the eigenvalues, ascending, over the
  eigenvectors' matrix (columns), of the symmetric matrix whose lower triangle is A's: Jacobi
  rotations (slow from n ~ 32 on: O(n^3) per sweep);
- QR(A) = (Q, R) packed as (..., m + n, n) for A (..., m, n), m >= n: Q (m, n) with orthonormal
  columns over upper triangular R (n, n), A = Q R: Householder reflections with LAPACK's signs.

Each lowers to a sequential kernel in native loops (no LAPACK, so it also exports); in code for
this process (the JIT, where SciPy's BLAS and LAPACK are bound: `Schedule.lapack`), matrices
from `LAPACK_FROM[op]` rows on call LAPACK instead (getrf/getrs, trsm, potrf, syevd), with the
same conventions. Each differentiates by the matrix-calculus rules, written with these ops
again, so every order of derivative and vmap compose.
"""
from __future__ import annotations

import numpy as np

from ..._lazy import scipy_sparse as sp
from ..uop import Linearity, OpDef, OpKind, UOp
from .source import const_array


# ---- shapes and dtypes ----------------------------------------------------------------------------
def _square(name: str, shape: tuple) -> None:
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name}: the matrix must be square, got shape {shape}")


def _solve_shape(name: str):
    def shape(shapes, arg):
        a, b = shapes
        _square(name, a)
        if len(b) != len(a) or b[:-2] != a[:-2] or b[-2] != a[-1]:
            raise ValueError(f"{name}: right sides of shape {b} do not fit a matrix of shape "
                             f"{a} (expected its batch axes, then (n, k))")
        return b
    return shape


def _matrix_shape(name: str, result):
    def shape(shapes, arg):
        (a,) = shapes
        _square(name, a)
        return a[:-2] + result(a[-1])
    return shape


def _float_dtype(name: str):
    def dtype(dts, arg):
        if len(set(dts)) != 1 or not dts[0].is_float:
            raise TypeError(f"{name}: the operands must share a float dtype, got {dts}")
        return dts[0]
    return dtype


# ---- NumPy references (the kernels' algorithms where NumPy raises) --------------------------------
def _per_matrix(fn, *arrays: np.ndarray) -> np.ndarray:
    """`fn` on each batch matrix (the last two axes of every array), stacked back."""
    lead = arrays[0].shape[:-2]
    flat = [a.reshape((-1,) + a.shape[-2:]) for a in arrays]
    results = [fn(*parts) for parts in zip(*flat)]
    return np.stack(results).reshape(lead + results[0].shape) if results else \
        np.zeros(lead + fn(*(np.eye(a.shape[-1]) for a in arrays)).shape)


def _solve_numpy(arg, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NumPy's solve, with what the elimination gives (inf/NaN) for a singular matrix."""
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        with np.errstate(all="ignore"):
            return _per_matrix(_eliminate_numpy, a, b)


def _eliminate_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Gaussian elimination with partial pivoting, the kernel's algorithm (a zero pivot skips
    its column, as LAPACK's getrf)."""
    lu, x = a.copy(), b.copy()
    n = lu.shape[0]
    for c in range(n):
        p = c + int(np.argmax(np.abs(lu[c:, c])))
        lu[[c, p]], x[[c, p]] = lu[[p, c]], x[[p, c]]
        if lu[c, c] != 0:
            f = lu[c + 1:, c:c + 1] / lu[c, c]
            lu[c + 1:, c:] -= f * lu[c, c:]
            x[c + 1:] -= f * x[c]
    for c in reversed(range(n)):
        x[c] /= lu[c, c]
        x[:c] -= np.outer(lu[:c, c], x[c])
    return x


def _trisolve_numpy(arg, t: np.ndarray, b: np.ndarray) -> np.ndarray:
    lower, trans = arg
    m = np.tril(t) if lower else np.triu(t)
    m = np.swapaxes(m, -1, -2) if trans else m
    with np.errstate(all="ignore"):
        return _per_matrix(lambda m, b: _substitute_numpy(m, b, lower != trans), m, b)


def _substitute_numpy(m: np.ndarray, b: np.ndarray, lower: bool) -> np.ndarray:
    x = b.copy()
    n = m.shape[0]
    for c in range(n) if lower else reversed(range(n)):
        x[c] /= m[c, c]
        rest = slice(c + 1, n) if lower else slice(0, c)
        x[rest] -= np.outer(m[rest, c], x[c])
    return x


def _slogdet_numpy(arg, a: np.ndarray) -> np.ndarray:
    sign, logdet = np.linalg.slogdet(a)
    return np.stack([sign, logdet], axis=-1)


def _symmetric(a: np.ndarray) -> np.ndarray:
    """The symmetric matrices whose lower triangles are `a`'s (what NumPy's cholesky and eigh
    read)."""
    lower = np.tril(a)
    return lower + np.swapaxes(np.tril(a, -1), -1, -2)


def _cholesky_numpy(arg, a: np.ndarray) -> np.ndarray:
    """NumPy's cholesky; all NaN for a matrix that is not positive definite (where NumPy
    raises) and for one with a NaN pivot."""
    def one(m):
        try:
            l = np.linalg.cholesky(m)
        except np.linalg.LinAlgError:
            return np.full_like(m, np.nan)
        return np.full_like(m, np.nan) if np.isnan(np.diagonal(l)).any() else l
    return _per_matrix(one, _symmetric(a))


def _signed(v: np.ndarray) -> np.ndarray:
    """Eigenvectors (columns) with the sign convention of EIGH: the entry of largest
    magnitude (the first of equal ones) positive."""
    largest = np.take_along_axis(v, np.argmax(np.abs(v), axis=-2)[..., None, :], axis=-2)
    return v * np.where(largest < 0, -1.0, 1.0)


def _eigh_numpy(arg, a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return np.concatenate([w[..., None, :], _signed(v)], axis=-2)


# ---- graph helpers for the rules ------------------------------------------------------------------
def solve(a: UOp, b: UOp) -> UOp:
    return UOp(SOLVE, (a, b))


def trisolve(t: UOp, b: UOp, lower: bool = True, trans: bool = False) -> UOp:
    """op(t)^-1 b, op(t) = t or t^T, reading t's lower (or upper) triangle only."""
    return UOp(TRISOLVE, (t, b), (bool(lower), bool(trans)))


def _transpose(B, a: UOp) -> UOp:
    return B.permute(a, tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))


def _matmul(B, x: UOp, y: UOp) -> UOp:
    """Batched x @ y for x (..., n, m), y (..., m, k)."""
    batch = tuple(range(x.ndim - 2))
    return B.contract(x, y, (x.ndim - 1,), (y.ndim - 2,), batch, batch)


def _weighted(B, x: UOp | None, weights: np.ndarray) -> UOp | None:
    """x times constant weights over its last two axes (masks: triangles, halved diagonals)."""
    if x is None:
        return None
    return B.mul(x, B.broadcast_to(const_array(weights.astype(x.dtype.np)), x.shape))


def _lower(n: int, diagonal: float = 1.0, strict: bool = False) -> np.ndarray:
    return np.tril(np.ones((n, n)), -1) + (0.0 if strict else diagonal) * np.eye(n)


def _from_lower(B, x: UOp | None) -> UOp | None:
    """The symmetric tangent of a symmetric matrix read from its lower triangle:
    tril(x) + tril(x, -1)^T."""
    if x is None:
        return None
    n = x.shape[-1]
    return B.add(_weighted(B, x, _lower(n)), _transpose(B, _weighted(B, x, _lower(n, strict=True))))


def _to_lower(B, g: UOp) -> UOp:
    """The transpose of `_from_lower`: tril(g) + tril(g^T, -1)."""
    n = g.shape[-1]
    return B.add(_weighted(B, g, _lower(n)), _weighted(B, _transpose(B, g), _lower(n, strict=True)))


def _identity(B, like: UOp) -> UOp:
    n = like.shape[-1]
    return B.broadcast_to(const_array(np.eye(n, dtype=like.dtype.np)), like.shape)


def _part(B, packed: UOp, index: int, count: int = 1, axis: int = -1) -> UOp:
    """`count` entries from `index` on along `axis` of a packed result: the log|det| of a
    SLOGDET result, the eigenvalues or eigenvectors of an EIGH result."""
    axis %= packed.ndim
    spec = tuple((index, 1, count) if a == axis else (0, 1, d) for a, d in enumerate(packed.shape))
    return B.slice_(packed, spec)


def _batch(B, node, sources, batched):
    """Every op here takes leading batch axes: broadcast the unbatched sources."""
    size = next(s.shape[0] for s, f in zip(sources, batched) if f)
    srcs = tuple(s if f else B.broadcast_to(s, (size,) + s.shape) for s, f in zip(sources, batched))
    return UOp(node.op, srcs, node.arg)


# ---- solve ----------------------------------------------------------------------------------------
def _solve_jvp(B, node, tangents):
    ta, tb = tangents
    if ta is None and tb is None:
        return None
    rhs = tb
    if ta is not None:
        rhs = B.sub(B.materialise(tb, node), _matmul(B, ta, node))
    return solve(node.src[0], rhs)


def _solve_vjp(B, node, ct):
    cb = solve(_transpose(B, node.src[0]), ct)
    return (B.neg(_matmul(B, cb, _transpose(B, node))), cb)


def _trisolve_jvp(B, node, tangents):
    (t, _), (tt, tb) = node.src, tangents
    lower, trans = node.arg
    if tt is None and tb is None:
        return None
    rhs = tb
    if tt is not None:
        n = t.shape[-1]
        tri = _weighted(B, tt, _lower(n) if lower else _lower(n).T)
        rhs = B.sub(B.materialise(tb, node), _matmul(B, _transpose(B, tri) if trans else tri,
                                                     node))
    return UOp(TRISOLVE, (t, rhs), node.arg)


def _trisolve_vjp(B, node, ct):
    t = node.src[0]
    lower, trans = node.arg
    cb = UOp(TRISOLVE, (t, ct), (lower, not trans))
    outer = _matmul(B, node, _transpose(B, cb)) if trans else _matmul(B, cb, _transpose(B, node))
    n = t.shape[-1]
    return (B.neg(_weighted(B, outer, _lower(n) if lower else _lower(n).T)), cb)


# ---- slogdet: d log|det A| = tr(A^-1 dA) = <A^-T, dA> ---------------------------------------------
def _logdet_gradient(B, a: UOp) -> UOp:
    return solve(_transpose(B, a), _identity(B, a))


def _slogdet_jvp(B, node, tangents):
    (ta,) = tangents
    if ta is None:
        return None
    a = node.src[0]
    trace = B.reduce_sum(B.mul(_logdet_gradient(B, a), ta), (a.ndim - 2, a.ndim - 1))
    widths = ((0, 0),) * (node.ndim - 1) + ((1, 0),)
    return B.pad(B.reshape(trace, trace.shape + (1,)), widths)


def _slogdet_vjp(B, node, ct):
    a = node.src[0]
    scale = B.reshape(_part(B, ct, 1), a.shape[:-2] + (1, 1))
    return (B.mul(B.broadcast_to(scale, a.shape), _logdet_gradient(B, a)),)


# ---- cholesky: dL = L Phi(L^-1 dS L^-T), Phi the lower triangle with its diagonal halved ----------
def _times_inverse(B, x: UOp, t: UOp, trans: bool, lower: bool = True) -> UOp:
    """x T^-1 (trans False) or x T^-T (trans True) for triangular T, lower or upper."""
    return _transpose(B, trisolve(t, _transpose(B, x), lower, not trans))


def _cholesky_jvp(B, node, tangents):
    (ta,) = tangents
    if ta is None:
        return None
    n = node.shape[-1]
    inner = _times_inverse(B, trisolve(node, _from_lower(B, ta)), node, True)
    return _matmul(B, node, _weighted(B, inner, _lower(n, 0.5)))


def _cholesky_vjp(B, node, ct):
    n = node.shape[-1]
    phi = _weighted(B, _matmul(B, _transpose(B, node), ct), _lower(n, 0.5))
    g = _times_inverse(B, trisolve(node, phi, True, True), node, False)
    return (_to_lower(B, g),)


# ---- eigh: dw = diag(V^T dS V), dV = V (F o V^T dS V), F[i, j] = 1 / (w[j] - w[i]) off the diagonal
def _eigen_parts(B, node: UOp) -> tuple[UOp, UOp, UOp]:
    """The eigenvalues (..., n), eigenvectors (..., n, n) and F of an EIGH result."""
    n = node.shape[-1]
    w = B.reshape(_part(B, node, 0, 1, axis=-2), node.shape[:-2] + (n,))
    v = _part(B, node, 1, n, axis=-2)
    square = node.shape[:-2] + (n, n)
    gaps = B.sub(B.broadcast_to(B.reshape(w, w.shape[:-1] + (1, n)), square),
                 B.broadcast_to(B.reshape(w, w.shape + (1,)), square))
    eye = np.eye(n)
    safe = B.add(gaps, B.broadcast_to(const_array(eye.astype(node.dtype.np)), square))
    return w, v, _weighted(B, B.div(B.scalar(1, safe), safe), 1.0 - eye)


def _eigh_jvp(B, node, tangents):
    (ta,) = tangents
    if ta is None:
        return None
    _, v, f = _eigen_parts(B, node)
    m = _matmul(B, _matmul(B, _transpose(B, v), _from_lower(B, ta)), v)
    n = node.shape[-1]
    dw = B.reduce_sum(_weighted(B, m, np.eye(n)), (m.ndim - 2,))
    dv = _matmul(B, v, B.mul(f, m))
    return B.concat([B.reshape(dw, dw.shape[:-1] + (1, n)), dv], node.ndim - 2)


def _eigh_vjp(B, node, ct):
    _, v, f = _eigen_parts(B, node)
    n = node.shape[-1]
    cw = _part(B, ct, 0, 1, axis=-2)
    inner = B.add(_weighted(B, B.broadcast_to(cw, v.shape), np.eye(n)),
                  B.mul(f, _matmul(B, _transpose(B, v), _part(B, ct, 1, n, axis=-2))))
    return (_to_lower(B, _matmul(B, _matmul(B, v, inner), _transpose(B, v))),)


# ---- qr: with C = Q^T dA R^-1 and U = triu(C) + tril(C, -1)^T, dR = U R, dQ = dA R^-1 - Q U ---
def _qr_parts(B, node: UOp) -> tuple[UOp, UOp]:
    """Q (..., m, n) and R (..., n, n) of a QR result."""
    n = node.shape[-1]
    m = node.shape[-2] - n
    return _part(B, node, 0, m, axis=-2), _part(B, node, m, n, axis=-2)


def _upper_symmetric(B, x: UOp, strict_upper: bool) -> UOp:
    """triu(x) + tril(x, -1)^T (from x's strict lower triangle, `strict_upper` False) or
    triu(x) + triu(x, 1)^T (from its strict upper one, True)."""
    n = x.shape[-1]
    strict = _lower(n, strict=True)
    mirrored = _weighted(B, x, strict.T if strict_upper else strict)
    return B.add(_weighted(B, x, _lower(n).T), _transpose(B, mirrored))


def _qr_jvp(B, node, tangents):
    (ta,) = tangents
    if ta is None:
        return None
    q, r = _qr_parts(B, node)
    da_rinv = _times_inverse(B, ta, r, False, lower=False)
    u = _upper_symmetric(B, _matmul(B, _transpose(B, q), da_rinv), False)
    dq = B.sub(da_rinv, _matmul(B, q, u))
    return B.concat([dq, _matmul(B, u, r)], node.ndim - 2)


def _qr_vjp(B, node, ct):
    """The transpose of `_qr_jvp`: (Qbar - Q S) R^-T, S = triu(M) + triu(M, 1)^T for
    M = Q^T Qbar - Rbar R^T."""
    q, r = _qr_parts(B, node)
    cq, cr = _qr_parts(B, ct)
    m = B.sub(_matmul(B, _transpose(B, q), cq), _matmul(B, cr, _transpose(B, r)))
    inner = B.sub(cq, _matmul(B, q, _upper_symmetric(B, m, True)))
    return (_times_inverse(B, inner, r, True, lower=False),)


# ---- sparsity: per batch matrix -------------------------------------------------------------------
def _batches(node: UOp) -> int:
    return int(np.prod(node.shape[:-2], dtype=np.int64)) if node.op is not SLOGDET else \
        int(np.prod(node.shape[:-1], dtype=np.int64))


def _blocks(batches: int, block: np.ndarray):
    """The block-diagonal pattern of `batches` copies of `block`."""
    return sp.csr_array(sp.kron(sp.eye(batches, dtype=np.int8), sp.csr_array(block)).astype(bool))


def _reads(block: np.ndarray, node: UOp, live: np.ndarray) -> np.ndarray:
    """Per batch matrix, the source elements (block's columns) its live outputs read."""
    rows = np.asarray(live).reshape(_batches(node), -1).astype(np.int64)
    return (rows @ block.astype(np.int64)) > 0


def _outer(left: np.ndarray, right: np.ndarray):
    """Per batch b, every element of left[b] with every element of right[b], as one pattern."""
    b, i, j = np.nonzero(left[:, :, None] & right[:, None, :])
    (batches, width_l), width_r = left.shape, right.shape[1]
    return sp.csr_array((np.ones(b.size, bool), (b * width_l + i, b * width_r + j)),
                        shape=(batches * width_l, batches * width_r))


def _solve_blocks(node: UOp) -> tuple[np.ndarray, np.ndarray]:
    """Per batch matrix: X[i, j] reads the matrix (all of it for SOLVE, the part of the
    triangle that substitution reaches for TRISOLVE) and B[:, j] (to row i from the first
    substituted row)."""
    n, k = node.shape[-2:]
    a = np.ones((n, k, n, n), bool)
    b_rows = np.ones((n, n), bool)
    if node.op is TRISOLVE:
        lower, trans = node.arg
        b_rows = np.tri(n, dtype=bool) if lower != trans else np.tri(n, dtype=bool).T
        # M[p, q], M = op(T): rows p reached from row i, within M's triangle
        a = b_rows[:, None, :, None] & b_rows[None, None, :, :]
        a = np.broadcast_to(a, (n, k, n, n))
        if trans:
            a = np.swapaxes(a, -1, -2)
    b = b_rows[:, None, :, None] & np.eye(k, dtype=bool)[None, :, None, :]
    return a.reshape(n * k, n * n), b.reshape(n * k, n * k)


def _solve_dependence(node: UOp) -> list:
    a, b = _solve_blocks(node)
    return [_blocks(_batches(node), a), _blocks(_batches(node), b)]


def _solve_pairs(node: UOp, live: np.ndarray) -> list:
    """The matrix's entries interact with each other and with the right sides' (X is nonlinear
    in the matrix, bilinear in the two), within each batch matrix, as far as live outputs read
    them."""
    a, b = (_reads(block, node, live) for block in _solve_blocks(node))
    return [(0, 0, _outer(a, a)), (0, 1, _outer(a, b))]


def _cholesky_block(n: int) -> np.ndarray:
    """L[i, j] (j <= i) reads A[p, q] with q <= p, q <= j, and p <= j or p == i."""
    i, j, p, q = np.ix_(*(np.arange(n),) * 4)
    block = (j <= i) & (q <= p) & (q <= j) & ((p <= j) | (p == i))
    return block.reshape(n * n, n * n)


def _matrix_dependence(block):
    def dependence(node: UOp) -> list:
        return [_blocks(_batches(node), block(node))]
    return dependence


def _matrix_pairs(block):
    def pairs(node: UOp, live: np.ndarray) -> list:
        read = _reads(block(node), node, live)
        return [(0, 0, _outer(read, read))]
    return pairs


def _slogdet_block(node: UOp) -> np.ndarray:
    return np.ones((2, node.src[0].shape[-1] ** 2), bool)


def _cholesky_read(node: UOp) -> np.ndarray:
    return _cholesky_block(node.shape[-1])


def _eigh_read(node: UOp) -> np.ndarray:
    """Every result reads all of A's lower triangle."""
    n = node.shape[-1]
    return np.broadcast_to(np.tri(n, dtype=bool).ravel(), ((n + 1) * n, n * n))


def _qr_read(node: UOp) -> np.ndarray:
    """Q[i, j] reads A's columns 0..j; R[i, j] = Q[:, i]^T A[:, j] (i <= j; below the diagonal
    nothing) its columns 0..i and j."""
    m, n = node.src[0].shape[-2:]
    row, j, q = np.ix_(np.arange(m + n), np.arange(n), np.arange(n))
    i = row - m
    block = np.where(row < m, q <= j, (i <= j) & ((q <= i) | (q == j)))
    return np.broadcast_to(block[:, :, None, :], (m + n, n, m, n)).reshape((m + n) * n, m * n)


# ---- lowering: sequential kernels -----------------------------------------------------------------
class _Code:
    """What a sequential kernel is written with: row-major matrices at pointers, counted loops
    (also with bounds known only at run time), branches, scalar slots (allocas, registers after
    LLVM's mem2reg)."""

    def __init__(self, ctx, dtype):
        self.ctx, self.e, self.ty = ctx, ctx.e, dtype.llvm
        self.suffix = "f64" if self.ty == "double" else "f32"

    def loop(self, count: int, hint: str):
        return self.ctx.loop(count, hint)

    def range(self, start: str, stop: str, bound: int, hint: str):
        """A loop over start <= i < stop (run-time values within 0..bound); returns (i, close)."""
        return self.ctx.range(start, stop, bound, hint)

    def batch(self, node: UOp):
        """The loop over the batch matrices of `node`; returns (batch number, close)."""
        return self.loop(_batches(node), "batch")

    def matrix(self, base: str, row: str, size: int) -> str:
        """The start of batch matrix `row` of `size` elements each at `base`."""
        return self.ptr(base, self.e.mul_i(row, str(size)))

    def ptr(self, base: str, offset: str) -> str:
        return base if offset == "0" else \
            self.e.op(f"getelementptr inbounds {self.ty}, ptr {base}, i64 {offset}")

    def at(self, base: str, i: str, j: str, width: int) -> str:
        return self.ptr(base, self.e.add_i(self.e.mul_i(i, str(width)), j))

    def load(self, ptr: str, ty: str | None = None) -> str:
        return self.e.op(f"load {ty or self.ty}, ptr {ptr}")

    def store(self, value: str, ptr: str, ty: str | None = None) -> None:
        self.e.line(f"store {ty or self.ty} {value}, ptr {ptr}")

    def arith(self, op: str, a: str, b: str) -> str:
        return self.e.op(f"{op} {self.ty} {a}, {b}")

    def cmp(self, predicate: str, a: str, b: str) -> str:
        return self.e.op(f"fcmp {predicate} {self.ty} {a}, {b}")

    def math(self, name: str, *xs: str) -> str:
        return self.e.call(self.ty, f"llvm.{name}.{self.suffix}", [(self.ty, x) for x in xs])

    def select(self, condition: str, a: str, b: str, ty: str | None = None) -> str:
        return self.e.op(f"select i1 {condition}, {ty or self.ty} {a}, {ty or self.ty} {b}")

    def slot(self, value: str, ty: str | None = None) -> str:
        slot = self.e.alloca(ty or self.ty)
        self.store(value, slot, ty)
        return slot

    def when(self, condition: str, body) -> None:
        def run() -> str:
            body()
            return "true"
        self.ctx.guarded(condition, run, "false", "i1")

    def copy(self, dst: str, src: str, count: int) -> None:
        self.e.declare("llvm.memcpy.p0.p0.i64", "void", ["ptr", "ptr", "i64", "i1"])
        size = 8 if self.ty == "double" else 4
        self.e.line(f"call void @llvm.memcpy.p0.p0.i64(ptr {dst}, ptr {src}, "
                    f"i64 {count * size}, i1 false)")

    def axpy(self, base: str, target: str, source: str, factor: str, first: str, width: int,
             other: str | None = None) -> None:
        """Row `target` of `base` -= factor * row `source` of `other` (or `base`), from column
        `first` on."""
        j, close = self.range(first, str(width), width, "axpy")
        place = self.at(base, target, j, width)
        product = self.arith("fmul", factor, self.load(self.at(other or base, source, j, width)))
        self.store(self.arith("fsub", self.load(place), product), place)
        close()

    def scale_row(self, base: str, row: str, divisor: str, width: int) -> None:
        j, close = self.loop(width, "scale")
        place = self.at(base, row, j, width)
        self.store(self.arith("fdiv", self.load(place), divisor), place)
        close()

    def swap(self, base: str, r1: str, r2: str, width: int, columns: bool = False) -> None:
        """Swap rows (or columns) r1 and r2 of the matrix of `width` columns (rows: square)."""
        j, close = self.loop(width, "swap")
        p1, p2 = ((self.at(base, j, r1, width), self.at(base, j, r2, width)) if columns else
                  (self.at(base, r1, j, width), self.at(base, r2, j, width)))
        v1, v2 = self.load(p1), self.load(p2)
        self.store(v2, p1)
        self.store(v1, p2)
        close()


def _eliminate(code: _Code, lu: str, n: int, rhs: list, on_pivot=None) -> None:
    """Forward elimination with partial pivoting of the n x n matrix at `lu` (in place, to U
    above its diagonal), the row operations applied to each `(pointer, width)` of `rhs`;
    `on_pivot(column, pivot row, pivot)` sees each pivot after its swap. A zero pivot skips its
    column (LAPACK's getrf does the same): no NaN from 0/0 below it."""
    c, close_columns = code.loop(n, "pivot")
    best = code.slot(c, "i64")
    best_value = code.slot(code.math("fabs", code.load(code.at(lu, c, c, n))))
    next_row = code.e.add_i(c, "1")
    i, close_search = code.range(next_row, str(n), n, "search")
    value = code.math("fabs", code.load(code.at(lu, i, c, n)))
    better = code.cmp("ogt", value, code.load(best_value))
    code.store(code.select(better, i, code.load(best, "i64"), "i64"), best, "i64")
    code.store(code.select(better, value, code.load(best_value)), best_value)
    close_search()
    p = code.load(best, "i64")
    code.when(code.e.op(f"icmp ne i64 {p}, {c}"), lambda: [
        code.swap(base, c, p, width) for base, width in ((lu, n), *rhs)])
    pivot = code.load(code.at(lu, c, c, n))
    if on_pivot is not None:
        on_pivot(c, p, pivot)

    def below():
        r, close_below = code.range(next_row, str(n), n, "below")
        factor = code.arith("fdiv", code.load(code.at(lu, r, c, n)), pivot)
        code.axpy(lu, r, c, factor, next_row, n)
        for base, width in rhs:
            code.axpy(base, r, c, factor, "0", width)
        close_below()
    code.when(code.cmp("une", pivot, "0.0"), below)
    close_columns()


def _substitute(code: _Code, t: str, n: int, x: str, k: int, lower: bool,
                trans: bool = False) -> None:
    """x <- M^-1 x in place for triangular M = T or T^T (`trans`) at `t`, lower or upper (of
    M); x has k columns."""
    step, close = code.loop(n, "substitute")
    c = step if lower else code.e.op(f"sub nsw i64 {n - 1}, {step}")
    code.scale_row(x, c, code.load(code.at(t, c, c, n)), k)
    start, stop = (code.e.add_i(c, "1"), str(n)) if lower else ("0", c)
    r, close_rows = code.range(start, stop, n, "rows")
    factor = code.load(code.at(t, c, r, n) if trans else code.at(t, r, c, n))
    code.axpy(x, r, c, factor, "0", k)
    close_rows()
    close()


def _emit_solve(ctx, node: UOp, out: str, scratch: str) -> None:
    """Per batch matrix: A into `scratch`, B into `out`; eliminate, then substitute back."""
    if _uses_lapack(ctx, node):
        return _lapack_solve(ctx, node, out, scratch)
    code = _Code(ctx, node.dtype)
    a, b = node.src
    n, k = node.shape[-2:]
    row, close = code.batch(node)
    x = code.matrix(out, row, n * k)
    code.copy(scratch, code.matrix(ctx.start(a), row, n * n), n * n)
    code.copy(x, code.matrix(ctx.start(b), row, n * k), n * k)
    _eliminate(code, scratch, n, [(x, k)])
    _substitute(code, scratch, n, x, k, lower=False)
    close()


def _emit_trisolve(ctx, node: UOp, out: str, scratch: str) -> None:
    """Per batch matrix: B into `out`, then substitution with T read in place."""
    if _uses_lapack(ctx, node):
        return _lapack_trisolve(ctx, node, out, scratch)
    code = _Code(ctx, node.dtype)
    t, b = node.src
    lower, trans = node.arg
    n, k = node.shape[-2:]
    row, close = code.batch(node)
    x = code.matrix(out, row, n * k)
    code.copy(x, code.matrix(ctx.start(b), row, n * k), n * k)
    _substitute(code, code.matrix(ctx.start(t), row, n * n), n, x, k, lower != trans, trans)
    close()


def _emit_slogdet(ctx, node: UOp, out: str, scratch: str) -> None:
    """Per batch matrix: eliminate a copy in `scratch`; the sign flips with each row swap and
    takes each pivot's sign (0 for a zero pivot), log|det| sums log|pivot|."""
    if _uses_lapack(ctx, node):
        return _lapack_slogdet(ctx, node, out, scratch)
    code = _Code(ctx, node.dtype)
    n = node.src[0].shape[-1]
    row, close = code.batch(node)
    code.copy(scratch, code.matrix(ctx.start(node.src[0]), row, n * n), n * n)
    sign, logabs = code.slot("1.0"), code.slot("0.0")

    def on_pivot(c: str, p: str, pivot: str) -> None:
        _pivot_sign(code, sign, logabs, code.e.op(f"icmp ne i64 {p}, {c}"), pivot)
    _eliminate(code, scratch, n, [], on_pivot)
    result = code.matrix(out, row, 2)
    code.store(code.load(sign), result)
    code.store(code.load(logabs), code.ptr(result, "1"))
    close()


def _pivot_sign(code: _Code, sign: str, logabs: str, swapped: str, pivot: str) -> None:
    """The slots `sign` and `logabs` after a pivot (its row swapped or not): the sign flips
    with a swap and takes the pivot's sign, log|det| adds log|pivot|."""
    s = code.load(sign)
    s = code.select(swapped, code.e.op(f"fneg {code.ty} {s}"), s)
    # +1, -1, or the pivot times 0: 0 for a zero pivot, NaN for NaN
    factor = code.select(code.cmp("ogt", pivot, "0.0"), "1.0", code.select(
        code.cmp("olt", pivot, "0.0"), "-1.0", code.arith("fmul", pivot, "0.0")))
    code.store(code.arith("fmul", s, factor), sign)
    code.store(code.arith("fadd", code.load(logabs), code.math("log", code.math("fabs", pivot))),
               logabs)


NAN = "0x7FF8000000000000"      # an LLVM float literal of either width


def _dot(code: _Code, base: str, r1: str, r2: str, count: str, width: int) -> str:
    """sum over k < count of base[r1, k] * base[r2, k]."""
    acc = code.slot("0.0")
    k, close = code.range("0", count, width, "dot")
    product = code.arith("fmul", code.load(code.at(base, r1, k, width)),
                         code.load(code.at(base, r2, k, width)))
    code.store(code.arith("fadd", code.load(acc), product), acc)
    close()
    return code.load(acc)


def _emit_cholesky(ctx, node: UOp, out: str, scratch: str) -> None:
    """Per batch matrix, column by column (Cholesky-Crout) from A's lower triangle into `out`;
    a pivot that is not positive (or NaN) makes the whole matrix NaN."""
    if _uses_lapack(ctx, node):
        return _lapack_cholesky(ctx, node, out, scratch)
    code = _Code(ctx, node.dtype)
    n = node.shape[-1]
    row, close = code.batch(node)
    l, a = code.matrix(out, row, n * n), code.matrix(ctx.start(node.src[0]), row, n * n)
    failed = code.slot("false", "i1")
    j, close_columns = code.loop(n, "column")
    d = code.arith("fsub", code.load(code.at(a, j, j, n)), _dot(code, l, j, j, j, n))
    positive = code.cmp("ogt", d, "0.0")
    code.store(code.e.op(f"or i1 {code.load(failed, 'i1')}, "
                         f"{code.e.op(f'xor i1 {positive}, true')}"), failed, "i1")
    pivot = code.math("sqrt", d)
    code.store(pivot, code.at(l, j, j, n))
    i, close_below = code.range(code.e.add_i(j, "1"), str(n), n, "below")
    value = code.arith("fsub", code.load(code.at(a, i, j, n)), _dot(code, l, i, j, j, n))
    code.store(code.arith("fdiv", value, pivot), code.at(l, i, j, n))
    close_below()
    i, close_above = code.range("0", j, n, "above")
    code.store("0.0", code.at(l, i, j, n))
    close_above()
    close_columns()

    def fill():
        k, close_fill = code.loop(n * n, "fill")
        code.store(NAN, code.ptr(l, k))
        close_fill()
    code.when(code.load(failed, "i1"), fill)
    close()


JACOBI_SWEEPS = 40
"""At most this many sweeps of Jacobi rotations (each sweep is skipped once converged; a few
suffice, as the convergence is quadratic)."""


def _rotate(code: _Code, base: str, p: str, q: str, c: str, s: str, n: int,
            columns: bool) -> None:
    """Columns (or rows) p and q of the n x n matrix at `base` by the rotation (c, s):
    p <- c p - s q, q <- s p + c q."""
    k, close = code.loop(n, "rotate")
    at_p = code.at(base, k, p, n) if columns else code.at(base, p, k, n)
    at_q = code.at(base, k, q, n) if columns else code.at(base, q, k, n)
    xp, xq = code.load(at_p), code.load(at_q)
    code.store(code.arith("fsub", code.arith("fmul", c, xp), code.arith("fmul", s, xq)), at_p)
    code.store(code.arith("fadd", code.arith("fmul", s, xp), code.arith("fmul", c, xq)), at_q)
    close()


def _sum_squares(code: _Code, base: str, n: int, off_diagonal: bool) -> str:
    acc = code.slot("0.0")
    i, close_rows = code.loop(n, "sq")
    j, close = code.range(code.e.add_i(i, "1") if off_diagonal else "0", str(n), n, "sq.col")
    x = code.load(code.at(base, i, j, n))
    code.store(code.arith("fadd", code.load(acc), code.arith("fmul", x, x)), acc)
    close()
    close_rows()
    return code.load(acc)


def _jacobi(code: _Code, s_: str, v: str, n: int, eps: float) -> None:
    """Cyclic Jacobi: rotations zero S[p, q] in turn (S <- J^T S J, V <- V J), sweep after
    sweep while the squares off the diagonal exceed eps^2 times all the squares."""
    _, close_sweeps = code.loop(JACOBI_SWEEPS, "sweep")
    total = _sum_squares(code, s_, n, False)
    off = _sum_squares(code, s_, n, True)
    limit = code.arith("fmul", total, repr(eps * eps))

    def run_sweep():
        p, close_p = code.loop(n, "p")
        q, close_q = code.range(code.e.add_i(p, "1"), str(n), n, "q")
        spq = code.load(code.at(s_, p, q, n))

        def rotate():
            spp, sqq = code.load(code.at(s_, p, p, n)), code.load(code.at(s_, q, q, n))
            theta = code.arith("fdiv", code.arith("fsub", sqq, spp), code.arith("fmul", "2.0", spq))
            root = code.math("sqrt", code.arith("fadd", code.arith("fmul", theta, theta), "1.0"))
            t = code.math("copysign", code.arith("fdiv", "1.0", code.arith(
                "fadd", code.math("fabs", theta), root)), theta)
            c = code.arith("fdiv", "1.0", code.math("sqrt", code.arith(
                "fadd", code.arith("fmul", t, t), "1.0")))
            sn = code.arith("fmul", t, c)
            _rotate(code, s_, p, q, c, sn, n, True)
            _rotate(code, s_, p, q, c, sn, n, False)
            _rotate(code, v, p, q, c, sn, n, True)
            code.store("0.0", code.at(s_, p, q, n))
            code.store("0.0", code.at(s_, q, p, n))
        code.when(code.cmp("une", spq, "0.0"), rotate)
        close_q()
        close_p()
    code.when(code.cmp("ogt", off, limit), run_sweep)
    close_sweeps()


def _sort_and_sign(code: _Code, s_: str, w: str, v: str, n: int) -> None:
    """w <- diag(S) ascending, V's columns along (selection sort), each column's entry of
    largest magnitude (the first of equal ones) made positive."""
    i, close = code.loop(n, "diag")
    code.store(code.load(code.at(s_, i, i, n)), code.ptr(w, i))
    close()
    i, close_sort = code.loop(n, "sort")
    best = code.slot(i, "i64")
    j, close_search = code.range(code.e.add_i(i, "1"), str(n), n, "least")
    smaller = code.cmp("olt", code.load(code.ptr(w, j)),
                       code.load(code.ptr(w, code.load(best, "i64"))))
    code.store(code.select(smaller, j, code.load(best, "i64"), "i64"), best, "i64")
    close_search()
    m = code.load(best, "i64")

    def swap():
        wi, wm = code.load(code.ptr(w, i)), code.load(code.ptr(w, m))
        code.store(wm, code.ptr(w, i))
        code.store(wi, code.ptr(w, m))
        code.swap(v, i, m, n, columns=True)
    code.when(code.e.op(f"icmp ne i64 {m}, {i}"), swap)
    _largest_positive(code, v, i, n)
    close_sort()


def _largest_positive(code: _Code, v: str, i: str, n: int) -> None:
    """Column i of V negated if its entry of largest magnitude (the first of equal ones) is
    negative."""
    largest = code.slot("0.0")
    k, close_scan = code.loop(n, "largest")
    x = code.load(code.at(v, k, i, n))
    bigger = code.cmp("ogt", code.math("fabs", x), code.math("fabs", code.load(largest)))
    code.store(code.select(bigger, x, code.load(largest)), largest)
    close_scan()

    def flip():
        k, close_flip = code.loop(n, "flip")
        place = code.at(v, k, i, n)
        code.store(code.e.op(f"fneg {code.ty} {code.load(place)}"), place)
        close_flip()
    code.when(code.cmp("olt", code.load(largest), "0.0"), flip)


def _emit_eigh(ctx, node: UOp, out: str, scratch: str) -> None:
    """Per batch matrix: S (symmetric, from A's lower triangle) in `scratch`, V = I in the
    result's last n rows; Jacobi sweeps; the eigenvalues into its first row."""
    if _uses_lapack(ctx, node):
        return _lapack_eigh(ctx, node, out, scratch)
    code = _Code(ctx, node.dtype)
    n = node.shape[-1]
    row, close = code.batch(node)
    a = code.matrix(ctx.start(node.src[0]), row, n * n)
    w = code.matrix(out, row, (n + 1) * n)
    v = code.ptr(w, str(n))
    i, close_rows = code.loop(n, "sym")
    j, close_cols = code.loop(n, "sym.col")
    below = code.e.op(f"icmp sge i64 {i}, {j}")
    lower = code.load(code.at(a, code.select(below, i, j, "i64"), code.select(below, j, i, "i64"),
                              n))
    code.store(lower, code.at(scratch, i, j, n))
    code.store(code.select(code.e.op(f"icmp eq i64 {i}, {j}"), "1.0", "0.0"), code.at(v, i, j, n))
    close_cols()
    close_rows()
    _jacobi(code, scratch, v, n, float(np.finfo(node.dtype.np).eps))
    _sort_and_sign(code, scratch, w, v, n)
    close()


def _column_squares(code: _Code, x: str, column: str, start: str, rows: int, width: int) -> str:
    """sum over start <= i < rows of x[i, column]^2 (a matrix of `width` columns)."""
    acc = code.slot("0.0")
    i, close = code.range(start, str(rows), rows, "squares")
    value = code.load(code.at(x, i, column, width))
    code.store(code.arith("fadd", code.load(acc), code.arith("fmul", value, value)), acc)
    close()
    return code.load(acc)


def _reflect(code: _Code, w: str, j: str, tau: str, x: str, first: str, m: int, n: int,
             sums: str) -> None:
    """Columns first..n-1 of the m x n matrix at `x` times the reflector H_j = I - tau v v^T
    stored in column j of `w` below the diagonal (v = (0..0, 1, w[j+1:, j])): sums = v^T x,
    then x -= tau v sums, both row by row (contiguous inner loops); `sums` holds n values."""
    def rows(body) -> None:
        i, close_rows = code.range(j, str(m), m, "reflect.rows")
        vi = code.select(code.e.op(f"icmp eq i64 {i}, {j}"), "1.0",
                         code.load(code.at(w, i, j, n)))
        c, close = code.range(first, str(n), n, "reflect.cols")
        body(vi, code.at(x, i, c, n), code.ptr(sums, c))
        close()
        close_rows()

    c, close = code.range(first, str(n), n, "reflect.init")
    code.store("0.0", code.ptr(sums, c))
    close()
    rows(lambda vi, place, total: code.store(code.arith(
        "fadd", code.load(total), code.arith("fmul", vi, code.load(place))), total))
    rows(lambda vi, place, total: code.store(code.arith(
        "fsub", code.load(place), code.arith("fmul", code.arith("fmul", tau, vi),
                                             code.load(total))), place))


def _householder(code: _Code, w: str, taus: str, sums: str, m: int, n: int) -> None:
    """LAPACK's geqr2 in place on the m x n matrix at `w` (m >= n): R on and above the
    diagonal, each reflector's vector below it (its leading 1 implied), its factor in `taus`.
    As LAPACK's larfg, R[j, j] = -sign(alpha) * norm of the column from the diagonal down
    (alpha its diagonal entry), and a column already zero below the diagonal is left as it is
    (factor 0)."""
    j, close = code.loop(n, "householder")
    below = code.e.add_i(j, "1")
    alpha = code.load(code.at(w, j, j, n))
    squares = _column_squares(code, w, j, below, m, n)
    code.store("0.0", code.ptr(taus, j))

    def reflect():
        norm = code.math("sqrt", code.arith("fadd", code.arith("fmul", alpha, alpha), squares))
        beta = code.e.op(f"fneg {code.ty} {code.math('copysign', norm, alpha)}")
        tau = code.arith("fdiv", code.arith("fsub", beta, alpha), beta)
        code.store(tau, code.ptr(taus, j))
        scale = code.arith("fdiv", "1.0", code.arith("fsub", alpha, beta))
        i, close_scale = code.range(below, str(m), m, "scale")
        place = code.at(w, i, j, n)
        code.store(code.arith("fmul", code.load(place), scale), place)
        close_scale()
        code.store(beta, code.at(w, j, j, n))
        _reflect(code, w, j, tau, w, below, m, n, sums)
    code.when(code.cmp("une", squares, "0.0"), reflect)
    close()


def _emit_qr(ctx, node: UOp, out: str, scratch: str) -> None:
    """Per batch matrix: A into `scratch` (the factors and `_reflect`'s sums in its last 2 n
    places), Householder; R from the upper triangle, Q = H_0 ... H_{n-1} I (m x n), the
    reflectors applied last to first, each to the columns it changes (LAPACK's org2r)."""
    code = _Code(ctx, node.dtype)
    m, n = node.src[0].shape[-2:]
    row, close = code.batch(node)
    w, taus, sums = scratch, code.ptr(scratch, str(m * n)), code.ptr(scratch, str(m * n + n))
    code.copy(w, code.matrix(ctx.start(node.src[0]), row, m * n), m * n)
    _householder(code, w, taus, sums, m, n)
    q = code.matrix(out, row, (m + n) * n)
    r = code.ptr(q, str(m * n))
    i, close_rows = code.loop(n, "r")
    c, close_cols = code.loop(n, "r.col")
    kept = code.e.op(f"icmp sge i64 {c}, {i}")
    code.store(code.select(kept, code.load(code.at(w, i, c, n)), "0.0"), code.at(r, i, c, n))
    close_cols()
    close_rows()
    i, close_rows = code.loop(m, "q")
    c, close_cols = code.loop(n, "q.col")
    code.store(code.select(code.e.op(f"icmp eq i64 {i}, {c}"), "1.0", "0.0"), code.at(q, i, c, n))
    close_cols()
    close_rows()
    step, close_back = code.loop(n, "q.reflectors")
    j = code.e.op(f"sub nsw i64 {n - 1}, {step}")
    tau = code.load(code.ptr(taus, j))
    code.when(code.cmp("une", tau, "0.0"), lambda: _reflect(code, w, j, tau, q, j, m, n, sums))
    close_back()
    close()


def _qr_shape(shapes, arg):
    (a,) = shapes
    if len(a) < 2 or a[-2] < a[-1]:
        raise ValueError(f"qr: the matrix must have at least as many rows as columns, got shape "
                         f"{a}")
    return a[:-2] + (a[-2] + a[-1], a[-1])


def _qr_numpy(arg, a: np.ndarray) -> np.ndarray:
    q, r = np.linalg.qr(a)
    return np.concatenate([q, r], axis=-2)


# ---- lowering: LAPACK calls (JIT code on large matrices) -----------------------------------------
LAPACK_FROM = {"solve": 72 ** 3, "slogdet": 80 ** 3, "cholesky": 32 ** 3, "eigh": 8 ** 3,
               "trisolve": 1 << 18}
"""The work per matrix (n^3 for n x n; n^2 k for a triangular solve of k right sides) from which
JIT code calls LAPACK for each op: where SciPy's routines overtook the native loops on this
machine (docs/numpy.md, "Large matrices: LAPACK in JIT code")."""


def _lapack_sized(node: UOp) -> bool:
    """Whether `node` calls LAPACK where LAPACK is bound (its scratch is sized for it)."""
    n = node.src[0].shape[-1]
    work = n * n * (node.shape[-1] if node.op.name == "trisolve" else n)
    return node.dtype.np in (np.float64, np.float32) and work >= LAPACK_FROM[node.op.name]


def _uses_lapack(ctx, node: UOp) -> bool:
    return ctx.lapack and _lapack_sized(node)


def _ints(count: int, node: UOp) -> int:
    """Elements of `node`'s dtype that hold `count` 32-bit integers."""
    return -(-count * 4 // node.dtype.np.itemsize)


class _Fortran:
    """Calls of SciPy's BLAS and LAPACK routines (`anvil_<d|s><routine>`, bound by backend/
    blas.py) with Fortran's conventions: every argument by address, matrices column-major.
    A row-major matrix read column-major is its transpose; the calls below are chosen so that
    this is what they need."""

    def __init__(self, code: _Code):
        self.code, self.e = code, code.e
        self.prefix = "d" if code.ty == "double" else "s"
        self.info = code.e.alloca("i32")

    def call(self, routine: str, *args: tuple[str, str]) -> None:
        """Call `routine` with `args`: ("char", "U"), ("int", value), ("real", value) become
        slots; ("ptr", p) passes p; ("info", "") the info slot."""
        pointers = []
        for kind, value in args:
            if kind == "char":
                pointers.append(self.code.slot(str(ord(value)), "i8"))
            elif kind == "int":
                pointers.append(self.code.slot(str(value), "i32"))
            elif kind == "real":
                pointers.append(self.code.slot(value))
            elif kind == "info":
                pointers.append(self.info)
            else:
                pointers.append(value)
        symbol = f"anvil_{self.prefix}{routine}"
        self.e.declare(symbol, "void", ["ptr"] * len(pointers), "nounwind")
        self.e.line(f"call void @{symbol}({', '.join(f'ptr {p}' for p in pointers)})")

    def failed(self) -> str:
        """Whether the last call's info is not 0."""
        return self.e.op(f"icmp ne i32 {self.code.load(self.info, 'i32')}, 0")


def _transposed_copy(code: _Code, dst: str, src: str, rows: int, cols: int) -> None:
    """dst (cols x rows) <- src (rows x cols)^T, both row-major."""
    i, close_rows = code.loop(rows, "t.row")
    j, close_cols = code.loop(cols, "t.col")
    code.store(code.load(code.at(src, i, j, cols)), code.at(dst, j, i, rows))
    close_cols()
    close_rows()


def _fill_nan(code: _Code, base: str, count: int) -> None:
    k, close = code.loop(count, "nan")
    code.store(NAN, code.ptr(base, k))
    close()


def _lapack_lu(code: _Code, blas: _Fortran, a: str, lu: str, pivots: str, n: int) -> None:
    """getrf of A (n x n at `a`) copied to `lu`: read column-major it factors A^T = P L U."""
    code.copy(lu, a, n * n)
    blas.call("getrf", ("int", n), ("int", n), ("ptr", lu), ("int", n), ("ptr", pivots),
              ("info", ""))


def _lapack_solve(ctx, node: UOp, out: str, scratch: str) -> None:
    """getrf of A^T, then getrs with A^T transposed back ('T'); B (row-major, so B^T read
    column-major) is transposed into scratch around the call when it has several columns."""
    code, n, k = _Code(ctx, node.dtype), *node.shape[-2:]
    blas = _Fortran(code)
    pivots, columns = code.ptr(scratch, str(n * n)), code.ptr(scratch, str(n * n + _ints(n, node)))
    row, close = code.batch(node)
    _lapack_lu(code, blas, code.matrix(ctx.start(node.src[0]), row, n * n), scratch, pivots, n)
    x, b = code.matrix(out, row, n * k), code.matrix(ctx.start(node.src[1]), row, n * k)
    if k == 1:
        code.copy(x, b, n)
    else:
        _transposed_copy(code, columns, b, n, k)
    blas.call("getrs", ("char", "T"), ("int", n), ("int", k), ("ptr", scratch), ("int", n),
              ("ptr", pivots), ("ptr", x if k == 1 else columns), ("int", n), ("info", ""))
    if k > 1:
        _transposed_copy(code, x, columns, k, n)
    close()


def _lapack_trisolve(ctx, node: UOp, out: str, scratch: str) -> None:
    """op(T) X = B is X^T op(T)^T = B^T: trsm from the right on B^T (B read column-major),
    with T^T (T read column-major; its triangle the other one)."""
    code, n, k = _Code(ctx, node.dtype), *node.shape[-2:]
    blas = _Fortran(code)
    lower, trans = node.arg
    row, close = code.batch(node)
    x = code.matrix(out, row, n * k)
    code.copy(x, code.matrix(ctx.start(node.src[1]), row, n * k), n * k)
    blas.call("trsm", ("char", "R"), ("char", "U" if lower else "L"), ("char", "T" if trans else "N"),
              ("char", "N"), ("int", k), ("int", n), ("real", "1.0"),
              ("ptr", code.matrix(ctx.start(node.src[0]), row, n * n)), ("int", n), ("ptr", x),
              ("int", k))
    close()


def _lapack_slogdet(ctx, node: UOp, out: str, scratch: str) -> None:
    """getrf of A^T (det A^T = det A): the sign flips with each row swap (pivots are 1-based)
    and takes each pivot's sign (0 for a zero pivot, NaN for NaN), log|det| sums log|pivot|."""
    code, n = _Code(ctx, node.dtype), node.src[0].shape[-1]
    blas = _Fortran(code)
    pivots = code.ptr(scratch, str(n * n))
    row, close = code.batch(node)
    _lapack_lu(code, blas, code.matrix(ctx.start(node.src[0]), row, n * n), scratch, pivots, n)
    sign, logabs = code.slot("1.0"), code.slot("0.0")
    c, close_pivots = code.loop(n, "pivot")
    swapped = code.e.op(f"getelementptr inbounds i32, ptr {pivots}, i64 {c}")
    p = code.e.op(f"sext i32 {code.load(swapped, 'i32')} to i64")
    _pivot_sign(code, sign, logabs, code.e.op(f"icmp ne i64 {p}, {code.e.add_i(c, '1')}"),
                code.load(code.at(scratch, c, c, n)))
    close_pivots()
    result = code.matrix(out, row, 2)
    code.store(code.load(sign), result)
    code.store(code.load(logabs), code.ptr(result, "1"))
    close()


def _lapack_cholesky(ctx, node: UOp, out: str, scratch: str) -> None:
    """potrf 'U' of A read column-major (its upper triangle is A's lower one) gives U with
    U^T U = A, which read row-major is L; the other triangle is zeroed, and a matrix that is
    not positive definite (info > 0) is NaN."""
    code, n = _Code(ctx, node.dtype), node.shape[-1]
    blas = _Fortran(code)
    row, close = code.batch(node)
    l = code.matrix(out, row, n * n)
    code.copy(l, code.matrix(ctx.start(node.src[0]), row, n * n), n * n)
    blas.call("potrf", ("char", "U"), ("int", n), ("ptr", l), ("int", n), ("info", ""))
    i, close_rows = code.loop(n, "upper")
    j, close_cols = code.range(code.e.add_i(i, "1"), str(n), n, "upper.col")
    code.store("0.0", code.at(l, i, j, n))
    close_cols()
    close_rows()
    code.when(blas.failed(), lambda: _fill_nan(code, l, n * n))
    close()


def _lapack_eigh(ctx, node: UOp, out: str, scratch: str) -> None:
    """syevd 'V', 'U' of A read column-major (its upper triangle is A's lower one): the
    eigenvalues ascending into the result's first row, the eigenvectors (the columns of the
    column-major result, rows when read row-major) transposed into its last n rows, each
    column's entry of largest magnitude made positive. A NaN in A's lower triangle, or a
    failure to converge, makes the result NaN (LAPACK's iterations are not run on NaN)."""
    code, n = _Code(ctx, node.dtype), node.shape[-1]
    blas = _Fortran(code)
    lwork, liwork = _syevd_work(n)
    work, iwork = code.ptr(scratch, str(n * n)), code.ptr(scratch, str(n * n + lwork))
    row, close = code.batch(node)
    a = code.matrix(ctx.start(node.src[0]), row, n * n)
    w = code.matrix(out, row, (n + 1) * n)
    v = code.ptr(w, str(n))
    nan = code.slot("false", "i1")
    i, close_rows = code.loop(n, "nan")
    j, close_cols = code.range("0", code.e.add_i(i, "1"), n, "nan.col")
    x = code.load(code.at(a, i, j, n))
    code.store(code.e.op(f"or i1 {code.load(nan, 'i1')}, {code.cmp('uno', x, x)}"), nan, "i1")
    close_cols()
    close_rows()

    def solve():
        code.copy(scratch, a, n * n)
        blas.call("syevd", ("char", "V"), ("char", "U"), ("int", n), ("ptr", scratch),
                  ("int", n), ("ptr", w), ("ptr", work), ("int", lwork), ("ptr", iwork),
                  ("int", liwork), ("info", ""))
        _transposed_copy(code, v, scratch, n, n)
        c, close_columns = code.loop(n, "sign")
        _largest_positive(code, v, c, n)
        close_columns()
        code.when(blas.failed(), lambda: _fill_nan(code, w, (n + 1) * n))
    code.when(code.e.op(f"xor i1 {code.load(nan, 'i1')}, true"), solve)
    code.when(code.load(nan, "i1"), lambda: _fill_nan(code, w, (n + 1) * n))
    close()


def _syevd_work(n: int) -> tuple[int, int]:
    """syevd's work sizes with eigenvectors (LAPACK's documented minimum)."""
    return 1 + 6 * n + 2 * n * n, 3 + 5 * n


def _solve_scratch(node: UOp) -> int:
    n, k = node.shape[-2:]
    return n * n + (_ints(n, node) + n * k if _lapack_sized(node) else 0)


def _slogdet_scratch(node: UOp) -> int:
    n = node.src[0].shape[-1]
    return n * n + (_ints(n, node) if _lapack_sized(node) else 0)


def _eigh_scratch(node: UOp) -> int:
    n = node.shape[-1]
    if not _lapack_sized(node):
        return n * n
    lwork, liwork = _syevd_work(n)
    return n * n + lwork + _ints(liwork, node)


SOLVE = OpDef(
    "solve", 2, kind=OpKind.PROGRAM,
    shape=_solve_shape("solve"),
    dtype=_float_dtype("solve"),
    numpy=_solve_numpy,
    jvp=_solve_jvp,
    vjp=_solve_vjp,
    batch=_batch,
    linearity=Linearity.NONLINEAR,
    program=_emit_solve,
    scratch=_solve_scratch,
    dependence=_solve_dependence,
    pairs=_solve_pairs,
    cost=1 << 20,
)
"""solve(A, B) = A^-1 B over the last two axes (the leading ones a batch)."""

TRISOLVE = OpDef(
    "trisolve", 2, kind=OpKind.PROGRAM,
    shape=_solve_shape("trisolve"),
    dtype=_float_dtype("trisolve"),
    numpy=_trisolve_numpy,
    jvp=_trisolve_jvp,
    vjp=_trisolve_vjp,
    batch=_batch,
    linearity=Linearity.NONLINEAR,
    program=_emit_trisolve,
    scratch=lambda node: 0,
    dependence=_solve_dependence,
    pairs=_solve_pairs,
    cost=1 << 20,
)
"""trisolve(T, B), arg (lower, trans): op(T)^-1 B, op(T) = T or T^T, T's triangle only."""

SLOGDET = OpDef(
    "slogdet", 1, kind=OpKind.PROGRAM,
    shape=_matrix_shape("slogdet", lambda n: (2,)),
    dtype=_float_dtype("slogdet"),
    numpy=_slogdet_numpy,
    jvp=_slogdet_jvp,
    vjp=_slogdet_vjp,
    batch=_batch,
    linearity=Linearity.NONLINEAR,
    program=_emit_slogdet,
    scratch=_slogdet_scratch,
    dependence=_matrix_dependence(_slogdet_block),
    pairs=_matrix_pairs(_slogdet_block),
    cost=1 << 20,
)
"""slogdet(A) (..., 2): the sign of det A and log|det A| (0 and -inf when singular)."""

CHOLESKY = OpDef(
    "cholesky", 1, kind=OpKind.PROGRAM,
    shape=_matrix_shape("cholesky", lambda n: (n, n)),
    dtype=_float_dtype("cholesky"),
    numpy=_cholesky_numpy,
    jvp=_cholesky_jvp,
    vjp=_cholesky_vjp,
    batch=_batch,
    linearity=Linearity.NONLINEAR,
    program=_emit_cholesky,
    scratch=lambda node: 0,
    dependence=_matrix_dependence(_cholesky_read),
    pairs=_matrix_pairs(_cholesky_read),
    cost=1 << 20,
)
"""cholesky(A) = L lower with L L^T = A (A's lower triangle read); NaN if not positive
definite."""

EIGH = OpDef(
    "eigh", 1, kind=OpKind.PROGRAM,
    shape=_matrix_shape("eigh", lambda n: (n + 1, n)),
    dtype=_float_dtype("eigh"),
    numpy=_eigh_numpy,
    jvp=_eigh_jvp,
    vjp=_eigh_vjp,
    batch=_batch,
    linearity=Linearity.NONLINEAR,
    program=_emit_eigh,
    scratch=_eigh_scratch,
    dependence=_matrix_dependence(_eigh_read),
    pairs=_matrix_pairs(_eigh_read),
    cost=1 << 20,
)
"""eigh(A) (..., n + 1, n): the eigenvalues ascending over the eigenvectors (columns, the entry
of largest magnitude positive) of the symmetric matrix of A's lower triangle."""

QR = OpDef(
    "qr", 1, kind=OpKind.PROGRAM,
    shape=_qr_shape,
    dtype=_float_dtype("qr"),
    numpy=_qr_numpy,
    jvp=_qr_jvp,
    vjp=_qr_vjp,
    batch=_batch,
    linearity=Linearity.NONLINEAR,
    program=_emit_qr,
    scratch=lambda node: (node.src[0].shape[-2] + 2) * node.shape[-1],
    dependence=_matrix_dependence(_qr_read),
    pairs=_matrix_pairs(_qr_read),
    cost=1 << 20,
)
"""qr(A) (..., m + n, n) for A (..., m, n), m >= n: Q (m, n) over R (n, n), A = Q R, with
LAPACK's signs (R[j, j] = -sign of the diagonal entry the reflection met, or that entry itself
where the column below it was already zero); the derivatives assume full column rank."""
