"""`export()`: functions to an object file, a static library, a C header and a C++ header (and a
shared library with `shared=True`), for linking into programs with no Python, llvmlite or numba.
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..backend.target import Target
from . import archive, data, files, headers, linker, names, objects, targets
from .exported import Exported, describe

log = logging.getLogger("anvil_llvm")


@dataclass(frozen=True)
class Library:
    """What `export()` wrote: the paths, the functions and the target.

    `object`, `archive`, `header`, `cpp_header` and (with shared=True) `shared` are paths;
    `functions` describes each exported function; `seconds` the time of each stage.
    """

    name: str
    directory: pathlib.Path
    object: pathlib.Path
    archive: pathlib.Path
    header: pathlib.Path
    cpp_header: pathlib.Path
    shared: pathlib.Path | None
    functions: tuple[Exported, ...]
    target: Target
    defined: tuple[str, ...]
    undefined: tuple[str, ...]
    seconds: dict = field(default_factory=dict)

    @property
    def symbols(self) -> dict[str, str]:
        """Function name -> exported C symbol."""
        return {e.name: e.symbol for e in self.functions}


def _functions(functions) -> list:
    from ..function import NumericalFunction
    items = list(functions) if isinstance(functions, (list, tuple)) else [functions]
    if not items:
        raise ValueError("functions: expected at least one NumericalFunction, got none")
    for k, fn in enumerate(items):
        if not isinstance(fn, NumericalFunction):
            hint = (" (an operator applied to a plain Python callable gives a function traced "
                    "per call; apply it to a NumericalFunction to export it)"
                    if callable(fn) else "")
            raise TypeError(f"functions[{k}]: expected a NumericalFunction, got "
                            f"{type(fn).__name__}{hint}")
    return items


def export(functions, out_dir, name: str, target=None, cpu: str | None = None,
           shared: bool = False, *, casadi: bool = False, casadi_int: str = "long long",
           casadi_derivatives: bool = False, _origins: Sequence[str | None] | None = None) -> Library:
    """Export `functions` (a NumericalFunction or a list of them) as the library `name` into
    `out_dir`: `<name>.o` (one object file holding them all), `lib<name>.a`, `<name>.h` (C) and
    `<name>.hpp` (C++), and with `shared=True` `lib<name>.so` (linked by `cc -shared`). Each
    function is the C symbol `<name>_<function name>` with anvil_llvm's C ABI
    (docs/architecture.md, "The C ABI"); the code needs only libm (`-lm`).

    `target`: None (this machine), an LLVM triple ("aarch64-linux-gnu",
    "x86_64-apple-darwin", "x86_64-pc-windows-msvc", ...) or a `Target`; `cpu`: an LLVM CPU
    name, e.g. "generic" for a portable build (default: this machine's CPU on its triple,
    "generic" elsewhere). On the same target and CPU the exported code computes the same bits
    as the JIT (except contractions large enough for the JIT to call BLAS, which exports
    compute with loops).

    `casadi=True` adds CasADi's external-function API per function (docs/export.md);
    `casadi_int` is "long long" (CasADi's default) or "int" (acados). With
    `casadi_derivatives=True` each function `f` also gets the derivatives CasADi looks up by
    name, `jac_f`, `adj1_f` and `jac_adj1_f` (sparse blocks from anvil_llvm's AD), so that
    CasADi differentiates through the exported code, e.g. inside `nlpsol("ipopt")`.

    >>> import tempfile, numpy as np, anvil_llvm as av
    >>> f = av.NumericalFunction("cost", lambda x: (x * x).sum(), (av.Arg(3),))
    >>> lib = av.export([f, av.ad.gradient(f)], tempfile.mkdtemp(), "demo")
    >>> lib.symbols
    {'cost': 'demo_cost', 'cost_grad': 'demo_cost_grad'}
    >>> sorted(p.name for p in lib.directory.iterdir())
    ['demo.h', 'demo.hpp', 'demo.o', 'libdemo.a']
    """
    started = time.perf_counter()
    items = _functions(functions)
    library = names.identifier(name, "name")
    if not isinstance(shared, bool):
        raise TypeError(f"shared: expected a bool, got {shared!r}")
    if not isinstance(casadi, bool):
        raise TypeError(f"casadi: expected a bool, got {casadi!r}")
    if not isinstance(casadi_derivatives, bool):
        raise TypeError(f"casadi_derivatives: expected a bool, got {casadi_derivatives!r}")
    if casadi_derivatives and not casadi:
        raise ValueError("casadi_derivatives: True needs casadi=True (the derivatives are "
                         "CasADi entry points)")
    if casadi_int not in ("long long", "int"):
        raise ValueError(f"casadi_int: expected 'long long' (CasADi) or 'int' (acados), got "
                         f"{casadi_int!r}")
    origins = (list(_origins) if _origins is not None else
               [getattr(fn, "origin", None) for fn in items])
    for k, fn in enumerate(items):
        names.identifier(fn.name, f"functions[{k}].name")
    names.check_unique([(fn.name, f"functions[{k}]") for k, fn in enumerate(items)],
                       "functions")
    tgt = targets.resolve(target, cpu)
    if shared:
        linker.check_target(tgt)
    directory = files.output_directory(out_dir)

    t0 = time.perf_counter()
    views = {}
    if casadi_derivatives:
        from .casadi_derivatives import derivatives
        for fn, origin in list(zip(items, origins)):
            for d in derivatives(fn):
                items.append(d.function)
                origins.append(origin)
                views[d.function.name] = d.signature
    lowered = [fn.lowered(tgt) for fn in items]
    exported = [describe(fn, library, low, origin)
                for fn, low, origin in zip(items, lowered, origins)]
    exported = [dataclasses.replace(e, kind=f"CasADi derivative {e.name}") if e.name in views
                else e for e in exported]
    _check_collisions(library, exported, casadi)
    layout = str(targets.target_machine(tgt).target_data)
    big_endian = layout.startswith("E")
    units, blobs = [], {}
    for fn, low, e in zip(items, lowered, exported):
        ir, tables = data.tables(fn, low, library, big_endian)
        units.append(objects.Unit(low, e.symbol, ir))
        blobs.update((b.symbol, b) for b in tables + _structure(e, big_endian))
    extra = []
    if casadi:
        from . import casadi as casadi_api
        called = frozenset(name for low in lowered for name in low.externals)
        for e in exported:
            ir, tables = casadi_api.module_ir(e, views.get(e.name), casadi_int, big_endian,
                                              called)
            extra.append(ir)
            blobs.update((b.symbol, b) for b in tables)
    t1 = time.perf_counter()
    code = objects.emit_object(units, tgt, extra, list(blobs.values()))
    t2 = time.perf_counter()

    macho = "-m:o" in layout
    prefix = "_" if macho else ""
    obj_path = files.write_atomic(directory / f"{library}.o", code.data)
    member = archive.Member(f"{library}.o", code.data, tuple(prefix + s for s in code.defined))
    ar_path = files.write_atomic(directory / f"lib{library}.a",
                                 archive.archive([member], "bsd" if macho else "gnu"))
    h_path = files.write_atomic(directory / f"{library}.h",
                                headers.c_header(library, exported, tgt,
                                                 casadi_int if casadi else None))
    hpp_path = files.write_atomic(directory / f"{library}.hpp",
                                  headers.cpp_header(library, exported, tgt))
    t3 = time.perf_counter()
    so_path = None
    if shared:
        so_path = linker.link_shared(ar_path, directory / f"lib{library}.so", tgt)
    t4 = time.perf_counter()
    seconds = {"check": t0 - started, "lower": t1 - t0, "object": t2 - t1, "write": t3 - t2,
               "link": t4 - t3, "total": t4 - started}
    if seconds["total"] > 1.0:
        log.info("export %s: lower %.2fs, object %.2fs, write %.2fs, link %.2fs", library,
                 seconds["lower"], seconds["object"], seconds["write"], seconds["link"])
    return Library(library, directory, obj_path, ar_path, h_path, hpp_path, so_path,
                   tuple(exported), tgt, code.defined, code.undefined, seconds)


def _structure(e: Exported, big_endian: bool) -> list[data.Blob]:
    """A sparse result's CSC arrays as exported data: `<symbol>_colptr`, `<symbol>_rowind`
    (int32; at least one element, as the header declares them)."""
    if e.sparsity is None:
        return []
    colptr, rowind = headers.array_names(e)
    indices = e.sparsity.indices if e.sparsity.nnz else np.zeros(1, np.int32)
    return [data.Blob(colptr, data.array_bytes(e.sparsity.indptr.astype(np.int32), big_endian),
                      True),
            data.Blob(rowind, data.array_bytes(indices.astype(np.int32), big_endian), True)]


def _check_collisions(library: str, exported: list[Exported], casadi: bool) -> None:
    """Every C name the library defines (symbols, header macros and arrays) appears once."""
    symbols = []
    for e in exported:
        symbols.append((e.symbol, f"function {e.name!r}"))
        if e.sparsity is not None:
            symbols += [(n, f"function {e.name!r}") for n in headers.array_names(e)]
        if casadi:
            from .casadi import symbols as casadi_symbols
            symbols += [(n, f"the CasADi API of {e.name!r}") for n in casadi_symbols(e.name)]
    names.check_unique(symbols, "functions")
    macros = [(m, f"function {e.name!r}") for e in exported for m in headers.macro_names(e)]
    macros.append((f"{library.upper()}_H_", "the header"))
    names.check_unique(macros, "functions (header macros, compared in upper case)")


def export_function(fn, out_dir, name: str | None = None, **kwargs) -> Library:
    """`fn.export(out_dir, name=None, **kwargs)`: export one function; the library is named
    after the function unless `name` is given."""
    return export([fn], out_dir, fn.name if name is None else name, **kwargs)
