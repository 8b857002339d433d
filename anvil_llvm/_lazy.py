"""Modules imported when first used: SciPy's sparse arrays take a third of `import anvil_llvm`
(~0.1-0.2 s, with what SciPy imports in turn), and a program that builds dense functions only
never needs them. `from .._lazy import scipy_sparse as sp` reads like the import it replaces.
"""
from __future__ import annotations

import importlib
from typing import Any


class _OnFirstUse:
    """Stands for the module `name`, imported when one of its attributes is first read (the
    import system's lock makes that safe from any thread); its attributes are then copied
    here, so later reads cost what a module's do.

    >>> sparse = _OnFirstUse("scipy.sparse")
    >>> sparse.csr_array((2, 2)).nnz
    0
    """

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        module = importlib.import_module(self._name)
        self.__dict__.update(vars(module))
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


scipy_sparse = _OnFirstUse("scipy.sparse")
