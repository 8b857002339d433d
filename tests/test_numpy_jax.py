"""Derivatives of NumPy's API on Tensors against JAX's of the same code, at orders 1 and 2:
each function is written once over a namespace (`anvil_llvm.numpy`, or `jax.numpy` with JAX's
special functions), weighted and summed to a scalar of a flat vector; our gradient and
Hessian equal `jax.grad` and `jax.hessian` of it, and our vmap of the gradient a loop of
JAX's gradients."""
from __future__ import annotations

import types

import numpy as np
import pytest

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy
JAX = types.SimpleNamespace(np=jnp, logsumexp=jax.scipy.special.logsumexp,
                            expit=jax.scipy.special.expit, softplus=jax.nn.softplus,
                            erf=jax.scipy.special.erf, erfc=jax.scipy.special.erfc,
                            linalg=jax.scipy.linalg)
OURS = types.SimpleNamespace(np=anp, logsumexp=anp.logsumexp, expit=anp.expit,
                             softplus=anp.softplus, erf=anp.erf, erfc=anp.erfc,
                             linalg=anp.linalg)

# (id, function of (namespaces, x) with x a 2 x 3 matrix)
ELEMENTWISE_AND_REDUCTIONS = [
    ("var-std", lambda s, x: s.np.var(x, axis=0) + s.np.std(x, axis=1, ddof=1).sum()),
    ("logsumexp", lambda s, x: s.logsumexp(x, axis=1)),
    ("softplus-expit", lambda s, x: s.softplus(x) * s.expit(2.0 * x)),
    ("hypot", lambda s, x: s.np.hypot(x, x[::-1] + 0.3)),
    ("logaddexp", lambda s, x: s.np.logaddexp(x, 2.0 * x[::-1])),
    ("norm", lambda s, x: s.np.linalg.norm(x) + s.np.linalg.norm(x[0])),
    ("cumprod-cumsum", lambda s, x: s.np.cumprod(x, axis=0) + s.np.cumsum(x * x, axis=1)),
    ("einsum", lambda s, x: s.np.einsum("ij,kj->ik", x, x)),
    ("tensordot", lambda s, x: s.np.tensordot(x, s.np.sin(x), 2)),
    ("log2-cbrt-exp2", lambda s, x: s.np.log2(x * x + 1.0) + s.np.cbrt(x + 5.0)
     + s.np.exp2(x / 3.0)),
    ("diag-roll-trace", lambda s, x: s.np.diag(s.np.roll(x[0], 1)) * s.np.trace(x[:, :2])),
    ("erf-erfc", lambda s, x: s.erf(x) + s.erfc(x * x)),
    ("arctan2-power", lambda s, x: s.np.arctan2(x, x[::-1] + 2.0) + s.np.power(x * x + 1.0, 0.7)),
    ("where-maximum", lambda s, x: s.np.where(x > 0.1, x * x, s.np.sin(x))
     + s.np.maximum(x, 0.5) ** 2),
    ("outer-moveaxis", lambda s, x: s.np.moveaxis(s.np.outer(x[0], x[1]) ** 2, 0, 1)),
    ("tile-flip-triu", lambda s, x: s.np.triu(s.np.tile(s.np.flip(x, 1), (2, 1)) ** 3)),
    ("sin-exp-deg2rad", lambda s, x: s.np.sin(x) * s.np.exp(s.np.deg2rad(x * 30.0))),
    ("sum-mean-prod", lambda s, x: s.np.sum(x ** 3, axis=1) * s.np.mean(x, axis=0)[:2]
     + s.np.prod(x + 2.0, axis=1)),
    ("max-amin-clip", lambda s, x: s.np.max(x * x, axis=-1)[:, None] + s.np.amin(s.np.sin(x))
     + s.np.clip(x, -0.7, 0.9) ** 2),
    ("abs-sign-floor-ceil-round", lambda s, x: s.np.abs(x) ** 3 + s.np.sign(x) * x * x
     + (s.np.floor(x * 3.0) + s.np.ceil(x) + s.np.round(x, 1)) * x),
    ("squeeze-expand_dims-swapaxes", lambda s, x: s.np.swapaxes(s.np.expand_dims(
        s.np.squeeze(x[:1]), (0, 2)), 0, 1) ** 2),
    ("repeat-take-tril", lambda s, x: s.np.tril(s.np.repeat(x, 2, axis=0)) ** 2
     + s.np.take(x, np.array([2, 0]), axis=1).sum() ** 2),
    ("diag-dot", lambda s, x: s.np.diag(s.np.dot(x, x.T)) * s.np.diag(x, 1).sum()),
    ("stacks", lambda s, x: s.np.hstack([x, x ** 2]).sum(axis=1) * s.np.vstack(
        [x[0], x[1] ** 3]).sum(axis=0)[:2] + s.np.stack([x[0], -x[1]], axis=1).prod(axis=1)[:2]
     + s.np.concatenate([x[0], x[1, :1]]).sum() ** 2),
]


def _square(s, x):
    """A well-conditioned 3 x 3 matrix from the six entries."""
    m = s.np.concatenate([x, x[:1] * 0.5 + 0.25]).reshape(3, 3)
    return m + 4.0 * s.np.eye(3)


def _spd(s, x):
    m = _square(s, x)
    return m @ m.T


LINEAR_ALGEBRA = [
    ("solve", lambda s, x: s.np.linalg.solve(_square(s, x), x[0] ** 2)),
    ("inv", lambda s, x: s.np.linalg.inv(_square(s, x))),
    ("det-slogdet", lambda s, x: s.np.linalg.det(_square(s, x))
     + s.np.linalg.slogdet(_square(s, x))[1]),
    ("cholesky", lambda s, x: s.np.linalg.cholesky(_spd(s, x))),
    ("eigvalsh", lambda s, x: s.np.linalg.eigvalsh(_spd(s, x) + s.np.diag(
        s.np.arange(3.0) * 10.0))),
    ("lstsq", lambda s, x: s.np.linalg.lstsq(_square(s, x)[:, :2], x[1], rcond=None)[0]),
    ("pinv", lambda s, x: s.np.linalg.pinv(_square(s, x)[:, :2])),
    ("qr", lambda s, x: s.np.abs(s.np.linalg.qr(_square(s, x))[1])),
    ("matrix_power-multi_dot", lambda s, x: s.np.linalg.matrix_power(_square(s, x), 3)
     + s.np.linalg.multi_dot([_square(s, x), _square(s, x).T, _square(s, x)])),
    ("solve_triangular", lambda s, x: s.linalg.solve_triangular(
        _square(s, x), x[1], lower=True) + s.linalg.solve_triangular(
        _square(s, x), x[0], trans=1, lower=False)),
    ("cho_solve", lambda s, x: s.linalg.cho_solve((s.np.linalg.cholesky(_spd(s, x)), True),
                                                  x[0] * x[1])),
]


def _scalar(fn, s):
    """x (6,) -> the outputs of fn(s, x as 2 x 3) weighted by 1, 2, ... and summed."""
    def f(x):
        y = fn(s, x.reshape(2, 3))
        return (y * s.np.arange(1.0, y.size + 1.0).reshape(y.shape)).sum()
    return f


@pytest.mark.parametrize("name, fn", ELEMENTWISE_AND_REDUCTIONS + LINEAR_ALGEBRA,
                         ids=[c[0] for c in ELEMENTWISE_AND_REDUCTIONS + LINEAR_ALGEBRA])
def test_gradient_and_hessian_equal_jax(name, fn):
    x = np.array([0.3, -1.1, 0.8, 1.4, 0.2, -0.6])
    ours = av.NumericalFunction(name.replace("-", "_"), _scalar(fn, OURS), (av.Arg(6),))
    theirs = _scalar(fn, JAX)
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ad.gradient(ours)(x), jax.grad(theirs)(x), rtol=1e-10,
                               atol=1e-11)
    hessian = ad.hessian(ours)(x)
    np.testing.assert_allclose(hessian, jax.hessian(theirs)(x), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name, fn", ELEMENTWISE_AND_REDUCTIONS + LINEAR_ALGEBRA,
                         ids=[c[0] for c in ELEMENTWISE_AND_REDUCTIONS + LINEAR_ALGEBRA])
def test_vmap_of_the_gradient_equals_a_loop_of_jax_gradients(name, fn):
    xs = np.array([0.3, -1.1, 0.8, 1.4, 0.2, -0.6]) + np.arange(3.0)[:, None] * 0.05
    ours = av.NumericalFunction(name.replace("-", "_"), _scalar(fn, OURS), (av.Arg(6),))
    batched = av.vmap(ad.gradient(ours))
    expected = [jax.grad(_scalar(fn, JAX))(x) for x in xs]
    np.testing.assert_allclose(batched(xs), expected, rtol=1e-10, atol=1e-11)
