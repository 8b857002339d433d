"""The op set: one module per family, each op one OpDef holding all its rules."""
from .contract import CONTRACT
from .control import LOOP, PARAM
from .elementwise import (ABS, ACOS, ADD, AND, ASIN, ATAN, ATAN2, CAST, CEIL, CMPEQ, CMPLE,
                          CMPLT, CMPNE, COS, COSH, DIV, ERF, ERFC, EXP, EXPM1, FLOOR, LOG, LOG1P,
                          MAX, MIN, MOD, MUL, NEG, NOT, OR, POW, RINT, SIN, SINH, SQRT, SUB, TAN,
                          TANH, TRUNC, WHERE, XOR)
from .linalg import CHOLESKY, EIGH, QR, SLOGDET, SOLVE, TRISOLVE
from .movement import (CONCAT, EXPAND, GATHER, PAD, PERMUTE, PICK, PLACE, RESHAPE, SLICE,
                       STACK, VIEWS)
from .reduce import REDUCE_MAX, REDUCE_MIN, REDUCE_PROD, REDUCE_SUM
from .source import CONST, CONST_ARRAY, INPUT, IOTA, Scalar, const
from .substitute import SUBSTITUTE

__all__ = [
    "ABS", "ACOS", "ADD", "AND", "ASIN", "ATAN", "ATAN2", "CAST", "CEIL", "CHOLESKY", "CMPEQ",
    "CMPLE", "CMPLT", "CMPNE", "CONCAT", "CONST", "CONST_ARRAY", "CONTRACT", "COS", "COSH", "DIV",
    "EIGH", "ERF", "ERFC", "EXP", "EXPAND", "EXPM1", "FLOOR", "GATHER", "INPUT", "IOTA", "LOG",
    "LOG1P", "LOOP", "MAX", "MIN", "MOD", "MUL", "NEG", "NOT", "OR", "PAD", "PARAM", "PERMUTE",
    "PICK", "PLACE", "POW", "QR", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_SUM",
    "RESHAPE", "RINT", "SIN", "SINH", "SLICE", "SLOGDET", "SOLVE", "SQRT", "STACK", "SUB",
    "SUBSTITUTE", "Scalar", "TAN", "TANH", "TRISOLVE", "TRUNC", "VIEWS", "WHERE", "XOR", "const",
]
