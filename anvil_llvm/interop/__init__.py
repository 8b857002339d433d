"""Calling generated functions from other tools: numba (`fn.numba`, interop/numba.py).

The submodules import their tool (numba, SciPy, cyipopt) on first use only.
"""
