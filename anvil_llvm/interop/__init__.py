"""Calling generated functions from other tools: numba (`fn.numba`, interop/numba.py),
scipy.optimize (interop/scipy.py) and IPOPT through cyipopt (interop/ipopt.py).

The submodules import their tool (numba, SciPy, cyipopt) on first use only.
"""
from .ipopt import IpoptCallbacks, ipopt_problem
from .scipy import least_squares_kwargs, minimize_kwargs

__all__ = ["IpoptCallbacks", "ipopt_problem", "least_squares_kwargs", "minimize_kwargs"]
