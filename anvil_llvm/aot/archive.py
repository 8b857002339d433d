"""Static libraries (`ar` archives) written in Python, so that no C toolchain is needed to make
one: the GNU/System V variant (ELF and COFF targets: a "/" symbol index, a "//" table of long
member names) and the BSD variant of Apple's tools (Mach-O: a "__.SYMDEF SORTED" index, names
in "#1/<length>" headers). The index maps each symbol an object defines to its member, which
linkers need to pull the member in. Archives are deterministic: dates, owners zero, mode 644.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"!<arch>\n"


@dataclass(frozen=True)
class Member:
    """One file in the archive and the global symbols (as the object spells them) it defines."""

    name: str
    data: bytes
    symbols: tuple[str, ...] = ()


def _header(name: bytes, size: int) -> bytes:
    fields = (name.ljust(16), b"0".ljust(12), b"0".ljust(6), b"0".ljust(6), b"644".ljust(8),
              str(size).encode().ljust(10), b"`\n")
    header = b"".join(fields)
    assert len(header) == 60, header
    return header


def _pad(data: bytes) -> bytes:
    return data + b"\n" * (len(data) % 2)


def archive(members: list[Member], flavour: str = "gnu") -> bytes:
    """The bytes of an archive holding `members`; `flavour` "gnu" (ELF, COFF) or "bsd"
    (Mach-O).

    >>> a = archive([Member("x.o", b"abc", ("f",))])
    >>> a[:8], b"/               " in a, a.endswith(b"abc\\n")
    (b'!<arch>\\n', True, True)
    """
    if flavour == "gnu":
        return _gnu(members)
    if flavour == "bsd":
        return _bsd(members)
    raise ValueError(f"flavour: expected 'gnu' or 'bsd', got {flavour!r}")


def _gnu(members: list[Member]) -> bytes:
    # Long names ("//" member): names of 16 characters and more (with the closing "/").
    names, table = [], b""
    for member in members:
        raw = member.name.encode()
        if len(raw) <= 15 and b"/" not in raw:
            names.append(raw + b"/")
        else:
            names.append(b"/" + str(len(table)).encode())
            table += raw + b"/\n"
    symbols = [(s, i) for i, m in enumerate(members) for s in m.symbols]
    strings = b"".join(s.encode() + b"\0" for s, _ in symbols)
    index_size = 4 + 4 * len(symbols) + len(strings)
    offset = len(MAGIC) + 60 + index_size + index_size % 2
    if table:
        offset += 60 + len(table) + len(table) % 2
    positions = []
    for member in members:
        positions.append(offset)
        offset += 60 + len(member.data) + len(member.data) % 2
    index = struct.pack(f">I{len(symbols)}I", len(symbols), *(positions[i] for _, i in symbols))
    parts = [MAGIC, _header(b"/", index_size), _pad(index + strings)]
    if table:
        parts += [_header(b"//", len(table)), _pad(table)]
    for name, member in zip(names, members):
        parts += [_header(name, len(member.data)), _pad(member.data)]
    return b"".join(parts)


def _bsd_name(name: str) -> bytes:
    """A member name as Apple's ar stores it: NUL-padded to a multiple of 8 bytes (and so the
    data after it stays 8-byte aligned)."""
    raw = name.encode()
    return raw + b"\0" * (8 - len(raw) % 8 if len(raw) % 8 else 8)


def _bsd(members: list[Member]) -> bytes:
    symbols = sorted((s, i) for i, m in enumerate(members) for s in m.symbols)
    strings, offsets = b"", []
    for s, _ in symbols:
        offsets.append(len(strings))
        strings += s.encode() + b"\0"
    strings += b"\0" * (-len(strings) % 8)
    index_name = _bsd_name("__.SYMDEF SORTED")
    index_size = len(index_name) + 4 + 8 * len(symbols) + 4 + len(strings)
    offset = len(MAGIC) + 60 + index_size + index_size % 2
    positions = []
    for member in members:
        positions.append(offset)
        size = len(_bsd_name(member.name)) + len(member.data)
        offset += 60 + size + size % 2
    entries = b"".join(struct.pack("<II", strx, positions[i])
                       for strx, (_, i) in zip(offsets, symbols))
    index = (index_name + struct.pack("<I", 8 * len(symbols)) + entries
             + struct.pack("<I", len(strings)) + strings)
    parts = [MAGIC, _header(f"#1/{len(index_name)}".encode(), len(index)), _pad(index)]
    for member in members:
        name = _bsd_name(member.name)
        parts += [_header(f"#1/{len(name)}".encode(), len(name) + len(member.data)),
                  _pad(name + member.data)]
    return b"".join(parts)
