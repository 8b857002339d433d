"""lower(): a function's graph to `Lowered`, the one result that loading into this process
(the JIT) and, next, export and numba interop consume."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..ir import verify
from ..ir.uop import UOp
from . import codegen
from .callpath import GIL_RELEASE_WORK, ArgSpec
from .schedule import schedule
from .target import Target
from .verify import verify_schedule

_DRAFT = "anvil.draft"      # the symbol a module is generated with, then replaced (never a C name)
_EXTERNAL = re.compile(r"^(?:declare [^@\n]*@([\w.$]+)\(|@([\w.$]+) = external )", re.M)


@dataclass(frozen=True)
class Lowered:
    """A function lowered for a target: the LLVM IR of its kernels and C-ABI entry point
    `symbol` (docs/architecture.md, "The C ABI"), the symbols it needs from outside, its
    argument and result specs, and its workspace size.

    >>> import numpy as np, anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: av.exp(x).sum(), (av.Arg(3),))
    >>> low = f.lowered()
    >>> low.symbol.startswith("f."), low.work_bytes, [s.shape for s in low.outputs]
    (True, 0, [()])
    """

    symbol: str
    ir: str
    externals: tuple[str, ...]
    inputs: tuple[ArgSpec, ...]
    outputs: tuple[ArgSpec, ...]
    work_bytes: int
    codegen_opt: int         # the code generator's level: 0 for huge chunked scalar code
    release_gil: bool        # enough work per call to run without the GIL
    target: Target


def lower(name: str, inputs: list[UOp], outputs: list[UOp], input_specs: list[ArgSpec],
          output_specs: list[ArgSpec], target: Target) -> Lowered:
    """Schedule the graph of `outputs` over `inputs` and emit its LLVM module for `target`.

    The symbol is the name and a digest of the code: unique among the functions loaded into
    the process's JIT engine, and the same in every process (for the disk cache).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("g", lambda x: x * 2.0, (av.Arg(4),))
    >>> low = lower("g", f.inputs, f.outputs, *f._specs(), Target.object())
    >>> low.target.code_model, "define dso_local i32 @" + low.symbol in low.ir
    ('small', True)
    """
    if verify.enabled():
        verify.verify_graph(outputs)
    sched = schedule(inputs, outputs, gemm=target.gemm == "scipy")
    if verify.enabled():
        verify_schedule(sched)
    draft = codegen.module_text(sched, _DRAFT, target.vector_isas, target.shared_constants,
                                target.table_features)
    symbol = f"{name}.{hashlib.sha256(draft.encode()).hexdigest()[:16]}"
    text = draft.replace("@" + _DRAFT, "@" + symbol)
    externals = sorted({a or b for a, b in _EXTERNAL.findall(text)} - {""})
    return Lowered(symbol, text, tuple(n for n in externals if not n.startswith("llvm.")),
                   tuple(input_specs), tuple(output_specs), sched.work_bytes,
                   0 if codegen.is_chunked(sched) else 3,
                   sched.elements >= GIL_RELEASE_WORK, target)
