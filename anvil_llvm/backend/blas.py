"""Large contractions as BLAS GEMM calls; SciPy's BLAS and LAPACK routines bound for JIT code.

A contraction whose work exceeds `GEMM_WORK` is rewritten into a batched matrix product of
contiguous operands, (B, M, K) @ (B, K, N) -> (B, M, N), each operand a realised buffer read
as is or transposed; the kernel then calls SciPy's BLAS `dgemm`/`sgemm` once per batch
(docs/backend.md, "GEMM through SciPy's BLAS": 4% from NumPy's matmul, 2x a naive loop).
"""
from __future__ import annotations

import ctypes
import math


from ..ir import build as B
from ..ir import dtypes
from ..ir.ops import CONTRACT, PERMUTE, PICK, RESHAPE, SLICE
from ..ir.uop import UOp
from .loader import define

GEMM_WORK = 1 << 15           # M*N*K below this stays a fused loop nest
CANONICAL = ((2,), (1,), (0,), (0,))
_SYMBOLS = {dtypes.float64: "anvil_dgemm", dtypes.float32: "anvil_sgemm"}
# Every routine JIT code may call (GEMM here, the rest from the linear algebra ops' lowering,
# ir/ops/linalg.py): its symbol is anvil_<routine>.
_ROUTINES = {"cython_blas": ("dgemm", "sgemm", "dtrsm", "strsm"),
             "cython_lapack": ("dgetrf", "sgetrf", "dgetrs", "sgetrs", "dpotrf", "spotrf",
                               "dsyevd", "ssyevd")}
_NAMES = frozenset(f"anvil_{r}" for routines in _ROUTINES.values() for r in routines)
_registered = False


def uses_blas(externals: list[str]) -> bool:
    """Whether code needing `externals` calls SciPy's BLAS or LAPACK."""
    return not _NAMES.isdisjoint(externals)


def register() -> None:
    """Expose SciPy's BLAS and LAPACK routines to JIT code as `anvil_<routine>` (once)."""
    global _registered
    if _registered:
        return
    from scipy.linalg import cython_blas, cython_lapack
    name_of = ctypes.pythonapi.PyCapsule_GetName
    name_of.restype, name_of.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    for module in (cython_blas, cython_lapack):
        for routine in _ROUTINES[module.__name__.rsplit(".", 1)[1]]:
            capsule = module.__pyx_capi__[routine]
            define(f"anvil_{routine}", pointer(capsule, name_of(capsule)))
    _registered = True


def _free(ndim, contracted, batch):
    return [i for i in range(ndim) if i not in contracted and i not in batch]


def _prod(shape, axes) -> int:
    return math.prod(shape[i] for i in axes)


def _operand(x: UOp, batch, free, contracted, free_first: bool) -> UOp:
    """`x` as a (batch, rows, cols) array: (B, free, contracted) when `free_first`, else
    (B, contracted, free); read transposed instead where that avoids a copy. A permutation
    in front of `x` is folded into the axis lists, so a transposed input costs no copy."""
    while x.op is PERMUTE:
        perm = x.arg
        batch, free = [perm[i] for i in batch], [perm[i] for i in free]
        contracted = [perm[i] for i in contracted]
        x = x.src[0]
    b, f, c = _prod(x.shape, batch), _prod(x.shape, free), _prod(x.shape, contracted)
    straight = list(batch) + (free + list(contracted) if free_first else list(contracted) + free)
    flipped = list(batch) + (list(contracted) + free if free_first else free + list(contracted))
    if straight != list(range(x.ndim)) and flipped == list(range(x.ndim)):
        shape = (b, c, f) if free_first else (b, f, c)
        return B.permute(B.reshape(x, shape), (0, 2, 1))
    shape = (b, f, c) if free_first else (b, c, f)
    return B.reshape(B.permute(x, tuple(straight)), shape)


def _as_gemm(node: UOp) -> UOp | None:
    (lc, rc, lb, rb) = node.arg
    a, b = node.src
    if node.dtype not in _SYMBOLS or node.arg == CANONICAL and a.ndim == b.ndim == 3:
        return None
    fa, fb = _free(a.ndim, lc, lb), _free(b.ndim, rc, rb)
    m, n, k = _prod(a.shape, fa), _prod(b.shape, fb), _prod(a.shape, lc)
    if m * n * k * _prod(a.shape, lb) < GEMM_WORK:
        return None
    lhs = _operand(a, lb, fa, lc, free_first=True)
    rhs = _operand(b, rb, fb, rc, free_first=False)
    return B.reshape(UOp(CONTRACT, (lhs, rhs), CANONICAL), node.shape)


def canonicalise(outputs: list[UOp], order: list[UOp]) -> list[UOp]:
    """Rewrite large contractions into canonical batched GEMMs (see the module docstring);
    `order` is the graph in topological order."""
    if not any(node.op is CONTRACT for node in order):
        return outputs
    memo: dict[UOp, UOp] = {}
    for node in order:
        src = tuple(memo[s] for s in node.src)
        rebuilt = node if all(x is y for x, y in zip(src, node.src)) else UOp(node.op, src,
                                                                              node.arg)
        if rebuilt.op is CONTRACT:
            rebuilt = _as_gemm(rebuilt) or rebuilt
        memo[node] = rebuilt
    return [memo[o] for o in outputs]


def is_gemm(node: UOp) -> bool:
    return (node.op is CONTRACT and node.arg == CANONICAL and node.src[0].ndim == 3
            and node.src[1].ndim == 3 and node.dtype in _SYMBOLS and node.size * node.src[0].shape[2] >= GEMM_WORK)


def operand(node: UOp) -> tuple[UOp, bool, int]:
    """The node whose buffer a GEMM operand reads, whether it is read transposed, and the
    element offset where it starts (a contiguous slice of a vector is read in place)."""
    transposed = node.op is PERMUTE and node.arg == (0, 2, 1)
    if transposed:
        node = node.src[0]
    while node.op is RESHAPE:
        node = node.src[0]
    offset = 0
    if node.op is SLICE and node.ndim == 1 and node.arg[0][1] == 1:
        offset, node = node.arg[0][0], node.src[0]
    elif node.op is PICK and node.ndim == 1:
        offset, node = node.arg * node.size, node.src[0]
    while node.op is RESHAPE:
        node = node.src[0]
    return node, transposed, offset


def emit_gemm(ctx, root: UOp, out_buffer) -> None:
    """C[b] = A[b] @ B[b] for every batch b, through Fortran-ABI GEMM on row-major data:
    the column-major view of C is C^T = B^T A^T."""
    e = ctx.e
    (a_node, a_t, a_at), (b_node, b_t, b_at) = operand(root.src[0]), operand(root.src[1])
    batch, m, k = root.src[0].shape
    n = root.shape[2]
    ty = root.dtype.llvm
    symbol = _SYMBOLS[root.dtype]
    e.declare(symbol, "void", ["ptr"] * 13, "nounwind")

    def slot(llvm_type: str, value: str) -> str:
        p = e.alloca(llvm_type)
        e.line(f"store {llvm_type} {value}, ptr {p}")
        return p
    # op(B^T): B stored (K, N) reads as the column-major (N, K) B^T directly ('N'), stored
    # (N, K) it needs a transpose ('T'); likewise op(A^T) for A stored (M, K) or (K, M).
    args = [slot("i8", str(ord("T" if b_t else "N"))), slot("i8", str(ord("T" if a_t else "N"))),
            slot("i32", str(n)), slot("i32", str(m)), slot("i32", str(k)), slot(ty, "1.0"),
            None, slot("i32", str(k if b_t else n)), None, slot("i32", str(m if a_t else k)),
            slot(ty, "0.0"), None, slot("i32", str(n))]
    i, close = ctx.loop(batch, "gemm") if batch > 1 else ("0", None)
    bases = {6: (b_node, k * n, b_at), 8: (a_node, m * k, a_at), 11: (root, m * n, 0)}
    for position, (node, size, start) in bases.items():
        buffer = out_buffer if node is root else ctx.sched.buffers[node]
        offset = e.add_i(str(start), e.mul_i(i, str(size)))
        args[position] = ctx.address(buffer, ctx.index((node.size,), (offset,)))
    e.line(f"call void @{symbol}({', '.join(f'ptr {p}' for p in args)})")
    if close:
        close()
