"""Where the disk cache lives (`directory`: private to the user, or none) and how files in it
are published (`publish`: an atomic rename, never a half-written file)."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("anvil_llvm")

TEMPORARY = ".tmp-"                 # prefix of files being written
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@functools.cache
def warn_once(message: str) -> None:
    """Log `message` as a warning the first time only: a setting or a directory that is wrong
    stays wrong for every later read and write."""
    log.warning(message)


def directory() -> Path | None:
    """The private cache directory, or None when caching is off or the directory is unsafe."""
    switch = os.environ.get("ANVIL_LLVM_NO_CACHE", "").strip().lower()
    if switch not in _FALSE:
        if switch not in _TRUE:
            warn_once(f"anvil_llvm: ANVIL_LLVM_NO_CACHE={switch!r} is read as true (expected "
                       "one of 1, true, yes, on or 0, false, no, off); the disk cache is off")
        return None
    root = os.environ.get("ANVIL_LLVM_CACHE_DIR")
    if root:
        path = Path(root)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = Path(base) / "anvil_llvm"
    try:
        info = _made(path)
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        warn_once(f"anvil_llvm: not using cache directory {path}: owned by another user or "
                   "writable by others")
        return None
    return path


def _made(path: Path) -> os.stat_result:
    """The status of the folder `path`, made (private) if it does not exist (a stat first:
    `mkdir` of an existing folder raises and catches an exception each time)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.stat(path)


def publish(root: Path, name: str, data: bytes) -> None:
    """`data` as the file `name` in `root`, by an atomic rename of a temporary file (removed
    if anything fails)."""
    fd, temporary = tempfile.mkstemp(dir=root, prefix=TEMPORARY)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(temporary, root / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
