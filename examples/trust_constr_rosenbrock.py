"""scipy.optimize.minimize(method="trust-constr") on the chained Rosenbrock function at n = 10_000
with the gradient and the sparse Hessian compiled by anvil_llvm (`sphessian`: 3 Hessian-vector
products per Hessian, by the colouring of its tridiagonal pattern).

f(x) = sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 has its global minimum at x = (1, ..., 1).
The start is x = (0.5, ..., 0.5): from the classic (-1.2, 1, -1.2, 1, ...) trust-constr ends
near the local minimum with x[0] close to -1 at n = 100, and is still far from any minimum after
3000 iterations at n = 1000 (examples/newton_rosenbrock.py has a method that gets there).

The same solve is timed with the Hessian-vector product instead of the Hessian (`hvp`), with
SciPy's hand-written `rosen_der` and `rosen_hess_prod`, and with JAX's `grad` and
forward-over-reverse product when JAX is installed. (A BFGS approximation would be a dense
10_000 x 10_000 matrix, and a finite-difference Hessian n gradients per iteration.)
"""
import time

import numpy as np
from scipy.optimize import minimize, rosen, rosen_der, rosen_hess_prod

from anvil_llvm.benchmarks import problem
from anvil_llvm.interop import minimize_kwargs

n = 10_000
x0 = np.full(n, 0.5)
OPTIONS = {"gtol": 1e-10, "xtol": 1e-14, "maxiter": 1000}


def jax_kwargs() -> dict | None:
    """fun, jac and hessp from JAX (float64), or None without JAX."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def f(x):
        a, b = x[:-1], x[1:]
        return jnp.sum(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2)
    value, grad = jax.jit(f), jax.jit(jax.grad(f))
    hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])
    x = jnp.asarray(x0)
    value(x), grad(x), hvp(x, x)            # compile before the solve is timed
    # SciPy probes hessp with an int8 vector: JAX wants the primal's dtype
    return {"fun": lambda x: float(value(x)), "jac": lambda x: np.asarray(grad(x)),
            "hessp": lambda x, p: np.asarray(hvp(x, np.asarray(p, np.float64)))}


def solve(kwargs: dict):
    """minimize(method="trust-constr") from x0; the result and its CPU seconds."""
    start = time.process_time()
    result = minimize(x0=x0, method="trust-constr", options=OPTIONS, **kwargs)
    return result, time.process_time() - start


def main() -> dict:
    f = problem("rosen", n).function()
    start = time.process_time()
    ours = minimize_kwargs(f, hessian="sparse")        # traces and compiles f, gradient, Hessian
    print(f"compiled f, its gradient and its sparse Hessian in "
          f"{(time.process_time() - start) * 1e3:.0f} ms (CPU)")
    runs = {"anvil_llvm gradient and sphessian (hess=)": ours,
            "anvil_llvm gradient and hvp (hessp=)": minimize_kwargs(f, hessian="hessp"),
            "SciPy rosen_der and rosen_hess_prod": {"fun": rosen, "jac": rosen_der,
                                                    "hessp": rosen_hess_prod}}
    jax = jax_kwargs()
    if jax is not None:
        runs["JAX grad and jvp of grad (hessp=)"] = jax
    results = {}
    print(f"\nchained Rosenbrock, n = {n}, from (0.5, ..., 0.5), trust-constr")
    print(f"{'derivatives':<44}{'iterations':>11}{'max |x - 1|':>13}{'CPU time':>11}")
    for label, kwargs in runs.items():
        result, seconds = solve(kwargs)
        results[label] = result
        print(f"{label:<44}{result.nit:>11}{np.abs(result.x - 1).max():>13.1e}"
              f"{seconds * 1e3:>8.0f} ms")
    return results


if __name__ == "__main__":
    main()
