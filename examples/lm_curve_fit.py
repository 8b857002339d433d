"""Levenberg-Marquardt fit of an exponential decay y = a exp(-k t) + c with
scipy.optimize.least_squares(method="lm") and the Jacobian compiled by anvil_llvm.

The residual takes the data as arguments, r(p, t, y) = p[0] exp(-p[1] t) + p[2] - y, and SciPy
passes them on (`args=(t, y)`): one compiled function fits any data set of 50 points. The fit
recovers the parameters the data were made with, exactly from noise-free data and to within
their standard errors from noisy data (the decay of the seed problem `expdecay`, with an
offset), and agrees with SciPy's own fit that estimates the Jacobian by finite differences.
"""
import time

import numpy as np
from scipy.optimize import least_squares

import anvil_llvm as av
from anvil_llvm.interop import least_squares_kwargs

TRUTH = np.array([2.5, 0.3, 0.5])            # a, k, c
START = np.array([2.0, 0.4, 0.0])
t = np.linspace(0.0, 10.0, 50)


def residual(p, t, y):
    return p[0] * np.exp(-p[1] * t) + p[2] - y        # np.exp traces on Tensors


r = av.NumericalFunction("decay_residual", residual, (av.Arg(3), av.Arg(t.size), av.Arg(t.size)))


def data(noise: float) -> np.ndarray:
    """The decay at t, plus noise * N(0, 1) from default_rng(5)."""
    return (TRUTH[0] * np.exp(-TRUTH[1] * t) + TRUTH[2]
            + noise * np.random.default_rng(5).standard_normal(t.size))


def fit(y: np.ndarray, jacobian: str):
    """least_squares(method="lm") from START: with our dense Jacobian ("ours") or SciPy's
    finite differences ("2-point"); returns the result and the seconds the solve took (the
    Jacobian is compiled before)."""
    if jacobian == "ours":
        kwargs = least_squares_kwargs(r, args=(t, y), jacobian="dense")    # compiled here
    else:
        kwargs = {"fun": r, "args": (t, y), "jac": jacobian}
    start = time.process_time()
    result = least_squares(x0=START, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, **kwargs)
    return result, time.process_time() - start


def standard_errors(result) -> np.ndarray:
    """The parameters' standard errors: sqrt(diag((J'J)^-1) * residual variance)."""
    dof = result.fun.size - result.x.size
    covariance = np.linalg.inv(result.jac.T @ result.jac) * (result.fun @ result.fun) / dof
    return np.sqrt(np.diag(covariance))


def main() -> dict:
    fits = {}
    r.compile()
    print(f"{'data':<12}{'jacobian':<16}{'a':>12}{'k':>12}{'c':>12}{'nfev':>6}{'njev':>6}"
          f"{'time':>10}")
    for noise in (0.0, 0.01):
        y = data(noise)
        for jacobian in ("ours", "2-point"):
            result, seconds = fit(y, jacobian)
            fits[noise, jacobian] = result
            label = "noise-free" if noise == 0 else f"noise {noise}"
            print(f"{label:<12}{jacobian:<16}" + "".join(f"{v:>12.8f}" for v in result.x)
                  + f"{result.nfev:>6}{result.njev or 0:>6}{seconds * 1e3:>7.2f} ms")
    errors = standard_errors(fits[0.01, "ours"])
    print(f"truth: {TRUTH.tolist()}; standard errors of the noisy fit: {np.round(errors, 5)}")
    return {"fits": fits, "errors": errors}


if __name__ == "__main__":
    main()
