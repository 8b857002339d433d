"""Engines that hold loaded object code, freed when no function uses their code.

An engine holds up to OBJECTS_PER_ENGINE objects; objects go into the current one, then into a
new one. On x86-64 Linux an engine maps objects itself (loader.py: tens of microseconds an
object, no LLVM set-up); elsewhere, or for an object that linker does not handle, an engine is
one of LLVM's MCJIT engines (a first one ~1 ms with LLVM's native target, a further object
~0.1 ms). Every load hands out a `Lease`; whoever calls the loaded addresses holds it (a compiled
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

from . import loader, objectcode

OBJECTS_PER_ENGINE = 32

_lock = threading.RLock()


class _Images:
    """Objects mapped by this package's linker (loader.py)."""

    native = True

    def __init__(self):
        self.images: list[loader.Image] = []

    def add(self, obj: bytes) -> dict[str, int]:
        """Map `obj`: the addresses of the symbols it defines."""
        image = loader.Image(obj)
        self.images.append(image)
        return image.symbols

    def close(self) -> None:
        for image in self.images:
            image.close()


class _MCJIT:
    """Objects loaded by one of LLVM's MCJIT engines."""

    native = False

    def __init__(self):
        objectcode.initialise()
        # Each engine owns its target machine; a default one does (the engine only loads
        # objects compiled elsewhere, so no CPU query). MCJIT needs a module to start with;
        # left in, the first `finalize_object` would generate code for it (~0.5 ms, most of
        # loading a small function's object).
        target_machine = llvm.Target.from_default_triple().create_target_machine(jit=True)
        empty = llvm.parse_assembly("")
        self.engine = llvm.create_mcjit_compiler(empty, target_machine)
        self.engine.remove_module(empty)

    def add(self, obj: bytes) -> _Symbols:
        """Load `obj`: its symbols' addresses, looked up when asked for."""
        self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()
        return _Symbols(self.engine)

    def close(self) -> None:
        self.engine.close()


class _Symbols:
    """The addresses of symbols an MCJIT engine defines (`get`, as a dict's)."""

    def __init__(self, engine):
        self.engine = engine

    def get(self, name: str, default: int = 0) -> int:
        return self.engine.get_function_address(name) or default


class _Engine:
    """Loaded objects (`code`: `_Images` or `_MCJIT`), their keys and how many leases use them."""

    __slots__ = ("code", "kept", "keys", "users")

    def __init__(self, native: bool):
        self.code = _Images() if native else _MCJIT()
        self.keys: list[str] = []
        self.users = 0
        self.kept: list = []         # what its code points to (shared constants)


class Lease:
    """The addresses of a loaded object's symbols and what its loader recorded about it
    (`info`); the object's code stays mapped as long as a lease on it is alive."""

    __slots__ = ("__weakref__", "addresses", "info")

    def __init__(self, addresses: dict[str, int], info: dict):
        self.addresses, self.info = addresses, info


_current: dict[bool, _Engine] = {}     # native or not -> the engine taking objects
_loaded: dict[str, tuple[_Engine, dict[str, int], dict]] = {}
_kept_sources: dict[str, object] = {}     # key -> what it was loaded from, where asked to keep it


def current(native: bool) -> _Engine:
    """The engine that takes the next object: this package's linker's (`native`) or LLVM's."""
    with _lock:
        engine = _current.get(native)
        if engine is None or len(engine.keys) >= OBJECTS_PER_ENGINE:
            _current[native] = _Engine(native)
            if engine is not None and engine.users == 0:
                _dispose(engine)
        return _current[native]


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
            engine, defined = _add(obj)
            addresses = {s: defined.get(s, 0) for s in symbols}
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


def _add(obj: bytes) -> tuple[_Engine, dict[str, int] | _Symbols]:
    """Load `obj` into the current engine: that engine and the symbols the object defines."""
    if loader.supported():
        engine = current(True)
        try:
            return engine, engine.code.add(obj)
        except loader.Unsupported:
            pass
    engine = current(False)
    return engine, engine.code.add(obj)


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
        if engine.users == 0 and _current.get(engine.code.native) is not engine:
            _dispose(engine)


def _dispose(engine: _Engine) -> None:
    for key in engine.keys:
        del _loaded[key]
        _kept_sources.pop(key, None)
    engine.code.close()
