"""Object code loaded into this process without LLVM: a linker for the ELF objects the JIT target
emits on x86-64 Linux (large code model, not position independent: every reference to a symbol is
a 64-bit absolute address, relocation `R_X86_64_64`).

An object's allocated sections are laid out in one anonymous mapping, grouped by what they may
do (code: read and execute; constants: read; data: read and write), each group on pages of its
own; its symbols are resolved against the object itself, the symbols this process defines for
JIT code (`define`: NumPy's API table, shared constants, BLAS routines) and the process's
libraries; relocations are applied; then each group gets its protection. Unwinding tables
(`.eh_frame`) are not loaded: nothing unwinds through generated code.

Loading a small object this way takes tens of microseconds, where LLVM's MCJIT needs its native
target initialised, an engine and a load (~1.2 ms in a fresh process): what an unpickled
function costs before its first call. An object this linker does not handle (another
architecture, another relocation) raises `Unsupported`, and is loaded by LLVM instead
(engines.py).

>>> import anvil_llvm as av, numpy as np
>>> f = av.NumericalFunction("f", lambda x: av.sin(x) * 2.0, (av.Arg(3),)).compile()
>>> f(np.zeros(3)).tolist()
[0.0, 0.0, 0.0]
"""
from __future__ import annotations

import ctypes
import functools
import mmap
import platform
import struct
import sys
import threading
from typing import NamedTuple

import llvmlite.binding as llvm


class Unsupported(Exception):
    """An object this linker does not load (LLVM loads it)."""


_HEADER = struct.Struct("<IIQQQQIIQQ")      # Elf64_Shdr
_SYMBOL = struct.Struct("<IBBHQQ")         # Elf64_Sym
_RELOCATION = struct.Struct("<QQq")        # Elf64_Rela
_ADDRESS = struct.Struct("<Q")
_MASK = (1 << 64) - 1
SHT_SYMTAB, SHT_RELA, SHT_NOBITS = 2, 4, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS = 0x1, 0x2, 0x4, 0x400
SHN_UNDEF, SHN_ABS = 0, 0xfff1
STT_SECTION = 3
R_X86_64_64 = 1
EM_X86_64, ET_REL = 62, 1
UNLOADED = (".eh_frame",)        # allocated, but only for unwinders
MAX_BYTES = 1 << 32              # an object's loaded sections

_MAP_FAILED = ctypes.c_void_p(-1).value
_PAGE = mmap.PAGESIZE

_lock = threading.Lock()
_defined: dict[str, int] = {}
_exported: dict[str, int] = {}     # found in the process's libraries (never unloaded)


@functools.cache
def supported() -> bool:
    """Whether this process's objects are ones this linker loads (x86-64 Linux)."""
    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


@functools.cache
def _libc():
    """The C library's mmap, munmap, mprotect and dlsym (where the linker is `supported`)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pointer, size, number = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    for name, result, arguments in (
            ("mmap", pointer, [pointer, size, number, number, number, ctypes.c_long]),
            ("munmap", number, [pointer, size]), ("mprotect", number, [pointer, size, number]),
            ("dlsym", pointer, [pointer, ctypes.c_char_p])):
        function = getattr(libc, name)
        function.restype, function.argtypes = result, arguments
    return libc


def define(name: str, address: int) -> None:
    """Make `name` resolve to `address` in code loaded from now on (here and by LLVM: MCJIT,
    numba's linker)."""
    with _lock:
        _defined[name] = address
    llvm.add_symbol(name, address)


def address(name: str) -> int:
    """The address `name` resolves to in loaded code: defined (`define`), else exported by the
    process's global libraries (the interpreter, the C and maths libraries, libmvec once
    loaded); 0 when nothing provides it."""
    with _lock:
        found = _defined.get(name) or _exported.get(name)
    if found is None:
        # RTLD_DEFAULT, the global scope; elsewhere LLVM's search (an MCJIT engine made first
        # has it search the process: jit.prepare)
        found = (_libc().dlsym(None, name.encode()) if supported()
                 else llvm.address_of_symbol(name)) or 0
        if not found:
            return 0
        with _lock:
            _exported[name] = found
    return found


class Image:
    """An object's code and data mapped into this process, and the addresses of its symbols;
    `close()` unmaps it (nothing may call into it afterwards)."""

    __slots__ = ("base", "size", "symbols")

    def __init__(self, obj: bytes):
        sections, symbols = _parse(obj)
        placed, groups, self.size = _layout(sections)
        self.base = _map(self.size)
        try:
            image = bytearray(self.size)
            for index, offset in placed.items():
                section = sections[index]
                if section.kind != SHT_NOBITS:
                    image[offset:offset + section.size] = \
                        obj[section.offset:section.offset + section.size]
            values = _symbol_values(symbols, sections,
                                    {index: self.base + offset for index, offset in placed.items()})
            for section in sections:
                if section.kind == SHT_RELA and section.info in placed:
                    _relocate(image, placed[section.info], sections[section.info].size,
                              _entries(obj, section, _RELOCATION), values)
            ctypes.memmove(self.base, (ctypes.c_char * self.size).from_buffer(image), self.size)
            _protect(self.base, self.size, groups)
        except BaseException:
            self.close()
            raise
        self.symbols = {symbol.name: value for symbol, value in zip(symbols, values)
                        if symbol.name and symbol.kind != STT_SECTION
                        and symbol.section != SHN_UNDEF}

    def close(self) -> None:
        """Unmap the object's code and data."""
        if self.base:
            _libc().munmap(self.base, self.size)
            self.base = 0


class _Section(NamedTuple):
    """An ELF section header's fields this linker reads."""

    name: str
    kind: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    entry_size: int


class _Symbol(NamedTuple):
    name: str
    kind: int
    section: int
    value: int


def _parse(obj: bytes) -> tuple[list[_Section], list[_Symbol]]:
    """The sections and the symbols of the ELF object `obj`, checked to be one this linker
    loads."""
    try:
        return _read(obj)
    except (struct.error, UnicodeDecodeError, IndexError) as e:
        raise Unsupported(f"a damaged object ({e})") from None


def _read(obj: bytes) -> tuple[list[_Section], list[_Symbol]]:
    if (len(obj) < 64 or obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1
            or struct.unpack_from("<HH", obj, 16) != (ET_REL, EM_X86_64)):
        raise Unsupported("not a relocatable x86-64 ELF object")
    table, = struct.unpack_from("<Q", obj, 40)
    entry_size, count, names_index = struct.unpack_from("<HHH", obj, 58)
    if entry_size != _HEADER.size or table + count * entry_size > len(obj) \
            or names_index >= count:
        raise Unsupported("its section table is damaged")
    raw = [_HEADER.unpack_from(obj, table + i * entry_size) for i in range(count)]
    for _, kind, _, _, offset, size, *_ in raw:
        if kind != SHT_NOBITS and offset + size > len(obj):
            raise Unsupported("a section lies outside the object")
    names = _strings(obj, raw[names_index])
    sections = [_Section(names(name), kind, flags, offset, size, link, info, align, entry)
                for name, kind, flags, _, offset, size, link, info, align, entry in raw]
    tables = [s for s in sections if s.kind == SHT_SYMTAB]
    if len(tables) != 1 or tables[0].link >= count:
        raise Unsupported("it has no single symbol table")
    name = _strings(obj, raw[tables[0].link])
    symbols = [_Symbol(name(start), info & 0xf, section, value)
               for start, info, _, section, value, _ in _entries(obj, tables[0], _SYMBOL)]
    return sections, symbols


def _strings(obj: bytes, header: tuple):
    """The string of a string table section (`header`) at an offset."""
    text = obj[header[4]:header[4] + header[5]]

    def string(start: int) -> str:
        end = text.find(b"\0", start)
        if start >= len(text) or end < 0:
            raise Unsupported("a name lies outside its string table")
        return text[start:end].decode()
    return string


def _entries(obj: bytes, section: _Section, entry: struct.Struct):
    """The entries of a table section, unpacked."""
    if section.entry_size != entry.size or section.size % entry.size:
        raise Unsupported(f"the entries of {section.name} have an unexpected size")
    return entry.iter_unpack(obj[section.offset:section.offset + section.size])


def _group(section: _Section) -> int:
    """0: code, 1: constants, 2: data (the order of the groups in the mapping)."""
    return 0 if section.flags & SHF_EXECINSTR else 2 if section.flags & SHF_WRITE else 1


_PROTECTION = (mmap.PROT_READ | mmap.PROT_EXEC, mmap.PROT_READ, mmap.PROT_READ | mmap.PROT_WRITE)


def _layout(sections: list[_Section]) -> tuple[dict[int, int], list[tuple[int, int]], int]:
    """Where each loaded section goes in the mapping (its offset, by section index), where
    each group that has sections starts (group, offset) and the mapping's size: code, then
    constants, then data, each group starting on a page."""
    loaded = [(i, s) for i, s in enumerate(sections) if _loaded(s)]
    placed, groups, end = {}, [], 0
    for group in range(3):
        end = _pages(end)
        members = [(index, section) for index, section in loaded if _group(section) == group]
        if members:
            groups.append((group, end))
        for index, section in members:
            if section.flags & SHF_TLS:
                raise Unsupported(f"{section.name} is thread-local storage")
            align = max(section.align, 1)
            if align & (align - 1) or align > _PAGE:
                raise Unsupported(f"{section.name} has an alignment of {align}")
            end = -(-end // align) * align
            placed[index] = end
            end += section.size
    if end > MAX_BYTES:
        raise Unsupported(f"its sections take {end} bytes")
    return placed, groups, max(_pages(end), _PAGE)


def _loaded(section: _Section) -> bool:
    return bool(section.flags & SHF_ALLOC and section.size and section.name not in UNLOADED)


def _pages(size: int) -> int:
    return -(-size // _PAGE) * _PAGE


def _map(size: int) -> int:
    base = _libc().mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE,
                 mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if base in (None, _MAP_FAILED):
        raise MemoryError(f"anvil_llvm: cannot map {size} bytes for compiled code")
    return base


def _symbol_values(symbols: list[_Symbol], sections: list[_Section],
                   bases: dict[int, int]) -> list[int]:
    """Each symbol's address: in a loaded section, absolute, or resolved in the process."""
    values = [0] * len(symbols)
    for i, symbol in enumerate(symbols[1:], 1):
        if symbol.section == SHN_UNDEF:
            values[i] = address(symbol.name)
            if not values[i]:
                raise RuntimeError(f"JIT: external symbol {symbol.name!r} cannot be resolved "
                                   "in this process; the compiled code cannot be loaded")
        elif symbol.section == SHN_ABS:
            values[i] = symbol.value
        elif symbol.section in bases:
            values[i] = bases[symbol.section] + symbol.value
        elif symbol.section >= len(sections) or _loaded(sections[symbol.section]):
            raise Unsupported(f"symbol {symbol.name!r} is in a section this linker does not "
                              "place")
    return values


def _relocate(image: bytearray, start: int, size: int, table, values: list[int]) -> None:
    """Apply the relocations `table` to the section at `start` (of `size` bytes) in `image`."""
    for offset, info, addend in table:
        symbol, kind = info >> 32, info & 0xffffffff
        if kind != R_X86_64_64:
            raise Unsupported(f"relocation type {kind} (only R_X86_64_64 is linked here)")
        if symbol >= len(values) or offset + 8 > size:
            raise Unsupported("a relocation lies outside its section or symbol table")
        _ADDRESS.pack_into(image, start + offset, (values[symbol] + addend) & _MASK)


def _protect(base: int, size: int, groups: list[tuple[int, int]]) -> None:
    """Give each group of the mapping (group, first page's offset, in order) its protection
    (code executable, constants read only), up to the next group's first page."""
    ends = [start for _, start in groups[1:]] + [size]
    for (group, start), end in zip(groups, ends):
        if _libc().mprotect(base + start, end - start, _PROTECTION[group]) != 0:
            raise OSError(ctypes.get_errno(), "anvil_llvm: mprotect of compiled code failed")
