"""The host CPU as LLVM sees it (the process's triple, the CPU's name and features), remembered
for the rest of the boot.

Asking LLVM costs about 0.5 ms a process (CPUID instructions, which a hypervisor traps in a
virtual machine): most of what a process that only loads shipped code (a function unpickled on
a Dask worker) pays beyond loading it. The answer cannot change before the machine reboots, so it
is kept in the cache directory (`host-cpu.json`) with the boot's id (Linux's `boot_id`), the
llvmlite and LLVM versions and the Python executable that asked; a file that does not match, is
damaged or cannot be read means asking LLVM (and writing the file again). Without a cache
directory or a boot id LLVM is asked in each process.
"""
from __future__ import annotations

import functools
import json
import os
import stat
import sys
from typing import NamedTuple

import llvmlite
import llvmlite.binding as llvm

from .cachedir import directory, publish

_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_FILE = "host-cpu.json"
_MAX_BYTES = 1 << 16


class HostCPU(NamedTuple):
    """What LLVM says of the machine this process runs on."""

    triple: str
    name: str
    features: str          # LLVM's flat feature string: "+avx2,-avx512f,..."

    @property
    def feature_map(self) -> dict[str, bool]:
        """{feature: whether the CPU has it}.

        >>> HostCPU("x86_64-unknown-linux-gnu", "haswell", "+avx2,-avx512f").feature_map
        {'avx2': True, 'avx512f': False}
        """
        return {item[1:]: item[0] == "+" for item in self.features.split(",") if item}


@functools.lru_cache(maxsize=1)
def host_cpu() -> HostCPU:
    """The host CPU: from this boot's record if there is one for this process, else from LLVM
    (then recorded).

    >>> host_cpu().triple == llvm.get_process_triple()
    True
    """
    root, asker = directory(), _asker()
    if root is None or asker is None:
        return _asked()
    path = root / _FILE
    found = _read(path, asker)
    if found is None:
        found = _asked()
        try:
            publish(root, _FILE, json.dumps({"asker": asker, "cpu": found}).encode())
        except OSError:
            pass                  # a full disk or a read-only cache: asked again next time
    return found


def _asked() -> HostCPU:
    return HostCPU(llvm.get_process_triple(), llvm.get_host_cpu_name(),
                   llvm.get_host_cpu_features().flatten())


def _asker() -> list[str] | None:
    """What a record must have been written by to hold for this process: the boot, llvmlite,
    LLVM and the Python executable (a 32-bit Python has another triple); None without a boot
    id."""
    try:
        fd = os.open(_BOOT_ID, os.O_RDONLY)     # not open(): a text file costs ~80 us first
        try:
            boot = os.read(fd, 64).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
    except OSError:
        return None
    return [boot, llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)),
            sys.executable] if boot else None


def _read(path, asker: list[str]) -> HostCPU | None:
    """The record at `path` if it is a regular file written for `asker`, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_BYTES:
            return None
        record = json.loads(os.read(fd, info.st_size))
        cpu = HostCPU(*record["cpu"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        os.close(fd)
    if record.get("asker") != asker or not all(isinstance(field, str) for field in cpu):
        return None
    return cpu
