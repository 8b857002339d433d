"""Exported code (av.export: a static library, no C compiler) beside CasADi's generated C
(`Function.generate()` compiled with `gcc -O3 -march=native -shared`), both called from one C
driver program on the same inputs: the build times, then the call times measured in C.

    python scripts/bench_export.py            # the full run (docs/benchmarks/export.md)
    python scripts/bench_export.py --quick    # reduced sizes and repetitions, a smoke test

Per case: the derivative is built once (its AD is not export time); then, in interleaved
rounds, a fresh copy is exported (`av.export`: lowering, LLVM, object, archive, headers) and
JIT-compiled (lowering, LLVM, first call; the disk cache off), and CasADi's C is generated and
compiled (the SX graph and its derivative are built once, outside the timing). Both outputs
are checked against the derivative in closed form (NumPy/SciPy; relative max-abs error <=
1e-10, sparse results compared as matrices, their patterns may differ) before they are timed;
call times are medians over interleaved batches (ours, CasADi, ours, ...) measured in C with
clock_gettime. Both sections come from the same measurements (made once per case and run).
"""
from __future__ import annotations

import contextlib
import functools
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Before anvil_llvm: JIT builds are timed, not read from the disk cache.
os.environ["ANVIL_LLVM_NO_CACHE"] = "1"

import benchtools as bt
import casadi
import numpy as np
import scipy.sparse as sp
from benchtools import Point, Row, Section

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.benchmarks.problems import problem

CC = os.environ.get("CC", "gcc")
SLOW_BUILD = 20.0      # seconds: CasADi builds slower than this are timed once
COMPILE_TIMEOUT = 180.0
JIT, CASADI = "JIT build", "CasADi C (gcc -O3)"


@dataclass(frozen=True)
class Case:
    label: str
    name: str            # the public problem
    size: int
    kind: str            # "gradient", "spjacobian" or "jacobian"


@dataclass(frozen=True)
class Config(bt.Timing):
    cases: tuple[Case, ...]


ROSEN, BRATU, ARM = "rosen gradient", "bratu2d sparse Jacobian", "arm Jacobian (3 x 6, dense)"
FULL = Config(rounds=21, seconds=0.02, build_rounds=3, processes=0, cases=(
    Case(ROSEN, "rosen", 1000, "gradient"), Case(ROSEN, "rosen", 10_000, "gradient"),
    Case(BRATU, "bratu2d", 30, "spjacobian"), Case(BRATU, "bratu2d", 100, "spjacobian"),
    Case(ARM, "arm", 6, "jacobian")))
QUICK = Config(rounds=5, seconds=0.005, build_rounds=1, processes=0, cases=(
    Case(ROSEN, "rosen", 100, "gradient"), Case(BRATU, "bratu2d", 10, "spjacobian"),
    Case(ARM, "arm", 6, "jacobian")))
"""`rounds`: batches of calls timed in C, each about `seconds` long; `build_rounds`: rounds of
builds."""


# ---- the problems in CasADi SX (the same formulas as anvil_llvm.benchmarks.problems) ---------
def casadi_expression(case: Case, x):
    if case.name == "rosen":
        a, b = x[:-1], x[1:]
        return casadi.sum1(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2)
    if case.name == "bratu2d":
        m, h2 = case.size, (1.0 / (case.size + 1)) ** 2
        u = casadi.SX.zeros(m + 2, m + 2)
        u[1:-1, 1:-1] = casadi.reshape(x, m, m).T          # row-major, as NumPy's reshape
        c = u[1:-1, 1:-1]
        lap = 4.0 * c - u[:-2, 1:-1] - u[2:, 1:-1] - u[1:-1, :-2] - u[1:-1, 2:]
        return casadi.reshape((lap - 6.0 * h2 * casadi.exp(c)).T, m * m, 1)
    lengths = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    theta = [casadi.sum1(x[:k + 1]) for k in range(6)]
    return casadi.vertcat(sum(lk * casadi.cos(t) for lk, t in zip(lengths, theta)),
                          sum(lk * casadi.sin(t) for lk, t in zip(lengths, theta)), theta[5])


# ---- the driver --------------------------------------------------------------------------------
DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "ours.h"

typedef long long casadi_int;
int cas(const double **arg, double **res, casadi_int *iw, double *w, int mem);
int cas_work(casadi_int *sz_arg, casadi_int *sz_res, casadi_int *sz_iw, casadi_int *sz_w);

static double now(void) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(int argc, char **argv) {
  int batches = atoi(argv[2]); long reps = atol(argv[3]);
  double *x = malloc(N_IN * sizeof(double));
  FILE *f = fopen(argv[1], "rb");
  if (fread(x, sizeof(double), N_IN, f) != N_IN) return 2;
  fclose(f);
  double *mine = malloc(N_OURS * sizeof(double)), *theirs = malloc(N_CAS * sizeof(double));
  void *work = OURS_WORK ? aligned_alloc(64, (OURS_WORK + 63) / 64 * 64) : NULL;
  casadi_int sz_arg, sz_res, sz_iw, sz_w;
  cas_work(&sz_arg, &sz_res, &sz_iw, &sz_w);
  casadi_int *iw = malloc((sz_iw + 1) * sizeof(casadi_int));
  double *w = malloc((sz_w + 1) * sizeof(double));
  const double *arg[8] = {x}; double *res[8] = {theirs};
  OURS(x, mine, work);
  cas(arg, res, iw, w, 0);
  f = fopen(argv[4], "wb"); fwrite(mine, sizeof(double), N_OURS, f); fclose(f);
  f = fopen(argv[5], "wb"); fwrite(theirs, sizeof(double), N_CAS, f); fclose(f);
  double *a = malloc(batches * sizeof(double)), *b = malloc(batches * sizeof(double));
  for (int k = 0; k < batches; ++k) {
    double t0 = now();
    for (long r = 0; r < reps; ++r) OURS(x, mine, work);
    double t1 = now();
    for (long r = 0; r < reps; ++r) cas(arg, res, iw, w, 0);
    double t2 = now();
    a[k] = (t1 - t0) / reps; b[k] = (t2 - t1) / reps;
  }
  qsort(a, batches, sizeof(double), cmp); qsort(b, batches, sizeof(double), cmp);
  printf("%.9e %.9e\n", a[batches / 2], b[batches / 2]);
  return 0;
}
"""


def ours(case: Case, name: str):
    f = problem(case.name, case.size).function(name + "_f")
    if case.kind == "gradient":
        return ad.gradient(f, name=name)
    if case.kind == "spjacobian":
        return ad.spjacobian(f, name=name)
    return ad.jacobian(f, name=name)


def casadi_function(case: Case, n: int) -> casadi.Function:
    x = casadi.SX.sym("x", n)
    e = casadi_expression(case, x)
    d = casadi.gradient(e, x) if case.kind == "gradient" else casadi.jacobian(e, x)
    return casadi.Function("cas", [x], [d])


# ---- the references: each derivative in closed form -------------------------------------------
def reference(case: Case, x: np.ndarray) -> sp.csc_array:
    """The derivative at `x` as a matrix (a gradient: one column), by hand."""
    if case.name == "rosen":
        a, b = x[:-1], x[1:]
        g = np.zeros_like(x)
        g[:-1] += -400.0 * a * (b - a * a) - 2.0 * (1.0 - a)
        g[1:] += 200.0 * (b - a * a)
        return sp.csc_array(g[:, None])
    if case.name == "bratu2d":        # 4I - neighbours (row-major grid) - 6 h^2 diag(exp(u))
        m = case.size
        eye, shift = sp.eye_array(m), sp.diags_array([np.ones(m - 1)] * 2, offsets=[-1, 1])
        h2 = (1.0 / (m + 1)) ** 2
        return sp.csc_array(4.0 * sp.eye_array(m * m) - sp.kron(eye, shift)
                            - sp.kron(shift, eye) - sp.diags_array(6.0 * h2 * np.exp(x)))
    lengths = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    theta = np.cumsum(x)             # d theta_k / d x_i = 1 for i <= k: sums over k >= i
    tail = [np.cumsum((lengths * f(theta))[::-1])[::-1] for f in (np.sin, np.cos)]
    return sp.csc_array(np.stack([-tail[0], tail[1], np.ones(6)]))


def our_matrix(case: Case, e, values: np.ndarray) -> sp.csc_array:
    """The exported function's output as a matrix."""
    if case.kind == "spjacobian":
        s = e.sparsity
        return sp.csc_array((values, s.indices, s.indptr), shape=(s.rows, s.cols))
    shape = e.outputs[0].shape
    return sp.csc_array(values.reshape(shape if len(shape) == 2 else (-1, 1)))


def casadi_matrix(fn: casadi.Function, values: np.ndarray) -> sp.csc_array:
    s = fn.sparsity_out(0)
    return sp.csc_array((values, np.array(s.row()), np.array(s.colind())),
                        shape=(s.size1(), s.size2()))


def check(out: sp.csc_array, expected: sp.csc_array) -> str | None:
    """None when `out` agrees with `expected`, else the status saying by how much not."""
    error = abs(out - expected).max() / max(abs(expected).max(), np.finfo(float).tiny)
    return None if error <= bt.TOLERANCE else f"{bt.DISAGREE} (err {error:.1e})"


# ---- one case measured: builds, then calls from the C driver ----------------------------------
def run(args: list[str], timeout: float | None = None):
    """The finished command (on a timeout, gcc's cc1 is stopped too), or `bt.Unavailable`."""
    done = bt.run_command(args, timeout or 3600.0)
    if isinstance(done, str):
        raise bt.Unavailable(done)
    return done


def compile_casadi(fn: casadi.Function, directory: Path) -> float:
    """Seconds to generate CasADi's C and compile it into libcas.so."""
    start = time.perf_counter()
    with contextlib.chdir(directory):     # generate() writes into the working directory
        fn.generate("cas.c", {"with_header": False})
    run([CC, "-O3", "-march=native", "-shared", "-fPIC", str(directory / "cas.c"), "-o",
         str(directory / "libcas.so")], COMPILE_TIMEOUT)
    return time.perf_counter() - start


@functools.cache
def measure(case: Case, cfg: Config) -> dict:
    """The build times of the case (export, JIT, CasADi's C: the median of `build_rounds`
    interleaved rounds) and its call times from the C driver; a status instead of each figure
    that could not be measured. Cached: the two sections report one measurement."""
    try:
        with tempfile.TemporaryDirectory(prefix="bench-export-") as work:
            return _measure(case, cfg, Path(work))
    except Exception as error:  # noqa: BLE001 -- the case's failure is reported, others run
        return {"n": None, "failed": bt.failure(error)}


def _measure(case: Case, cfg: Config, work: Path) -> dict:
    p = problem(case.name, case.size)
    x = p.x0 + 0.01 * np.random.default_rng(3).standard_normal(p.n)
    cas_fn = casadi_function(case, p.n)
    export_s, jit_s, cas_s = [], [], []
    for k in range(cfg.build_rounds):                    # interleaved rounds, fresh functions
        fn = ours(case, "ours_fn")
        start = time.perf_counter()
        lib = av.export([fn], work / "build", "ours")
        export_s.append(time.perf_counter() - start)
        jit_fn = ours(case, f"jit{k}")
        start = time.perf_counter()
        jit_fn(x)
        jit_s.append(time.perf_counter() - start)
        if not cas_s or cas_s[0] < SLOW_BUILD:          # slow: timed once
            try:
                cas_s.append(compile_casadi(cas_fn, work))
            except bt.Unavailable as error:
                cas_s.append(str(error))
                break
    e = lib.functions[0]
    result = {"n": p.n, "outputs": int(np.prod(e.outputs[0].shape)),
              "export": statistics.median(export_s), "jit": statistics.median(jit_s)}
    if isinstance(cas_s[-1], str):
        not_timed = "not timed: the C driver needs CasADi's C"
        return {**result, "casadi_build": cas_s[-1], "ours": not_timed, "casadi": not_timed}
    (work / "driver.c").write_text(DRIVER)
    run([CC, "-O2", "-std=gnu11", f"-DN_IN={p.n}", f"-DN_OURS={result['outputs']}",
         f"-DN_CAS={cas_fn.nnz_out(0)}", f"-DOURS_WORK={e.work_bytes}", f"-DOURS={e.symbol}",
         "-I", str(lib.directory), str(work / "driver.c"), "-o", str(work / "driver"), "-L",
         str(lib.directory), "-lours", "-L", str(work), "-lcas", f"-Wl,-rpath,{work}", "-lm"])
    x.tofile(work / "x.bin")
    files = [str(work / "a.bin"), str(work / "b.bin")]
    # one batch to size the repetitions, then the measured batches
    probe = run([str(work / "driver"), str(work / "x.bin"), "1", "10", *files]).stdout.split()
    reps = max(1, int(cfg.seconds / max(float(probe[0]), float(probe[1]), 1e-9)))
    calls = run([str(work / "driver"), str(work / "x.bin"), str(cfg.rounds), str(reps),
                 *files]).stdout.split()
    expected = reference(case, x)
    mine = check(our_matrix(case, e, np.fromfile(files[0])), expected)
    theirs = check(casadi_matrix(cas_fn, np.fromfile(files[1])), expected)
    return {**result, "casadi_build": statistics.median(cas_s),
            "ours": mine or float(calls[0]), "casadi": theirs or float(calls[1])}


# ---- the sections --------------------------------------------------------------------------------
def what(case: Case, r: dict) -> str:
    size = f"m = {case.size}" if case.name == "bratu2d" else f"n = {case.size}"
    return f"{case.label}, {size}" + (f" (n = {r['n']:,})" if case.name == "bratu2d" and
                                      r["n"] else "")


def _rows(cfg: Config, row) -> list:
    """A row per case from its measurement (`row(case, r)`), or the case's failure."""
    rows = []
    for case in cfg.cases:
        r = measure(case, cfg)
        rows.append(Row(what(case, r), r["failed"]) if "failed" in r else row(case, r))
    return rows


def builds(cfg: Config) -> Section:
    rows = _rows(cfg, lambda case, r: Row(
        what(case, r), r["export"], {JIT: r["jit"], CASADI: r["casadi_build"]}, (CASADI,),
        note=f"{r['outputs']:,} outputs; export / JIT build {r['export'] / r['jit']:.2f}",
        point=Point(case.name, case.kind, "build", r["n"])))
    return Section("1. Build time: `av.export` beside a JIT build and CasADi's generated C", rows,
                   f"""anvil: `av.export` of a fresh copy of the derivative (lowering, LLVM
optimisation and object code, archive, headers); `{JIT}`: the first call of another fresh copy
(lowering, LLVM, loading); `{CASADI}`: the generation of the C file and its compilation with
`{CC} -O3 -march=native -shared` (the SX graph and its derivative built beforehand; timed once
when it takes more than {SLOW_BUILD:g} s; stopped after {COMPILE_TIMEOUT:g} s). Medians of
{cfg.build_rounds} interleaved rounds in this process. Ratio: anvil's export over CasADi's C.""")


def calls(cfg: Config) -> Section:
    rows = _rows(cfg, lambda case, r: Row(what(case, r), r["ours"], {CASADI: r["casadi"]},
                                          (CASADI,),
                                          point=Point(case.name, case.kind, "run", r["n"])))
    return Section("2. Call time from C: the exported function beside CasADi's compiled C", rows,
                   f"""Exports are compiled by LLVM for this CPU (`av.export`, the default
target); CasADi's `Function.generate()` C with `{CC} -O3 -march=native -shared`. One C driver
calls both on the same input (`x0` of the problem plus noise); each output is checked against
the derivative in closed form first. Times: medians of {cfg.rounds} interleaved batches (ours,
then CasADi's, in turn), each of about {cfg.seconds * 1e3:g} ms of calls, measured in C with
`clock_gettime` (no Python in the loop). Ratios below 1 favour anvil_llvm.""")


AREA = bt.Area("export", "Export: anvil_llvm's exported code beside CasADi's generated C",
               (builds, calls), QUICK, FULL,
               intro="Calls are timed in C here (section 2), not from Python. ")


if __name__ == "__main__":
    AREA.main(__doc__)
