"""Cart-pole swing-up by direct collocation, solved by IPOPT (through cyipopt) with exact sparse
derivatives from anvil_llvm, and by CasADi's nlpsol("ipopt") on the same problem.

The problem of Kelly, "An Introduction to Trajectory Optimization" (SIAM Review 59(4), 2017,
section 6 and appendix E): a cart of mass 1 carries a pole of mass 0.3 and length 0.5; a force
u, |u| <= 20, moves the cart within |q1| <= 2 so that in T = 2 s it goes from rest at q1 = 0,
pole down (q2 = 0), to rest at q1 = 1 with the pole up (q2 = pi), minimising the integral of
u^2. The trajectory is N = 100 intervals of trapezoidal collocation: the variables are the four
states and the force at the N + 1 grid points, the constraints the 4N collocation defects, the
boundary conditions fixed bounds. The initial guess interpolates the boundary states linearly.

Both solvers get the same variables, constraints, bounds, start and IPOPT options; the model is
written once on an array namespace (NumPy for anvil_llvm, which traces it; CasADi's symbols for
CasADi). IPOPT's Hessian of the Lagrangian comes from one `sphessian` of
obj_factor * f + lagrange . c (anvil_llvm.interop.ipopt).
"""
import time

import numpy as np

import anvil_llvm as av
from anvil_llvm.interop import IpoptCallbacks

N, T = 100, 2.0
h = T / N
M_CART, M_POLE, LENGTH, G = 1.0, 0.3, 0.5, 9.81
U_MAX, D_MAX, DISTANCE = 20.0, 2.0, 1.0
nz = 5 * (N + 1)
OPTIONS = {"print_level": 0, "sb": "yes", "tol": 1e-10}


def unpack(z):
    """The positions, angles, their rates and the force at the grid points."""
    return [z[k * (N + 1):(k + 1) * (N + 1)] for k in range(5)]


def accelerations(q2, dq1, dq2, u, xp):
    """The cart's and the pole's accelerations (Kelly 2017, eq. 6.1-6.2)."""
    s, c = xp.sin(q2), xp.cos(q2)
    ddq1 = (LENGTH * M_POLE * s * dq2 * dq2 + u + M_POLE * G * c * s) / (M_CART + M_POLE * s * s)
    ddq2 = -(LENGTH * M_POLE * c * s * dq2 * dq2 + u * c + (M_CART + M_POLE) * G * s) / (
        LENGTH * M_CART + LENGTH * M_POLE * s * s)
    return ddq1, ddq2


def cost(z, xp):
    """The trapezoidal integral of u^2."""
    u = unpack(z)[4]
    return h / 2 * xp.sum(u[1:] * u[1:] + u[:-1] * u[:-1])


def defects(z, xp):
    """x[k+1] - x[k] - h/2 (f(x[k], u[k]) + f(x[k+1], u[k+1])) for the four states."""
    q1, q2, dq1, dq2, u = unpack(z)
    ddq1, ddq2 = accelerations(q2, dq1, dq2, u, xp)
    return xp.concatenate([x[1:] - x[:-1] - h / 2 * (dx[1:] + dx[:-1])
                           for x, dx in ((q1, dq1), (q2, dq2), (dq1, ddq1), (dq2, ddq2))])


def bounds() -> tuple[np.ndarray, np.ndarray]:
    """|q1| <= D_MAX, |u| <= U_MAX, and the boundary states fixed."""
    lower, upper = np.full((5, N + 1), -np.inf), np.full((5, N + 1), np.inf)
    lower[0], upper[0], lower[4], upper[4] = -D_MAX, D_MAX, -U_MAX, U_MAX
    for k, (first, last) in enumerate([(0.0, DISTANCE), (0.0, np.pi), (0.0, 0.0), (0.0, 0.0)]):
        lower[k, 0] = upper[k, 0] = first
        lower[k, -1] = upper[k, -1] = last
    return lower.ravel(), upper.ravel()


def initial_guess() -> np.ndarray:
    z = np.zeros((5, N + 1))
    z[0], z[1] = np.linspace(0.0, DISTANCE, N + 1), np.linspace(0.0, np.pi, N + 1)
    return z.ravel()


def solve_anvil() -> dict:
    start = time.process_time()
    f = av.NumericalFunction("cartpole_cost", lambda z: cost(z, np), (av.Arg(nz),))
    c = av.NumericalFunction("cartpole_defects", lambda z: defects(z, np), (av.Arg(nz),))
    nlp = IpoptCallbacks(f, c)
    problem = nlp.problem(*bounds(), options=OPTIONS)
    built = time.process_time() - start
    start = time.process_time()
    z, info = problem.solve(initial_guess())
    return {"z": z, "objective": info["obj_val"], "iterations": nlp.iterations,
            "success": info["status"] == 0, "solve": time.process_time() - start,
            "build": built,
            "detail": f"Hessian of the Lagrangian: {nlp.lagrangian_hessian.nnz} nonzeros (lower "
                      f"triangle), {nlp.lagrangian_hessian.ncolors} colours; constraint "
                      f"Jacobian: {nlp.constraint_jacobian.nnz} nonzeros, "
                      f"{nlp.constraint_jacobian.ncolors} colours"}


def solve_casadi() -> dict:
    import casadi as ca

    class CasadiNumpy:
        sin, cos, sum = staticmethod(ca.sin), staticmethod(ca.cos), staticmethod(ca.sum1)

        @staticmethod
        def concatenate(parts):
            return ca.vertcat(*parts)

    start = time.process_time()
    z = ca.SX.sym("z", nz)
    solver = ca.nlpsol("cartpole", "ipopt", {"x": z, "f": cost(z, CasadiNumpy),
                                             "g": defects(z, CasadiNumpy)},
                       {"print_time": False, "ipopt": OPTIONS})
    built = time.process_time() - start
    lower, upper = bounds()
    start = time.process_time()
    solution = solver(x0=initial_guess(), lbx=lower, ubx=upper, lbg=0.0, ubg=0.0)
    stats = solver.stats()
    return {"z": np.asarray(solution["x"]).ravel(), "objective": float(solution["f"]),
            "iterations": stats["iter_count"], "success": stats["success"],
            "solve": time.process_time() - start, "build": built}


def main() -> dict:
    results = {"anvil_llvm + cyipopt": solve_anvil(), "CasADi nlpsol('ipopt')": solve_casadi()}
    print(f"cart-pole swing-up, N = {N}: {nz} variables, {4 * N} equality constraints")
    print(results["anvil_llvm + cyipopt"]["detail"])
    print(f"{'CPU time':<26}{'objective':>20}{'iterations':>12}{'build':>10}{'solve':>10}"
          f"{'solved':>8}")
    for label, r in results.items():
        print(f"{label:<26}{r['objective']:>20.12f}{r['iterations']:>12}"
              f"{r['build'] * 1e3:>7.0f} ms{r['solve'] * 1e3:>7.0f} ms{r['success']!s:>8}")
    ours, theirs = results.values()
    print(f"max |z - z_casadi| = {np.abs(ours['z'] - theirs['z']).max():.1e}")
    return results


if __name__ == "__main__":
    main()
