"""Helpers of the export tests: compiling C and C++ programs against an exported library,
generating a driver program that calls every function on inputs read from files, running it and
reading what it wrote."""
from __future__ import annotations

import math
import pathlib
import shutil
import struct
import subprocess

import numpy as np
import pytest

from anvil_llvm.aot.exported import c_type

CC = shutil.which("gcc") or shutil.which("cc")
CXX = shutil.which("g++") or shutil.which("c++")
EIGEN = next((p for p in (pathlib.Path("/usr/include/eigen3"),
                          pathlib.Path("/usr/local/include/eigen3")) if (p / "Eigen").is_dir()),
             None)
WARNINGS = ["-Wall", "-Wextra", "-Werror"]

needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (gcc or cc) on the PATH")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++) on the PATH")
needs_eigen = pytest.mark.skipif(EIGEN is None, reason="Eigen headers missing (apt-get install "
                                 "libeigen3-dev; .ci/run installs them)")


def build(lib, source: pathlib.Path, program: pathlib.Path, *, cxx: bool = False,
          std: str | None = None, extra: list[str] = ()) -> pathlib.Path:
    """Compile `source` and link it with the static library of `lib` (and libm)."""
    compiler = CXX if cxx else CC
    std = std or ("c++17" if cxx else "c11")
    command = [compiler, f"-std={std}", "-O2", *WARNINGS, "-I", str(lib.directory),
               *(["-I", str(EIGEN)] if cxx and EIGEN else []), str(source), "-o", str(program),
               "-L", str(lib.directory), f"-l{lib.name}", "-lm", *extra]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr}"
    return program


def run(program: pathlib.Path, *args) -> str:
    result = subprocess.run([str(program), *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{program.name} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


def driver_source(lib, functions=None) -> str:
    """A C11 program calling each exported function once: it reads input i of function f from
    `<dir>/<f>.in<i>`, calls `<lib>_<f>` with a 64-byte aligned workspace and writes output j to
    `<dir>/<f>.out<j>`; sparse results also write their header arrays to `<f>.colptr` and
    `<f>.rowind`."""
    lines = ["#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>",
             f'#include "{lib.name}.h"', "",
             "static void *load(const char *dir, const char *name, size_t bytes) {",
             "  char path[4096]; snprintf(path, sizeof path, \"%s/%s\", dir, name);",
             "  FILE *f = fopen(path, \"rb\"); if (!f) { perror(path); exit(2); }",
             "  void *p = malloc(bytes ? bytes : 1);",
             "  if (fread(p, 1, bytes, f) != bytes) { fprintf(stderr, \"short %s\\n\", path);",
             "    exit(3); }",
             "  fclose(f); return p; }",
             "static void save(const char *dir, const char *name, const void *p, size_t bytes) {",
             "  char path[4096]; snprintf(path, sizeof path, \"%s/%s\", dir, name);",
             "  FILE *f = fopen(path, \"wb\"); if (!f) { perror(path); exit(4); }",
             "  fwrite(p, 1, bytes, f); fclose(f); }",
             "static void *workspace(size_t bytes) {",
             "  return bytes ? aligned_alloc(64, (bytes + 63) / 64 * 64) : NULL; }",
             "", "int main(int argc, char **argv) {",
             "  const char *dir = argc > 1 ? argv[1] : \".\";"]
    for e in lib.functions:
        if functions is not None and e.name not in functions:
            continue
        p = e.macro
        lines.append(f"  {{  /* {e.name} */")
        args = []
        for i, spec in enumerate(e.inputs):
            t = c_type(spec)
            lines.append(f"    {t} *in{i} = load(dir, \"{e.name}.in{i}\", "
                         f"{p}_IN{i}_SIZE * sizeof({t}));")
            args.append(f"in{i}")
        for j, spec in enumerate(e.outputs):
            t = c_type(spec)
            lines.append(f"    {t} *out{j} = malloc({p}_OUT{j}_SIZE * sizeof({t}));")
            args.append(f"out{j}")
        lines.append(f"    void *work = workspace({p}_WORK_BYTES);")
        lines.append(f"    if ({e.symbol}({', '.join(args + ['work'])}) != 0) return 1;")
        for j, spec in enumerate(e.outputs):
            lines.append(f"    save(dir, \"{e.name}.out{j}\", out{j}, "
                         f"{p}_OUT{j}_SIZE * sizeof({c_type(spec)}));")
        if e.sparsity is not None:
            lines.append(f"    save(dir, \"{e.name}.colptr\", {e.symbol}_colptr, "
                         f"({p}_COLS + 1) * sizeof(int));")
            lines.append(f"    save(dir, \"{e.name}.rowind\", {e.symbol}_rowind, "
                         f"{p}_NNZ * sizeof(int));")
        lines.append("    free(work);")
        for name in args:
            lines.append(f"    free({name});")
        lines.append("  }")
    lines += ["  return 0;", "}", ""]
    return "\n".join(lines)


def write_inputs(directory: pathlib.Path, name: str, inputs) -> None:
    for i, x in enumerate(inputs):
        np.ascontiguousarray(x).tofile(directory / f"{name}.in{i}")


def read_outputs(directory: pathlib.Path, e) -> list[np.ndarray]:
    return [np.fromfile(directory / f"{e.name}.out{j}", dtype=spec.dtype).reshape(spec.shape)
            for j, spec in enumerate(e.outputs)]


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# ---- object file formats ------------------------------------------------------------------------
def elf_info(data: bytes) -> dict:
    """Class, byte order, type and machine of an ELF file."""
    assert data[:4] == b"\x7fELF", data[:4]
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    return {"class": data[4], "data": data[5], "type": e_type, "machine": e_machine}


def macho_symbols(data: bytes) -> tuple[dict, list[str]]:
    """Header fields and the external defined symbols of a 64-bit little-endian Mach-O file."""
    magic, cputype, cpusub, filetype, ncmds = struct.unpack_from("<IiiII", data, 0)
    assert magic == 0xFEEDFACF, hex(magic)
    offset, symbols = 32, []
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", data, offset)
        if cmd == 0x2:                       # LC_SYMTAB
            symoff, nsyms, stroff, _ = struct.unpack_from("<IIII", data, offset + 8)
            for k in range(nsyms):
                strx, ntype, nsect, _, _ = struct.unpack_from("<IBBHQ", data, symoff + 16 * k)
                if ntype & 0x01 and ntype & 0x0E == 0x0E:     # N_EXT, N_SECT: defined global
                    end = data.index(b"\0", stroff + strx)
                    symbols.append(data[stroff + strx:end].decode())
        offset += cmdsize
    return {"cputype": cputype, "filetype": filetype}, symbols


def coff_symbols(data: bytes) -> tuple[dict, list[str]]:
    """Header fields and the external defined symbols of a COFF object."""
    machine, nsections, _, symptr, nsyms = struct.unpack_from("<HHIII", data, 0)
    strings = symptr + 18 * nsyms
    symbols, k = [], 0
    while k < nsyms:
        raw = data[symptr + 18 * k: symptr + 18 * k + 18]
        _, section, _, storage, naux = struct.unpack_from("<IhHBB", raw, 8)
        if raw[:4] == b"\0\0\0\0":
            offset = struct.unpack_from("<I", raw, 4)[0]
            name = data[strings + offset:data.index(b"\0", strings + offset)].decode()
        else:
            name = raw[:8].rstrip(b"\0").decode()
        if storage == 2 and section > 0:          # IMAGE_SYM_CLASS_EXTERNAL, defined
            symbols.append(name)
        k += 1 + naux
    return {"machine": machine, "sections": nsections}, symbols


def elements(shape) -> int:
    return math.prod(shape)
