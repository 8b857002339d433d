"""Newton's method on the chained Rosenbrock function, with the gradient and Hessian compiled by
anvil_llvm, beside SciPy's Newton-CG.

f(x) = sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2, started from (-1.2, 1, -1.2, 1, ...). The
global minimum is x = (1, ..., 1) with f = 0. From this start, a line-search Newton method with a
modified Cholesky factorisation and SciPy's trust-exact both stop at the local minimum near
x[0] = -1 (f = 3.99). The method here uses a trust region instead: each step minimises the
quadratic model inside a radius by conjugate gradients, stopping at negative curvature or at the
boundary (Steihaug), and the radius follows how well the model predicted the decrease.
"""
import time
import timeit

import numpy as np
from scipy.optimize import minimize, rosen, rosen_der, rosen_hess

from anvil_llvm.ad import gradient, hessian
from anvil_llvm.benchmarks import problem


def to_boundary(p, d, radius):
    """p + t d for the t >= 0 with |p + t d| = radius."""
    a, b, c = d @ d, p @ d, p @ p - radius ** 2
    return p + (-b + np.sqrt(b * b - a * c)) / a * d


def steihaug(g, H, radius):
    """An approximate minimiser of g.p + p.H.p / 2 over |p| <= radius: conjugate gradients from
    p = 0 (Steihaug 1983; Nocedal and Wright, Numerical Optimization, Algorithm 7.2)."""
    p, r = np.zeros_like(g), g.copy()
    d = -r
    tol = min(0.5, np.sqrt(np.linalg.norm(g))) * np.linalg.norm(g)
    for _ in range(g.size):
        Hd = H @ d
        curvature = d @ Hd
        if curvature <= 0:
            return to_boundary(p, d, radius)
        alpha = (r @ r) / curvature
        if np.linalg.norm(p + alpha * d) >= radius:
            return to_boundary(p, d, radius)
        p = p + alpha * d
        r_next = r + alpha * Hd
        if np.linalg.norm(r_next) < tol:
            break
        d = -r_next + (r_next @ r_next) / (r @ r) * d
        r = r_next
    return p


def newton_trust_region(f, g, H, x, gtol=1e-10, radius=1.0, max_iterations=5000):
    """Minimise f from x; returns the point and the number of iterations."""
    grad, hess = np.empty_like(x), np.empty((x.size, x.size))
    fx = float(f(x))
    for iteration in range(max_iterations):
        g(x, out=grad)                     # results into preallocated arrays (out= only)
        if np.linalg.norm(grad) < gtol:
            break
        H(x, out=hess)
        step = steihaug(grad, hess, radius)
        predicted = -(grad @ step + 0.5 * step @ hess @ step)
        f_next = float(f(x + step))
        ratio = (fx - f_next) / predicted
        if ratio < 0.25:
            radius *= 0.25
        elif ratio > 0.75 and np.linalg.norm(step) > 0.99 * radius:
            radius *= 2.0
        if ratio > 0.1:
            x, fx = x + step, f_next
    return x, iteration


def per_call(fn, x) -> float:
    """Seconds per call of fn(x): the best of 5 timings of about 5 ms each."""
    timer = timeit.Timer(lambda: fn(x))
    number = max(1, int(5e-3 / timer.timeit(1)))
    return min(timer.repeat(5, number)) / number


n = 100
p = problem("rosen", n)
f = p.function()
start = time.perf_counter()
g, H = gradient(f).compile(), hessian(f).compile()
f.compile()
print(f"compiled f, its gradient and its Hessian in {(time.perf_counter() - start) * 1e3:.0f} ms")

start = time.perf_counter()
x, iterations = newton_trust_region(f, g, H, p.x0.copy())
ours = time.perf_counter() - start
error = np.abs(x - 1.0).max()
print(f"converged in {iterations} iterations to x = (1, ..., 1): max |x - 1| = {error:.1e}, "
      f"f = {float(f(x)):.1e}, |grad| = {np.linalg.norm(g(x)):.1e}")

print(f"\nchained Rosenbrock, n = {n}, from (-1.2, 1, -1.2, 1, ...)")
print(f"{'method':<52}{'iterations':>11}{'max |x - 1|':>13}{'time':>9}")
print(f"{'Newton, trust region (above), anvil_llvm derivatives':<52}{iterations:>11}"
      f"{error:>13.1e}{ours * 1e3:>7.0f} ms")
for label, fun, jac, hess in [
        ("SciPy Newton-CG, anvil_llvm gradient and Hessian", f, g, H),
        ("SciPy Newton-CG, SciPy rosen_der and rosen_hess", rosen, rosen_der, rosen_hess)]:
    start = time.perf_counter()
    result = minimize(fun, p.x0, method="Newton-CG", jac=jac, hess=hess,
                      options={"xtol": 1e-12, "maxiter": 5000})
    seconds = time.perf_counter() - start
    print(f"{label:<52}{result.nit:>11}{np.abs(result.x - 1.0).max():>13.1e}"
          f"{seconds * 1e3:>7.0f} ms")

print(f"\n{'time per evaluation':<35}{'n = 100':>12}{'n = 1000':>12}")
rows = {"gradient, anvil_llvm": [], "gradient, SciPy rosen_der": [],
        "Hessian (dense), anvil_llvm": [], "Hessian (dense), SciPy rosen_hess": []}
for size in (100, 1000):
    q = problem("rosen", size)
    fq = q.function()
    rows["gradient, anvil_llvm"].append(per_call(g if size == n else gradient(fq), q.x0))
    rows["gradient, SciPy rosen_der"].append(per_call(rosen_der, q.x0))
    rows["Hessian (dense), anvil_llvm"].append(per_call(H if size == n else hessian(fq), q.x0))
    rows["Hessian (dense), SciPy rosen_hess"].append(per_call(rosen_hess, q.x0))
for label, times in rows.items():
    print(f"{label:<35}" + "".join(f"{t * 1e6:>9.1f} us" for t in times))
