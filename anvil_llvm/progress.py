"""Progress of long builds: the stages of a build (trace, AD, sparsity, colouring, lowering, LLVM
optimisation, code generation) are timed; once a build has run for more than `THRESHOLD`
seconds, its stages are reported through `logging.getLogger("anvil_llvm")` at INFO (the ones
before the threshold at once, the later ones as they end), with a summary when it ends. With
`verbose(True)` (or the environment variable ANVIL_LLVM_VERBOSE=1) and a terminal on standard
error, a progress line also shows the running stage and the time so far.

While a build runs, Python's cyclic garbage collector is paused: graphs are acyclic and a build
of a large graph allocates millions of small objects, over which every full collection would
walk again (a quarter of the time of tracing a long loop).

>>> import logging, anvil_llvm as av
>>> with stage("example", "f"):
...     with stage("inner", "f"):
...         pass
>>> [name for name, depth, seconds in last_build()]
['inner', 'example']
"""
from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

logger = logging.getLogger("anvil_llvm")
THRESHOLD = 1.0          # seconds a build runs before its stages are reported
_TRUE = ("1", "true", "yes", "on")


@dataclass
class _Build:
    subject: str
    start: float
    records: list[tuple[str, int, float]] = field(default_factory=list)
    depth: int = 0
    loud: bool = False


_local = threading.local()
_settings = {"verbose": os.environ.get("ANVIL_LLVM_VERBOSE", "").strip().lower() in _TRUE}


def verbose(on: bool = True) -> None:
    """Show a progress line of long builds on standard error (when it is a terminal).

    >>> verbose(False)
    """
    if not isinstance(on, bool):
        raise TypeError(f"verbose: on must be True or False, got {on!r}")
    _settings["verbose"] = on


def last_build() -> list[tuple[str, int, float]]:
    """The stages of this thread's last finished build: (name, depth, seconds), in the order
    they ended (nested stages before the stage holding them)."""
    return list(getattr(_local, "last", []))


_paused = {"builds": 0, "was_enabled": False}
_paused_lock = threading.Lock()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while any thread builds (its state restored after)."""
    with _paused_lock:
        if _paused["builds"] == 0:
            _paused["was_enabled"] = gc.isenabled()
            gc.disable()
        _paused["builds"] += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused["builds"] -= 1
            if _paused["builds"] == 0 and _paused["was_enabled"]:
                gc.enable()


@contextmanager
def stage(name: str, subject: str = "") -> Iterator[None]:
    """Time `name`, a stage of the build of `subject` (a function's name); the outermost stage
    of a thread is the build."""
    if getattr(_local, "build", None) is None:
        with _collector_paused(), _timed(name, subject):
            yield
    else:
        with _timed(name, subject):
            yield


@contextmanager
def _timed(name: str, subject: str) -> Iterator[None]:
    build = getattr(_local, "build", None)
    outermost = build is None
    if outermost:
        build = _local.build = _Build(subject, time.perf_counter())
    build.depth += 1
    depth, started = build.depth, time.perf_counter()
    _show(build, name, started)
    try:
        yield
    finally:
        build.depth -= 1
        ended = time.perf_counter()
        _ended(build, (name, depth, ended - started), ended)
        if outermost:
            _local.build, _local.last = None, build.records
            _finish(build, ended)


def ran(name: str, seconds: float) -> None:
    """Record `name`, a stage that ran elsewhere for `seconds` (in LLVM's helper process) and
    ended now, as a stage of the running one in this thread's build (if one runs).

    >>> with stage("example", "f"):
    ...     ran("elsewhere", 0.25)
    >>> last_build()[0]
    ('elsewhere', 2, 0.25)
    """
    build = getattr(_local, "build", None)
    if build is not None:
        _ended(build, (name, build.depth + 1, seconds), time.perf_counter())


def _ended(build: _Build, record: tuple[str, int, float], now: float) -> None:
    """Add a finished stage to `build`; past the threshold, report it (and, the first time,
    the stages before it)."""
    build.records.append(record)
    if build.loud:
        _report(build, record)
    elif now - build.start > THRESHOLD:
        build.loud = True
        for earlier in build.records:
            _report(build, earlier)


def _report(build: _Build, record: tuple[str, int, float]) -> None:
    name, depth, seconds = record
    logger.info("%s: %s%s %.2f s", build.subject, "  " * (depth - 1), name, seconds)


def _finish(build: _Build, ended: float) -> None:
    if build.loud:
        stages = ", ".join(f"{name} {seconds:.2f} s" for name, depth, seconds in build.records
                           if depth == 2)
        logger.info("%s: built in %.2f s%s", build.subject, ended - build.start,
                    f" ({stages})" if stages else "")
    if _terminal():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def _show(build: _Build, name: str, now: float) -> None:
    if _terminal():
        sys.stderr.write(f"\r\x1b[Kanvil_llvm: {build.subject}: {name} "
                         f"({now - build.start:.1f} s)")
        sys.stderr.flush()


def _terminal() -> bool:
    return _settings["verbose"] and sys.stderr is not None and sys.stderr.isatty()


__all__ = ["THRESHOLD", "last_build", "logger", "ran", "stage", "verbose"]
