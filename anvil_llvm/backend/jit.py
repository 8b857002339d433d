"""LLVM target machines, the O3 pipeline, object code, the in-process JIT and its caches.

One object file per function is emitted once and JIT-loaded from those bytes, so the same bytes
serve the on-disk cache (cache.py). Each engine owns its target machine.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import TYPE_CHECKING, Callable

import llvmlite.binding as llvm

from .. import progress
from . import blas, cache, constants, engines
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
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_native_asmparser()
        # Creating an engine makes LLVM load the process's symbols (Python's C API, libm),
        # which `check_symbols` then finds with address_of_symbol.
        engines.current()
        _initialised = True


@functools.lru_cache(maxsize=None)
def target_machine(target: Target, opt: int = 3):
    """The LLVM target machine of `target` generating code at `opt`, made once (~0.3 ms).
    Used under `_lock`."""
    initialise()
    return llvm.Target.from_triple(target.triple).create_target_machine(
        cpu=target.cpu, features=target.features, opt=opt,
        reloc=target.reloc, codemodel=target.code_model, jit=False)


def optimise(module, tm, vectorise: bool = True) -> None:
    """The O3 pipeline with loop and SLP vectorisation (chunks of huge scalar graphs are
    `optnone` functions, which it leaves alone; see codegen.py); `vectorise=False` turns both
    vectorisers off, to see what they do."""
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = vectorise
    pto.slp_vectorization = vectorise
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def compile_object(ir_text: str, codegen_opt: int = 3) -> tuple[bytes, list[str]]:
    """Parse, verify, optimise at O3 and emit an object file for the host."""
    with _parsed(ir_text, codegen_opt) as (module, tm):
        externals = _external_symbols(module)
        optimise_unless_optnone(module, tm)
        with progress.stage("code generation"):
            return tm.emit_object(module), externals


def optimised_ir(ir_text: str, codegen_opt: int = 3) -> str:
    """The module `ir_text` after the optimisation the JIT runs before it emits code for this
    host (`compile_object`): what LLVM made of the loops, e.g. whether they are vectorised.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(1000),))
    >>> "fmul <" in optimised_ir(f.llvm_ir)    # <2 x double>, <4 x ...>, ... by the host's CPU
    True
    """
    with _parsed(ir_text, codegen_opt) as (module, tm):
        optimise_unless_optnone(module, tm)
        return str(module)


@contextlib.contextmanager
def _parsed(ir_text: str, codegen_opt: int):
    """Under `_lock`: the module `ir_text` for this host, parsed and verified, with the target
    machine generating its code at `codegen_opt`; closed on exit."""
    with _lock:
        tm = target_machine(Target.jit(), codegen_opt)
        with progress.stage("LLVM parse"):
            # A context of its own: LLVM's global one (numba's too) keeps every constant and
            # type ever parsed into it, growing with each build.
            context = llvm.create_context()
            module = llvm.parse_assembly(ir_text, context=context)
            module.triple = tm.triple
            module.data_layout = str(tm.target_data)
            module.verify()
        try:
            yield module, tm
        finally:
            module.close()
            context.close()


def optimise_unless_optnone(module, tm) -> None:
    """Run the O3 pipeline on `module` unless all its functions are `optnone`."""
    if not _all_optnone(module):
        with progress.stage("LLVM optimisation"):
            optimise(module, tm)


def _all_optnone(module) -> bool:
    """Whether every function the module defines is `optnone` (the Python entry points): the
    pipeline would leave them as they are, and each run of it costs time and leaks ~60 KB in
    llvmlite 0.50 (docs/backend.md, "Object code and the caches")."""
    return all(f.is_declaration or any(b"optnone" in a.split() for a in f.attributes)
               for f in module.functions)


def _external_symbols(module) -> list[str]:
    """Names the object will need from the process (intrinsics are LLVM's own)."""
    names = [f.name for f in module.functions if f.is_declaration]
    names += [g.name for g in module.global_variables if g.is_declaration]
    return sorted(n for n in names if not n.startswith("llvm."))


def check_symbols(externals: list[str]) -> None:
    """Raise instead of letting LLVM abort the process on a symbol it cannot resolve."""
    missing = [name for name in externals if not llvm.address_of_symbol(name)]
    if missing:
        raise RuntimeError(f"JIT: external symbols {missing} cannot be resolved in this "
                           "process; the compiled code cannot be loaded")


def prepare(externals: list[str]) -> None:
    """Make the process provide `externals` to JIT code, or raise (before LLVM would abort)."""
    initialise()
    if blas.uses_blas(externals):
        blas.register()       # importing SciPy's BLAS costs ~0.4 s: only when needed
    check_symbols(externals)


def build(ir_text: str, symbol: str, codegen_opt: int = 3) -> engines.Lease:
    """A lease on the module `ir_text`, keyed by its IR (the Python entry points): loaded
    already, else from the disk cache, else compiled. `codegen_opt` is the code generator's
    level (0 for huge chunked scalar code, whose register allocation is otherwise
    superlinear)."""
    return _load(module_key(ir_text, codegen_opt), _as_made(ir_text, symbol, codegen_opt))


def module_key(ir_text: str, codegen_opt: int = 3) -> str:
    """The key of the module `ir_text` (its IR and code generation level, on this host)."""
    return cache.key(ir_text, codegen_opt)


def _as_made(ir_text: str, symbol: str, codegen_opt: int) -> Callable[[], tuple[str, int, dict]]:
    return lambda: (ir_text, codegen_opt, {"symbol": symbol})


def module_entry(ir_text: str, symbol: str, codegen_opt: int = 3) -> cache.Entry:
    """The object code of the module `ir_text` (to pickle it), as `object_entry`."""
    with _lock:
        return _entry(module_key(ir_text, codegen_opt), _as_made(ir_text, symbol, codegen_opt),
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
    `key`: loading `key` then compiles nothing. It also goes to the disk cache."""
    with _lock:
        if "symbol" in entry.info and not engines.is_loaded(key):
            _provided[key] = entry
            cache.write(key, *entry)


def object_entry(key: str, lower: Callable[[], Lowered]) -> cache.Entry:
    """The object code of `key` (to pickle it): provided, read from the disk cache, or built."""
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
    entry = _provided.pop(key, None) if load else _provided.get(key)
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
    and compiled (`_entry`); then loaded with the shared constants its code references."""
    with _lock:
        found = engines.loaded(key)
        if found is not None:
            return found
        entry = _entry(key, make, load=True)
        kept = constants.provide(list(shared))
        prepare(entry.externals)
        return engines.load(key, entry.obj, [entry.info["symbol"]], entry.info, kept)
