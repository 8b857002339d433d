"""The command line, `python -m anvil_llvm` or `anvil-llvm`: one subcommand per concern."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .backend import cache


def _cache_info(args: argparse.Namespace) -> int:
    found = cache.info()
    if found.directory is None:
        print("the disk cache is off (ANVIL_LLVM_NO_CACHE) or its directory is unusable")
        return 1
    print(f"directory  {found.directory}\nentries    {found.entries}\n"
          f"bytes      {found.bytes}\nmax_bytes  {found.max_bytes}")
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    print(f"removed {cache.clear()} files")
    return 0


def _load(spec: str) -> list[tuple[object, str]]:
    """The functions named by `module:attribute` (an attribute may be dotted and may hold one
    function or a list, tuple or dict of them), each with where it was defined."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{spec!r} is not MODULE:ATTRIBUTE (e.g. mypkg.models:dyn)")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())          # as `python -m` does: modules of this directory
    try:
        value = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{spec}: cannot import module {module_name!r}: {error}") from None
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ValueError(f"{spec}: {module_name} has no attribute {attribute!r}")
        value = getattr(value, part)
    if isinstance(value, dict):
        return [(v, f"{module_name}:{attribute}[{k!r}]") for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [(v, f"{module_name}:{attribute}[{k}]") for k, v in enumerate(value)]
    return [(value, f"{module_name}:{attribute}")]


_OPTIONS = {"name": "--name", "out_dir": "-o/--output", "target": "--target", "cpu": "--cpu",
            "shared": "--shared", "casadi_int": "--casadi-int",
            "casadi_derivatives": "--casadi-derivatives"}


def _export(args: argparse.Namespace) -> int:
    from .aot import export
    from .function import NumericalFunction
    found = []
    for spec in args.functions:
        found += _load(spec)
    for value, origin in found:
        if not isinstance(value, NumericalFunction):
            raise ValueError(f"{origin} is a {type(value).__name__}, not a NumericalFunction")
    name = args.name
    if name is None:
        if len(found) != 1:
            raise ValueError("--name is needed to export several functions into one library")
        name = found[0][0].name
    lib = export([v for v, _ in found], args.output, name, target=args.target, cpu=args.cpu,
                 shared=args.shared, casadi=args.casadi or args.casadi_derivatives,
                 casadi_int=args.casadi_int, casadi_derivatives=args.casadi_derivatives,
                 _origins=[o for _, o in found])
    paths = [lib.object, lib.archive, lib.header, lib.cpp_header] + (
        [lib.shared] if lib.shared else [])
    print(f"exported {len(lib.functions)} function{'s' * (len(lib.functions) != 1)} for "
          f"{lib.target.triple} (cpu {lib.target.cpu}) in {lib.seconds['total']:.2f} s:")
    for e in lib.functions:
        print(f"  {e.symbol}: {e.signature()}")
    for path in paths:
        print(f"  {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: the process's arguments); the exit status.

    >>> main(["cache", "info"])   # doctest: +ELLIPSIS
    directory  ...
    max_bytes  1073741824
    0
    """
    parser = argparse.ArgumentParser(prog="anvil-llvm", description="anvil_llvm's tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cache_parser = commands.add_parser(
        "cache", help="the on-disk cache of compiled objects",
        description="The on-disk cache of compiled objects (ANVIL_LLVM_CACHE_DIR).")
    actions = cache_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("info", help="print the directory, entries, bytes and cap"
                       ).set_defaults(run=_cache_info)
    actions.add_parser("clear", help="remove every entry").set_defaults(run=_cache_clear)
    exporter = commands.add_parser(
        "export", help="export functions as a static library with C and C++ headers",
        description="Export NumericalFunctions as an object file, a static library "
        "(lib<NAME>.a), a C header (<NAME>.h) and a C++ header (<NAME>.hpp), for linking into "
        "programs without Python (docs/export.md). Each FUNCTION is MODULE:ATTRIBUTE, the "
        "attribute a NumericalFunction or a list, tuple or dict of them.",
        epilog="example: anvil-llvm export mypkg.models:dyn mypkg.models:dyn_jac -o build/ "
        "--name mymodel")
    exporter.add_argument("functions", nargs="+", metavar="FUNCTION",
                          help="MODULE:ATTRIBUTE, e.g. mypkg.models:dyn")
    exporter.add_argument("-o", "--output", required=True, metavar="DIR",
                          help="the output directory (created if missing)")
    exporter.add_argument("--name", help="the library name, a C identifier (default: the "
                          "function's name when there is one)")
    exporter.add_argument("--target", help="an LLVM triple, e.g. aarch64-linux-gnu (default: "
                          "this machine)")
    exporter.add_argument("--cpu", help="an LLVM CPU name, e.g. generic for a portable build "
                          "(default: this machine's CPU)")
    exporter.add_argument("--shared", action="store_true",
                          help="also link lib<NAME>.so with the system's cc")
    exporter.add_argument("--casadi", action="store_true",
                          help="add CasADi's external-function API for each function")
    exporter.add_argument("--casadi-derivatives", action="store_true",
                          help="also export jac_F, adj1_F and jac_adj1_F for each function F, "
                          "so that CasADi differentiates through the exported code (implies "
                          "--casadi)")
    exporter.add_argument("--casadi-int", choices=["long long", "int"], default="long long",
                          help="the integer type of the CasADi API: 'long long' (CasADi) or "
                          "'int' (acados)")
    exporter.set_defaults(run=_export)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, RuntimeError) as error:
        if args.command != "export":
            raise
        message = str(error)
        for argument, option in _OPTIONS.items():       # the export() argument -> its option
            if message.startswith(argument + ": "):
                message = option + message[len(argument):]
        print(f"anvil-llvm export: error: {message}", file=sys.stderr)
        return 1
