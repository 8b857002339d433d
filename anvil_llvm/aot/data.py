"""Constant data in an exported object as binary, not as LLVM IR text: the tables a function's
code reads (index tables, colourings, captured arrays of `TABLE_BYTES` and more), the CSC
arrays of sparse results (`<library>_<function>_colptr`, `_rowind`) and CasADi's sparsity
patterns. The IR only declares each one (`external hidden constant`, so code reaches it
PC-relative); the definitions are assembler directives in one module-level `asm` block that
includes each table's bytes with `.incbin` from a temporary file while LLVM emits the object.

A table of 20 MB written as an IR string literal takes 60 MB of text, about 0.5 s to write, parse
and emit; included as binary it takes 0.07 s (scripts/bench_export.py measures whole exports).
llvmlite registers the assembler of the host's architecture only: for other architectures
(aarch64 from x86-64) the tables are defined in IR text (`ir_module`).
"""
from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass

import numpy as np

from ..backend import constants
from ..backend.target import SHARED_CONSTANTS
from ..ir.uop import payloads

TABLE_BYTES = SHARED_CONSTANTS     # exported code references the tables the JIT shares


@dataclass(frozen=True, eq=False)
class Blob:
    """Bytes under an IR symbol: part of the library's interface (`exported`, a C symbol) or
    hidden (reached only by the object's own code)."""

    symbol: str
    data: bytes
    exported: bool = False

    def declaration(self) -> str:
        """The IR declaration code refers to it through."""
        visibility = "" if self.exported else "hidden "
        return (f"@{self.symbol} = external {visibility}constant [{max(len(self.data), 1)} "
                "x i8], align 64")


def array_bytes(array: np.ndarray, big_endian: bool) -> bytes:
    """An array's bytes as code on the target reads them (bools one byte each).

    >>> array_bytes(np.array([1, 2], np.int32), True).hex()
    '0000000100000002'
    """
    data = constants.storage(np.asarray(array))
    order = ">" if big_endian else "<"
    return data.astype(data.dtype.newbyteorder(order), copy=False).tobytes()


def tables(fn, lowered, library: str, big_endian: bool) -> tuple[str, list[Blob]]:
    """`lowered.ir` (of the function `fn`) with its shared constant tables
    (`@anvil.const.<digest>`, declared) renamed to the library's own hidden symbols, and the
    blobs defining them from `fn`'s graph."""
    wanted = {name for name in lowered.externals if name.startswith("anvil.const.")}
    if not wanted:
        return lowered.ir, []
    blobs, found = [], set()
    for payload in payloads(fn._order):
        name = constants.symbol(payload)
        if name in wanted and name not in found:
            found.add(name)
            blobs.append(Blob(f"{library}.{name[len('anvil.'):]}",
                              array_bytes(payload.array, big_endian)))
    missing = wanted - found
    if missing:
        raise RuntimeError(f"export: no table for {sorted(missing)} in the functions' graphs")
    text = re.sub(r"^@anvil\.const\.(\w+) = external global", rf"@{library}.const.\1 = external "
                  "hidden global", lowered.ir, flags=re.MULTILINE)
    return text.replace("@anvil.const.", f"@{library}.const."), blobs


def _quoted(symbol: str) -> str:
    return '"' + symbol + '"'


def asm_module(blobs: list[Blob], layout: str, directory: pathlib.Path) -> str:
    """An IR module whose module-level assembly defines `blobs` (their bytes written to files
    in `directory`, included by `.incbin`), in the object format of the data layout `layout`
    (ELF, Mach-O or COFF).

    >>> import tempfile
    >>> directory = pathlib.Path(tempfile.mkdtemp())
    >>> asm_module([Blob("t", b"abc", True)], "e-m:e-i64:64", directory).splitlines()[2]
    'module asm ".globl \\\\22t\\\\22"'
    """
    macho, coff = "-m:o" in layout, ("-m:w" in layout or "-m:x" in layout)
    section = ("__TEXT,__const" if macho else '.rdata,"dr"' if coff
               else '.rodata.anvil_tables,"a",@progbits')
    lines = [f".section {section}"]
    for k, blob in enumerate(blobs):
        path = directory / f"blob{k}.bin"
        path.write_bytes(blob.data or b"\0")
        name = _quoted(("_" if macho else "") + blob.symbol)
        lines += [".p2align 6", f".globl {name}"]
        if not blob.exported:
            lines.append(f".private_extern {name}" if macho else "" if coff
                         else f".hidden {name}")
        if not macho and not coff:
            lines.append(f".type {name},@object")
        lines += [f"{name}:", f'.incbin "{path}"']
        if not macho and not coff:
            lines.append(f".size {name}, {max(len(blob.data), 1)}")
    return "".join(_asm(line) + "\n" for line in lines if line)


def ir_module(blobs: list[Blob]) -> str:
    """An IR module defining `blobs` as string literals (for targets LLVM cannot assemble for
    here).

    >>> print(ir_module([Blob("t", b"ab", True)]), end="")
    @t = constant [2 x i8] c"\\61\\62", align 64
    """
    lines = []
    for blob in blobs:
        body = f'c"\\{blob.data.hex(chr(92))}"' if blob.data else "zeroinitializer"
        visibility = "" if blob.exported else "hidden "
        lines.append(f"@{blob.symbol} = {visibility}constant [{max(len(blob.data), 1)} x i8] "
                     f"{body}, align 64")
    return "".join(line + "\n" for line in lines)


def _asm(line: str) -> str:
    """A line of module-level assembly (quotes and backslashes escaped as IR wants them)."""
    return 'module asm "' + line.replace("\\", "\\5C").replace('"', "\\22") + '"'
