"""Shared helpers for the benchmark scripts: tools checked against a reference, then timed side
by side in interleaved rounds (medians); subprocess workers with timeouts; the results as data
(rows, sections, an area's record with the machine and versions, as JSON) and the markdown
report made from that data; the scripts' command line."""
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

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-10
"""Largest accepted relative max-abs error of a tool's output against the reference."""

Value = float | str
"""A measurement in seconds, or a status: "timeout ...", "failed: ...", "DISAGREE ...",
"missing ..." (a peer that is not installed)."""
DISAGREE = "DISAGREE"
"""How a status reporting two tools' values that differ begins."""


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


# ---- results as data ---------------------------------------------------------------------------
def fmt_time(value: Value) -> str:
    """A time in seconds (or a status) as the tables show it.

    >>> fmt_time(2.5e-6), fmt_time(0.0123), fmt_time("missing (jax)")
    ('2.5 us', '12.3 ms', 'missing (jax)')
    """
    if isinstance(value, str):
        return value.replace("|", "/")
    for limit, factor, unit, digits in ((1e-6, 1e9, "ns", 0), (1e-3, 1e6, "us", 1),
                                        (1.0, 1e3, "ms", 1)):
        if value < limit:
            return f"{value * factor:.{digits}f} {unit}"
    return f"{value:.2f} s"


def is_disagreement(value: object) -> bool:
    """Whether a cell's status says that a tool's values differ from the reference's."""
    return isinstance(value, str) and DISAGREE in value


@dataclass
class Point:
    """Where a row's times go in the plots: `quantity` ("run" or "build") of `operator` on
    `problem` at size `n`; the anvil column is the series `anvil`, each peer column its own,
    except the columns of `at`: the anvil series at another size (column -> n)."""

    problem: str
    operator: str
    quantity: str
    n: int
    anvil: str = "anvil"
    at: dict[str, int] = field(default_factory=dict)

    def series(self, row: Row) -> list[tuple[str, int, float]]:
        """(series, n, seconds) of each of `row`'s cells that has a time."""
        cells = [(self.anvil, self.n, row.anvil)]
        cells += [(self.anvil, self.at[name], value) if name in self.at else (name, self.n, value)
                  for name, value in row.peers.items()]
        return [(name, n, value) for name, n, value in cells if isinstance(value, float)]


@dataclass
class Row:
    """One measured quantity: anvil's figure, the peers', and the target. With `against`, the
    ratio is anvil over the fastest of those peers and the target is ratio <= `bound`; without,
    the target is anvil's seconds <= `bound`. No `bound`: shown for information. `point`: where
    it goes in the plots (None: in none)."""

    what: str
    anvil: Value
    peers: dict[str, Value] = field(default_factory=dict)
    against: tuple[str, ...] = ()
    bound: float | None = None
    note: str = ""
    point: Point | None = None

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

    def disagreements(self) -> list[str]:
        """"tool: status" of each cell whose values disagree with the reference."""
        cells = {"anvil": self.anvil, **self.peers}
        return [f"{name}: {value}" for name, value in cells.items() if is_disagreement(value)]

    def to_dict(self) -> dict:
        """The row as JSON data; the derived figures (ratio, target, met) are included for
        readers of the data and ignored by `from_dict`."""
        reference = self._reference()
        return {"what": self.what, "anvil": self.anvil, "peers": self.peers,
                "against": list(self.against), "bound": self.bound, "note": self.note,
                "ratio": self.ratio(), "reference": reference[0] if reference else None,
                "target": self.target_text(), "met": self.met(),
                "point": None if self.point is None else vars(self.point)}

    @classmethod
    def from_dict(cls, data: dict) -> Row:
        """The row of `to_dict`'s data.

        >>> row = Row("call", 2e-6, {"JAX": 4e-6}, ("JAX",), 1.0,
        ...           point=Point("rosen", "gradient", "run", 100))
        >>> again = Row.from_dict(json.loads(json.dumps(row.to_dict())))
        >>> again == row, again.ratio_text(), again.met()
        (True, '0.50x JAX', 'yes')
        """
        point = data.get("point")
        return cls(data["what"], data["anvil"], dict(data.get("peers", {})),
                   tuple(data.get("against", ())), data.get("bound"), data.get("note", ""),
                   Point(**point) if point else None)


@dataclass
class Section:
    """A table of rows and its notes; `error`: why the section stopped (it has no rows)."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: str = ""
    error: str = ""
    seconds: float | None = None        # how long it took to measure

    def disagreements(self) -> list[str]:
        """"row: tool: status" of every cell (and the section's error) reporting a
        disagreement."""
        found = [f"{row.what}: {cell}" for row in self.rows for cell in row.disagreements()]
        return found + ([f"section: {self.error}"] if is_disagreement(self.error) else [])

    def to_dict(self) -> dict:
        return {"title": self.title, "notes": self.notes, "error": self.error,
                "seconds": self.seconds, "rows": [row.to_dict() for row in self.rows],
                "disagreements": self.disagreements()}

    @classmethod
    def from_dict(cls, data: dict) -> Section:
        return cls(data["title"], [Row.from_dict(row) for row in data.get("rows", [])],
                   data.get("notes", ""), data.get("error", ""), data.get("seconds"))

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
            cells += [row.note.replace("|", "/")] if with_notes else []
            lines.append("| " + " | ".join(cells) + " |")
        if self.error:
            lines += ["", f"Section failed: {self.error}"]
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"


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


def versions(commit: bool = True) -> dict:
    """The versions of anvil_llvm, LLVM and the peers ("missing": not installed); with
    `commit`, the checkout's `git describe`."""
    import llvmlite.binding as llvm
    found = {module: _version(module) for module in VERSIONED}
    found["LLVM"] = ".".join(map(str, llvm.llvm_version_info))
    if commit:
        found["commit"] = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], check=False,
            capture_output=True, text=True).stdout.strip()
    return found


def header_markdown(record: dict) -> str:
    """The report's title, how it was made, the machine, the versions and how it measures,
    from an area's record (see `Area.record`)."""
    m, v = record["machine"], dict(record["versions"])
    commit = v.pop("commit", "") if record.get("show_commit") else ""
    shown = ", ".join(f"{module} {v[module]}" for module in VERSIONED if module in v
                      and module != "scipy")
    shown += f", LLVM {v['LLVM']}" + (f"; anvil_llvm commit {commit}" if commit else "")
    quick = " (`--quick`: reduced sizes, a smoke test)" if record.get("quick") else ""
    return f"""# {record["title"]}

Generated by `{record["script"]}` on {record["date"]}; command: `{record["command"]}`{quick}.

- Machine: {m["cpu"]}, {m["cpus"]} CPUs (LLVM host CPU {m["llvm_host_cpu"]}), load \
average {m["load_average"]:.1f} at the start; Python {m["python"]}.
- Versions: {shown}.
- {record.get("intro", "")}Each tool's output is checked against a reference (relative max-abs \
error <= {TOLERANCE:g}) before it is timed; a tool that disagrees shows DISAGREE\
{record.get("failures", "")}; a peer that is not installed shows "missing". Call times: \
median over interleaved rounds (the tools take turns) of `timeit` samples, from Python. Ratio: \
anvil over the peer named (the fastest of those the target names). numba and anvil run \
single-threaded; JAX uses its default threading. OPENBLAS_NUM_THREADS=1.
"""


def header(title: str, script: str, command: str, *, commit: bool = False, intro: str = "",
           failures: str = "") -> str:
    """The markdown header of a report measured now (for scripts that write their own
    tables): `header_markdown` of this machine's facts and versions."""
    return header_markdown({"title": title, "script": script, "command": command,
                            "date": str(datetime.date.today()), "machine": machine(),
                            "versions": versions(commit), "show_commit": commit,
                            "intro": intro, "failures": failures})


def area_markdown(record: dict, plots: Sequence[str] = ()) -> str:
    """An area's report from its record: the header, each section's table and notes, and the
    `plots` (image paths relative to the report)."""
    parts = [header_markdown(record)]
    parts += [Section.from_dict(section).markdown() for section in record["sections"]]
    if plots:
        parts.append("## Plots\n\n" + "\n\n".join(f"![{Path(plot).stem}]({plot})"
                                                  for plot in plots) + "\n")
    return "\n".join(parts)


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


def status(sections: Sequence[Section]) -> str:
    """"disagree" when a cell or section reports a disagreement, else "failed" when a section
    stopped for another reason than a missing peer, else "ok"."""
    if any(section.disagreements() for section in sections):
        return "disagree"
    if any(section.error and not section.error.startswith("missing") for section in sections):
        return "failed"
    return "ok"


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

    def run(self, quick: bool = False, only: Sequence[str] | None = None,
            done: Callable[[Section], None] | None = None) -> list[Section]:
        """The measured sections (all, or those named in `only`), each passed to `done` as soon
        as it is measured."""
        unknown = set(only or ()) - set(self.section_names())
        if unknown:
            raise ValueError(f"only: no section {sorted(unknown)} in {self.name}; expected "
                             f"some of {self.section_names()}")
        os.environ["ANVIL_LLVM_NO_CACHE"] = "1"     # builds compile (workers: unless given one)
        import_peers()
        cfg = self.quick if quick else self.full
        measured = []
        for section in self.sections:
            if only and section.__name__ not in only:
                continue
            start = time.perf_counter()
            measured.append(run_section(section, cfg))
            measured[-1].seconds = round(time.perf_counter() - start, 2)
            if done is not None:
                done(measured[-1])
        return measured

    def record(self, sections: Sequence[Section], command: str, quick: bool,
               started: dict | None = None) -> dict:
        """The area's results as JSON data: what ran, when, on what machine (`started`: the
        machine's facts taken at the start), with which versions, every section, and the
        status ("ok", "disagree" or "failed")."""
        found = [section.to_dict() for section in sections]
        return {"area": self.name, "title": self.title, "script": self.script,
                "command": command, "date": str(datetime.date.today()), "quick": quick,
                "machine": started or machine(), "versions": versions(),
                "show_commit": self.commit, "intro": self.intro, "failures": self.failures,
                "sections": found, "status": status(sections),
                "disagreements": [f"{s['title']}: {d}" for s in found
                                  for d in s["disagreements"]],
                "errors": [f"{s['title']}: {s['error']}" for s in found if s["error"]]}

    def main(self, doc: str) -> None:
        """The script's command line: `--worker SPEC` runs `workers[SPEC["kind"]]` and prints
        its JSON; otherwise the sections (all, or `--only` these) run with the full or
        `--quick` config; the report is written from the data after every section (to `--out`,
        or the default report for a full run of every section) and the data to `--json`. Exit
        status 1 when two tools disagree or a section failed."""
        parser = argparse.ArgumentParser(description=doc.splitlines()[0])
        parser.add_argument("--quick", action="store_true", help="reduced sizes, a smoke test")
        parser.add_argument("--out", type=Path, help=f"markdown report (default: "
                            f"{self.default_out.relative_to(ROOT)} for the full run, none for "
                            "--quick)")
        parser.add_argument("--json", type=Path, help="the results as JSON data")
        parser.add_argument("--only", nargs="+", choices=self.section_names(),
                            help="run these sections only (no report unless --out is given)")
        parser.add_argument("--worker", help=argparse.SUPPRESS)
        args = parser.parse_args()
        if args.worker:
            spec = json.loads(args.worker)
            print(json.dumps(self.workers[spec["kind"]](spec)))
            return
        out = args.out or (None if args.quick or args.only else self.default_out)
        command = " ".join(["python", self.script, *sys.argv[1:]])
        started, measured = machine(), []

        def done(section: Section) -> None:     # after every section: a crash keeps the rest
            measured.append(section)
            print(section.markdown(), flush=True)
            record = self.record(measured, command, args.quick, started)
            write(out, area_markdown(record))
            write(args.json, json.dumps(record, indent=1))
        self.run(args.quick, args.only, done)
        record = self.record(measured, command, args.quick, started)
        for line in record["disagreements"] + record["errors"]:
            print(f"{self.name}: {line}", file=sys.stderr)
        sys.exit(0 if record["status"] == "ok" else 1)


def write(path: Path | None, text: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def main(doc: str, sections: Sequence[Callable[[Timing], Section]],
         workers: dict[str, Callable[[dict], dict]], quick: Timing, full: Timing,
         default_out: Path, script: str, title: str, **header_options) -> None:
    """`Area.main` of the area these arguments describe (its name: `default_out`'s stem, which
    `script` is scripts/bench_<name>.py)."""
    Area(Path(default_out).stem, title, tuple(sections), quick, full, workers,
         **header_options).main(doc)
