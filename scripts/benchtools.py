"""Shared helpers for the benchmark scripts: tools checked against a reference, then timed side
by side in interleaved rounds (medians); subprocess workers with timeouts; markdown tables."""
from __future__ import annotations

import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

TOLERANCE = 1e-10
"""Largest accepted relative max-abs error of a tool's output against the reference."""

Value = float | str
"""A measurement in seconds, or a status: "timeout ...", "failed: ...", "DISAGREE ..."."""


def as_array(out) -> np.ndarray:
    """Any tool's output (NumPy, JAX, CasADi DM) as a flat float64 array."""
    if hasattr(out, "full"):
        out = out.full()
    return np.asarray(out, dtype=np.float64).ravel()


def rel_error(out, expected) -> float:
    """max |out - expected| / max |expected|."""
    out, expected = as_array(out), as_array(expected)
    if out.shape != expected.shape:
        raise ValueError(f"output has {out.size} elements, expected {expected.size}")
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(out - expected), initial=0.0)) / scale


class Unavailable(Exception):
    """A tool that could not be built, for a reason that its message states as the status
    (e.g. "timeout (> 120 s)")."""


def failure(error: BaseException) -> str:
    if isinstance(error, Unavailable):
        return str(error)
    lines = str(error).strip().splitlines() or [""]
    return f"failed: {type(error).__name__}: {lines[-1][:100]}"


@dataclass
class Tool:
    """One tool's way to compute a result: an expression evaluated in `env`, timed by `timeit`
    as a statement (so no Python call layer is added to what is measured) and checked once
    against `expected` before it is timed."""

    stmt: str
    env: dict
    expected: Callable[[], np.ndarray]      # computed only when checked

    def status(self) -> str | None:
        """None when the output agrees with `expected`, else why it does not."""
        try:
            error = rel_error(eval(self.stmt, self.env), self.expected())
        except Exception as e:  # noqa: BLE001 -- a tool that fails is reported, not fatal
            return failure(e)
        return None if error <= TOLERANCE else f"DISAGREE (err {error:.1e})"


def round_robin(samplers: dict[str, Callable[[], float]], rounds: int) -> dict[str, Value]:
    """The median of `rounds` samples (seconds) of each sampler. The tools take turns within a
    round, so the slow drifts of a noisy machine hit them alike; a sampler that raises is
    reported as failed and not sampled again."""
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    failed: dict[str, str] = {}
    for _ in range(rounds):
        for name, sample in samplers.items():
            if name in failed:
                continue
            try:
                samples[name].append(sample())
            except Exception as e:  # noqa: BLE001 -- reported as failed
                failed[name] = failure(e)
    return {name: failed.get(name) or statistics.median(samples[name]) for name in samplers}


def _calls_per_sample(timer: timeit.Timer, seconds: float) -> int:
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= seconds / 10:
            return max(1, round(number * seconds / elapsed))
        number *= 10


def side_by_side(tools: dict[str, Tool], rounds: int, seconds: float) -> dict[str, Value]:
    """Seconds per call of each tool that agrees with its reference (median over interleaved
    rounds, each sample about `seconds` long); the others get their status."""
    statuses = {name: tool.status() for name, tool in tools.items()}
    samplers = {}
    for name, tool in tools.items():
        if statuses[name] is None:
            timer = timeit.Timer(tool.stmt, globals=tool.env)
            number = _calls_per_sample(timer, seconds)
            samplers[name] = lambda timer=timer, number=number: timer.timeit(number) / number
    times = round_robin(samplers, rounds)
    return {name: statuses[name] or times[name] for name in tools}


def time_builds(builders: dict[str, Callable[[], object]], rounds: int) -> dict[str, Value]:
    """Median seconds of one call of each builder (a fresh build each time), interleaved."""
    def sampler(build):
        def sample():
            gc.collect()
            start = time.perf_counter()
            build()
            return time.perf_counter() - start
        return sample
    return round_robin({name: sampler(build) for name, build in builders.items()}, rounds)


def build_timed(builders: dict[str, Callable[[], Tool]], rounds: int, slow: float = 2.0
                ) -> tuple[dict[str, Tool], dict[str, Value]]:
    """Build each tool `rounds` times, interleaved (once only when its first build takes more
    than `slow` seconds): the tools of the first builds, and the median seconds of a build of
    each, or the status of a builder that failed (it has no tool)."""
    tools: dict[str, Tool] = {}
    samples: dict[str, list[float]] = {name: [] for name in builders}
    failed: dict[str, str] = {}
    for round_ in range(rounds):
        for name, build in builders.items():
            if name in failed or (round_ and samples[name][0] > slow):
                continue
            gc.collect()
            start = time.perf_counter()
            try:
                tool = build()
            except Exception as e:  # noqa: BLE001 -- reported as failed
                failed[name] = failure(e)
                continue
            samples[name].append(time.perf_counter() - start)
            tools.setdefault(name, tool)
    return tools, {name: failed.get(name) or statistics.median(samples[name])
                   for name in builders}


def build_all(builders: dict[str, Callable[[], Tool]]) -> tuple[dict[str, Tool], dict[str, str]]:
    """Run each builder once: the tools that built, and the failures of those that did not."""
    tools, failed = {}, {}
    for name, build in builders.items():
        try:
            tools[name] = build()
        except Exception as e:  # noqa: BLE001 -- reported as failed
            failed[name] = failure(e)
    return tools, failed


def run_command(args: list[str], timeout: float, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess | str:
    """Run a command to its end, or a status: "timeout (> ... s)" (the whole process group is
    killed: gcc's compiler proper is a grandchild) or "failed (exit ...): <last stderr line>"."""
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return f"timeout (> {timeout:g} s)"
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or [""])[-1]
        return f"failed (exit {proc.returncode}): {last[:100]}"
    return subprocess.CompletedProcess(args, 0, stdout, stderr)


def run_worker(script: str, spec: dict, env: dict[str, str | None], timeout: float) -> dict | str:
    """Run `script --worker <spec as JSON>` in a fresh interpreter (environment changes in `env`,
    None removes a variable) and return the JSON object it prints last, or a status."""
    full_env = dict(os.environ)
    for key, value in env.items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    proc = run_command([sys.executable, script, "--worker", json.dumps(spec)], timeout, full_env)
    if isinstance(proc, str):
        return proc
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Stages:
    """Seconds of consecutive stages of a build: `lap(name)` ends the stage under way."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self._start
        self._start = now


# ---- report ----------------------------------------------------------------------------------
def fmt_time(value: Value) -> str:
    if isinstance(value, str):
        return value.replace("|", "/")
    for limit, factor, unit, digits in ((1e-6, 1e9, "ns", 0), (1e-3, 1e6, "us", 1),
                                        (1.0, 1e3, "ms", 1)):
        if value < limit:
            return f"{value * factor:.{digits}f} {unit}"
    return f"{value:.2f} s"


@dataclass
class Row:
    """One measured quantity: anvil's figure, the peers', and the target. With `against`, the
    ratio is anvil over the fastest of those peers and the target is ratio <= `bound`; without,
    the target is anvil's seconds <= `bound`. No `bound`: shown for information."""

    what: str
    anvil: Value
    peers: dict[str, Value] = field(default_factory=dict)
    against: tuple[str, ...] = ()
    bound: float | None = None
    note: str = ""

    def _reference(self) -> tuple[str, float] | None:
        found = [(self.peers[name], name) for name in self.against
                 if isinstance(self.peers.get(name), float)]
        return (min(found)[1], min(found)[0]) if found else None

    def ratio(self) -> float | None:
        reference = self._reference()
        if reference is None or isinstance(self.anvil, str):
            return None
        return self.anvil / reference[1]

    def ratio_text(self) -> str:
        ratio = self.ratio()
        return "-" if ratio is None else f"{ratio:.2f}x {self._reference()[0]}"

    def target_text(self) -> str:
        if self.bound is None:
            return "-"
        if not self.against:
            return f"<= {fmt_time(self.bound)}"
        peers = self.against[0] if len(self.against) == 1 else \
            f"fastest of {', '.join(self.against)}"
        return f"<= {self.bound:g}x {peers}"

    def met(self) -> str:
        if self.bound is None:
            return "-"
        if isinstance(self.anvil, str):
            return "no"
        value = self.ratio() if self.against else self.anvil
        return "?" if value is None else ("yes" if value <= self.bound else "no")


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: str = ""

    def markdown(self) -> str:
        run = {name for row in self.rows for name, value in row.peers.items() if value != "-"}
        peers = [name for name in dict.fromkeys(name for row in self.rows for name in row.peers)
                 if name in run]        # not the column of a tool run in no row
        with_notes = any(row.note for row in self.rows)
        head = ["what", "anvil", *peers, "ratio", "target", "met"] + (["note"] if with_notes
                                                                        else [])
        lines = [f"## {self.title}", ""]
        if self.rows:
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            cells = [row.what, fmt_time(row.anvil),
                     *[fmt_time(row.peers[p]) if p in row.peers else "" for p in peers],
                     row.ratio_text(), row.target_text(), row.met()]
            cells += [row.note] if with_notes else []
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"
