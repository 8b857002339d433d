"""Benchmark results as data and the reports made from them: rows, sections and an area's
record (its status, and a run of some of its sections merged into the last record), as JSON,
and the markdown report of a record."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

TOLERANCE = 1e-10
"""Largest accepted relative max-abs error of a tool's output against the reference."""

Value = float | str
"""A measurement in seconds, or a status: "timeout ...", "failed: ...", "DISAGREE ...",
"missing ..." (a peer that is not installed)."""
DISAGREE = "DISAGREE"
"""How a status reporting two tools' values that differ begins."""


# ---- rows and sections ---------------------------------------------------------------------------
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

        >>> import json
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
    """A table of rows and its notes; `error`: why the section stopped (it has no rows);
    `name`: the function that measured it (what `--only` names); `measured`: when, at what
    load and with which commit."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: str = ""
    error: str = ""
    seconds: float | None = None        # how long it took to measure
    name: str = ""
    measured: dict = field(default_factory=dict)

    def disagreements(self) -> list[str]:
        """"row: tool: status" of every cell (and the section's error) reporting a
        disagreement."""
        found = [f"{row.what}: {cell}" for row in self.rows for cell in row.disagreements()]
        return found + ([f"section: {self.error}"] if is_disagreement(self.error) else [])

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "notes": self.notes,
                "error": self.error, "seconds": self.seconds, "measured": self.measured,
                "rows": [row.to_dict() for row in self.rows],
                "disagreements": self.disagreements()}

    @classmethod
    def from_dict(cls, data: dict) -> Section:
        return cls(data["title"], [Row.from_dict(row) for row in data.get("rows", [])],
                   data.get("notes", ""), data.get("error", ""), data.get("seconds"),
                   data.get("name", ""), dict(data.get("measured", {})))

    def markdown(self, caption: str = "") -> str:
        """The section's heading, `caption` (a line under it), its table and its notes."""
        run = {name for row in self.rows for name, value in row.peers.items() if value != "-"}
        peers = [name for name in dict.fromkeys(name for row in self.rows for name in row.peers)
                 if name in run]        # not the column of a tool run in no row
        with_notes = any(row.note for row in self.rows)
        head = ["what", "anvil", *peers, "ratio", "target", "met"] + (["note"] if with_notes
                                                                        else [])
        lines = [f"## {self.title}", ""] + ([caption, ""] if caption else [])
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


# ---- an area's report ----------------------------------------------------------------------
def header_markdown(record: dict) -> str:
    """The report's title, how it was made, the machine, the versions and how it measures,
    from an area's record (see `Area.record`)."""
    m, v = record["machine"], dict(record["versions"])
    commit = v.pop("commit", "") if record.get("show_commit") else ""
    shown = ", ".join(f"{module} {version}" for module, version in v.items()
                      if module not in ("scipy", "LLVM"))
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
median over interleaved rounds (the tools take turns, each round starting one tool further) of \
`timeit` samples taken after 0.25 s of calls, from Python. Ratio: \
anvil over the peer named (the fastest of those the target names). numba and anvil run \
single-threaded; JAX uses its default threading. OPENBLAS_NUM_THREADS=1.
"""


def caption(record: dict, section: dict) -> str:
    """The line under a section's heading: its number and name for `--only`, and when it was
    measured (sections of one report may come from different runs).

    >>> caption({"area": "loops", "section_names": ["pendulum", "chain"]},
    ...         {"name": "chain", "measured": {"at": "2026-12-04T21:54", "load_average": 0.4,
    ...                                        "commit": "b56da31"}})
    '_Section 2, `--only loops:chain`: measured 2026-12-04 21:54, load average 0.4 at its start, commit b56da31._'
    """
    names = record.get("section_names", [])
    if section.get("name") not in names:
        return ""
    m = section.get("measured", {})
    when = f"measured {m['at'].replace('T', ' ')}, load average {m['load_average']:.1f} at " \
        "its start" if m else ""
    when += f", commit {m['commit']}" if m.get("commit") else ""
    return (f"_Section {names.index(section['name']) + 1}, `--only {record['area']}:"
            f"{section['name']}`" + (f": {when}" if when else "") + "._")


def area_markdown(record: dict, plots: Sequence[str] = ()) -> str:
    """An area's report from its record: the header, each section's table and notes, and the
    `plots` (image paths relative to the report)."""
    parts = [header_markdown(record)]
    parts += [Section.from_dict(section).markdown(caption(record, section))
              for section in record["sections"]]
    if plots:
        parts.append("## Plots\n\n" + "\n\n".join(f"![{Path(plot).stem}]({plot})"
                                                  for plot in plots) + "\n")
    return "\n".join(parts)


# ---- an area's record: its status, and a run of some sections merged into the last record -----
def outcome(sections: Sequence[dict]) -> dict:
    """The status of an area's sections (as data) and what makes it so: "disagree" when a cell
    or section reports a disagreement, else "failed" when a section stopped for another reason
    than a missing peer, else "ok".

    >>> outcome([Section("s", error="missing (jax not installed)").to_dict()])["status"]
    'ok'
    """
    disagreements = [f"{s['title']}: {d}" for s in sections for d in s["disagreements"]]
    errors = [f"{s['title']}: {s['error']}" for s in sections if s["error"]]
    failed = any(s["error"] and not s["error"].startswith("missing") for s in sections)
    return {"status": "disagree" if disagreements else "failed" if failed else "ok",
            "disagreements": disagreements, "errors": errors}


def merge(old: dict | None, new: dict) -> dict:
    """An area's record after a run of some of its sections: `new`'s sections and those of
    `old` (its last record, made with the same `--quick`) that `new` did not measure, in the
    area's order, with the status they make; the other facts are `new`'s. A `new` record
    without sections (its script died first) keeps `old`'s.

    >>> def record(titles, quick=False):
    ...     return {"quick": quick, "section_names": ["a", "b", "c"], "sections": [
    ...         Section(title, name=title[0]).to_dict() for title in titles]}
    >>> old = record(["a then", "b then", "c then"])
    >>> [s["title"] for s in merge(old, record(["b now"]))["sections"]]
    ['a then', 'b now', 'c then']
    >>> [s["title"] for s in merge(old, record(["b now"], quick=True))["sections"]]
    ['b now']
    """
    if not old or old.get("quick") != new.get("quick"):
        return new
    names = new.get("section_names") or old.get("section_names")
    if not names:
        return {**old, **new, "sections": old["sections"], **outcome(old["sections"])}
    complete = len(old["sections"]) == len(names)
    # records written before sections carried their names: named by position when complete
    previous = {s.get("name") or (names[k] if complete else ""): s
                for k, s in enumerate(old["sections"])}
    measured = {s["name"]: s for s in new["sections"]}
    sections = [{**(measured.get(name) or previous[name]), "name": name} for name in names
                if name in measured or name in previous]
    return {**old, **new, "sections": sections, **outcome(sections)}


