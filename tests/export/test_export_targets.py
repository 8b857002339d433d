"""Objects for other machines: valid headers for their format and machine, the exported symbols
as that format spells them, and archives whose index a linker for that machine reads."""
import struct
import subprocess

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.benchmarks.problems import problem

from export_helpers import (coff_symbols, elf_info, macho_symbols, needs_cc, build,
                            driver_source, read_outputs, run, write_inputs)


@pytest.fixture(scope="module")
def functions():
    f = problem("rosen", 100).function()
    return [f, ad.gradient(f), ad.sphessian(f, name="rosen_sphess")]


# the functions and the CSC arrays of the sparse Hessian (exported data)
SYMBOLS = ["cross_rosen", "cross_rosen_grad", "cross_rosen_sphess", "cross_rosen_sphess_colptr",
           "cross_rosen_sphess_rowind"]


def test_aarch64_linux_object(functions, tmp_path):
    lib = av.export(functions, tmp_path, "cross", target="aarch64-linux-gnu")
    data = lib.object.read_bytes()
    info = elf_info(data)
    assert info == {"class": 2, "data": 1, "type": 1, "machine": 183}   # ELF64 LE REL AArch64
    assert lib.target.cpu == "generic" and not lib.target.vector_math
    listing = subprocess.run(["nm", "--defined-only", "-g", str(lib.object)],
                             capture_output=True, text=True, check=True).stdout
    assert sorted(line.split()[-1] for line in listing.splitlines()) == SYMBOLS
    index = subprocess.run(["nm", "-s", str(lib.archive)], capture_output=True, text=True,
                           check=True).stdout
    assert "cross_rosen_grad in cross.o" in index


def test_macos_object(functions, tmp_path):
    lib = av.export(functions, tmp_path, "cross", target="x86_64-apple-darwin")
    header, symbols = macho_symbols(lib.object.read_bytes())
    assert header == {"cputype": 0x01000007, "filetype": 1}         # x86_64, MH_OBJECT
    assert sorted(symbols) == ["_" + s for s in SYMBOLS]              # Mach-O's leading _
    archive = lib.archive.read_bytes()
    assert archive.startswith(b"!<arch>\n#1/")                       # BSD archive
    assert b"__.SYMDEF SORTED" in archive and b"_cross_rosen_grad\0" in archive


def test_windows_object(functions, tmp_path):
    lib = av.export(functions, tmp_path, "cross", target="x86_64-pc-windows-msvc")
    data = lib.object.read_bytes()
    header, symbols = coff_symbols(data)
    assert header["machine"] == 0x8664                               # AMD64
    # Besides ours, MSVC-style COMDAT constants such as __real@3ff0000000000000.
    assert sorted(s for s in symbols if not s.startswith(("__real@", "__xmm@", "__ymm@",
                                                           "__zmm@"))) == SYMBOLS
    archive = lib.archive.read_bytes()
    assert archive.startswith(b"!<arch>\n/ ")                       # GNU/MS index first
    (count,) = struct.unpack_from(">I", archive, 68)
    assert count == len(SYMBOLS)


@needs_cc
def test_portable_generic_cpu_runs_here(functions, tmp_path):
    """cpu="generic": a build for any x86-64 (2-lane vectors), close to the host build."""
    lib = av.export(functions, tmp_path / "build", "portable", cpu="generic")
    assert lib.target.cpu == "generic" and lib.target.features == ""
    x = problem("rosen", 100).x0
    for f in functions:
        write_inputs(tmp_path, f.name, [x])
    (tmp_path / "driver.c").write_text(driver_source(lib))
    run(build(lib, tmp_path / "driver.c", tmp_path / "driver"), tmp_path)
    for f, e in zip(functions, lib.functions):
        np.testing.assert_allclose(read_outputs(tmp_path, e)[0], f(x), rtol=1e-13, atol=1e-12)
