"""What an export knows about each function: its names (C symbol, C++ namespace, macro prefix),
its arguments and results (the C ABI of docs/architecture.md), its workspace, its sparsity
structure if it returns a sparse matrix's nonzeros, and a description for the headers."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend.callpath import ArgSpec
from ..backend.lower import Lowered
from . import names

C_TYPES = {"float64": "double", "float32": "float", "int64": "int64_t", "bool": "uint8_t"}


@dataclass(frozen=True, eq=False)
class Sparsity:
    """The CSC structure of a sparse result: shape, column pointers and row indices (0-based,
    int32 arrays)."""

    rows: int
    cols: int
    indptr: np.ndarray
    indices: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    @property
    def upper(self) -> bool:
        """Whether every nonzero is on or above the diagonal (sphessian's upper triangle)."""
        columns = np.repeat(np.arange(self.cols), np.diff(self.indptr))
        return self.nnz > 0 and bool(np.all(self.indices <= columns))


@dataclass(frozen=True)
class Exported:
    """One exported function.

    >>> import anvil_llvm as av
    >>> from anvil_llvm.backend.target import Target
    >>> f = av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(3),))
    >>> e = describe(f, "lib", f.lowered(Target.object()))
    >>> e.symbol, e.prototype()
    ('lib_f', 'int32_t lib_f(const double *x, double *out, void *work)')
    """

    name: str
    symbol: str
    macro: str
    inputs: tuple[ArgSpec, ...]
    outputs: tuple[ArgSpec, ...]
    work_bytes: int
    kind: str                      # the Python class: NumericalFunction, SparseNumericalFunction
    origin: str | None             # where the Python definition is, when known
    sparsity: Sparsity | None

    @property
    def parameters(self) -> list[str]:
        """C parameter names: the argument names where C and C++ allow them and they differ."""
        result: list[str] = []
        taken = {"work"}
        for k, spec in enumerate(self.inputs + self.outputs):
            fallback = f"in{k}" if k < len(self.inputs) else f"out{k - len(self.inputs)}"
            name = names.parameter(spec.name, fallback)
            if name in taken:
                name = fallback
            taken.add(name)
            result.append(name)
        return result

    def prototype(self) -> str:
        """The C declaration of the entry point."""
        params = []
        for k, (spec, pname) in enumerate(zip(self.inputs + self.outputs, self.parameters)):
            const = "const " if k < len(self.inputs) else ""
            params.append(f"{const}{c_type(spec)} *{pname}")
        return f"int32_t {self.symbol}({', '.join(params + ['void *work'])})"

    def signature(self) -> str:
        """The Python signature with shapes and dtypes, e.g. `f(x: float64[3]) -> float64[3]`."""
        ins = ", ".join(f"{s.name}: {_spec_type(s)}" for s in self.inputs)
        outs = ", ".join(f"{s.name}: {_spec_type(s)}" for s in self.outputs)
        return f"{self.name}({ins}) -> ({outs})" if len(self.outputs) > 1 else \
            f"{self.name}({ins}) -> {outs}"


def c_type(spec: ArgSpec) -> str:
    found = C_TYPES.get(np.dtype(spec.dtype).name)
    if found is None:
        raise TypeError(f"argument {spec.name!r}: dtype {spec.dtype} has no C type in exports")
    return found


def size(spec: ArgSpec) -> int:
    """Elements of an argument (1 for a scalar)."""
    return math.prod(spec.shape)


def _spec_type(spec: ArgSpec) -> str:
    name = np.dtype(spec.dtype).name
    return f"{name}[{', '.join(map(str, spec.shape))}]" if spec.shape else name


def describe(fn, library: str, lowered: Lowered, origin: str | None = None) -> Exported:
    """The description of `fn` exported in `library` from its lowered code."""
    sparsity = None
    if hasattr(fn, "indptr") and hasattr(fn, "indices") and hasattr(fn, "shape"):
        rows, cols = (int(d) for d in fn.shape)
        sparsity = Sparsity(rows, cols, np.asarray(fn.indptr, np.int32),
                            np.asarray(fn.indices, np.int32))
    return Exported(fn.name, f"{library}_{fn.name}", names.macro_prefix(library, fn.name),
                    lowered.inputs, lowered.outputs, lowered.work_bytes, type(fn).__name__,
                    origin, sparsity)
