"""The on-disk cache of compiled objects: where it lives, entry keys and format, reads, writes and
least-recently-used eviction.

An entry `<key>.o` is `MAGIC | sha256(body) | body`, where body is a JSON header, a NUL byte and
the object file. The header records what the object was built for (the JIT target and the
llvmlite, LLVM and anvil_llvm versions) and the external symbols it needs; an entry whose record
differs from the running host's is a miss, never loaded. Entries are published by an atomic
rename, opened without following links and only as regular files, and a read refreshes their
modification time, which eviction takes as the time of last use. A small record beside the
entries (`usage`) keeps their total size, so that a write counts the files only when the cap
may be passed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import NamedTuple

import llvmlite
import llvmlite.binding as llvm

from .._version import __version__
from .cachedir import TEMPORARY, directory, publish, warn_once
from .target import Target

_MAGIC = b"ANVILOBJ3"
_USAGE = "usage"                     # the directory's bytes as last counted, and writes since
RECOUNT_WRITES = 256                 # the files are counted again at least this often
DEFAULT_MAX_BYTES = 1 << 30
def max_bytes() -> int:
    """The size cap of the cache directory: `ANVIL_LLVM_CACHE_MAX_BYTES` if it is a positive
    integer, else (with a warning) 1 GiB."""
    text = os.environ.get("ANVIL_LLVM_CACHE_MAX_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value > 0:
        return value
    warn_once(f"anvil_llvm: ignoring ANVIL_LLVM_CACHE_MAX_BYTES={text!r} (expected a positive "
               f"number of bytes); the cache is capped at {DEFAULT_MAX_BYTES} bytes")
    return DEFAULT_MAX_BYTES


@functools.lru_cache(maxsize=1)
def host_record() -> dict:
    """What this process builds objects for: the JIT target and the versions of llvmlite, LLVM
    and anvil_llvm. Shared: not to be modified."""
    target = Target.jit()      # flat fields: no `asdict` (a deep copy, ~40 us)
    return {**{f.name: getattr(target, f.name) for f in dataclasses.fields(target)},
            "llvmlite": llvmlite.__version__,
            "llvm": ".".join(map(str, llvm.llvm_version_info)), "anvil_llvm": __version__,
            "source": _source_stamp()}


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _source_stamp(package: str = _PACKAGE) -> str:
    """What tells this copy of anvil_llvm's code from others: entries keyed by a function's
    graph are lowered by this code, so changed code must not hit them. An installed copy (in
    `site-packages` or `dist-packages`) changes only when it is installed again, which makes
    its folder anew: the folder's inode and change time (one stat). A source checkout (an
    editable install) is edited in place: `_source_digest` (~0.3 ms)."""
    if {"site-packages", "dist-packages"} & set(Path(package).parts):
        info = os.stat(package)
        return f"installed:{info.st_ino}:{info.st_ctime_ns}"
    return _source_digest(package)


def _source_digest(package: str = _PACKAGE) -> str:
    """A digest of the size and modification time of anvil_llvm's source files: entries keyed
    by a function's graph are lowered by this code, so a changed lowering (a development
    checkout) must not hit them. Stat, not read, and `scandir` (which skips the stat of
    folders and of files that are not sources)."""
    lines, folders = [], [package]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.name.endswith(".py") and entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    lines.append(f"{entry.path[len(package):]}:{info.st_size}:"
                                 f"{info.st_mtime_ns}")
                elif entry.name != "__pycache__" and entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def key(*parts) -> str:
    """The cache key of what `parts` describe (a module's IR and code generation level, or a
    function's graph digest and signature) built on this host by this anvil_llvm."""
    text = "\0".join((json.dumps(host_record(), sort_keys=True), *map(str, parts)))
    return hashlib.sha256(text.encode()).hexdigest()


class Entry(NamedTuple):
    """A cached object, the external symbols it needs and what its writer recorded about it."""

    obj: bytes
    externals: list[str]
    info: dict


def encode(obj: bytes, externals: list[str], built_for: dict, info: dict | None = None) -> bytes:
    """The bytes of an entry holding `obj`, which needs `externals` and was built for the
    target and versions `built_for` (a `host_record()`), with `info` (JSON) about it."""
    header = json.dumps({"built_for": built_for, "externals": externals,
                         "info": info or {}}).encode()
    body = header + b"\0" + obj
    return _MAGIC + hashlib.sha256(body).digest() + body


def unpack(data: bytes) -> tuple[Entry, dict]:
    """The entry `data` holds and the host record it was built for; ValueError when it is
    damaged (wrong magic, digest or header)."""
    head = len(_MAGIC) + 32
    if len(data) < head or data[:len(_MAGIC)] != _MAGIC:
        raise ValueError("not an anvil_llvm object entry")
    digest, body = data[len(_MAGIC):head], data[head:]
    if hashlib.sha256(body).digest() != digest:
        raise ValueError("a damaged anvil_llvm object entry (its digest does not match)")
    header, _, obj = body.partition(b"\0")
    try:
        fields = json.loads(header)
        built_for = fields["built_for"]
        entry = Entry(obj, list(fields["externals"]), dict(fields.get("info", {})))
    except (ValueError, KeyError, TypeError):
        raise ValueError("a damaged anvil_llvm object entry (its header)") from None
    return entry, built_for


def decode(data: bytes) -> Entry | None:
    """The object and its external symbols held by the entry `data`, or None when it is damaged
    or was built for another target or other versions than this process's."""
    try:
        entry, built_for = unpack(data)
    except ValueError:
        return None
    return entry if built_for == host_record() else None


def read(key: str) -> Entry | None:
    """The cached object and its external symbols for `key`, or None when absent, not a regular
    file, larger than the cap, damaged or built for another host (never loads bad bytes). A hit
    counts as a use for eviction."""
    root = directory()
    if root is None:
        return None
    try:
        # O_NONBLOCK: opening a FIFO put in place of an entry must not wait for a writer.
        fd = os.open(root / f"{key}.o", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes():
            return None
        with open(fd, "rb", closefd=False) as f:
            found = decode(f.read(info.st_size))
        if found is not None:
            os.utime(fd)
        return found
    except OSError:
        return None
    finally:
        os.close(fd)


def write(key: str, obj: bytes, externals: list[str], info: dict | None = None) -> None:
    """Publish an entry atomically (write a temporary file, then rename it into place), then
    evict the least recently used entries when the directory exceeds the cap (`_account`). A
    failure (disk full, file size limit) is logged, never raised, and leaves no temporary
    file."""
    root = directory()
    if root is None:
        return
    data = encode(obj, externals, host_record(), info)
    cap = max_bytes()
    if len(data) > cap:
        return
    try:
        publish(root, f"{key}.o", data)
        _account(root, cap, len(data))
    except OSError as e:
        warn_once(f"anvil_llvm: could not write a cache entry in {root}: {e.strerror or e}")


def _account(root: Path, cap: int, written: int) -> None:
    """Add `written` bytes to the directory's usage record (`_USAGE`: its bytes as last counted
    and the writes since) and count its files again, evicting past the cap, only when the
    record says the cap is passed, is missing or damaged, or is `RECOUNT_WRITES` writes old:
    a write costs a small read and write instead of a stat of every entry (~40 ms at 5,000
    entries). The record is a hint, updated without a lock: writers racing may lose an
    update, which the next count corrects."""
    try:
        total, writes = map(int, (root / _USAGE).read_text().split())
    except (OSError, ValueError):
        total, writes = -1, RECOUNT_WRITES
    if total < 0 or total + written > cap or writes >= RECOUNT_WRITES:
        total, writes = _evict(root, cap), 0
    else:
        total, writes = total + written, writes + 1
    publish(root, _USAGE, f"{total} {writes}\n".encode())


def _files(root: Path) -> list[tuple[int, int, str]]:
    """(last use in ns, size, path) of the regular files of the cache in `root` (entries and
    temporaries), least recently used first."""
    found = []
    with os.scandir(root) as listing:
        for item in listing:
            if not (item.name.endswith(".o") or item.name.startswith(TEMPORARY)):
                continue
            with contextlib.suppress(OSError):     # removed meanwhile by another process
                info = item.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode):
                    found.append((info.st_mtime_ns, info.st_size, item.path))
    return sorted(found)


def _evict(root: Path, cap: int) -> int:
    """Delete the least recently used files until those in `root` total at most `cap` bytes
    (a temporary left by a killed process goes too once it is among the oldest); the bytes
    left."""
    files = _files(root)
    total = sum(size for _, size, _ in files)
    for _, size, path in files:
        if total <= cap:
            break
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        total -= size
    return total


class Info(NamedTuple):
    """The disk cache's directory (None when off or unsafe), its number of entries, the bytes
    its files take and the cap on those bytes."""

    directory: Path | None
    entries: int
    bytes: int
    max_bytes: int


def info() -> Info:
    """The cache directory, its number of entries and bytes, and the cap.

    >>> import anvil_llvm as av
    >>> av.cache.info().max_bytes          # ANVIL_LLVM_CACHE_MAX_BYTES unset
    1073741824
    """
    root = directory()
    files = _files(root) if root is not None else []
    entries = sum(not os.path.basename(path).startswith(TEMPORARY) for _, _, path in files)
    return Info(root, entries, sum(size for _, size, _ in files), max_bytes())


def clear() -> int:
    """Remove every entry (and any temporary a killed process left); the number of files
    removed. (The example is not run as a test: it would empty your cache.)

    >>> import anvil_llvm as av
    >>> av.cache.clear()              # doctest: +SKIP
    12
    """
    root = directory()
    if root is None:
        return 0
    removed = 0
    for _, _, path in _files(root):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed += 1
    with contextlib.suppress(FileNotFoundError):
        os.unlink(root / _USAGE)
    return removed
