"""The benchmark suite in one command: every area's script (scripts/bench_<area>.py) run in a
fresh process of its own, anvil_llvm and the peers side by side in each; the results stored as
data (one JSON file: the machine, the versions, every row's numbers and the value checks) and
the markdown reports and plots made from that data.

    python scripts/bench.py                      # the full run: docs/benchmarks/ (many minutes)
    python scripts/bench.py --quick              # a smoke test (under two minutes), in a new
                                                 # temporary directory unless --out is given
    python scripts/bench.py --only sparse loops:chain_gradient loops:4 --quick
    python scripts/bench.py --report-only        # the reports and plots again, from the JSON

Exit status 1 when two tools disagree on a value (or an area or section failed for another
reason than a missing peer), so that `--quick` can run in CI. A peer that is not installed
(`pip install .[bench]`) shows "missing" in its cells. A section is named by its function's
name or its number in the report (`loops:4`). A run merges into the existing JSON: the areas
and sections it measured replace theirs (each section records when, at what load and at which
commit it was measured), the others are kept (see `benchtools.merge`).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import benchtools as bt

AREAS = ("core", "arrays", "sparse", "loops", "numba", "coloring", "distribution", "linalg",
         "export")
"""The areas in the order they run and are reported (those whose script exists)."""
LONGEST_FIRST = ("loops", "core", "distribution", "sparse", "export", "linalg", "coloring",
                 "arrays", "numba")
DOCS = bt.ROOT / "docs" / "benchmarks"
SCHEMA = 1


def script(area: str) -> Path:
    return bt.ROOT / "scripts" / f"bench_{area}.py"


def available() -> list[str]:
    return [area for area in AREAS if script(area).exists()]


def selection(only: Sequence[str] | None) -> dict[str, list[str]]:
    """The areas to run and, for each, the sections named (none: all, also when the area is
    named whole), from `--only`'s AREA and AREA:SECTION items (a section's name or number).

    >>> selection(["core:call_overhead", "sparse", "core:4", "sparse:colours"])
    {'core': ['call_overhead', '4'], 'sparse': []}
    """
    if not only:
        return {area: [] for area in available()}
    chosen: dict[str, list[str]] = {}
    whole = set()
    for item in only:
        area, _, section = item.partition(":")
        if area not in AREAS:
            raise ValueError(f"--only: no area {area!r}; expected one of {', '.join(AREAS)}, "
                             "optionally followed by :SECTION (a name or a number)")
        chosen.setdefault(area, []).extend([section] if section else [])
        whole |= {area} if not section else set()
    return {area: [] if area in whole else sections for area, sections in chosen.items()}


def run_area(area: str, sections: list[str], quick: bool, timeout: float | None,
             work: Path, log: Path | None = None, previous: dict | None = None) -> dict:
    """Run one area's script in a fresh process (its output passed through, or written to
    `log`) and return its record, merged into the `previous` one (see `benchtools.merge`: a
    run of some sections keeps the others); a script that crashes or times out gets the
    status "failed" saying so."""
    data = work / f"{area}.json"
    args = [sys.executable, str(script(area))] + (["--quick"] if quick else [])
    args += ["--only", *sections] if sections else []
    args += ["--out", str(work / f"{area}.md"), "--json", str(data)]
    start = time.perf_counter()
    try:
        with open(log or os.devnull, "w") as output:
            code = subprocess.run(args, timeout=timeout, check=False,
                                  **({"stdout": output, "stderr": subprocess.STDOUT}
                                     if log else {})).returncode
        problem = "" if code == 0 else f"the script exited with status {code}"
    except subprocess.TimeoutExpired:
        problem = f"timeout (> {timeout:g} s)"
    # how to run this area again (the script's own command names the temporary files)
    command = "python scripts/bench.py" + (" --quick" if quick else "") + " --only " + \
        (" ".join(f"{area}:{section}" for section in sections) if sections else area)
    measured = json.loads(data.read_text()) if data.exists() else \
        {"area": area, "title": area, "quick": quick, "sections": [], **bt.outcome([])}
    if not data.exists():
        problem = problem or "no data written"
    record = bt.merge(previous, {**measured, "command": command,
                                 "date": str(datetime.date.today())})
    if problem and record["status"] == "ok":
        record["status"], record["errors"] = "failed", record["errors"] + [problem]
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


# ---- plots ---------------------------------------------------------------------------------------
def points(record: dict) -> dict[tuple[str, str], dict[str, dict[str, dict[int, float]]]]:
    """The plotted times of an area: (operator, quantity) -> problem -> series -> {n: seconds};
    where rows repeat a cell (the same row against another peer), the first one counts."""
    found: dict = {}
    for section in record.get("sections", []):
        for row in map(bt.Row.from_dict, section["rows"]):
            if row.point is None:
                continue
            p = row.point
            problems = found.setdefault((p.operator, p.quantity), {})
            for name, n, seconds in p.series(row):
                problems.setdefault(p.problem, {}).setdefault(name, {}).setdefault(n, seconds)
    return found


def slug(text: str) -> str:
    """
    >>> slug("Jacobian colouring")
    'jacobian-colouring'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


LINES = ("-", "--", ":", "-.")
MARKERS = "osD^v<>pP*Xh"


def plot_area(record: dict, directory: Path) -> list[Path]:
    """One PNG per operator of the area (run time and build time against n, log-log: a colour
    per problem, a marker and line style per tool); the files written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    found = points(record)
    written = []
    for operator in dict.fromkeys(op for op, _ in found):
        panels = [(q, found[operator, q]) for q in ("run", "build") if (operator, q) in found]
        problems = list(dict.fromkeys(p for _, by_problem in panels for p in by_problem))
        tools = list(dict.fromkeys(t for _, by_problem in panels for series in
                                   by_problem.values() for t in series))
        colours = {p: plt.get_cmap("tab10")(k % 10) for k, p in enumerate(problems)}
        styles = {t: (LINES[k % len(LINES)], MARKERS[k % len(MARKERS)])
                  for k, t in enumerate(tools)}
        figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8),
                                    squeeze=False)
        for ax, (quantity, by_problem) in zip(axes[0], panels):
            for problem, series in by_problem.items():
                for tool, times in series.items():
                    ns = sorted(times)
                    line, marker = styles[tool]
                    ax.plot(ns, [times[n] for n in ns], linestyle=line, marker=marker,
                            color=colours[problem])
            ax.set(xscale="log", yscale="log", xlabel="n (size)", ylabel="seconds",
                   title=f"{operator}: {'run time per call' if quantity == 'run' else 'build time'}")
            ax.grid(True, which="both", alpha=0.3)
        handles = [Line2D([], [], color=colours[p], linewidth=4, label=p) for p in problems]
        handles += [Line2D([], [], color="black", linestyle=styles[t][0], marker=styles[t][1],
                           label=t.replace("`", "")) for t in tools]
        figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                      fontsize="small", frameon=False)
        figure.suptitle(f"{record['title']}: {operator} against n (colour: problem; line: tool)")
        figure.tight_layout()
        path = directory / f"{record['area']}-{slug(operator)}.png"
        directory.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def write_reports(results: dict, directory: Path, areas: Sequence[str] | None = None) -> None:
    """Each area's markdown report (and its plots, under plots/) from the results' data (of
    the `areas` named, or all)."""
    for area, record in results["areas"].items():
        if areas is not None and area not in areas:
            continue
        if "machine" not in record:      # its process died before measuring: keep the last page
            continue
        try:
            plots = [f"plots/{p.name}" for p in plot_area(record, directory / "plots")]
        except ImportError as e:
            plots = []
            record = {**record, "sections": record["sections"] + [bt.Section(
                "Plots", error=bt.failure(e)).to_dict()]}
        bt.write(directory / f"{area}.md", bt.area_markdown(record, plots))


# ---- the command line ----------------------------------------------------------------------------
def summary(results: dict) -> tuple[str, int]:
    """A line per area (its status, time and problems) and the exit status: 1 when an area's
    status is not "ok"."""
    lines, code = [], 0
    for area, record in results["areas"].items():
        code = code or int(record["status"] != "ok")
        lines.append(f"{area:13} {record['status']:9} {record.get('seconds', 0):7.1f} s")
        lines += [f"    {problem}" for problem in record["disagreements"] + record["errors"]]
    return "\n".join(lines), code


def load(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"schema": SCHEMA, "areas": {}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="reduced sizes, a smoke test (in a new temporary directory unless "
                        "--out is given)")
    parser.add_argument("--only", nargs="+", metavar="AREA[:SECTION]",
                        help=f"run these areas or sections only (areas: {', '.join(AREAS)})")
    parser.add_argument("--out", type=Path, help="the directory of the reports and plots "
                        "(default: docs/benchmarks for a full run)")
    parser.add_argument("--json", type=Path, help="the results' data (default: results.json "
                        "in the --out directory)")
    parser.add_argument("--report-only", action="store_true", help="make the reports and plots "
                        "from the existing data, without running anything")
    parser.add_argument("--jobs", type=int, help="areas run at the same time (default: 2 with "
                        "--quick, whose timings are a smoke test, and 1 otherwise)")
    parser.add_argument("--timeout", type=float, help="seconds allowed to each area's script "
                        "(default: 600 with --quick, none otherwise)")
    args = parser.parse_args(argv)
    out = args.out or (Path(tempfile.mkdtemp(prefix="anvil-bench-"))
                       if args.quick and not args.report_only else DOCS)
    data = args.json or out / "results.json"
    if args.report_only:
        results = load(data)
        write_reports(results, args.out or data.parent)
        print(f"reports written in {args.out or data.parent} from {data}")
        return 0
    try:
        chosen = selection(args.only)
    except ValueError as e:
        parser.error(str(e))
    results = load(data)
    command = " ".join(["python", "scripts/bench.py", *(sys.argv[1:] if argv is None
                                                          else argv)])
    results.update(schema=SCHEMA, command=command, quick=args.quick,
                   started=datetime.datetime.now().isoformat(timespec="seconds"),
                   machine=bt.machine(), versions=bt.versions())
    results.setdefault("areas", {})
    timeout = args.timeout or (600.0 if args.quick else None)
    start = time.perf_counter()
    jobs = args.jobs or (2 if args.quick else 1)
    previous = dict(results["areas"])
    with tempfile.TemporaryDirectory() as work, ThreadPoolExecutor(jobs) as pool:
        def run(area: str) -> dict:
            if jobs == 1:
                print(f"==== {area} ====", flush=True)
            log = Path(work) / f"{area}.log" if jobs > 1 else None
            return run_area(area, chosen[area], args.quick, timeout, Path(work), log,
                            previous.get(area))
        # the longest areas first, so that parallel jobs end together
        order = sorted(chosen, key=lambda a: (LONGEST_FIRST + (a,)).index(a)) if jobs > 1 \
            else list(chosen)
        futures = {pool.submit(run, area): area for area in order}
        for future in as_completed(futures):
            area = futures[future]
            results["areas"][area] = future.result()
            results["areas"] = {a: results["areas"][a] for a in AREAS if a in results["areas"]}
            results["seconds"] = round(time.perf_counter() - start, 1)
            bt.write(data, json.dumps(results, indent=1))     # after every area
            write_reports(results, out, [area])
            record = results["areas"][area]
            print(f"==== {area}: {record['status']} in {record['seconds']:.0f} s ====",
                  flush=True)
            if jobs > 1 and record["status"] != "ok":
                print((Path(work) / f"{area}.log").read_text()[-3000:], flush=True)
    text, code = summary({"areas": {a: results["areas"][a] for a in chosen}})
    print(f"\n{text}\nin {results['seconds']:.0f} s; data {data}, reports in {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
