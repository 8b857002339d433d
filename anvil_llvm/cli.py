"""The command line, `python -m anvil_llvm` or `anvil-llvm`: one subcommand per concern."""
from __future__ import annotations

import argparse

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
    args = parser.parse_args(argv)
    return args.run(args)
