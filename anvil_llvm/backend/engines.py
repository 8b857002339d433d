"""Execution engines that hold loaded object code, freed when no function uses their code.

Objects are loaded into the current engine until it holds OBJECTS_PER_ENGINE of them (a further
object costs ~0.1 ms to load into an existing engine, a new engine ~0.1 ms), then into a new
one. Every load hands out a `Lease`; whoever calls the loaded addresses holds it (a compiled
function's entry point does). When the last lease on a full engine is gone, the engine is
disposed and its code and data are unmapped: a process that builds many specialisations and
drops them does not keep their code.

A module is loaded at most once per live engine (loading an object whose symbols are already
defined in an engine is an error), so loads are memoised by key until their engine goes.
"""
from __future__ import annotations

import threading
import weakref
import llvmlite.binding as llvm

OBJECTS_PER_ENGINE = 32

_lock = threading.RLock()


class _Engine:
    """One LLVM MCJIT engine, the keys of the objects in it and how many leases use them."""

    __slots__ = ("engine", "keys", "users", "kept")

    def __init__(self):
        # Each engine owns its target machine; a default one does (the engine only loads
        # objects compiled elsewhere, so no CPU query). MCJIT needs a module to start with;
        # left in, the first `finalize_object` would generate code for it (~0.5 ms, most of
        # loading a small function's object).
        target_machine = llvm.Target.from_default_triple().create_target_machine(jit=True)
        empty = llvm.parse_assembly("")
        self.engine = llvm.create_mcjit_compiler(empty, target_machine)
        self.engine.remove_module(empty)
        self.keys: list[str] = []
        self.users = 0
        self.kept: list = []         # what its code points to (shared constants)


class Lease:
    """The addresses of a loaded object's symbols and what its loader recorded about it
    (`info`); the object's code stays mapped as long as a lease on it is alive."""

    __slots__ = ("addresses", "info", "__weakref__")

    def __init__(self, addresses: dict[str, int], info: dict):
        self.addresses, self.info = addresses, info


_current: _Engine | None = None
_loaded: dict[str, tuple[_Engine, dict[str, int], dict]] = {}
_kept_sources: dict[str, object] = {}     # key -> what it was loaded from, where asked to keep it


def current() -> _Engine:
    """The engine that takes the next object (made on first use: creating an engine also makes
    LLVM load the process's own symbols, which external symbols then resolve to)."""
    global _current
    with _lock:
        if _current is None or len(_current.keys) >= OBJECTS_PER_ENGINE:
            previous, _current = _current, _Engine()
            if previous is not None and previous.users == 0:
                _dispose(previous)
        return _current


def loaded(key: str) -> Lease | None:
    """A lease on the object of `key` if it is loaded in a live engine."""
    with _lock:
        found = _loaded.get(key)
        if found is None:
            return None
        found[0].users += 1
        return _lease(*found)


def source(key: str) -> object:
    """What the object of `key` was loaded from if its loader asked to keep it (`load`) and it
    is still loaded, else None."""
    with _lock:
        return _kept_sources.get(key)


def is_loaded(key: str) -> bool:
    """Whether the object of `key` is loaded in a live engine."""
    with _lock:
        return key in _loaded


def load(key: str, obj: bytes, symbols: list[str], info: dict | None = None,
         kept: list = (), source: object = None) -> Lease:
    """A lease on the object of `key`, loaded from `obj` unless it is loaded already, with the
    addresses of `symbols` in it and `info` about it; `kept` are objects its code points to,
    kept alive as long as it is loaded. `source`, if given, is kept as long as the object is
    loaded too (`source(key)`): what it came from, for whoever needs the object again."""
    with _lock:
        found = _loaded.get(key)
        if found is None:
            engine = current()
            engine.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            engine.engine.finalize_object()
            addresses = {s: engine.engine.get_function_address(s) for s in symbols}
            missing = [s for s, a in addresses.items() if not a]
            if missing:
                raise RuntimeError(f"JIT: symbols {missing} not found in the compiled object")
            engine.keys.append(key)
            engine.kept.extend(kept)
            found = _loaded[key] = engine, addresses, info or {}
            if source is not None:
                _kept_sources[key] = source
        found[0].users += 1
        return _lease(*found)


def _lease(engine: _Engine, addresses: dict[str, int], info: dict) -> Lease:
    """A lease on code of `engine`, whose `users` the caller has already counted: right after
    finding the engine, before anything allocates (an allocation may run the collector, and a
    finalizer then, in this very thread, dispose of an engine that has no users left)."""
    lease = Lease(addresses, info)
    # Not at exit: the process's memory goes with it, and code may still run until then.
    weakref.finalize(lease, _release, engine).atexit = False
    return lease


def engine_count() -> int:
    """How many engines hold loaded code now."""
    with _lock:
        return len({id(engine) for engine, _, _ in _loaded.values()})


def _release(engine: _Engine) -> None:
    with _lock:
        engine.users -= 1
        if engine.users == 0 and engine is not _current:
            _dispose(engine)


def _dispose(engine: _Engine) -> None:
    for key in engine.keys:
        del _loaded[key]
        _kept_sources.pop(key, None)
    engine.engine.close()
