"""One LLVM module to object code: parse, verify, the O3 pipeline, code generation; and the loop
of the helper process that does the same on request (compiler.py).

This module imports only the standard library and llvmlite, so that the helper process runs it
as its program without importing anvil_llvm (0.15 s and 58 MB instead of 0.7 s and 100 MB).
Callers in this process hold `jit._lock`: LLVM's objects are not shared between threads.

>>> ir = "define double @twice(double %x) {\\n  %y = fadd double %x, %x\\n  ret double %y\\n}"
>>> machine = Machine(llvm.get_process_triple(), "generic", "", "small", "pic")
>>> code, externals, optimised = compile_module(ir, machine, 3)
>>> code[:4], externals, optimised
(b'\\x7fELF', [], True)
"""
from __future__ import annotations

import contextlib
import functools
import os
import pickle
import struct
import sys
import time
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

import llvmlite.binding as llvm


class Machine(NamedTuple):
    """What a target machine is made from (the fields of `target.Target` LLVM needs)."""

    triple: str
    cpu: str
    features: str
    code_model: str
    reloc: str


_initialised = False


def initialise() -> None:
    """Initialise LLVM's native target, its assembly printer and parser (once)."""
    global _initialised
    if not _initialised:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_native_asmparser()
        _initialised = True


@functools.cache
def target_machine(machine: Machine, opt: int = 3):
    """The LLVM target machine of `machine` generating code at `opt`, made once (~0.3 ms)."""
    initialise()
    return llvm.Target.from_triple(machine.triple).create_target_machine(
        cpu=machine.cpu, features=machine.features, opt=opt, reloc=machine.reloc,
        codemodel=machine.code_model, jit=False)


def optimise(module, tm, vectorise: bool = True) -> None:
    """The O3 pipeline with loop and SLP vectorisation (chunks of huge scalar graphs are
    `optnone` functions, which it leaves alone; see codegen.py); `vectorise=False` turns both
    vectorisers off, to see what they do. Each run leaks ~55 KB in llvmlite 0.50 (compiler.py)."""
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = vectorise
    pto.slp_vectorization = vectorise
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def all_optnone(module) -> bool:
    """Whether every function the module defines is `optnone` (the Python entry points): the
    pipeline would leave them as they are, so it is not run."""
    return all(f.is_declaration or any(b"optnone" in a.split() for a in f.attributes)
               for f in module.functions)


def external_symbols(module) -> list[str]:
    """Names the object will need from the process (intrinsics are LLVM's own)."""
    names = [f.name for f in module.functions if f.is_declaration]
    names += [g.name for g in module.global_variables if g.is_declaration]
    return sorted(n for n in names if not n.startswith("llvm."))


Stage = Callable[[str], contextlib.AbstractContextManager]
"""What times a named step (`progress.stage` in this process)."""


def _no_stage(name: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@contextlib.contextmanager
def parsed(ir_text: str, tm, stage: Stage = _no_stage):
    """The module `ir_text` for the target machine `tm`, parsed into a context of its own and
    verified; closed on exit. (LLVM's global context, numba's too, keeps every constant and type
    ever parsed into it, growing with each build.)"""
    with stage("LLVM parse"):
        context = llvm.create_context()
        module = llvm.parse_assembly(ir_text, context=context)
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        module.verify()
    try:
        yield module
    finally:
        module.close()
        context.close()


def compile_module(ir_text: str, machine: Machine, codegen_opt: int,
                   stage: Stage = _no_stage
                   ) -> tuple[bytes, list[str], bool]:
    """The object code of the module `ir_text` for `machine`, the external symbols it needs,
    and whether the O3 pipeline ran (it does unless every function is `optnone`).
    `stage(name)` times the steps (progress.py in this process)."""
    tm = target_machine(machine, codegen_opt)
    with parsed(ir_text, tm, stage) as module:
        externals = external_symbols(module)
        optimised = not all_optnone(module)
        if optimised:
            with stage("LLVM optimisation"):
                optimise(module, tm)
        with stage("code generation"):
            return tm.emit_object(module), externals, optimised


# The helper process's side of compiler.py's protocol: each message is its length (8 bytes,
# little endian) and a pickle; a request is (IR text, Machine fields, code generation level),
# the reply ("ok", object, externals, [(stage, seconds), ...]) or ("error", message). The
# end of the input ends the loop.

def framed(message: object) -> bytes:
    """One message as written: its length and its pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("<Q", len(data)) + data


READY = framed(("ready",))
"""What the helper writes first, once llvmlite is imported."""


def write_message(stream: BinaryIO, message: object) -> None:
    """Write one message (a pickled tuple) to `stream` and flush it."""
    stream.write(framed(message))
    stream.flush()


def read_message(stream: BinaryIO) -> object | None:
    """The next message on `stream`, or None at its end."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    size, = struct.unpack("<Q", head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Compile the modules asked for on `requests` until its end, replying on `replies`."""
    while (request := read_message(requests)) is not None:
        ir_text, machine, codegen_opt = request
        stages: list[tuple[str, float]] = []
        try:
            code, externals, _ = compile_module(ir_text, Machine(*machine), codegen_opt,
                                                functools.partial(_timed, stages))
            reply = ("ok", code, externals, stages)
        except Exception as error:  # noqa: BLE001  reported to the parent, raised there
            reply = ("error", f"{type(error).__name__}: {error}")
        write_message(replies, reply)


@contextlib.contextmanager
def _timed(stages: list[tuple[str, float]], name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        stages.append((name, time.perf_counter() - start))


def main() -> None:
    """The helper process: requests on standard input, replies on what was standard output,
    which then goes to standard error (anything LLVM prints must not enter the replies)."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    replies.write(READY)
    replies.flush()
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
