"""Target: what machine code is generated for (triple, CPU and features) and how it is placed in
memory (code model, relocation model).

Code JIT-loaded into this process uses the large code model without PIC: every reference to code,
constants or external symbols is a 64-bit absolute address, so the loader may map an object's
sections, and the symbols they use, anywhere in the address space. Under the small code model a
process that has mapped a few GiB between two loads (large NumPy arrays, another JIT) gets
sections more than 2 GiB apart and LLVM's loader aborts the process on a 32-bit relocation
(docs/backend.md, "Code model"). Objects meant to be linked into programs (export) use the usual
small code model with PIC.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite.binding as llvm

from . import vecmath


SHARED_CONSTANTS = 1 << 16     # JIT code references constant arrays of 64 KiB and more


@dataclass(frozen=True)
class Target:
    """A code generation target.

    >>> Target.jit().code_model
    'large'
    """

    triple: str
    cpu: str
    features: str
    code_model: str          # "large" (JIT) or "small" (linked objects)
    reloc: str               # "static" (JIT) or "pic" (linked objects)
    vector_math: bool        # loops may call glibc's libmvec (docs/backend.md, "Vector math")
    shared_constants: int | None   # constant arrays from this many bytes on are referenced by
                                   # a process-wide symbol, not embedded (None: all embedded)
    gemm: str | None               # how large contractions run: "scipy" (SciPy's BLAS, bound
                                   # by address in this process) or None (loop nests)

    @classmethod
    def jit(cls) -> "Target":
        """The host, for code loaded into this process."""
        return _host("large", "static", SHARED_CONSTANTS, "scipy")

    @classmethod
    def object(cls) -> "Target":
        """The host, for objects linked into programs and shared libraries."""
        return _host("small", "pic", None, None)

    @property
    def table_features(self) -> str | None:
        """The features of kernels that read or write through index tables (gathers,
        placements): the target's, told to prefer scalar accesses to vector gathers and
        scatters on x86, which are slower there (rosen's sparse Hessian at 1e6: 5.6 -> 4.0 ms);
        None elsewhere. (docs/backend.md, "Gathers and scatters")

        >>> features = Target.jit().table_features
        >>> features is None or features.endswith("+prefer-no-gather,+prefer-no-scatter")
        True
        """
        if not self.triple.startswith(("x86_64", "i686", "i386")):
            return None
        return ",".join(filter(None, (self.features, "+prefer-no-gather",
                                      "+prefer-no-scatter")))

    @property
    def key(self) -> str:
        """The text identifying this target in cache keys."""
        return "|".join((self.triple, self.cpu, self.features, self.code_model, self.reloc,
                         "libmvec" if self.vector_math else "scalar-math",
                         f"shared-constants={self.shared_constants}", f"gemm={self.gemm}"))


@functools.lru_cache(maxsize=None)
def _host(code_model: str, reloc: str, shared_constants: int | None,
          gemm: str | None) -> Target:
    """The host CPU's target (asking LLVM for the CPU costs about 0.3 ms, so once)."""
    return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(),
                  llvm.get_host_cpu_features().flatten(), code_model, reloc, vecmath.available(),
                  shared_constants, gemm)
