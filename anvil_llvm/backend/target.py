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
import os
from dataclasses import dataclass

from . import objectcode, vecmath
from .hostcpu import host_cpu

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
    gemm: str | None               # how large contractions and factorisations run: "scipy"
                                   # (SciPy's BLAS and LAPACK, bound by address in this
                                   # process) or None (loop nests)

    @classmethod
    def jit(cls) -> Target:
        """The host, for code loaded into this process."""
        return _host("large", "static", SHARED_CONSTANTS, "scipy")

    @classmethod
    def object(cls) -> Target:
        """The host, for objects linked into programs and shared libraries."""
        return _host("small", "pic", None, None)

    @property
    def vector_isas(self) -> tuple[str, ...]:
        """The libmvec ISAs its loops may call (none without `vector_math`): those its CPU has,
        by its features, or for a portable CPU named without features, by its level.

        >>> import dataclasses
        >>> portable = dataclasses.replace(Target.jit(), cpu="x86-64-v3", features="")
        >>> portable.vector_isas == (("d",) if portable.vector_math else ())
        True
        """
        if not self.vector_math:
            return ()
        if self.features:
            enabled = {f[1:] for f in self.features.split(",") if f.startswith("+")}
        else:
            enabled = set(_X86_LEVELS.get(self.cpu, ()))
        return vecmath.isas_for(enabled)

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
    def machine(self) -> objectcode.Machine:
        """What LLVM's target machine for this target is made from."""
        return objectcode.Machine(self.triple, self.cpu, self.features, self.code_model,
                                  self.reloc)

    @property
    def key(self) -> str:
        """The text identifying this target in cache keys."""
        return "|".join((self.triple, self.cpu, self.features, self.code_model, self.reloc,
                         "libmvec" if self.vector_math else "scalar-math",
                         f"shared-constants={self.shared_constants}", f"gemm={self.gemm}"))


# CPUs code can be built for instead of the host's (ANVIL_LLVM_CPU), with the features a host
# must have to run their code: the x86-64 micro-architecture levels.
_X86_LEVELS = {
    "generic": (), "x86-64": (),
    "x86-64-v2": ("cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3"),
    "x86-64-v3": ("cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3", "avx", "avx2",
                  "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe"),
    "x86-64-v4": ("cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3", "avx", "avx2",
                  "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "avx512f", "avx512bw",
                  "avx512cd", "avx512dq", "avx512vl"),
}


def jit_cpu(triple: str, host_features: dict) -> tuple[str, str] | None:
    """The (CPU, features) JIT code is built for when ANVIL_LLVM_CPU names a portable CPU
    (`generic`, or on x86-64 `x86-64`, `x86-64-v2`, `-v3`, `-v4`: code every such machine runs,
    so that pickled functions load on every worker of a mixed cluster without a build), None
    for the host's own (unset, empty or `host`). A CPU this host cannot run is a ValueError.

    >>> jit_cpu("x86_64-unknown-linux-gnu", {"avx2": True})
    """
    name = os.environ.get("ANVIL_LLVM_CPU", "").strip()
    if name in ("", "host"):
        return None
    x86 = triple.startswith("x86_64")
    known = _X86_LEVELS if x86 else {"generic": ()}
    if name not in known:
        raise ValueError(f"ANVIL_LLVM_CPU: expected host or one of {', '.join(known)} on "
                         f"{triple.split('-')[0]}, got {name!r}")
    missing = [f for f in known[name] if not host_features.get(f)]
    if missing:
        raise ValueError(f"ANVIL_LLVM_CPU: this machine cannot run {name} code (it lacks "
                         f"{', '.join(missing)})")
    return name, ""


@functools.cache
def _host(code_model: str, reloc: str, shared_constants: int | None,
          gemm: str | None) -> Target:
    """The host CPU's target (`hostcpu.host_cpu`), or the portable CPU of ANVIL_LLVM_CPU
    (`jit_cpu`)."""
    host = host_cpu()
    cpu, features = jit_cpu(host.triple, host.feature_map) or (host.name, host.features)
    return Target(host.triple, cpu, features, code_model, reloc, vecmath.available(),
                  shared_constants, gemm)
