"""Benchmark anvil_llvm.ad.coloring against CasADi's colourings; writes docs/benchmarks/coloring.md.

Usage: OPENBLAS_NUM_THREADS=1 python scripts/bench_coloring.py [--quick]

For each pattern: colours and wall time of ours (order="best", after a warm-up so numba's
compilation is excluded) and of CasADi (uni_coloring for columns and rows, star_coloring for
Hessians), CasADi skipped where its estimated cost is quadratic-sized; peak extra memory of our
call in bytes per nonzero, measured as the growth of the process's peak resident set (numba's
allocations are invisible to tracemalloc).
"""

from __future__ import annotations

import ctypes
import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import benchtools as bt
import numpy as np
import scipy.sparse as sp
from benchtools import Point, Row, Section

from anvil_llvm.ad.coloring import hessian_coloring, jacobian_coloring
from anvil_llvm.ad.coloring.check import check_coloring
from anvil_llvm.ad.coloring.patterns import Walk, adjacency, as_pattern, transposed
from anvil_llvm.ad.coloring.star import restricted_star_steps

CASADI_MAX_STEPS = 3e9  # about 10 s of CasADi: beyond this its run is reported as skipped


def banded(n: int, b: int) -> sp.csc_array:
    lo = b // 2
    diagonals = [np.ones(n - abs(k), np.int8) for k in range(-lo, b - lo)]
    return as_pattern(
        sp.diags_array(diagonals, offsets=list(range(-lo, b - lo)), shape=(n, n), dtype=np.int8)
        != 0
    )


def stencil5(m: int) -> sp.csc_array:
    """bratu2d: the 5-point stencil on an m x m grid, u row-major (n = m²)."""
    eye = sp.eye_array(m, dtype=np.int8, format="csr")
    tri = banded(m, 3).astype(np.int8)
    return as_pattern((sp.kron(eye, tri) + sp.kron(tri, eye)) != 0)


def stencil7(m: int) -> sp.csc_array:
    """laplace3d: the 7-point stencil on an m x m x m grid, u.reshape(m, m, m) (n = m³)."""
    eye = sp.eye_array(m, dtype=np.int8, format="csr")
    tri = banded(m, 3).astype(np.int8)
    return as_pattern(
        (sp.kron(sp.kron(eye, eye), tri) + sp.kron(sp.kron(eye, tri), eye))
        + sp.kron(sp.kron(tri, eye), eye)
        != 0
    )


def stencil27(m: int) -> sp.csc_array:
    """The 27-point stencil on an m x m x m grid (n = m³)."""
    tri = banded(m, 3).astype(np.int8)
    return as_pattern(sp.kron(sp.kron(tri, tri), tri) != 0)


def arrowhead(n: int) -> sp.csc_array:
    """arrowhead: Σ (x₀xᵢ)² + Σ xᵢ⁴ has a dense first row and column and the diagonal."""
    hub = np.zeros(n, np.int64)
    rows = np.concatenate((hub, np.arange(n), np.arange(1, n)))
    cols = np.concatenate((np.arange(n), np.arange(n), hub[1:]))
    return as_pattern(sp.coo_array((np.ones(rows.size, bool), (rows, cols)), shape=(n, n)))


def random_pattern(n: int, per_row: int, symmetric: bool, seed: int = 0) -> sp.csc_array:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), per_row)
    cols = rng.integers(0, n, rows.size)
    P = sp.coo_array((np.ones(rows.size, bool), (rows, cols)), shape=(n, n)).tocsc()
    return as_pattern((P + P.T + sp.eye_array(n, dtype=bool)) if symmetric else P)


def peak_rss() -> tuple[int, int]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024


def extra_peak_bytes(call: Callable[[], object]) -> float:
    try:
        libc = ctypes.CDLL("libc.so.6")
        # Fixed mmap threshold: arrays of 64 KiB or more are mapped on allocation and unmapped
        # on free, so freed memory is not silently reused and the peak RSS sees every array.
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
        libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current RSS
    except OSError:
        return float("nan")
    before, _ = peak_rss()
    call()
    peak = peak_rss()[1] - before
    libc.mallopt(-3, 32 * 1024 * 1024)  # back to heap reuse, so later timings are not slowed
    return peak


def timed(call: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    if seconds < 0.2:  # short: best of three
        for _ in range(2):
            start = time.perf_counter()
            call()
            seconds = min(seconds, time.perf_counter() - start)
    return result, seconds


def casadi_run(P: sp.csc_array, kind: str, steps: float) -> tuple[str, bt.Value]:
    """CasADi's colour count and seconds; for "auto" the better of columns and rows."""
    if steps > CASADI_MAX_STEPS:
        return "-", f"skipped (≈{steps / 2e8:.0f} s est.)"
    ca = bt.peers.ca
    S = ca.Sparsity(*P.shape, P.indptr.tolist(), P.indices.tolist())
    calls = {
        "column": [S.uni_coloring],
        "row": [S.T.uni_coloring],
        "auto": [S.uni_coloring, S.T.uni_coloring],
        "star": [S.star_coloring],
        "acyclic": [S.star_coloring],  # CasADi has no acyclic colouring: its star for reference
    }[kind]
    runs = [timed(call) for call in calls]
    return str(min(r.size2() for r, _ in runs)), sum(t for _, t in runs)


def run_case(name: str, P: sp.csc_array, kind: str, optimum: str) -> Row:
    if kind in ("star", "acyclic"):
        ours = functools.partial(hessian_coloring, P, method=kind)
        graph = adjacency(P.indptr, P.indices)
        casadi_steps = restricted_star_steps(graph) + P.nnz
    else:
        ours = functools.partial(jacobian_coloring, P, partition=kind)
        PT = transposed(P)
        costs = {"column": Walk.columns(P, PT).cost(), "row": Walk.columns(PT, P).cost()}
        casadi_steps = costs.get(kind, sum(costs.values()))
    result, seconds = timed(ours)
    try:
        check_coloring(P, result)
    except ValueError as e:
        seconds = f"{bt.DISAGREE} (invalid colouring: {e})"
    memory = extra_peak_bytes(ours) / max(P.nnz, 1)
    try:
        theirs, their_time = casadi_run(P, kind, casadi_steps)
    except bt.Unavailable as e:
        theirs, their_time = "-", str(e)
    order = result.partition if kind == "auto" else result.order
    family = re.sub(r" [mn]=[^ ]+( \(n=[^)]+\))?", "", name)
    operator = "Hessian colouring" if name.endswith(" H") else "Jacobian colouring"
    return Row(f"{name} ({kind})", seconds, {"CasADi": their_time}, ("CasADi",), note=(
        f"n {P.shape[1]:,}, nnz {P.nnz:,}; colours **{result.ncolors}** (optimum {optimum}, "
        f"CasADi {theirs}); {order}; peak {memory:.0f} B/nnz"),
        point=Point(f"{family} {kind}", operator, "run", P.shape[1]))


def cases(quick: bool) -> list[tuple[str, Callable[[], sp.csc_array], str, str]]:
    big = not quick
    out = [
        ("bratu2d m=100 J", lambda: stencil5(100), "column", "5"),
        ("bratu2d m=100 J", lambda: stencil5(100), "auto", "5"),
        ("bratu2d m=1000 J", lambda: stencil5(1000), "column", "5"),
        ("bratu2d m=100 H", lambda: stencil5(100), "star", "5"),
        ("bratu2d m=100 H", lambda: stencil5(100), "acyclic", "—"),
        ("bratu2d m=1000 H", lambda: stencil5(1000), "star", "5"),
        ("laplace3d m=12 J", lambda: stencil7(12), "column", "7"),
        ("laplace3d m=12 J", lambda: stencil7(12), "auto", "7"),
        ("laplace3d m=12 H", lambda: stencil7(12), "star", "≤7"),
        ("laplace3d m=50 J", lambda: stencil7(50), "column", "7"),
        ("laplace3d m=50 J", lambda: stencil7(50), "auto", "7"),
        ("laplace3d m=50 H", lambda: stencil7(50), "star", "≤7"),
        ("laplace3d m=100 (n=1e6) J", lambda: stencil7(100), "column", "7"),
        ("laplace3d m=100 (n=1e6) J", lambda: stencil7(100), "auto", "7"),
        ("laplace3d m=100 (n=1e6) H", lambda: stencil7(100), "star", "≤7"),
        ("27-point m=30 J", lambda: stencil27(30), "column", "27"),
        ("rosen n=1e4 H", lambda: banded(10_000, 3), "star", "3"),
        ("rosen n=1e4 H", lambda: banded(10_000, 3), "acyclic", "2"),
        ("rosen n=1e6 H", lambda: banded(1_000_000, 3), "star", "3"),
        ("arrowhead n=1e3 H", lambda: arrowhead(1000), "star", "2"),
        ("arrowhead n=1e5 H", lambda: arrowhead(100_000), "star", "2"),
        ("arrowhead n=1e5 H", lambda: arrowhead(100_000), "acyclic", "2"),
        ("arrowhead n=1e3 J", lambda: arrowhead(1000), "column", "1000"),
        ("arrowhead n=1e3 J", lambda: arrowhead(1000), "auto", "≤3"),
        ("arrowhead n=1e5 J", lambda: arrowhead(100_000), "auto", "≤3"),
        ("banded b=7 n=1e5 J", lambda: banded(100_000, 7), "column", "7"),
        ("banded b=7 n=1e5 H", lambda: banded(100_000, 7), "star", "—"),
        ("random 5/row n=1e4 J", lambda: random_pattern(10_000, 5, False), "column", "—"),
        ("random 5/row n=1e4 J", lambda: random_pattern(10_000, 5, False), "row", "—"),
        ("random 5/row n=1e4 H", lambda: random_pattern(10_000, 5, True), "star", "—"),
        ("random 5/row n=1e4 H", lambda: random_pattern(10_000, 5, True), "acyclic", "—"),
    ]
    large = ("1000 ", "1e6", "1e5", "m=50", "m=30")     # --quick: patterns up to n = 10^4
    return [c for c in out if big or not any(size in c[0] for size in large)]


def colourings(cfg: Config) -> Section:
    jacobian_coloring(np.eye(3))  # compile (or load) every kernel before timing
    rows = []
    for name, make, kind, optimum in cases(cfg.quick_sizes):
        rows.append(run_case(name, make(), kind, optimum))
        print(rows[-1].what, bt.fmt_time(rows[-1].anvil), flush=True)
    return Section("Colourings: ours and CasADi's", rows, (
        "One run; times are wall clock (best of three under 0.2 s), numba compilation "
        "excluded; each of our colourings is checked valid against the pattern "
        "(`check_coloring`, from the definitions) before its time is reported. J: Jacobian "
        "pattern (`jacobian_coloring`), H: Hessian pattern (`hessian_coloring`). CasADi: "
        "`uni_coloring` (columns; rows on the transpose) and `star_coloring` (its default "
        "largest-first order); it has no acyclic or bidirectional colouring, so those rows show "
        "its star colouring. \"skipped\": CasADi's quadratic cost, estimated from the pattern, "
        "would exceed about 10 s. Note: n, nonzeros, our colour count (the optimum where known, "
        "CasADi's count), the order or partition chosen, and the peak extra memory: growth of "
        "the process's peak RSS during our call, per nonzero."))


@dataclass(frozen=True)
class Config(bt.Timing):
    quick_sizes: bool       # skip the n = 1e6 patterns


FULL = Config(rounds=1, seconds=0.0, build_rounds=1, processes=0, quick_sizes=False)
QUICK = Config(rounds=1, seconds=0.0, build_rounds=1, processes=0, quick_sizes=True)
AREA = bt.Area("coloring", "Colouring benchmark", (colourings,), QUICK, FULL,
               intro="anvil_llvm.ad.coloring's colourings beside CasADi's on the same patterns. ")


if __name__ == "__main__":
    AREA.main(__doc__)
