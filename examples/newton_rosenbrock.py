"""Newton's method on the chained Rosenbrock function with compiled gradient and Hessian.

From the public start point (-1.2, 1, -1.2, ...) it reaches the well-known local minimum near
(-1, 1, 1, ..., 1) of the chained function (the global one is at (1, ..., 1))."""
import numpy as np

from anvil_llvm.ad import gradient, hessian
from anvil_llvm.benchmarks import problem

p = problem("rosen", 10)
f = p.function()
g, H = gradient(f), hessian(f)

x = p.x0.copy()
for iteration in range(100):
    hess = H(x)
    shift = max(0.0, 1e-6 - np.linalg.eigvalsh(hess)[0])    # keep the model convex
    step = np.linalg.solve(hess + shift * np.eye(x.size), -g(x))
    t = 1.0
    while f(x + t * step) > f(x) + 1e-4 * t * g(x) @ step and t > 1e-10:
        t *= 0.5
    x = x + t * step
    if np.linalg.norm(g(x)) < 1e-10:
        break
print(f"converged in {iteration + 1} iterations: f = {float(f(x)):.6f}, "
      f"|grad| = {np.linalg.norm(g(x)):.1e}")
print("x =", np.round(x, 4))
