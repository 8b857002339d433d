"""Whole programs as users of NumPy write them, run unchanged on traced Tensors: each program is
written once, against a module argument `xp` (called with `numpy`, with `anvil_llvm.numpy` and,
for references, with `jax.numpy`) or with plain `np.` calls that NumPy dispatches to
`anvil_llvm.numpy`. Values are compared with NumPy's run of the same code, first derivatives
with central differences of it, higher ones with JAX (when installed), vmap with a Python
loop."""
from __future__ import annotations

import functools
import re

import numpy as np
import pytest
from avcheck import ULP64, Tol, check
from scipy.sparse.linalg import LinearOperator, cg

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad

RNG = np.random.default_rng(19)


def traced(program, *shapes):
    """`program(anp, ...)` (or a plain-NumPy program) as a NumericalFunction of `shapes`."""
    name = re.sub(r"\W", "_", getattr(program, "func", program).__name__)
    return av.NumericalFunction(name, program, tuple(av.Arg(s) for s in shapes))


def central_jacobian(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences of a NumPy function: shape f(x).shape + x.shape."""
    columns = []
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        columns.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    out = np.stack(columns, axis=-1)
    return out.reshape(np.shape(f(x)) + x.shape)


def assert_close(actual, expected, rtol=1e-7, atol=1e-9):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


# ---- 1. multiple shooting: a damped pendulum, RK4 on each interval, continuity defects ------
N_SHOOT, H_SHOOT = 8, 0.1
X0 = np.array([0.5, 0.0])


def pendulum(xp, x, u):
    theta, omega = x[..., 0], x[..., 1]
    return xp.stack([omega, -9.81 * xp.sin(theta) - 0.2 * omega + u], axis=-1)


def rk4(xp, f, x, u, h):
    k1 = f(xp, x, u)
    k2 = f(xp, x + 0.5 * h * k1, u)
    k3 = f(xp, x + 0.5 * h * k2, u)
    k4 = f(xp, x + h * k3, u)
    return x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def shooting_defects(xp, w):
    """Decision vector w = (states of the N+1 nodes, N controls); the constraints of a direct
    multiple-shooting NLP: initial state, then every interval's end minus the next node."""
    states = w[:(N_SHOOT + 1) * 2].reshape(N_SHOOT + 1, 2)
    controls = xp.clip(w[(N_SHOOT + 1) * 2:], -2.0, 2.0)     # actuator limits
    ends = rk4(xp, pendulum, states[:-1], controls, H_SHOOT)
    return xp.concatenate([states[0] - X0, (ends - states[1:]).reshape(-1)])


def test_multiple_shooting_defects_and_their_jacobian():
    w = RNG.normal(scale=0.5, size=(N_SHOOT + 1) * 2 + N_SHOOT)
    f = traced(functools.partial(shooting_defects, anp), w.shape)
    numpy_defects = functools.partial(shooting_defects, np)
    assert_close(f(w), numpy_defects(w), rtol=1e-13, atol=1e-14)
    jac = ad.jacobian(f)(w)
    assert_close(jac, central_jacobian(numpy_defects, w), rtol=1e-6, atol=1e-8)
    # the NLP's sparsity: each defect reads its own interval only
    pattern = ad.jacobian_sparsity(f).toarray()
    assert (pattern | (jac == 0)).all()
    assert pattern.sum() < 0.3 * pattern.size


# ---- 2. MLP training step (plain NumPy: dispatched) ------------------------------------------
X_MLP = RNG.normal(size=(16, 3))
LABELS = np.eye(4)[RNG.integers(0, 4, size=16)]


def mlp_loss(w1, b1, w2, b2):
    """Softmax cross-entropy of a two-layer MLP, with max-shifted log-sum-exp, plus L2."""
    hidden = np.tanh(X_MLP @ w1 + b1)
    hidden = np.maximum(hidden, 0.05 * hidden)                # leaky ReLU on top
    logits = hidden @ w2 + b2
    top = np.max(logits, axis=1, keepdims=True)
    log_z = top + np.log(np.sum(np.exp(logits - top), axis=1, keepdims=True))
    nll = -np.mean(np.sum(LABELS * (logits - log_z), axis=1))
    return nll + 1e-3 * (np.sum(w1 ** 2) + np.sum(w2 * w2))


MLP_SHAPES = ((3, 5), (5,), (5, 4), (4,))


def test_mlp_loss_matches_numpy():
    params = [RNG.normal(scale=0.7, size=s) for s in MLP_SHAPES]
    assert_close(traced(mlp_loss, *MLP_SHAPES)(*params), mlp_loss(*params), rtol=1e-13)


def test_mlp_loss_gradient_and_training_step():
    params = [RNG.normal(scale=0.7, size=s) for s in MLP_SHAPES]
    loss = traced(mlp_loss, *MLP_SHAPES)
    value, grads = ad.value_and_gradient(loss, argnums=(0, 1, 2, 3))(*params)
    assert_close(value, mlp_loss(*params), rtol=1e-13)
    for k, g in enumerate(grads):
        def in_k(p, k=k):
            return mlp_loss(*params[:k], p, *params[k + 1:])
        assert_close(g, central_jacobian(in_k, params[k]), rtol=1e-6, atol=1e-9)

    grad = ad.gradient(loss, argnums=(0, 1, 2, 3))

    def train_step(w1, b1, w2, b2):                           # a gradient inside a trace
        return [p - 0.1 * g for p, g in zip((w1, b1, w2, b2), grad(w1, b1, w2, b2))]
    stepped = traced(train_step, *MLP_SHAPES)(*params)
    for new, p, g in zip(stepped, params, grads):
        assert_close(new, p - 0.1 * g, rtol=1e-13, atol=1e-15)
    assert mlp_loss(*stepped) < mlp_loss(*params)


# ---- 3. curve fitting: residuals, Jacobian, Levenberg-Marquardt -------------------------------
T_FIT = np.linspace(0.0, 4.0, 30)
TRUE_P = np.array([2.0, 0.7, 0.5, 3.0])


def fit_residuals(xp, p):
    a, b, c, w = p
    return a * xp.exp(-b * T_FIT) + c * xp.sin(w * T_FIT) - Y_FIT


def _data():
    a, b, c, w = TRUE_P
    return a * np.exp(-b * T_FIT) + c * np.sin(w * T_FIT)


Y_FIT = _data()


def test_curve_fitting_residuals_jacobian_and_levenberg_marquardt():
    residuals = traced(functools.partial(fit_residuals, anp), (4,))
    p0 = np.array([1.5, 0.5, 0.8, 2.9])
    numpy_residuals = functools.partial(fit_residuals, np)
    assert_close(residuals(p0), numpy_residuals(p0), rtol=1e-13, atol=1e-14)
    jacobian = ad.jacobian(residuals)
    assert_close(jacobian(p0), central_jacobian(numpy_residuals, p0), rtol=1e-6, atol=1e-8)

    def lm_step(p, mu):                                  # NumPy's solve on traced J
        r, jac = residuals(p), jacobian(p)
        return p - np.linalg.solve(jac.T @ jac + mu * np.eye(4), jac.T @ r)
    step = av.NumericalFunction("lm_step", lm_step, (av.Arg(4), av.Arg(())))
    j0 = central_jacobian(numpy_residuals, p0)
    expected = p0 - np.linalg.solve(j0.T @ j0 + 0.1 * np.eye(4), j0.T @ numpy_residuals(p0))
    assert_close(step(p0, 0.1), expected, rtol=1e-6, atol=1e-8)
    p = p0
    for _ in range(30):
        p = step(p, 1e-3)
    assert_close(p, TRUE_P, rtol=1e-8)


# ---- 4. a PDE: the 2-D Bratu problem, Newton-CG with Jacobian-vector products ---------------
N_GRID, LAMBDA = 8, 2.0


def bratu_residual(xp, u):
    """-Δu - λ e^u = f on the unit square's interior grid, u = 0 on the boundary (5-point
    stencil); f a smooth source from index arithmetic."""
    h = 1.0 / (N_GRID + 1)
    grid = xp.pad(u.reshape(N_GRID, N_GRID), 1)
    centre = grid[1:-1, 1:-1]
    laplacian = (grid[:-2, 1:-1] + grid[2:, 1:-1] + grid[1:-1, :-2] + grid[1:-1, 2:]
                 - 4.0 * centre) / h ** 2
    x = xp.arange(1, N_GRID + 1) * h
    source = xp.outer(xp.sin(np.pi * x), xp.sin(np.pi * x))
    return (-laplacian - LAMBDA * xp.exp(centre) - source).reshape(-1)


def test_bratu_residual_jvp_hvp_and_newton_cg():
    n = N_GRID * N_GRID
    u = 0.1 * RNG.normal(size=n)
    residual = traced(functools.partial(bratu_residual, anp), (n,))
    numpy_residual = functools.partial(bratu_residual, np)
    assert_close(residual(u), numpy_residual(u), rtol=1e-13, atol=1e-12)
    jvp = ad.jvp(residual)
    v = RNG.normal(size=n)
    _, jv = jvp(u, v)
    fd = (numpy_residual(u + 1e-6 * v) - numpy_residual(u - 1e-6 * v)) / 2e-6
    assert_close(jv, fd, rtol=1e-6, atol=1e-6)

    merit = traced(lambda u: 0.5 * anp.sum(bratu_residual(anp, u) ** 2), (n,))
    hv = ad.hvp(merit)(u, v)
    grad = ad.gradient(merit)
    assert_close(hv, (grad(u + 1e-5 * v) - grad(u - 1e-5 * v)) / 2e-5, rtol=1e-6, atol=1e-4)
    # the gradient of the merit is J^T F: against the JVP's columns
    jac = np.stack([jvp(u, e)[1] for e in np.eye(n)], axis=1)
    assert_close(grad(u), jac.T @ numpy_residual(u), rtol=1e-10, atol=1e-9)

    # Newton-CG: J is symmetric (-Δ - λ e^u), positive definite for this small λ
    u = np.zeros(n)
    for _ in range(8):
        r = residual(u)
        if np.linalg.norm(r) < 1e-10:
            break
        op = LinearOperator((n, n), matvec=lambda d, u=u: jvp(u, d)[1])
        du, info = cg(op, -r, rtol=1e-12, atol=0.0)
        assert info == 0
        u = u + du
    assert np.linalg.norm(numpy_residual(u)) < 1e-9


# ---- 5. batched evaluation: an RBF model over many points (plain NumPy: dispatched) ---------
CENTRES = RNG.uniform(-1.0, 1.0, size=(6, 2))
WEIGHTS = RNG.normal(size=6)


def rbf_model(point, scale):
    d = point - CENTRES                                        # broadcasting (6, 2)
    r = np.sqrt(np.sum(d * d, axis=-1))
    phi = np.exp(-(r / scale) ** 2)
    return np.einsum("i,i->", WEIGHTS, phi) + np.logaddexp(0.0, np.dot(point, point) - 1.0)


def test_vmap_of_a_model_and_of_its_gradient_match_loops():
    points = RNG.uniform(-1.5, 1.5, size=(200, 2))
    model = traced(rbf_model, (2,), ())
    batched = av.NumericalFunction("batched", av.vmap(model, in_axes=(0, None)),
                                   (av.Arg(points.shape), av.Arg(())))
    assert_close(batched(points, 0.8), [rbf_model(p, 0.8) for p in points], rtol=1e-13)
    per_point_grad = av.vmap(ad.gradient(model), in_axes=(0, None))
    expected = [central_jacobian(lambda p: rbf_model(p, 0.8), p) for p in points[:20]]
    assert_close(per_point_grad(points[:20], 0.8), expected, rtol=1e-6, atol=1e-8)


# ---- 6. forward kinematics: a planar arm (plain NumPy) and a 3-D arm (module style) ---------
LINKS = np.array([1.0, 0.8, 0.5, 0.3])


def planar_arm(q):
    """The joint positions of a planar serial arm, and a penalty for joint limits."""
    phi = np.cumsum(q)
    steps = np.stack([LINKS * np.cos(phi), LINKS * np.sin(phi)], axis=-1)
    joints = np.cumsum(steps, axis=0)
    limit = np.sum(np.where(np.abs(q) > 1.5, (np.abs(q) - 1.5) ** 2, 0.0))
    reach = np.sqrt(np.sum(np.diff(joints, axis=0) ** 2, axis=-1))     # the link lengths
    return np.concatenate([joints.reshape(-1), reach, [limit]])


def test_planar_arm_matches_numpy_and_the_analytic_jacobian():
    q = np.array([0.3, -0.7, 1.1, 1.7])
    f = traced(planar_arm, (4,))
    assert_close(f(q), planar_arm(q), rtol=1e-13, atol=1e-15)
    jac = ad.jacobian(f)(q)
    assert_close(jac, central_jacobian(planar_arm, q), rtol=1e-6, atol=1e-8)
    phi = np.cumsum(q)                   # the tip: d x / d q_i = -sum_{k >= i} l_k sin(phi_k)
    tip = [[-np.sum((LINKS * np.sin(phi))[i:]) for i in range(4)],
           [np.sum((LINKS * np.cos(phi))[i:]) for i in range(4)]]
    assert_close(jac[6:8], tip, rtol=1e-12, atol=1e-14)


def spatial_arm(xp, q):
    """The tip of a 3-D arm: each joint a rotation about z then x, and a link along x, as 4x4
    homogeneous transforms built with `array` from traced sines and cosines."""
    def joint(angle, length):
        c, s = xp.cos(angle), xp.sin(angle)
        return xp.array([[c, -s, 0.0, length * c], [s, c, 0.0, length * s],
                         [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])

    def twist(angle):
        c, s = xp.cos(angle), xp.sin(angle)
        return xp.array([[1.0, 0.0, 0.0, 0.0], [0.0, c, -s, 0.0], [0.0, s, c, 0.0],
                         [0.0, 0.0, 0.0, 1.0]])
    pose = xp.eye(4)
    for i in range(3):
        pose = pose @ twist(q[3 + i]) @ joint(q[i], LINKS[i])
    tip = pose[:3, 3]
    return xp.concatenate([tip, xp.cross(pose[:3, 0], pose[:3, 2])])


def test_spatial_arm_built_from_arrays_of_traced_values():
    q = RNG.uniform(-1.0, 1.0, size=6)
    f = traced(functools.partial(spatial_arm, anp), (6,))
    numpy_arm = functools.partial(spatial_arm, np)
    assert_close(f(q), numpy_arm(q), rtol=1e-13, atol=1e-15)
    assert_close(ad.jacobian(f)(q), central_jacobian(numpy_arm, q), rtol=1e-6, atol=1e-8)


# ---- 7. higher derivatives: Hessian and third order by nesting --------------------------------
def chain_energy(xp, x):
    """A small smooth function in NumPy idioms: Rosenbrock terms, arc length by `diff`, a soft
    maximum, a quadratic form by `@`."""
    rosen = xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    arc = xp.sum(xp.sqrt(1.0 + xp.diff(x) ** 2))
    soft = xp.logaddexp(x[0], x[-1])
    quad = x @ (xp.arange(1.0, x.size + 1) * x) / x.size
    return rosen + arc + soft + xp.mean(quad) + xp.linalg.norm(x)


def test_hessian_against_second_differences_and_third_order_against_jax():
    x = np.array([0.4, -0.3, 0.8, 1.1])
    f = traced(functools.partial(chain_energy, anp), (4,))
    numpy_f = functools.partial(chain_energy, np)
    assert_close(f(x), numpy_f(x), rtol=1e-13)
    hess = ad.hessian(f)(x)
    h, eye = 1e-4, np.eye(4) * 1e-4
    second = np.array([[(numpy_f(x + eye[i] + eye[j]) - numpy_f(x + eye[i] - eye[j])
                         - numpy_f(x - eye[i] + eye[j]) + numpy_f(x - eye[i] - eye[j]))
                        / (4 * h * h) for j in range(4)] for i in range(4)])
    assert_close(hess, second, rtol=1e-5, atol=1e-4)
    third = ad.jacobian(ad.hessian(f))(x)
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        jf = functools.partial(chain_energy, jax.numpy)
        assert_close(hess, jax.hessian(jf)(x), rtol=1e-12, atol=1e-12)
        assert_close(third, jax.jacfwd(jax.hessian(jf))(x), rtol=1e-11, atol=1e-10)


# ---- 8. a Gaussian process: negative log marginal likelihood, Cholesky ------------------------
T_GP = np.linspace(0.0, 3.0, 12)
Y_GP = np.sin(2.0 * T_GP) + 0.1 * RNG.normal(size=12)


def gp_nll(xp, log_params):
    """The negative log marginal likelihood of a squared-exponential GP, hyperparameters in
    log space, with the usual idioms (outer products for squared distances, Cholesky)."""
    length, signal, noise = xp.exp(log_params[0]), xp.exp(log_params[1]), xp.exp(log_params[2])
    sq = T_GP ** 2
    d2 = sq[:, None] + sq[None, :] - 2.0 * xp.outer(T_GP, T_GP)
    k = signal ** 2 * xp.exp(-0.5 * xp.maximum(d2, 0.0) / length ** 2) + noise ** 2 * xp.eye(12)
    chol = xp.linalg.cholesky(k)
    alpha = xp.linalg.solve(k, Y_GP)
    return 0.5 * Y_GP @ alpha + xp.sum(xp.log(xp.diag(chol))) + 6.0 * np.log(2.0 * np.pi)


def test_gaussian_process_likelihood_and_its_gradient():
    p = np.array([-0.2, 0.1, -1.5])
    f = traced(functools.partial(gp_nll, anp), (3,))
    numpy_f = functools.partial(gp_nll, np)
    assert_close(f(p), numpy_f(p), rtol=1e-11)
    assert_close(ad.gradient(f)(p), central_jacobian(numpy_f, p), rtol=1e-6, atol=1e-7)


# ---- the functions these programs needed, each against NumPy ---------------------------------
LOOSE = Tol(1e-12, 1e-13)
NEEDED = [
    ("diff", lambda x: np.diff(x, 2, axis=0), LOOSE),
    ("diff-prepend", lambda x: np.diff(x, prepend=0.0, append=x[:, :1]), LOOSE),
    ("trapezoid", lambda x: np.trapezoid(x, np.array([0.0, 0.5, 2.0, 2.5]), axis=1), LOOSE),
    ("trapezoid-dx", lambda x: np.trapezoid(x, dx=0.1, axis=0), LOOSE),
    ("average", lambda x: np.average(x, axis=1, weights=np.arange(1.0, 5.0)), LOOSE),
    ("average-full", lambda x: np.average(x, weights=x * x + 1.0), LOOSE),
    ("ptp", lambda x: np.ptp(x, axis=0), None),
    ("pad-constant", lambda x: np.pad(x, ((1, 0), (2, 1)), constant_values=7.5), None),
    ("pad-edge", lambda x: np.pad(x, 2, mode="edge"), None),
    ("pad-wrap", lambda x: np.pad(x, ((1, 2), (3, 0)), mode="wrap"), None),
    ("pad-reflect", lambda x: np.pad(x, ((2, 1), (0, 2)), mode="reflect"), None),
    ("pad-symmetric", lambda x: np.pad(x, 1, mode="symmetric"), None),
    ("column_stack", lambda x: np.column_stack([x[0], x[1:].T]), None),
    ("dstack", lambda x: np.dstack([x, x * 2.0]), None),
    ("meshgrid-xy", lambda x: np.meshgrid(x[0], x[1, :2], x[2, :3])[1], None),
    ("meshgrid-ij", lambda x: np.meshgrid(x[0], x[1, :2], indexing="ij")[0], None),
    ("split", lambda x: np.split(x, 2, axis=1)[1], None),
    ("array_split", lambda x: np.array_split(x.reshape(-1), 5)[4], None),
    ("append", lambda x: np.append(x, x[0]), None),
    ("append-axis", lambda x: np.append(x, x[:1], axis=0), None),
    ("concatenate-none", lambda x: np.concatenate([x, x[0]], axis=None), None),
    ("cross", lambda x: np.cross(x[:, :3], x[::-1, 1:]), LOOSE),
    ("cross-axis0", lambda x: np.cross(x[:, :2], x[:, 2:], axis=0), LOOSE),
    ("vecdot", lambda x: np.vecdot(x, x[::-1]), LOOSE),
    ("kron", lambda x: np.kron(x[:2, :2], x[1:, 2:]), None),
    ("multi_dot", lambda x: np.linalg.multi_dot([x[:, 0], x[:, :3].T, x, x[1]]), LOOSE),
    ("multi_dot-matrices", lambda x: np.linalg.multi_dot([x.T, x, x.T]), LOOSE),
    ("matrix_power", lambda x: np.linalg.matrix_power(x[:, :3] / 4.0, 5), LOOSE),
    ("matrix_power-0", lambda x: np.linalg.matrix_power(x[:, :3], 0) + x[:, :3], None),
    ("matrix_power-neg", lambda x: np.linalg.matrix_power(x[:, :3] + 9.0 * np.eye(3), -2), LOOSE),
    ("fabs", np.fabs, None), ("fmax", lambda x: np.fmax(x, x[::-1]), None),
    ("fmin", lambda x: np.fmin(x, 0.0), None),
    ("heaviside", lambda x: np.heaviside(np.round(x), 0.25), None),
    ("sinc", lambda x: np.sinc(x * 0.3), LOOSE),
    ("float_power", lambda x: np.float_power(np.abs(x) + 0.5, 1.5), ULP64),
    ("polyval", lambda x: np.polyval(np.array([2.0, -1.0, 0.5]), x), LOOSE),
    ("floor_divide", (lambda x: anp.floor_divide(x, 0.1 * x[::-1] + 0.05),
                      lambda x: np.floor_divide(x, 0.1 * x[::-1] + 0.05)), None),
    ("floor_divide-int", (lambda x: anp.floor_divide(anp.floor(x * 3.0).astype(np.int64), 4),
                          lambda x: np.floor_divide(np.floor(x * 3.0).astype(np.int64), 4)), None),
    ("einsum-optimize", lambda x: np.einsum("ij,kj->ik", x, x, optimize=True), LOOSE),
]


@pytest.mark.parametrize("name, fn, tol", NEEDED, ids=[n[0] for n in NEEDED])
def test_functions_added_for_the_programs_match_numpy(name, fn, tol):
    x = np.array([[0.3, -1.2, 2.0, 0.7], [1.5, 0.0, -0.4, 2.5], [-0.8, 1.1, 0.9, -2.2]])
    ours, reference = fn if isinstance(fn, tuple) else (fn, fn)
    check(lambda m, x: ours(x), x, tol=tol, numpy_op=lambda m, x: reference(x))


def test_module_style_names_match_numpy():
    def program(xp, x):
        rows = xp.array([[x[0], 2.0 * x[1]], [xp.pi, x[0] * x[1]]])
        grid = xp.copy(rows)[:, xp.newaxis, :] * xp.inf * 0.0 + rows[None]
        return grid.astype(xp.float64), xp.fmax(x, xp.nan), xp.sinc(x - x)
    x = np.array([0.5, -1.5])
    check(lambda m, x: program(anp, x), x, tol=ULP64, numpy_op=lambda m, x: program(np, x))


def test_sinc_is_smooth_at_zero():
    f = av.NumericalFunction("sinc", lambda x: anp.sum(anp.sinc(x)), (av.Arg(3),))
    x = np.array([0.0, 1e-6, 0.3])
    expected = central_jacobian(lambda x: np.sum(np.sinc(x)), x, h=1e-4)
    assert_close(ad.gradient(f)(x), expected, rtol=1e-7, atol=1e-8)
    assert_close(ad.hessian(f)(x)[0, 0], -np.pi ** 2 / 3.0, rtol=1e-8)


# ---- what cannot trace says so ----------------------------------------------------------------
def filled_with_numpy(x):
    out = np.empty_like(x)
    out[0] = x[0]
    return out


def sorted_values(x):
    return np.sort(x)


def index_of_maximum(x):
    return x[np.argmax(x)]


def module_fill(x):
    out = anp.empty(3)
    return out


@pytest.mark.parametrize("program, match", [
    (filled_with_numpy, r"np\.empty_like .*stack, concatenate or where instead of filling"),
    (module_fill, r"np\.empty .*writing into an array is not traceable"),
    (sorted_values, r"np\.sort .*sort outside the traced function"),
    (index_of_maximum, r"np\.argmax .*use max for the value"),
    (lambda x: np.linalg.svd(x.reshape(3, 1)), r"np\.linalg\.svd .*eigh\(a\.T @ a\)"),
    (lambda x: np.block([[x, x]]), r"np\.block is not supported on traced Tensors"),
], ids=["empty_like-fill", "anp.empty", "sort", "argmax", "svd", "block"])
def test_what_cannot_trace_names_the_function_and_what_to_write(program, match):
    with pytest.raises(NotImplementedError, match=match):
        traced(program, (3,))


# ---- the documented table -----------------------------------------------------------------------
def test_the_docs_table_lists_every_supported_name():
    from pathlib import Path
    text = (Path(__file__).parents[1] / "docs" / "numpy.md").read_text()
    table = text.split("## What is supported", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"`(?:linalg\.)?([a-z_0-9]+)`", table))
    functions = {n for n in anp.__all__ if callable(getattr(anp, n))
                 and not isinstance(getattr(anp, n), type)} - {"linalg"}
    linalg = {n for n in dir(anp.linalg) if callable(getattr(anp.linalg, n))
              and not n.startswith("_") and getattr(anp.linalg, n).__module__.startswith(
                  "anvil_llvm.numpy")} - {"SlogdetResult", "EighResult", "LstsqResult",
                                             "QRResult"}
    assert sorted(functions - listed) == []
    assert sorted(linalg - listed) == []
