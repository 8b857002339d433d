"""Exported code (av.export: a static library, no C compiler) beside CasADi's generated C
(`Function.generate()` compiled with `gcc -O3 -march=native -shared`), both called from one C
driver program on the same inputs. Prints a markdown table and writes docs/benchmarks/export.md.

    python scripts/bench_export.py            # the full run (docs/benchmarks/export.md)
    python scripts/bench_export.py --quick    # reduced sizes and repetitions, a smoke test

Per case: the derivative is built once (its AD is not export time); then, in interleaved
rounds, a fresh copy is exported (`av.export`: lowering, LLVM, object, archive, headers) and
JIT-compiled (lowering, LLVM, first call; the disk cache off), and CasADi's C is generated and compiled (the SX
graph and its derivative are built once, outside the timing). The driver checks that both
outputs agree (relative max-abs error <= 1e-10, sparse results compared as matrices, patterns
may differ) before timing; call times are medians over interleaved batches (ours, CasADi, ours,
...) measured in C with clock_gettime.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
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

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.benchmarks.problems import problem

DEFAULT_OUT = bt.ROOT / "docs" / "benchmarks" / "export.md"
CC = os.environ.get("CC", "gcc")
SLOW_BUILD = 20.0      # seconds: CasADi builds slower than this are timed once
COMPILE_TIMEOUT = 180.0


@dataclass(frozen=True)
class Case:
    label: str
    name: str            # the public problem
    size: int
    kind: str            # "gradient", "spjacobian" or "jacobian"


FULL = [Case("rosen gradient", "rosen", 1000, "gradient"),
        Case("rosen gradient", "rosen", 10_000, "gradient"),
        Case("bratu2d sparse Jacobian", "bratu2d", 30, "spjacobian"),
        Case("bratu2d sparse Jacobian", "bratu2d", 100, "spjacobian"),
        Case("arm Jacobian (3 x 6, dense)", "arm", 6, "jacobian")]
QUICK = [Case("rosen gradient", "rosen", 1000, "gradient"),
         Case("bratu2d sparse Jacobian", "bratu2d", 30, "spjacobian"),
         Case("arm Jacobian (3 x 6, dense)", "arm", 6, "jacobian")]


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


def _run(command: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run `command` (in a session of its own: on a timeout, gcc's cc1 is stopped too)."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}\n{stderr}")
    return subprocess.CompletedProcess(command, 0, stdout, stderr)


def _compile_casadi(fn: casadi.Function, directory: Path) -> float | None:
    """Seconds to generate CasADi's C and compile it into libcas.so (None: gcc took more than
    COMPILE_TIMEOUT seconds)."""
    start = time.perf_counter()
    fn.generate("cas.c", {"with_header": False})
    shutil.move("cas.c", directory / "cas.c")
    try:
        _run([CC, "-O3", "-march=native", "-shared", "-fPIC", str(directory / "cas.c"), "-o",
              str(directory / "libcas.so")], timeout=COMPILE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def measure(case: Case, rounds: int, batches: int, target_seconds: float) -> dict:
    p = problem(case.name, case.size)
    x = p.x0 + 0.01 * np.random.default_rng(3).standard_normal(p.n)
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    cas_fn = casadi_function(case, p.n)
    export_s, jit_s, cas_s = [], [], []
    lib = None
    for k in range(rounds):                              # interleaved rounds, fresh functions
        fn = ours(case, "ours_fn")
        start = time.perf_counter()
        lib = av.export([fn], work / "build", "ours")
        export_s.append(time.perf_counter() - start)
        jit_fn = ours(case, f"jit{k}")
        start = time.perf_counter()
        jit_fn(x)
        jit_s.append(time.perf_counter() - start)
        if not cas_s or (cas_s[0] is not None and cas_s[0] < SLOW_BUILD):   # slow: timed once
            os.chdir(work)
            cas_s.append(_compile_casadi(cas_fn, work))
    if cas_s[0] is None:
        shutil.rmtree(work)
        return {"case": case, "n": p.n, "nnz": int(np.prod(lib.functions[0].outputs[0].shape)),
                "export": statistics.median(export_s), "jit": statistics.median(jit_s),
                "casadi_build": None}
    e = lib.functions[0]
    n_ours = int(np.prod(e.outputs[0].shape))
    n_cas = cas_fn.nnz_out(0)
    (work / "driver.c").write_text(DRIVER)
    _run([CC, "-O2", "-std=gnu11", f"-DN_IN={p.n}", f"-DN_OURS={n_ours}", f"-DN_CAS={n_cas}",
          f"-DOURS_WORK={e.work_bytes}", f"-DOURS={e.symbol}", "-I", str(lib.directory),
          str(work / "driver.c"), "-o", str(work / "driver"), "-L", str(lib.directory),
          "-lours", "-L", str(work), "-lcas", f"-Wl,-rpath,{work}", "-lm"])
    x.tofile(work / "x.bin")
    # one batch to size the repetitions, then the measured batches
    probe = _run([str(work / "driver"), str(work / "x.bin"), "1", "10", str(work / "a.bin"),
                  str(work / "b.bin")]).stdout.split()
    per_call = max(float(probe[0]), float(probe[1]), 1e-9)
    reps = max(1, int(target_seconds / per_call))
    out = _run([str(work / "driver"), str(work / "x.bin"), str(batches), str(reps),
                str(work / "a.bin"), str(work / "b.bin")]).stdout.split()
    mine, theirs = np.fromfile(work / "a.bin"), np.fromfile(work / "b.bin")
    error = _disagreement(case, lib.functions[0], mine, theirs, cas_fn)
    shutil.rmtree(work)
    return {"case": case, "n": p.n, "nnz": n_ours, "export": statistics.median(export_s),
            "jit": statistics.median(jit_s), "casadi_build": statistics.median(cas_s), "ours": float(out[0]),
            "casadi": float(out[1]), "error": error}


def _disagreement(case: Case, e, mine: np.ndarray, theirs: np.ndarray, cas_fn) -> float:
    """Relative max-abs difference of the two results as dense vectors or sparse matrices."""
    if case.kind == "spjacobian":
        s = e.sparsity
        a = sp.csc_array((mine, s.indices, s.indptr), shape=(s.rows, s.cols))
        pattern = cas_fn.sparsity_out(0)
        b = sp.csc_array((theirs, np.array(pattern.row()), np.array(pattern.colind())),
                         shape=(pattern.size1(), pattern.size2()))
        diff, scale = abs(a - b).max(), abs(b).max()
    elif case.kind == "jacobian":
        pattern = cas_fn.sparsity_out(0)
        b = sp.csc_array((theirs, np.array(pattern.row()), np.array(pattern.colind())),
                         shape=(pattern.size1(), pattern.size2())).toarray().ravel()
        diff, scale = np.abs(mine - b).max(), np.abs(b).max()
    else:
        diff, scale = np.abs(mine - theirs).max(), np.abs(theirs).max()
    return float(diff / max(scale, 1e-300))


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.3g} µs" if seconds < 1e-3 else f"{seconds * 1e3:.3g} ms"


def table(results: list[dict]) -> str:
    rows = [("| case | n | outputs | export (ours) | JIT build | CasADi C: generate + gcc -O3 | "
             "export / JIT | call, ours | call, CasADi C | ours / CasADi |"),
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["case"]
        if "failed" in r:
            rows.append(f"| {c.label} size {c.size} | {r['failed']} | | | | | | | | |")
            continue
        size = f"m={c.size}" if c.name == "bratu2d" else f"n={r['n']}"
        if r["casadi_build"] is None:
            rows.append(f"| {c.label} {size} | {r['n']} | {r['nnz']} | {r['export']:.3f} s | "
                        f"{r['jit']:.3f} s | gcc did not finish in {COMPILE_TIMEOUT:g} s | "
                        f"{r['export'] / r['jit']:.2f} | | | |")
            continue
        check = "" if r["error"] <= bt.TOLERANCE else f" (DISAGREE {r['error']:.1e})"
        rows.append(f"| {c.label} {size}{check} | {r['n']} | {r['nnz']} | {r['export']:.3f} s | "
                    f"{r['jit']:.3f} s | {r['casadi_build']:.2f} s | "
                    f"{r['export'] / r['jit']:.2f} | {_us(r['ours'])} | {_us(r['casadi'])} | "
                    f"{r['ours'] / r['casadi']:.2f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="the markdown file to write (default: docs/benchmarks/export.md)")
    args = parser.parse_args()
    cases = QUICK if args.quick else FULL
    rounds, batches, seconds = (1, 5, 0.005) if args.quick else (3, 21, 0.02)
    results = []
    for case in cases:
        try:
            results.append(measure(case, rounds, batches, seconds))
        except Exception as error:          # noqa: BLE001 - reported in the table
            results.append({"case": case, "failed": bt.failure(error)})
        print(table(results[-1:]).splitlines()[-1], flush=True)
    load = os.getloadavg()[0]
    command = "python scripts/bench_export.py" + (" --quick" if args.quick else "")
    text = bt.header("Export: anvil_llvm's exported code beside CasADi's generated C",
                     "scripts/bench_export.py", command,
                     intro=f"Load average {load:.1f} at the end. ") + f"""
Exports are compiled by LLVM for this CPU (`av.export`, the default target); CasADi's
`Function.generate()` C is compiled with `{CC} -O3 -march=native -shared`. One C driver calls
both on the same input (`x0` of the problem plus noise) and checks the values agree first;
call times are medians of {batches} interleaved batches (ours, then CasADi's, in turn), each of
about {seconds * 1e3:g} ms of calls, measured in C. Build times are medians of {rounds}
interleaved rounds in this process: `export` is `av.export` of a fresh copy of the derivative
(lowering, LLVM optimisation and object code, archive, headers), `JIT build` the first call of
another fresh copy (lowering, LLVM, loading), `CasADi C` the generation of the C file and its
compilation (the SX graph and its derivative built beforehand; timed once when it takes more
than {SLOW_BUILD:g} s). Ratios below 1 favour anvil_llvm.

{table(results)}"""
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
