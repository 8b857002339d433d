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

from .api import (
    HESSIAN_ORDERS,
    JACOBIAN_ORDERS,
    METHODS,
    PARTITIONS,
    hessian_coloring,
    jacobian_coloring,
)
from .check import check_coloring
from .result import Coloring, DecompressionTables

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
