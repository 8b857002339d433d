"""Shared helpers for the benchmark scripts: tools checked against a reference, then timed side
by side in interleaved rounds (medians); subprocess workers with timeouts; markdown tables; the
report's header and the scripts' command line."""
from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import timeit
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-10
"""Largest accepted relative max-abs error of a tool's output against the reference."""

Value = float | str
"""A measurement in seconds, or a status: "timeout ...", "failed: ...", "DISAGREE ..."."""


@dataclass(frozen=True)
class Timing:
    """How much a script samples: the first fields of each script's Config (its sizes follow)."""

    rounds: int             # interleaved rounds of call timings (median)
    seconds: float          # length of one timing sample
    build_rounds: int       # interleaved rounds of the builds timed in process (median)
    processes: int          # fresh processes per build timed in subprocesses


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


_build_ids = itertools.count()


def fresh_name(base: str) -> str:
    """A new function name: equal graphs with different names do not share the memory cache."""
    return f"{base}_b{next(_build_ids)}"


class Stages:
    """Seconds of consecutive stages of a build: `lap(name)` ends the stage under way."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self._start
        self._start = now


# ---- peers: imported by the main process only, so that workers time anvil_llvm alone --------
peers = SimpleNamespace()


def import_peers() -> None:
    """Import the installed peers; a missing one fails only its own cells."""
    for attr, module in (("ca", "casadi"), ("numba", "numba"), ("jax", "jax")):
        try:
            setattr(peers, attr, importlib.import_module(module))
        except ImportError as e:
            print(f"warning: {e}", file=sys.stderr)
    if hasattr(peers, "jax"):
        peers.jax.config.update("jax_enable_x64", True)
        peers.jnp = importlib.import_module("jax.numpy")


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


def _version(module: str) -> str:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "not installed"


def header(title: str, script: str, command: str, *, commit: bool = False, intro: str = "",
           failures: str = "") -> str:
    """The report's title, machine and versions (with `commit`, the checkout's `git describe`),
    and how it measures; `intro` opens that last item, `failures` follows its "a tool that
    disagrees shows DISAGREE"."""
    import llvmlite.binding as llvm
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = ", ".join(f"{m} {_version(m)}" for m in
                         ("anvil_llvm", "numpy", "numba", "llvmlite", "casadi", "jax", "jaxlib"))
    versions += f", LLVM {'.'.join(map(str, llvm.llvm_version_info))}"
    if commit:
        described = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                   check=False, capture_output=True, text=True).stdout.strip()
        versions += f"; anvil_llvm commit {described}"
    return f"""# {title}

Generated by `{script}` on {datetime.date.today()}; command: `{command}`.

- Machine: {cpu}, {os.cpu_count()} CPUs (LLVM host CPU {llvm.get_host_cpu_name()}), load \
average {os.getloadavg()[0]:.1f} at the start; Python {platform.python_version()}.
- Versions: {versions}.
- {intro}Each tool's output is checked against a reference (relative max-abs error <= \
{TOLERANCE:g}) before it is timed; a tool that disagrees shows DISAGREE{failures}. Call times: \
median over interleaved rounds (the tools take turns) of `timeit` samples, from Python. Ratio: \
anvil over the peer named (the fastest of those the target names). numba and anvil run \
single-threaded; JAX uses its default threading. OPENBLAS_NUM_THREADS=1.
"""


def run_section(section: Callable[[Timing], Section], cfg: Timing) -> Section:
    try:
        return section(cfg)
    except Exception as e:  # noqa: BLE001 -- a failed section is reported, the others run
        traceback.print_exc()
        return Section(section.__name__.replace("_", " "),
                       notes=f"section failed: {type(e).__name__}: {e}")


def main(doc: str, sections: Sequence[Callable[[Timing], Section]],
         workers: dict[str, Callable[[dict], dict]], quick: Timing, full: Timing,
         default_out: Path, script: str, title: str, **header_options) -> None:
    """A benchmark script's command line: `--worker SPEC` runs `workers[SPEC["kind"]]` and prints
    its JSON; otherwise the sections (all, or `--only` these) run with the `full` or `--quick`
    config, each printed and written to the report (`--out`, or `default_out` for a full run of
    every section) as soon as it is done. `header_options`: those of `header`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, a smoke test")
    parser.add_argument("--out", type=Path, help=f"markdown report (default: "
                        f"{default_out.relative_to(ROOT)} for the full run, none for --quick)")
    parser.add_argument("--only", nargs="+", choices=[f.__name__ for f in sections],
                        help="run these sections only (no report unless --out is given)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(workers[spec["kind"]](spec)))
        return
    # Builds timed here and in the workers compile, except where a worker is given a cache.
    os.environ["ANVIL_LLVM_NO_CACHE"] = "1"
    import_peers()
    cfg = quick if args.quick else full
    out = args.out or (None if args.quick or args.only else default_out)
    command = " ".join(["python", script, *sys.argv[1:]])
    parts = [header(title, script, command, **header_options)]
    print(parts[0])
    for section in sections:
        if args.only and section.__name__ not in args.only:
            continue
        parts.append(run_section(section, cfg).markdown())
        print(parts[-1], flush=True)
        if out is not None:                 # after every section: a crash keeps what was done
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(parts))
