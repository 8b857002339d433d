"""Graph colouring of sparse Jacobian and Hessian patterns, with decompression tables.

Works only on scipy.sparse patterns (nothing from the tracer or the JIT). See docs/coloring.md.

>>> import scipy.sparse as sp
>>> from anvil_llvm.ad.coloring import jacobian_coloring, check_coloring
>>> J = sp.eye_array(4) + sp.eye_array(4, k=1) + sp.eye_array(4, k=-1)
>>> r = jacobian_coloring(J != 0)
>>> r.ncolors
3
>>> check_coloring(J != 0, r)
>>> (r.decompress(J @ r.seed_matrix()) != J).nnz
0
"""

import importlib
from typing import TYPE_CHECKING

from .options import HESSIAN_ORDERS, JACOBIAN_ORDERS, METHODS, PARTITIONS

if TYPE_CHECKING:       # what `__getattr__` loads (named here for type checkers and the docs)
    from .api import hessian_coloring, jacobian_coloring
    from .check import check_coloring
    from .result import Coloring, DecompressionTables

# The colouring kernels are numba functions: importing them imports numba (about 0.1 s), so
# they are loaded when first used (a sparse derivative computed entry by entry never does).
_LAZY = {"hessian_coloring": "api", "jacobian_coloring": "api", "check_coloring": "check",
         "Coloring": "result", "DecompressionTables": "result"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HESSIAN_ORDERS",
    "JACOBIAN_ORDERS",
    "METHODS",
    "PARTITIONS",
    "Coloring",
    "DecompressionTables",
    "check_coloring",
    "hessian_coloring",
    "jacobian_coloring",
]
