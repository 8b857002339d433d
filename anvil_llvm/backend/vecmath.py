"""Vectorised math through glibc's libmvec: the VFABI call-site attribute that lets LLVM's loop
vectoriser call `_ZGVeN8v_exp` and others, 4-14x faster (docs/backend.md, 'Vector math (libmvec)').

Where libmvec is missing (non-glibc, non-x86-64) no attribute is emitted and calls stay scalar.
"""
from __future__ import annotations

import functools
import os
import platform

import llvmlite.binding as llvm

# Scalar function (libm name or LLVM intrinsic) -> (libmvec base name, number of arguments).
_SCALAR = {
    "llvm.exp.f64": ("exp", 1), "llvm.log.f64": ("log", 1), "llvm.sin.f64": ("sin", 1),
    "llvm.cos.f64": ("cos", 1), "llvm.pow.f64": ("pow", 2), "tan": ("tan", 1),
    "tanh": ("tanh", 1), "sinh": ("sinh", 1), "cosh": ("cosh", 1), "asin": ("asin", 1),
    "acos": ("acos", 1), "atan": ("atan", 1), "log1p": ("log1p", 1), "expm1": ("expm1", 1),
    "atan2": ("atan2", 2), "erf": ("erf", 1), "erfc": ("erfc", 1),
}
# (ISA letter, lanes, the CPU feature it needs): AVX-512 8 lanes, AVX2 4 lanes. A variant must
# be declared only for code whose CPU has its feature: LLVM picks a variant by its lanes alone,
# and for a CPU without the feature passes the vector in other registers (wrong results).
_ISAS = (("e", 8, "avx512f"), ("d", 4, "avx2"))
ISAS = tuple(isa for isa, _, _ in _ISAS)


def isas_for(features: set[str]) -> tuple[str, ...]:
    """The libmvec ISAs code for a CPU with `features` may call.

    >>> isas_for({"avx2", "fma"})
    ('d',)
    """
    return tuple(isa for isa, _, needs in _ISAS if needs in features)


_GLIBC_WITH_LIBMVEC = (2, 22)


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether this process can call glibc's libmvec: glibc 2.22 or later on x86-64, as the C
    library tells (cheap: what code is built for is part of every cache key and of a pickle's
    host check, which must not load a library; `load` loads it where code calls it)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        name, _, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").partition(" ")
        release = tuple(int(part) for part in version.split(".")[:2])
    except (ValueError, OSError):
        return False
    return name == "glibc" and release >= _GLIBC_WITH_LIBMVEC


@functools.lru_cache(maxsize=1)
def load() -> bool:
    """Load libmvec into the process (once) so that JIT code resolves its functions: whether
    that worked. Lowering asks before it declares vector variants; loading an object that
    calls them (from a pickle or the disk cache) asks first too (`needed_by`)."""
    if not available():
        return False
    try:
        llvm.load_library_permanently("libmvec.so.1")
    except RuntimeError:
        return False
    return bool(llvm.address_of_symbol("_ZGVeN8v_exp") or llvm.address_of_symbol("_ZGVdN4v_exp"))


def needed_by(externals: list[str]) -> bool:
    """Whether an object with these external symbols calls libmvec (names `_ZGV...`)."""
    return any(name.startswith("_ZGV") for name in externals)


_FOUND: dict[tuple[str, tuple[str, ...]], list[tuple[str, str]]] = {}


def variants(scalar: str, isas: tuple[str, ...] = ISAS) -> list[tuple[str, str]]:
    """[(VFABI mapping, vector function name)] for a scalar double function in the ISAs `isas`
    (ISA letters, `isas_for`), if libmvec has it (looked up once libmvec is loaded: lowering
    asks for every call it emits)."""
    cached = _FOUND.get((scalar, isas))
    if cached is not None:
        return cached
    found = _SCALAR.get(scalar)
    if found is None or not load():
        return []
    base, arity = found
    result = []
    for isa, lanes, _ in _ISAS:
        name = f"_ZGV{isa}N{lanes}{'v' * arity}_{base}"
        if isa in isas and llvm.address_of_symbol(name):
            result.append((f"_ZGV_LLVM_N{lanes}{'v' * arity}_{scalar}({name})", name))
    _FOUND[scalar, isas] = result
    return result


def vector_type(name: str) -> tuple[str, int]:
    """The LLVM vector type and arity of a libmvec function name such as `_ZGVeN8vv_pow`."""
    lanes = int(name[6:name.index("v", 6)])
    arity = name.index("_", 6) - name.index("v", 6)
    return f"<{lanes} x double>", arity
