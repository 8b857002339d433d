"""Shared libraries, linked by the system's C compiler driver (`cc -shared`): the one step of an
export that needs a toolchain, and only with `shared=True`. The static library is wrapped whole
(`--whole-archive`) and linked against libm, so every function is exported and the library
loads by itself (`casadi.external`, `dlopen`)."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

from ..backend.target import Target
from . import files


def check_target(target: Target) -> None:
    """ValueError unless the system's compiler can link for `target` (this machine's triple)."""
    host = Target.object()
    if target.triple != host.triple:
        raise ValueError(f"shared: a shared library can be linked for this machine's triple "
                         f"({host.triple}) only, not for {target.triple!r}; link the object "
                         "file with that target's toolchain")


def compiler(target: Target) -> str:
    """The C compiler driver to link with: $CC, else cc, gcc or clang on the PATH; else
    RuntimeError naming what is missing."""
    check_target(target)
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for name in candidates:
        found = shutil.which(name.split()[0]) if name else None
        if found:
            return name
    raise RuntimeError(f"shared=True needs a C compiler driver to link the shared library, and "
                       f"none was found ({' nor '.join(candidates)} on the PATH; set CC or "
                       "install one, e.g. apt-get install gcc); the static library and headers "
                       "were written")


def link_shared(archive: pathlib.Path, output: pathlib.Path, target: Target) -> pathlib.Path:
    """Link `archive` whole into the shared library `output` (written atomically)."""
    cc = compiler(target)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".link.") as tmp:
        built = pathlib.Path(tmp) / output.name
        command = [*cc.split(), "-shared", "-o", str(built), "-Wl,--whole-archive", str(archive),
                   "-Wl,--no-whole-archive", "-lm"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except OSError as error:
            raise RuntimeError(f"shared=True: running {cc!r} failed: {error}") from None
        if result.returncode != 0:
            raise RuntimeError(f"shared=True: linking {output.name} failed "
                               f"({' '.join(command)}):\n{result.stderr.strip()}")
        return files.write_atomic(output, built.read_bytes(), 0o755)
