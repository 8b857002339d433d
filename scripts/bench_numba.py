"""numba interop benchmarks: nanoseconds per call of a generated function inside an `@njit`
loop (`fn.numba`, inlined into the loop; its first-class form, an indirect call; the
`numba_unchecked` form) side by side with a hand-written `@njit` function computing the same.
Prints markdown tables and writes them to docs/benchmarks/numba.md.

    python scripts/bench_numba.py            # the full run (docs/benchmarks/numba.md)
    python scripts/bench_numba.py --quick    # fewer rounds and calls, a smoke test

Each variant runs the same loop: `x[i % n] = i * 1e-6; f(x, out); acc += out[0] + out[-1]`
(`i % n` kept as a wrapping counter: a division would cost more than the smallest calls)
(the input changes every iteration, so no call can be hoisted) and its accumulated result is
checked against the hand-written function's before it is timed. A sample is one call of the
`@njit` loop function (from Python: one dispatch, about 0.5 us, in `loop_calls` iterations).
"""
import os
import time
from dataclasses import dataclass
from pathlib import Path

# Before NumPy: NumPy's and SciPy's OpenBLAS thread pools fight on this 2-core machine.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import benchtools as bt
import numba
import numpy as np
from benchtools import Row, Section

import anvil_llvm as av
from anvil_llvm.benchmarks.problems import problem

SCRIPT = str(Path(__file__).resolve())


@dataclass(frozen=True)
class Config(bt.Timing):
    loop_calls: int          # iterations of the @njit loop in one sample


FULL = Config(rounds=9, seconds=0.0, build_rounds=1, processes=0, loop_calls=1_000_000)
QUICK = Config(rounds=3, seconds=0.0, build_rounds=1, processes=0, loop_calls=100_000)
TARGET = 1.2
"""The goal of issue 18: fn.numba inside an @njit loop <= 1.2x the hand-written function."""


def _inlined_loop(kernel):
    """The @njit loop calling `kernel(x, out)` (a global of the loop: inlined)."""
    @numba.njit
    def loop(x, out, calls):
        n, flat, acc, k = x.size, out.reshape(-1), 0.0, 0
        for i in range(calls):
            x[k] = i * 1e-6
            k = k + 1 if k + 1 < n else 0        # i % n without a division
            kernel(x, out)
            acc += flat[0] + flat[-1]
        return acc
    return loop


@numba.njit
def _first_class_loop(kernel, x, out, calls):
    """The same loop taking the kernel as an argument (first-class: an indirect call)."""
    n, acc, k = x.size, 0.0, 0
    for i in range(calls):
        x[k] = i * 1e-6
        k = k + 1 if k + 1 < n else 0
        kernel(x, out)
        acc += out[0] + out[-1]
    return acc


@numba.njit
def _sumsq_gradient(x, out):
    for i in range(5):               # the size as a constant, as in the generated code
        out[i] = 2.0 * x[i]


_ARM_LENGTHS = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5])


@numba.njit
def _arm_jacobian(q, out):
    """d(end effector)/dq of the planar arm: suffix sums of -L sin(theta) and L cos(theta)."""
    theta, sx, cx = 0.0, np.empty(6), np.empty(6)
    for k in range(6):
        theta += q[k]
        sx[k] = _ARM_LENGTHS[k] * np.sin(theta)
        cx[k] = _ARM_LENGTHS[k] * np.cos(theta)
    s, c = 0.0, 0.0
    for j in range(5, -1, -1):
        s += sx[j]
        c += cx[j]
        out[0, j] = -s
        out[1, j] = c
        out[2, j] = 1.0


def _case(name: str, fn, hand, x0: np.ndarray, cfg: Config) -> list[Row]:
    """Rows for one generated function `fn` against the hand-written `hand` (same signature)."""
    out_shape = fn.output_shapes[0]
    expected = np.empty(out_shape)
    hand(x0.copy(), expected)
    bt_error = bt.rel_error(fn(x0), expected)
    if bt_error > bt.TOLERANCE:
        raise bt.Unavailable(f"DISAGREE (one call: err {bt_error:.1e})")
    flat = int(np.prod(out_shape))
    variants = {
        "hand-written @njit": (_inlined_loop(hand), out_shape, None),
        "fn.numba": (_inlined_loop(fn.numba), out_shape, None),
        "fn.numba_unchecked": (_inlined_loop(fn.numba_unchecked), out_shape, None),
        "first-class": (_first_class_loop, (flat,), fn.numba),
    }

    def runner(loop, shape, kernel, calls):
        x, out = x0.copy(), np.empty(shape)
        if kernel is None:
            return lambda: loop(x, out, calls)
        return lambda: loop(kernel, x, out, calls)

    check = 1000
    reference = runner(*variants["hand-written @njit"], check)()
    samplers, status = {}, {}
    for label, (loop, shape, kernel) in variants.items():
        error = bt.rel_error(runner(loop, shape, kernel, check)(), reference)
        if error > bt.TOLERANCE:
            status[label] = f"DISAGREE (err {error:.1e})"
            continue
        run = runner(loop, shape, kernel, cfg.loop_calls)

        def sample(run=run):
            t0 = time.perf_counter()
            run()
            return (time.perf_counter() - t0) / cfg.loop_calls
        samplers[label] = sample
    times = {**bt.round_robin(samplers, cfg.rounds), **status}
    hand_time = {"hand-written @njit": times["hand-written @njit"]}
    against = ("hand-written @njit",)

    def ns(label: str) -> str:         # the table rounds to whole nanoseconds
        value = times[label]
        return f"{value * 1e9:.2f} ns" if isinstance(value, float) else value
    precise = f"{{}} against {ns('hand-written @njit')}"
    return [
        Row(f"{name}: `fn.numba` (inlined)", times["fn.numba"], hand_time, against, TARGET,
            note=precise.format(ns("fn.numba"))),
        Row(f"{name}: `fn.numba_unchecked`", times["fn.numba_unchecked"], hand_time, against,
            note=precise.format(ns("fn.numba_unchecked"))),
        Row(f"{name}: first-class (pointer)", times["first-class"], hand_time, against,
            note=precise.format(ns("first-class")) + "; an indirect call (Wrapper Address "
            "Protocol)"),
    ]


def numba_loop(cfg: Config) -> Section:
    """ns per call inside an @njit loop: sumsq's gradient (n = 5), arm's Jacobian (6 -> 3)."""
    sumsq = problem("sumsq")
    arm = problem("arm")
    gradient = av.ad.gradient(sumsq.function())
    jacobian = av.ad.jacobian(arm.function())
    rows = _case("gradient of sumsq, n = 5", gradient, _sumsq_gradient, sumsq.x0, cfg)
    rows += _case("Jacobian of arm, 6 -> 3x6", jacobian, _arm_jacobian, arm.x0, cfg)
    return Section(
        f"Calls inside an @njit loop ({cfg.loop_calls:,} calls per sample)", rows,
        notes=" ".join(f"""Time per loop iteration (the call, one input element written and two
        output elements read), median of {cfg.rounds} interleaved rounds. `fn.numba` and
        `fn.numba_unchecked`: the generated module linked into numba's code library, inlined by
        LLVM into the loop; the checked form tests the two array sizes per call. First-class:
        the same object passed as an argument to one compiled loop, called through its
        address (a wrapper that checks sizes, then calls the generated symbol). The
        hand-written arm Jacobian computes the six sines and cosines once and takes suffix
        sums. Target (issue 18): the inlined form <= {TARGET}x the hand-written @njit
        function.""".split()))


SECTIONS = [numba_loop]


AREA = bt.Area("numba", "numba interop benchmarks", tuple(SECTIONS), QUICK, FULL,
               intro="All variants run in one process and take turns in each round. ")


if __name__ == "__main__":
    AREA.main(__doc__)
