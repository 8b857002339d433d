"""NumPy's functions that cannot trace, each with what to write instead: a shape that depends on
the values, an index chosen by value, or writing into an array. `anvil_llvm.numpy` raises
NotImplementedError with these hints when one is called, from NumPy's dispatch or by name."""
from __future__ import annotations

_FILL = ("writing into an array is not traceable: build the values and join them with stack, "
         "concatenate or where instead of filling")
_BY_VALUE = "an index chosen by value is not traceable"
_SIZE = "the result's shape would depend on the values"

HINTS = {
    "empty": f"{_FILL} (np.empty then a[i] = ...)",
    "empty_like": f"{_FILL} (np.empty_like then a[i] = ...)",
    "put": _FILL, "place": _FILL, "copyto": _FILL, "fill_diagonal": _FILL,
    "argmax": f"{_BY_VALUE}; use max for the value, or where(x == max(x), ...) as a mask",
    "argmin": f"{_BY_VALUE}; use min for the value, or where(x == min(x), ...) as a mask",
    "argsort": f"{_BY_VALUE}; sort on the NumPy side, outside the traced function",
    "sort": "sorting chooses positions by value; use max, min or where for the few cases "
            "needed, or sort outside the traced function",
    "median": "a median sorts; use mean, or sort outside the traced function",
    "percentile": "a percentile sorts; use max, min or mean",
    "quantile": "a quantile sorts; use max, min or mean",
    "searchsorted": f"{_BY_VALUE}; with constant breakpoints, sum of where(x > b, ...) terms",
    "interp": f"{_BY_VALUE}; write the piecewise-linear function with where or maximum",
    "nonzero": f"{_SIZE}; use where(condition, x, 0)",
    "argwhere": f"{_SIZE}; use where(condition, x, 0)",
    "flatnonzero": f"{_SIZE}; use where(condition, x, 0)",
    "unique": f"{_SIZE}; compute it outside the traced function",
    "extract": f"{_SIZE}; use where(condition, x, 0)",
    "compress": f"{_SIZE}; use where(condition, x, 0)",
    "allclose": "a Python bool cannot come from traced values; compare outside the traced "
                "function, or use all(abs(a - b) <= atol + rtol * abs(b))",
    "array_equal": "a Python bool cannot come from traced values; use all(a == b)",
}

_SINGULAR = "singular values are not supported yet"
LINALG_HINTS = {
    "svd": f"{_SINGULAR}; eigh(a.T @ a) gives V and the squared singular values",
    "svdvals": f"{_SINGULAR}; sqrt(eigvalsh(a.T @ a)) gives them",
    "matrix_rank": f"{_SINGULAR}; lstsq(a, b).rank counts them from the Gram matrix",
    "cond": f"{_SINGULAR}; sqrt of the ratio of eigvalsh(a.T @ a)'s extremes gives the 2-norm "
            "condition number",
    "eig": "eigenvalues of matrices that are not symmetric are not supported; use eigh for "
           "symmetric ones",
    "eigvals": "eigenvalues of matrices that are not symmetric are not supported; use eigvalsh "
               "for symmetric ones",
}


def refusal(name: str, hints: dict = HINTS, prefix: str = "np."):
    """A function standing for NumPy's `name` that raises NotImplementedError with its hint.

    >>> refusal("argmax")()
    Traceback (most recent call last):
    ...
    NotImplementedError: np.argmax is not supported on traced Tensors: an index chosen by value is not traceable; use max for the value, or where(x == max(x), ...) as a mask
    """
    def refused(*args, **kwargs):
        raise NotImplementedError(f"{prefix}{name} is not supported on traced Tensors: "
                                  f"{hints[name]}")
    refused.__name__ = refused.__qualname__ = name
    return refused
