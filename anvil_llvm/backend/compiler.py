"""Where LLVM optimises and generates code: in this process, or in a helper process once this
one has run the O3 pipeline many times.

Each run of LLVM's O3 pipeline through llvmlite 0.50 leaks about 55 KB that nothing can free
(`LLVMPY_CreatePassBuilder` allocates instrumentation callbacks nobody deletes, and building
the default pipeline allocates more; reusing a builder leaks as much, reusing a pipeline aborts).
A program that builds thousands of functions (one per input shape, per parameter set) would grow
without bound. So after `IN_PROCESS_RUNS` runs (`ANVIL_LLVM_IN_PROCESS_RUNS`, default 100;
`never` keeps every build here, 0 sends all there), modules are compiled by a helper process
running objectcode.py, which returns object bytes that this process loads as it loads the disk
cache's; the helper is replaced after `HELPER_BUILDS` builds, so that its memory is bounded too.
Starting it costs ~0.15 s once; a request adds ~0.2 ms to a build.

The helper is this Python with llvmlite only (no anvil_llvm import), started without fork
(subprocess), fed on a pipe; it ends when the pipe closes. A forked child of this process starts
its own. If the helper cannot be started, builds stay in this process (with a warning, once); if
it dies on a module it is restarted and asked once more, then the build fails with a
RuntimeError (LLVM aborting on a module kills the helper, not the user's process).

>>> sorted(stats())
['helper', 'helper_builds', 'runs']
"""
from __future__ import annotations

import atexit
import os
import select
import subprocess
import sys
import warnings

from .. import progress
from . import objectcode

IN_PROCESS_RUNS = 100
HELPER_BUILDS = 1000
READY_SECONDS = 30.0         # for a new helper to import llvmlite and say so
_NEVER = ("never", "off", "no", "false")

_state = {"runs": 0, "helper": None, "builds": 0, "unavailable": False}


def runs_in_process_before_helper() -> int | None:
    """How many O3 runs this process makes before it compiles in a helper: the environment
    variable ANVIL_LLVM_IN_PROCESS_RUNS (a count, or `never`: None), else IN_PROCESS_RUNS."""
    value = os.environ.get("ANVIL_LLVM_IN_PROCESS_RUNS", "").strip().lower()
    if not value:
        return IN_PROCESS_RUNS
    if value in _NEVER:
        return None
    if not value.isdigit():
        raise ValueError("ANVIL_LLVM_IN_PROCESS_RUNS: expected a count of O3 runs or 'never', "
                         f"got {value!r}")
    return int(value)


def compile_module(ir_text: str, machine: objectcode.Machine,
                   codegen_opt: int) -> tuple[bytes, list[str]]:
    """The object code of the module `ir_text` and the external symbols it needs, compiled here
    or, past the limit of in-process O3 runs, in the helper. The caller holds `jit._lock`."""
    limit = runs_in_process_before_helper()
    if limit is not None and _state["runs"] >= limit and not _state["unavailable"]:
        with progress.stage("LLVM in the helper process"):
            reply = _ask(ir_text, machine, codegen_opt)
        if reply is not None:
            return reply
    code, externals, optimised = objectcode.compile_module(ir_text, machine, codegen_opt,
                                                           progress.stage)
    _state["runs"] += optimised
    return code, externals


def stats() -> dict[str, int | bool]:
    """This process's O3 runs (`runs`), the builds of its current helper (`helper_builds`) and
    whether one is running (`helper`)."""
    helper = _state["helper"]
    return {"runs": _state["runs"], "helper_builds": _state["builds"],
            "helper": helper is not None and helper.poll() is None}


def _ask(ir_text: str, machine: objectcode.Machine, codegen_opt: int
         ) -> tuple[bytes, list[str]] | None:
    """The helper's reply to one module (restarting it once if it died), None if no helper
    can be started."""
    for _ in range(2):
        helper = _helper()
        if helper is None:
            return None
        try:
            objectcode.write_message(helper.stdin, (ir_text, tuple(machine), codegen_opt))
            reply = objectcode.read_message(helper.stdout)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is not None:
            break
        _stop()
    else:
        raise RuntimeError("LLVM's helper process died twice compiling a module (an LLVM "
                           "crash; its message is on standard error)")
    _state["builds"] += 1
    if reply[0] == "error":
        raise RuntimeError(f"LLVM (helper process): {reply[1]}")
    for name, seconds in reply[3]:
        progress.ran(name, seconds)
    return reply[1], reply[2]


def _helper() -> subprocess.Popen | None:
    """The running helper, started or replaced as needed; None if none can be started (then
    every build stays in this process, with a warning once)."""
    helper = _state["helper"]
    if helper is not None and (helper.poll() is not None or _state["builds"] >= HELPER_BUILDS):
        _stop()
        helper = None
    if helper is None:
        helper, problem = _started()
        if helper is None:
            warnings.warn(f"anvil_llvm: LLVM's helper process could not be started ({problem});"
                          " every build stays in this process", RuntimeWarning, stacklevel=4)
            _state["unavailable"] = True
            return None
        _state["helper"], _state["builds"] = helper, 0
    return helper


def _started() -> tuple[subprocess.Popen | None, str]:
    """A new helper that said it is ready within READY_SECONDS, or None and why not (no
    Python to run: none, or a frozen application's executable, which would start the
    application; one that is not this Python; a platform without `select` on pipes)."""
    if not sys.executable or getattr(sys, "frozen", False):
        return None, "no Python executable to run"
    if os.name != "posix":
        return None, "not POSIX"
    try:
        helper = subprocess.Popen([sys.executable, "-c", _PROGRAM, objectcode.__file__],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    except OSError as error:
        return None, str(error)
    ready, _, _ = select.select([helper.stdout], [], [], READY_SECONDS)
    if ready and helper.stdout.read(len(objectcode.READY)) == objectcode.READY:
        return helper, ""
    helper.kill()
    helper.wait()
    return None, f"{sys.executable} did not answer as a Python running llvmlite"


# The helper runs objectcode.py by its path, as a module of its own name: importing it as part
# of the package would import anvil_llvm.
_PROGRAM = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('anvil_llvm_objectcode', sys.argv[1])\n"
            "module = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(module)\n"
            "module.main()\n")


def _stop() -> None:
    """End the helper (closing its input ends its loop) and wait for it."""
    helper, _state["helper"] = _state["helper"], None
    if helper is None:
        return
    for stream in (helper.stdin, helper.stdout):
        try:
            stream.close()
        except OSError:
            pass
    try:
        helper.wait(timeout=5)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait()


def _forget_in_child() -> None:
    """In a forked child: the helper belongs to the parent (its pipes must not be shared);
    the child starts its own when it needs one."""
    _state["helper"] = None
    _state["builds"] = 0


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(_stop)
