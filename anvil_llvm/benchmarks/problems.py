"""The public problems, each written once on an array namespace `xp` (NumPy or anvil_llvm), so
the NumPy reference and the traced function are the same code."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Problem:
    """One public problem at one size: `f(x, xp)` on a flat float64 vector, and its start point.

    >>> p = problem("rosen", 100)
    >>> float(p.reference(p.x0)) > 0
    True
    """

    name: str
    size: int
    f: Callable
    x0: np.ndarray
    label: str = ""
    data: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.x0.size

    def reference(self, x: np.ndarray):
        """The value computed by NumPy."""
        return self.f(np.asarray(x, dtype=np.float64), np)

    def function(self, name: str | None = None):
        """The traced anvil_llvm function."""
        import anvil_llvm as av
        return av.NumericalFunction(name or self.name, lambda x: self.f(x, av), (av.Arg(self.n),))


def _sumsq(x, xp):
    return (x * x).sum()


def _rosen(x, xp):
    a, b = x[:-1], x[1:]
    return (100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2).sum()


def _rosen_x0(n: int) -> np.ndarray:
    return np.where(np.arange(n) % 2 == 0, -1.2, 1.0)


def _bratu_grid(x, xp, m):
    return xp.pad(x.reshape(m, m), 1)


def bratu_residual(m: int, lam: float = 6.0) -> Callable:
    """F_ij = 4u_ij - (4 neighbours, zero outside) - lam h^2 exp(u_ij) on the m x m interior."""
    h2 = (1.0 / (m + 1)) ** 2

    def f(x, xp):
        u = _bratu_grid(x, xp, m)
        c = u[1:-1, 1:-1]
        lap = 4.0 * c - u[:-2, 1:-1] - u[2:, 1:-1] - u[1:-1, :-2] - u[1:-1, 2:]
        return (lap - lam * h2 * xp.exp(c)).reshape(m * m)
    return f


def bratu_energy(m: int, lam: float = 6.0) -> Callable:
    """E(u) = 1/2 sum over grid edges (incl. to the boundary) (u_a - u_b)^2 - lam h^2 sum exp(u),
    so that grad E = F."""
    h2 = (1.0 / (m + 1)) ** 2

    def f(x, xp):
        u = _bratu_grid(x, xp, m)
        dx = u[1:, 1:-1] - u[:-1, 1:-1]
        dy = u[1:-1, 1:] - u[1:-1, :-1]
        return 0.5 * ((dx * dx).sum() + (dy * dy).sum()) - lam * h2 * xp.exp(x).sum()
    return f


def _mlp_data():
    rng = np.random.default_rng(42)
    X = rng.standard_normal((256, 64))
    Y = rng.standard_normal((256, 10))
    return X, Y


def _mlp(X, Y):
    shapes = [(64, 128), (128,), (128, 10), (10,)]

    def f(x, xp):
        parts, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            parts.append(x[start:start + size].reshape(shape))
            start += size
        W1, b1, W2, b2 = parts
        r = xp.tanh(X @ W1 + b1) @ W2 + b2 - Y
        return (r * r).mean()
    return f


def _arrowhead(x, xp):
    head = x[0] * x[1:]
    return (head * head).sum() + (x * x * x * x).sum()


def _arm(x, xp):
    lengths = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    theta = xp.stack([x[:k + 1].sum() for k in range(6)])
    return xp.stack([(lengths * xp.cos(theta)).sum(), (lengths * xp.sin(theta)).sum(), theta[5]])


def _expdecay():
    t = np.linspace(0.0, 10.0, 50)
    y = 2.5 * np.exp(-0.3 * t) + 0.01 * np.random.default_rng(5).standard_normal(50)

    def f(p, xp):
        return p[0] * xp.exp(-p[1] * t) - y
    return f


def problem(name: str, size: int | None = None) -> Problem:
    """The public problem `name` at `size` (n, or m for bratu2d and bratu2d_E)."""
    if name == "sumsq":
        n = size or 5
        return Problem(name, n, _sumsq, np.arange(1.0, n + 1))
    if name == "rosen":
        n = size or 100
        return Problem(name, n, _rosen, _rosen_x0(n))
    if name in ("bratu2d", "bratu2d_E"):
        m = size or 10
        x0 = 0.5 * np.random.default_rng(1234).random(m * m)
        f = bratu_residual(m) if name == "bratu2d" else bratu_energy(m)
        return Problem(name, m, f, x0, label=f"m={m} (n={m * m})")
    if name == "mlp":
        X, Y = _mlp_data()
        x0 = 0.1 * np.random.default_rng(7).standard_normal(9610)
        return Problem(name, 9610, _mlp(X, Y), x0, data={"X": X, "Y": Y})
    if name == "arrowhead":
        n = size or 1000
        return Problem(name, n, _arrowhead, np.linspace(0.5, 1.5, n))
    if name == "arm":
        return Problem(name, 6, _arm, np.linspace(0.1, 0.6, 6))
    if name == "expdecay":
        return Problem(name, 2, _expdecay(), np.array([2.0, 0.4]))
    raise ValueError(f"name: expected one of {sorted(PROBLEMS)}, got {name!r}")


PROBLEMS = {"sumsq": (5,), "rosen": (100, 10_000, 1_000_000), "bratu2d": (10, 100, 1000),
            "bratu2d_E": (10, 100, 1000), "mlp": (9610,), "arrowhead": (1000, 100_000),
            "arm": (6,), "expdecay": (2,)}
"""Each problem's public sizes."""
