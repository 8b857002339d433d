"""Shared helpers for the benchmark scripts: tools checked against a reference, then timed side
by side in interleaved rounds (medians); subprocess workers with timeouts; the machine's facts
and the versions; an area's sections run into a record (its data and report: benchreport,
whose names are here too) and the scripts' command line."""
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

import numpy as np
from benchreport import (  # noqa: F401 -- the scripts use these names through benchtools
    DISAGREE,
    TOLERANCE,
    Point,
    Row,
    Section,
    Value,
    area_markdown,
    fmt_time,
    is_disagreement,
    merge,
    outcome,
)

ROOT = Path(__file__).resolve().parent.parent


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


class Missing(Unavailable, AttributeError):
    """A peer that is not installed (an AttributeError too, so `hasattr(peers, ...)` works)."""


def missing(module: str) -> str:
    return f"missing ({module} not installed: pip install .[bench])"


def unavailable(module: str) -> Callable:
    """A stand-in for a function of a peer that is not installed: calling it raises `Missing`,
    so that the tool's cell reads "missing (...)"."""
    def call(*args, **kwargs):
        raise Missing(missing(module))
    return call


def failure(error: BaseException) -> str:
    """The status of a tool or section that raised `error`."""
    if isinstance(error, Unavailable):
        return str(error)
    if isinstance(error, ModuleNotFoundError) and error.name:
        return missing(error.name.split(".")[0])
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
        return None if error <= TOLERANCE else f"{DISAGREE} (err {error:.1e})"


def round_robin(samplers: dict[str, Callable[[], float]], rounds: int) -> dict[str, Value]:
    """The median of `rounds` samples (seconds) of each sampler. The tools take turns within a
    round, so the slow drifts of a noisy machine hit them alike, and each round starts one tool
    further, so no tool always runs right after the same other (a peer whose threads keep
    spinning after its calls, as JAX's do, slows whoever comes next); a sampler that raises is
    reported as failed and not sampled again."""
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    failed: dict[str, str] = {}
    names = list(samplers)
    for round_ in range(rounds):
        start = round_ % max(len(names), 1)
        for name in names[start:] + names[:start]:
            sample = samplers[name]
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


WARM_UP = 0.25
"""Seconds each tool is called (at least one sample) before its samples are taken: a call
writing tens of MB into the same output array ran 1.6x slower for its first ~50 calls here
(the kernel settling its pages: bratu2d's Jacobian 6.2 -> 3.8 ms), which a handful of rounds
would have counted."""


def side_by_side(tools: dict[str, Tool], rounds: int, seconds: float) -> dict[str, Value]:
    """Seconds per call of each tool that agrees with its reference (median over interleaved
    rounds, each sample about `seconds` long, after WARM_UP seconds of calls); the others get
    their status."""
    statuses = {name: tool.status() for name, tool in tools.items()}
    samplers = {}
    for name, tool in tools.items():
        if statuses[name] is None:
            timer = timeit.Timer(tool.stmt, globals=tool.env)
            number = _calls_per_sample(timer, seconds)
            spent = 0.0
            while spent < WARM_UP:             # at least one sample, however slow
                spent += timer.timeit(number)
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
PEER_MODULES = {"ca": "casadi", "numba": "numba", "jax": "jax", "jnp": "jax"}
"""The peers' attributes in `peers` and the module each comes from."""


class Peers:
    """The imported peers (`peers.ca`, `peers.jax`, ...); a peer that is not installed raises
    `Missing` where it is used, so its cells read "missing (...)" and the others run."""

    def __getattr__(self, attr: str):
        if attr in PEER_MODULES:
            raise Missing(missing(PEER_MODULES[attr]))
        raise AttributeError(attr)


peers = Peers()


def import_peers() -> None:
    """Import the installed peers; a missing one fails only its own cells (as "missing")."""
    for attr, module in (("ca", "casadi"), ("numba", "numba"), ("jax", "jax")):
        try:
            setattr(peers, attr, importlib.import_module(module))
        except ImportError:
            print(f"warning: {missing(module)}", file=sys.stderr)
    if "jax" in vars(peers):
        peers.jax.config.update("jax_enable_x64", True)
        peers.jnp = importlib.import_module("jax.numpy")


# ---- the machine and the versions ----------------------------------------------------------------
VERSIONED = ("anvil_llvm", "numpy", "numba", "llvmlite", "casadi", "jax", "jaxlib", "scipy")


def _version(module: str) -> str:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "missing"


def machine() -> dict:
    """Facts about this machine that bear on the timings."""
    import llvmlite.binding as llvm
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cpus": os.cpu_count(), "llvm_host_cpu": llvm.get_host_cpu_name(),
            "load_average": round(os.getloadavg()[0], 2), "system": platform.platform(),
            "python": platform.python_version(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}


def versions() -> dict:
    """The versions of anvil_llvm, LLVM and the peers ("missing": not installed), and the
    checkout's `git describe`."""
    import llvmlite.binding as llvm
    found = {module: _version(module) for module in VERSIONED}
    found["LLVM"] = ".".join(map(str, llvm.llvm_version_info))
    found["commit"] = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], check=False,
        capture_output=True, text=True).stdout.strip()
    return found


# ---- an area: its sections, run into a record ----------------------------------------------------
def run_section(section: Callable[[Timing], Section], cfg: Timing) -> Section:
    """The section measured; one that raises is reported with its error (the others run)."""
    try:
        return section(cfg)
    except Exception as e:  # noqa: BLE001 -- a failed section is reported, the others run
        traceback.print_exc()
        error = failure(e) if isinstance(e, (Unavailable, ModuleNotFoundError)) else \
            f"{type(e).__name__}: {e}"
        return Section(section.__name__.replace("_", " "), error=error)


@dataclass(frozen=True)
class Area:
    """A benchmark script: its `name` (the report is docs/benchmarks/<name>.md), the report's
    title, its sections (each Timing -> Section), their quick and full configs, the workers it
    runs in fresh processes, and the header's options (`intro` opens the description of how it
    measures, `failures` follows "a tool that disagrees shows DISAGREE", `commit` shows the
    checkout's `git describe`)."""

    name: str
    title: str
    sections: tuple[Callable[[Timing], Section], ...]
    quick: Timing
    full: Timing
    workers: dict[str, Callable[[dict], dict]] = field(default_factory=dict)
    intro: str = ""
    failures: str = ""
    commit: bool = False

    @property
    def script(self) -> str:
        return f"scripts/bench_{self.name}.py"

    @property
    def default_out(self) -> Path:
        return ROOT / "docs" / "benchmarks" / f"{self.name}.md"

    def section_names(self) -> list[str]:
        return [section.__name__ for section in self.sections]

    def resolve(self, only: Sequence[str]) -> list[str]:
        """The names of the sections that `only` names, each by its name or its number (from 1,
        in the report's order), in the report's order.

        >>> area = Area("demo", "Demo", (fmt_time, rel_error), None, None)
        >>> area.resolve(["2", "fmt_time", "rel_error"])
        ['fmt_time', 'rel_error']
        >>> area.resolve(["3"])
        Traceback (most recent call last):
        ValueError: --only: no section '3' in demo; expected a name or a number: 1 fmt_time, 2 rel_error
        """
        names = self.section_names()
        chosen = set()
        for item in only:
            if item in names:
                chosen.add(item)
            elif item.isdigit() and 1 <= int(item) <= len(names):
                chosen.add(names[int(item) - 1])
            else:
                listed = ", ".join(f"{k} {name}" for k, name in enumerate(names, 1))
                raise ValueError(f"--only: no section {item!r} in {self.name}; expected a name "
                                 f"or a number: {listed}")
        return [name for name in names if name in chosen]

    def run(self, quick: bool = False, only: Sequence[str] | None = None,
            done: Callable[[Section], None] | None = None) -> list[Section]:
        """The measured sections (all, or those named in `only`: see `resolve`), each passed to
        `done` as soon as it is measured."""
        chosen = self.resolve(only) if only else self.section_names()
        os.environ["ANVIL_LLVM_NO_CACHE"] = "1"     # builds compile (workers: unless given one)
        import_peers()
        cfg = self.quick if quick else self.full
        measured = []
        for section in self.sections:
            if section.__name__ not in chosen:
                continue
            facts = {"at": datetime.datetime.now().isoformat(timespec="minutes"),
                     "load_average": round(os.getloadavg()[0], 2)}
            start = time.perf_counter()
            measured.append(run_section(section, cfg))
            measured[-1].seconds = round(time.perf_counter() - start, 2)
            measured[-1].name, measured[-1].measured = section.__name__, facts
            if done is not None:
                done(measured[-1])
        return measured

    def record(self, sections: Sequence[Section], command: str, quick: bool,
               started: dict | None = None) -> dict:
        """The area's results as JSON data: what ran, when, on what machine (`started`: the
        machine's facts taken at the start), with which versions, every section (with the
        commit it was measured at), the names of all the area's sections, and the status
        ("ok", "disagree" or "failed")."""
        found_versions = versions()
        found = [{**section.to_dict(), "measured": {**section.measured,
                                                    "commit": found_versions["commit"]}}
                 for section in sections]
        return {"area": self.name, "title": self.title, "script": self.script,
                "command": command, "date": str(datetime.date.today()), "quick": quick,
                "machine": started or machine(), "versions": found_versions,
                "show_commit": self.commit, "intro": self.intro, "failures": self.failures,
                "section_names": self.section_names(), "sections": found, **outcome(found)}

    def main(self, doc: str) -> None:
        """The script's command line: `--worker SPEC` runs `workers[SPEC["kind"]]` and prints
        its JSON; otherwise the sections (all, or `--only` these, by name or number) run with
        the full or `--quick` config; the report is written from the data after every section
        (to `--out`, or the default report for a full run of every section) and the data to
        `--json`. Exit status 1 when two tools disagree or a section failed."""
        listed = ", ".join(f"{k} {name}" for k, name in enumerate(self.section_names(), 1))
        parser = argparse.ArgumentParser(description=doc.splitlines()[0])
        parser.add_argument("--quick", action="store_true", help="reduced sizes, a smoke test")
        parser.add_argument("--out", type=Path, help=f"markdown report (default: "
                            f"{self.default_out.relative_to(ROOT)} for the full run, none for "
                            "--quick)")
        parser.add_argument("--json", type=Path, help="the results as JSON data")
        parser.add_argument("--only", nargs="+", metavar="SECTION",
                            help=f"run these sections only, by name or number ({listed}); no "
                            "report unless --out is given")
        parser.add_argument("--worker", help=argparse.SUPPRESS)
        args = parser.parse_args()
        if args.worker:
            spec = json.loads(args.worker)
            print(json.dumps(self.workers[spec["kind"]](spec)))
            return
        try:
            only = self.resolve(args.only) if args.only else None
        except ValueError as e:
            parser.error(str(e))
        out = args.out or (None if args.quick or only else self.default_out)
        command = " ".join(["python", self.script, *sys.argv[1:]])
        started, measured = machine(), []

        def done(section: Section) -> None:     # after every section: a crash keeps the rest
            measured.append(section)
            print(section.markdown(), flush=True)
            record = self.record(measured, command, args.quick, started)
            write(out, area_markdown(record))
            write(args.json, json.dumps(record, indent=1))
        self.run(args.quick, only, done)
        record = self.record(measured, command, args.quick, started)
        for line in record["disagreements"] + record["errors"]:
            print(f"{self.name}: {line}", file=sys.stderr)
        sys.exit(0 if record["status"] == "ok" else 1)


def write(path: Path | None, text: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
