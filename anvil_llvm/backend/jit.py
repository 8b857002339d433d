"""The in-process JIT and its caches: object code (objectcode.py, compiled here or in LLVM's
helper process: compiler.py) is emitted once per function and JIT-loaded from those bytes, so
the same bytes serve the on-disk cache (cache.py). Each engine owns its target machine.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

from .. import progress
from . import blas, cache, compiler, constants, engines, loader, objectcode, vecmath
from .target import Target

if TYPE_CHECKING:
    from ..ir.uop import Payload
    from .lower import Lowered


_lock = threading.RLock()
_initialised = False


def initialise() -> None:
    """Initialise LLVM's native target once (safe to call again)."""
    global _initialised
    with _lock:
        if _initialised:
            return
        objectcode.initialise()
        _initialised = True


def target_machine(target: Target, opt: int = 3):
    """The LLVM target machine of `target` generating code at `opt`, made once (~0.3 ms).
    Used under `_lock`."""
    initialise()
    return objectcode.target_machine(target.machine, opt)


def compile_object(ir_text: str, codegen_opt: int = 3) -> tuple[bytes, list[str]]:
    """Parse, verify, optimise at O3 and emit an object file for the host (in this process or
    LLVM's helper process: compiler.py)."""
    with _lock:
        initialise()
        return compiler.compile_module(ir_text, Target.jit().machine, codegen_opt)


def optimised_ir(ir_text: str, codegen_opt: int = 3) -> str:
    """The module `ir_text` after the optimisation the JIT runs before it emits code for this
    host (`compile_object`): what LLVM made of the loops, e.g. whether they are vectorised.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(1000),))
    >>> "fmul <" in optimised_ir(f.llvm_ir)    # <2 x double>, <4 x ...>, ... by the host's CPU
    True
    """
    with _lock:
        tm = target_machine(Target.jit(), codegen_opt)
        with objectcode.parsed(ir_text, tm, progress.stage) as module:
            optimise_unless_optnone(module, tm)
            return str(module)


def optimise_unless_optnone(module, tm) -> None:
    """Run the O3 pipeline on `module` unless all its functions are `optnone`."""
    if not objectcode.all_optnone(module):
        with progress.stage("LLVM optimisation"):
            objectcode.optimise(module, tm)


def check_symbols(externals: list[str]) -> None:
    """Raise instead of letting LLVM abort the process on a symbol it cannot resolve."""
    missing = [name for name in externals if not loader.address(name)]
    if missing:
        raise RuntimeError(f"JIT: external symbols {missing} cannot be resolved in this "
                           "process; the compiled code cannot be loaded")


def prepare(externals: list[str]) -> None:
    """Make the process provide `externals` to JIT code, or raise (before LLVM would abort)."""
    if not loader.supported():
        engines.current(False)   # LLVM searches the process's symbols once an engine exists
    if vecmath.needed_by(externals):
        vecmath.load()
    if blas.uses_blas(externals):
        blas.register()       # importing SciPy's BLAS costs ~0.4 s: only when needed
    check_symbols(externals)


def build(ir_text: str, symbol: str, codegen_opt: int = 3) -> engines.Lease:
    """A lease on the module `ir_text` whose function `symbol` is called through its C ABI
    (e.g. one lowered for another `Target` of this host), keyed by its IR: loaded already,
    else from the disk cache, else compiled. `codegen_opt` is the code generator's level (0 for
    huge chunked scalar code, whose register allocation is otherwise superlinear)."""
    return _load(cache.key(ir_text, codegen_opt),
                 lambda: (ir_text, codegen_opt, {"symbol": symbol}))


def entry_point_key(symbol: str) -> str:
    """The key of the Python entry point `symbol` (named after its signature; the host record
    in every key holds the digest of the code that writes it, so its IR need not be made)."""
    return cache.key("entry point", symbol)


def build_entry_point(symbol: str, ir_text: Callable[[], str]) -> engines.Lease:
    """A lease on the entry point `symbol`, as `build`, its IR made (`ir_text()`) only when it
    is compiled."""
    return _load(entry_point_key(symbol), lambda: (ir_text(), 0, {"symbol": symbol}))


def entry_point_object(symbol: str, ir_text: Callable[[], str]) -> cache.Entry:
    """The object code of the entry point `symbol` (to pickle it), as `object_entry`."""
    with _lock:
        return _entry(entry_point_key(symbol), lambda: (ir_text(), 0, {"symbol": symbol}),
                      load=False)


_counters = {"builds": 0, "disk_loads": 0, "object_loads": 0}
_provided: dict[str, cache.Entry] = {}


def stats() -> dict[str, int]:
    """This process's counters: `builds` (modules compiled by LLVM), `disk_loads` (objects read
    from the disk cache) and `object_loads` (objects that came with unpickled functions)."""
    with _lock:
        return dict(_counters)


def provide(key: str, entry: cache.Entry) -> None:
    """Make `entry` (an object built for this host, e.g. carried by a pickle) the code of
    `key`: loading `key` then compiles nothing. The entry stays with the loaded code (as every
    loaded entry does: `_load`) and is not written to the disk cache: the pickle carries it
    wherever it goes, and a write would cost an unpickling process more than all the rest of
    loading it."""
    with _lock:
        if "symbol" in entry.info and not engines.is_loaded(key):
            _provided[key] = entry


def object_entry(key: str, lower: Callable[[], Lowered]) -> cache.Entry:
    """The object code of `key` (to pickle it): provided or loaded, read from the disk cache,
    or built."""
    with _lock:
        return _entry(key, _made(lower), load=False)


def build_lowered(key: str, lower: Callable[[], Lowered],
                  shared: list[Payload] = ()) -> engines.Lease:
    """A lease on the function cached (in this process or on disk) under `key`, a digest of
    its graph and signature; only on a miss is it lowered (`lower()`) and compiled. The lease's
    `info` holds its symbol, workspace size and GIL flag. `shared` are the constants its code
    references (backend/constants.py)."""
    return _load(key, _made(lower), shared)


def _made(lower: Callable[[], Lowered]) -> Callable[[], tuple[str, int, dict]]:
    def made():
        low = lower()
        return low.ir, low.codegen_opt, {"symbol": low.symbol, "work_bytes": low.work_bytes,
                                         "release_gil": low.release_gil}
    return made


def _entry(key: str, make: Callable[[], tuple[str, int, dict]], load: bool) -> cache.Entry:
    """The object of `key`: provided, else read from the disk cache, else made (`make()` gives
    its IR, code generation level and info: at least its `symbol`), compiled and written to
    the cache. `load`: it is about to be loaded (counted as such)."""
    entry = _provided.pop(key, None) if load else _provided.get(key) or engines.source(key)
    if entry is not None:
        _counters["object_loads"] += load
        return entry
    entry = cache.read(key)
    if entry is not None and "symbol" in entry.info:
        _counters["disk_loads"] += load
        return entry
    ir_text, codegen_opt, info = make()
    entry = cache.Entry(*compile_object(ir_text, codegen_opt), info)
    _counters["builds"] += 1
    cache.write(key, *entry)
    return entry


def _load(key: str, make: Callable[[], tuple[str, int, dict]],
          shared: list[Payload] = ()) -> engines.Lease:
    """The module of `key`: loaded already, else provided, read from the disk cache, or made
    and compiled (`_entry`); then loaded with the shared constants its code references. The
    entry stays with the loaded code, so that pickling the function ships it again without a
    compiler or a disk cache (Dask pickles a function into every task that calls it)."""
    with _lock:
        found = engines.loaded(key)
        if found is not None:
            return found
        entry = _entry(key, make, load=True)
        kept = constants.provide(list(shared))
        prepare(entry.externals)
        return engines.load(key, entry.obj, [entry.info["symbol"]], entry.info, kept,
                            source=entry)
