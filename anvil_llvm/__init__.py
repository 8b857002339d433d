"""anvil_llvm: trace numerical Python functions, differentiate them, compile them with LLVM."""
from ._version import __version__ as __version__
from .ad import vmap
from .backend import cache
from .backend.jit import stats
from .control import fori_loop, map, scan
from .aot import export
from .function import Arg, NumericalFunction, SparseNumericalFunction, numerical_function
from .ir.dtypes import bool_, float32, float64, int64
from .progress import verbose
from .tensor import (Tensor, abs, acos, arccos, arcsin, arctan, arctan2, asin, atan, atan2,
                     concatenate, cos, cosh, exp, expm1, log, log1p, matmul, maximum, minimum, mod,
                     pad, remainder, sin, sinh, sqrt, stack, tan, tanh, where)


__all__ = [
    "Arg", "NumericalFunction", "SparseNumericalFunction", "Tensor", "abs", "acos", "arccos", "arcsin", "arctan", "arctan2",
    "asin", "atan", "atan2", "bool_", "cache", "concatenate", "cos", "cosh", "exp", "expm1", "export",
    "float32", "float64", "fori_loop", "int64", "log", "log1p", "map", "matmul", "maximum", "minimum", "mod",
    "numerical_function", "pad", "remainder", "scan", "sin", "sinh", "sqrt", "stack", "stats", "tan", "tanh", "verbose", "vmap", "where",
]
