"""The target of an export: the host (default), the host's triple with another CPU
(`cpu="generic"` for a portable build), or another triple the bundled LLVM supports, as an
object file for that machine.

Exported code must need nothing but libm (and the memcpy/memset LLVM may call for a loop that
copies or clears, which C requires of every implementation): constants are in the object (tables of
`Target.shared_constants` bytes and more, as the JIT shares them, are included as binary data,
data.py), contractions are loop nests (no BLAS bound in this process, `Target.gemm` None), and
loops call glibc's libmvec only on the host's own triple, where it was found (`-lm` links it).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import tempfile
import threading

import llvmlite.binding as llvm

from ..backend import jit
from ..backend.target import Target
from . import data

_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _initialise_all() -> None:
    """Register every target LLVM was built with (only the native one is, at first)."""
    jit.initialise()
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_asmparser()        # module-level asm: the data blobs (data.py)


def resolve(target=None, cpu=None) -> Target:
    """The `Target` an export builds for.

    `target`: None or "host" (this machine), an LLVM triple such as "aarch64-linux-gnu", or a
    `Target`. `cpu`: None (the host CPU on the host triple, "generic" elsewhere) or an LLVM CPU
    name ("generic", "x86-64-v3", "neoverse-v1", ...).

    >>> t = resolve("aarch64-linux-gnu")
    >>> t.triple, t.cpu, t.code_model, t.reloc, t.vector_math, t.shared_constants, t.gemm
    ('aarch64-linux-gnu', 'generic', 'small', 'pic', False, 65536, None)
    >>> resolve("no-such-machine")
    Traceback (most recent call last):
    ...
    ValueError: target: LLVM does not support the triple 'no-such-machine' (No available targets are compatible with triple "no-such-machine")
    """
    if cpu is not None and (not isinstance(cpu, str) or not cpu):
        raise TypeError(f"cpu: expected an LLVM CPU name (a non-empty str) or None, got {cpu!r}")
    if isinstance(target, Target):
        if cpu is not None:
            raise ValueError("cpu: give the CPU inside the Target, not beside it")
        _check(target)
        return target
    if target is not None and not isinstance(target, str):
        raise TypeError(f"target: expected None, a triple (str) or a Target, got "
                        f"{type(target).__name__}")
    host = dataclasses.replace(Target.object(), shared_constants=data.TABLE_BYTES)
    if target in (None, "host", "native") or target == host.triple:
        if cpu is None or cpu in ("host", "native"):
            result = host
        else:
            result = dataclasses.replace(host, cpu=cpu, features="")
    else:
        result = Target(target, cpu or "generic", "", "small", "pic", False, data.TABLE_BYTES,
                        None)
    _check(result)
    return result


def _check(target: Target) -> None:
    if target.code_model != "small" or target.reloc != "pic":
        raise ValueError(f"target: exported code is position independent with the small code "
                         f"model, got code_model={target.code_model!r}, reloc={target.reloc!r} "
                         "(use Target.object() or a triple)")
    if target.gemm is not None:
        raise ValueError("target: exported code must run contractions as loops (gemm=None), so "
                         "that it needs only libm")
    target_machine(target)


@functools.lru_cache(maxsize=None)
def assembles(triple: str) -> bool:
    """Whether LLVM here can assemble module-level asm for `triple`: llvmlite registers the
    assembler of this machine's architecture only.

    >>> assembles(Target.object().triple)
    True
    """
    _initialise_all()
    return llvm.Target.from_triple(triple).name == llvm.Target.from_default_triple().name


@functools.lru_cache(maxsize=None)
def target_machine(target: Target, opt: int = 3):
    """The LLVM target machine of `target` (validated: a triple LLVM has, a CPU it knows,
    64-bit pointers), else ValueError naming `target` or `cpu`."""
    _initialise_all()
    try:
        found = llvm.Target.from_triple(target.triple)
    except RuntimeError as error:
        raise ValueError(f"target: LLVM does not support the triple {target.triple!r} "
                         f"({error})") from None
    with _lock, _stderr_captured() as messages:
        tm = found.create_target_machine(cpu=target.cpu, features=target.features, opt=opt,
                                         reloc=target.reloc, codemodel=target.code_model,
                                         jit=False)
    text = "".join(messages)
    # An unknown CPU is only a warning to LLVM, which may then abort the process while
    # emitting code ("64-bit code requested on a subtarget that doesn't support it").
    if "not a recognized processor" in text:
        raise ValueError(f"cpu: {target.cpu!r} is not a CPU LLVM knows for {target.triple!r} "
                         "(try 'generic')")
    if "not a recognized feature" in text:
        raise ValueError(f"target: features {target.features!r} include one LLVM does not "
                         f"know for {target.triple!r}: {text.strip()}")
    if re.search(r"(^|-)p:32:", str(tm.target_data)):
        raise ValueError(f"target: {target.triple!r} has 32-bit pointers; exported code is "
                         "generated for 64-bit targets only")
    return tm


@contextlib.contextmanager
def _stderr_captured():
    """Capture what native code writes to file descriptor 2 (LLVM's warnings): the list
    yielded holds the text once the block is left."""
    found: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield found
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            found.append(sink.read().decode(errors="replace"))
