"""The op set: one module per family, each op one OpDef holding all its rules."""
from .contract import CONTRACT
from .elementwise import (ABS, ACOS, ADD, AND, ASIN, ATAN, ATAN2, BINARY, CAST, CMPEQ, CMPLE,
                          CMPLT, CMPNE, COS, COSH, DIV, EXP, EXPM1, LOG, LOG1P, MAX, MIN, MUL, NEG,
                          NOT, OR, POW, SIN, SINH, SQRT, SUB, TAN, TANH, UNARY_MATH, WHERE, XOR)
from .movement import CONCAT, EXPAND, GATHER, PAD, PERMUTE, RESHAPE, SLICE
from .reduce import REDUCE_MAX, REDUCE_MIN, REDUCE_PROD, REDUCE_SUM, REDUCES, Reduction
from .source import CONST, CONST_ARRAY, INPUT, IOTA, Scalar, const

__all__ = [
    "ABS", "ACOS", "ADD", "AND", "ASIN", "ATAN", "ATAN2", "BINARY", "CAST", "CMPEQ", "CMPLE",
    "CMPLT", "CMPNE", "CONCAT", "CONST", "CONST_ARRAY", "CONTRACT", "COS", "COSH", "DIV", "EXP",
    "EXPAND", "EXPM1", "GATHER", "INPUT", "IOTA", "LOG", "LOG1P", "MAX", "MIN", "MUL", "NEG", "NOT",
    "OR", "PAD", "PERMUTE", "POW", "REDUCES", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD",
    "REDUCE_SUM", "RESHAPE", "Reduction", "SIN", "SINH", "SLICE", "SQRT", "SUB", "Scalar", "TAN",
    "TANH", "UNARY_MATH", "WHERE", "XOR", "const",
]
