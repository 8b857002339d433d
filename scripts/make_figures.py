"""The pictures of docs/sparse-ad.md: sparsity patterns and their colourings, drawn with
anvil_llvm.viz.spy into docs/images/ (or --out DIR).

Usage: python scripts/make_figures.py [--out DIR]
"""
from __future__ import annotations

import argparse
import pathlib

import anvil_llvm as av
from anvil_llvm import viz
from anvil_llvm.ad import hessian_sparsity, sphessian, spjacobian
from anvil_llvm.benchmarks import problem

IMAGES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "images"


def _arrow(x):
    """A Jacobian with a dense first row and a dense first column (f0 reads every x, every f
    reads x0): no column or row colouring does it in fewer than n products, both together in
    three."""
    return av.concatenate([(x * x).sum().reshape(1), x[0] * av.sin(x[1:])])


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def figures() -> dict[str, tuple]:
    """Each picture's file name and the arguments of `viz.spy` drawing it."""
    bratu = spjacobian(problem("bratu2d", 8).function(), partition="column")
    energy = problem("bratu2d_E", 8).function()
    star = sphessian(energy)
    arrow = spjacobian(av.NumericalFunction("arrow", _arrow, (av.Arg(24),)),
                       partition="bidirectional")
    return {
        "bratu2d-jacobian-pattern.png": (bratu.pattern, None,
                                         "bratu2d, m = 8: the Jacobian's pattern"),
        "bratu2d-jacobian-colouring.png": (bratu, None, f"its column colouring: "
                                           f"{bratu.ncolors} JVPs for {bratu.shape[1]} columns"),
        "bratu2d-hessian-star.png": (hessian_sparsity(energy), star.coloring,
                                     f"the energy's Hessian: star colouring, "
                                     f"{star.ncolors} HVPs"),
        "arrow-bidirectional.png": (arrow, None, f"an arrow: "
                                    f"{_count(arrow.coloring.ncolumn_colors, 'JVP')} + "
                                    f"{_count(arrow.coloring.nrow_colors, 'VJP')}"),
    }


def main(out: pathlib.Path) -> list[pathlib.Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [viz.spy(pattern, coloring, path=out / name, title=title, size=4.0)
            for name, (pattern, coloring, title) in figures().items()]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=IMAGES)
    for path in main(parser.parse_args().out):
        print(path)
