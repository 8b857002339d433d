"""Ahead-of-time export: object files, static and shared libraries, C and C++ headers and
CasADi's external-function API, from the same lowered modules the JIT compiles
(docs/export.md)."""
from .library import Library, export

__all__ = ["Library", "export"]
