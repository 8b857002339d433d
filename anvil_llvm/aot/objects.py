"""One object file for several lowered functions: each module is parsed, its entry point renamed
to the exported C symbol, optimised exactly as the JIT optimises it (the same O3 pipeline, one
module at a time, so that exported code computes the same bits as the JIT on the same CPU), then
all are linked into one module and LLVM emits the object for the target."""
from __future__ import annotations

import pathlib
import tempfile
import time
from dataclasses import dataclass

import llvmlite.binding as llvm

from ..backend import jit
from ..backend.lower import Lowered
from ..backend.target import Target
from . import data, targets


@dataclass(frozen=True)
class Unit:
    """A lowered function and the symbol it is exported under (`ir`: its module with its
    tables renamed, `data.tables`; default the lowered IR)."""

    lowered: Lowered
    symbol: str
    ir: str | None = None


@dataclass(frozen=True)
class ObjectCode:
    """An emitted object: its bytes, the global symbols it defines and the ones it needs."""

    data: bytes
    defined: tuple[str, ...]
    undefined: tuple[str, ...]
    seconds: float


def public_ir(unit: Unit) -> str:
    """The module of `unit.lowered` with its entry point named `unit.symbol` (its kernels and
    constants, internal, are renamed along: `<symbol>.k0`, `<symbol>.c0`, ...).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(3),))
    >>> text = public_ir(Unit(f.lowered(Target.object()), "lib_f"))
    >>> "define dso_local i32 @lib_f(" in text
    True
    """
    text = unit.lowered.ir if unit.ir is None else unit.ir
    return text.replace("@" + unit.lowered.symbol, "@" + unit.symbol)


def emit_object(units: list[Unit], target: Target, extra_ir: list[str] = (),
                blobs: list[data.Blob] = ()) -> ObjectCode:
    """Parse, optimise (per module, as the JIT does), link and emit one object for `target`.
    `extra_ir` are further modules (entry points wrapping the functions) linked in as well;
    `blobs` the constant data the modules declare (`data.py`), included as binary.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(3),))
    >>> code = emit_object([Unit(f.lowered(Target.object()), "lib_f")], Target.object())
    >>> code.defined, code.data[:4]
    (('lib_f',), b'\\x7fELF')
    """
    for unit in units:
        if unit.lowered.target != target:
            raise ValueError(f"units: {unit.symbol} was lowered for another target")
    # Huge chunked scalar code is generated at level 0 in the JIT (its chunks are `optnone`
    # and keep level 0 at any level); no instruction combines floating-point operations
    # differently between levels (the IR has no `contract` flags), so results do not depend on it.
    opt = 0 if units and all(u.lowered.codegen_opt == 0 for u in units) else 3
    tm = targets.target_machine(target, opt)
    start = time.perf_counter()
    with jit._lock, tempfile.TemporaryDirectory(prefix="anvil-export-") as tmp:
        context = llvm.create_context()
        linked = None
        texts = [public_ir(u) for u in units] + list(extra_ir)
        if blobs and targets.assembles(target.triple):
            texts.append(data.asm_module(list(blobs), str(tm.target_data), pathlib.Path(tmp)))
        elif blobs:
            texts.append(data.ir_module(list(blobs)))
        for text in texts:
            module = llvm.parse_assembly(text, context=context)
            module.triple = tm.triple
            module.data_layout = str(tm.target_data)
            module.verify()
            jit.optimise_unless_optnone(module, tm)
            if linked is None:
                linked = module
            else:
                linked.link_in(module)
        if linked is None:
            raise ValueError("functions: nothing to export")
        linked.verify()
        in_data = {b.symbol for b in blobs}
        defined = tuple(sorted(
            [f.name for f in linked.functions if not f.is_declaration
             and f.linkage == llvm.Linkage.external]
            + [g.name for g in linked.global_variables if not g.is_declaration
               and g.linkage == llvm.Linkage.external]
            + [b.symbol for b in blobs if b.exported]))
        undefined = tuple(sorted(
            n for n in [f.name for f in linked.functions if f.is_declaration]
            + [g.name for g in linked.global_variables if g.is_declaration]
            if not n.startswith("llvm.") and n not in in_data))
        code = tm.emit_object(linked)
        linked.close()
        context.close()
    return ObjectCode(code, defined, undefined, time.perf_counter() - start)
