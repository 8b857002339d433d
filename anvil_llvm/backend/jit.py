"""LLVM target machines, the O3 pipeline, object code, the in-process JIT and its caches.

One object file per function is emitted once and JIT-loaded from those bytes, so the same bytes
serve the on-disk cache (LLVM_NOTES.md section 6). Each engine owns its target machine.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from . import blas
from .target import Target

log = logging.getLogger("anvil_llvm")

_lock = threading.RLock()
_engine = None             # one engine for all objects, alive as long as the process: its code
                           # may be called anytime; a further object costs ~0.1 ms to load
_VERSION = "0.1.0"
_MAGIC = b"ANVILOBJ2"


def initialise() -> None:
    """Initialise LLVM's native target once (safe to call again)."""
    global _engine
    with _lock:
        if _engine is not None:
            return
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_native_asmparser()
        # Creating the engine makes LLVM load the process's symbols (Python's C API, libm),
        # which `check_symbols` then finds with address_of_symbol. It only loads objects
        # compiled elsewhere, so its target machine is the default one (no CPU query).
        target = llvm.Target.from_default_triple()
        _engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                             target.create_target_machine(jit=True))


@functools.lru_cache(maxsize=None)
def target_machine(target: Target, opt: int = 3):
    """The LLVM target machine of `target` generating code at `opt`, made once (~0.3 ms).
    Used under `_lock`."""
    initialise()
    return llvm.Target.from_triple(target.triple).create_target_machine(
        cpu=target.cpu, features=target.features, opt=opt,
        reloc=target.reloc, codemodel=target.code_model, jit=False)


@functools.lru_cache(maxsize=1)
def host_key() -> str:
    """What a JIT-cached object depends on besides its IR: target and versions."""
    return "|".join([Target.jit().key, llvmlite.__version__,
                     ".".join(map(str, llvm.llvm_version_info)), _VERSION])


def optimise(module, tm) -> None:
    """The O3 pipeline with loop and SLP vectorisation (chunks of huge scalar graphs are
    `optnone` functions, which it leaves alone; see codegen.py)."""
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def compile_object(ir_text: str, codegen_opt: int = 3) -> tuple[bytes, list[str]]:
    """Parse, verify, optimise at O3 and emit an object file for the host."""
    with _lock:
        tm = target_machine(Target.jit(), codegen_opt)
        t0 = time.perf_counter()
        # A context of its own: LLVM's global one (numba's too) keeps every constant and type
        # ever parsed into it, growing with each build.
        context = llvm.create_context()
        module = llvm.parse_assembly(ir_text, context=context)
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        module.verify()
        t1 = time.perf_counter()
        externals = _external_symbols(module)
        optimise(module, tm)
        t2 = time.perf_counter()
        obj = tm.emit_object(module)
        t3 = time.perf_counter()
        module.close()
        context.close()
    if t3 - t0 > 1.0:
        log.info("LLVM: parse %.2fs, optimise %.2fs, codegen %.2fs", t1 - t0, t2 - t1, t3 - t2)
    return obj, externals


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


def load_object(obj: bytes, externals: list[str], symbols: list[str]) -> dict[str, int]:
    """JIT-load an object file into the process's engine; the addresses of `symbols`. The engine
    resolves symbols across all its objects, so every global symbol must be unique: functions
    are named by their name and IR digest, entry points by their signature."""
    initialise()
    with _lock:
        if blas.uses_blas(externals):
            blas.register()       # importing SciPy's BLAS costs ~0.4 s: only when needed
        check_symbols(externals)
        _engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        _engine.finalize_object()
        addresses = {s: _engine.get_function_address(s) for s in symbols}
    missing = [s for s, a in addresses.items() if not a]
    if missing:
        raise RuntimeError(f"JIT: symbols {missing} not found in the compiled object")
    return addresses


# ---- the on-disk cache ------------------------------------------------------------------------
def cache_dir() -> Path | None:
    """The private cache directory, or None when caching is off or the directory is unsafe."""
    if os.environ.get("ANVIL_LLVM_NO_CACHE") == "1":
        return None
    root = os.environ.get("ANVIL_LLVM_CACHE_DIR")
    if root:
        path = Path(root)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = Path(base) / "anvil_llvm"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning("anvil_llvm: not using cache directory %s: owned by another user or "
                    "writable by others", path)
        return None
    return path


def cache_key(ir_text: str, codegen_opt: int = 3) -> str:
    """The cache key of a module: the IR, its code generation level, the host and versions."""
    text = f"{host_key()}\0{codegen_opt}\0{ir_text}"
    return hashlib.sha256(text.encode()).hexdigest()


def cache_read(key: str) -> tuple[bytes, list[str]] | None:
    """The cached object and its external symbols for `key`, or None when absent or corrupt
    (never loads bad bytes)."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        data = (directory / f"{key}.o").read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + 32
    if len(data) < head or data[:len(_MAGIC)] != _MAGIC:
        return None
    digest, body = data[len(_MAGIC):head], data[head:]
    if hashlib.sha256(body).digest() != digest:
        return None
    names, _, obj = body.partition(b"\0")
    return obj, [n for n in names.decode().split(",") if n]


def cache_write(key: str, obj: bytes, externals: list[str]) -> None:
    """Publish an object atomically (write a temporary file, then rename into place)."""
    directory = cache_dir()
    if directory is None:
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".o")
        body = ",".join(externals).encode() + b"\0" + obj
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(body).digest() + body)
        os.replace(tmp, directory / f"{key}.o")
    except OSError as e:
        log.warning("anvil_llvm: could not write the cache entry %s: %s", key, e)


_memory: dict[str, dict[str, int]] = {}   # cache key -> the loaded symbols' addresses


def build(ir_text: str, symbols: list[str], codegen_opt: int = 3) -> dict[str, int]:
    """Compile (or fetch from the memory and disk caches) and load a module; `codegen_opt` is
    the code generator's level (0 for huge chunked scalar code, whose register allocation is
    otherwise superlinear)."""
    key = cache_key(ir_text, codegen_opt)
    with _lock:
        found = _memory.get(key)
        if found is not None:
            return found
        cached = cache_read(key)
        if cached is None:
            cached = compile_object(ir_text, codegen_opt)
            cache_write(key, *cached)
        loaded = load_object(*cached, symbols)
        _memory[key] = loaded
        return loaded
