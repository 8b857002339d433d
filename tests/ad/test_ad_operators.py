"""The derivative operators: argnum handling, higher order by composition, scalar-input
derivatives, the value_and_* variants, names, Jacobian modes, plain callables, errors, and the
size of the graphs they build."""
from __future__ import annotations

import numpy as np
import pytest
from test_ad_rules import assert_close, difference_jacobian

import anvil_llvm as av
from anvil_llvm.ad import (derivative, grad, gradient, hessian, hvp, jacfwd, jacobian, jacrev, jvp,
                           second_derivative, value_and_grad, value_and_gradient,
                           value_and_jacobian, value_gradient_and_hessian, vjp, vmap)
from anvil_llvm.benchmarks.problems import problem

X3 = np.array([0.7, -1.2, 0.4])
P3 = np.array([1.5, 0.3, -0.8])


def cubic_mix(x, p):
    """A scalar function of two vectors with every second and third derivative nonzero."""
    return (av.sin(x * p) * x).sum() + (x * x * p).sum() * x[0] + av.exp(p[1] * x[2])


def cubic_mix_numpy(x, p):
    return (np.sin(x * p) * x).sum() + (x * x * p).sum() * x[0] + np.exp(p[1] * x[2])


CUBIC = av.NumericalFunction("cubic", cubic_mix, (av.Arg(3), av.Arg(3)))


def vector_map(x, p):
    """R^3 x R^3 -> (R^2, R^(3,)): two outputs."""
    return av.stack([(x * p).sum(), av.tanh(x).prod()]), av.sin(x) * p[::-1]


VECTOR = av.NumericalFunction("vec", vector_map, (av.Arg(3), av.Arg(3)))


def numpy_jacobian(fn, args, a):
    """Finite-difference Jacobian of fn(*args) wrt args[a], shaped output.shape + arg.shape."""
    x = args[a]
    out = np.asarray(fn(*args))

    def at(v):
        return np.ravel(fn(*args[:a], v, *args[a + 1:]))
    return difference_jacobian(at, x).reshape(out.shape + x.shape)


# ---- argnum ------------------------------------------------------------------------------------
def test_argnum_selects_the_argument():
    gx = numpy_jacobian(cubic_mix_numpy, [X3, P3], 0)
    gp = numpy_jacobian(cubic_mix_numpy, [X3, P3], 1)
    assert_close(gradient(CUBIC)(X3, P3), gx, 1e-9, "argnum 0 (default)")
    assert_close(gradient(CUBIC, argnum=1)(X3, P3), gp, 1e-9, "argnum 1")
    assert_close(gradient(CUBIC, argnum=-1)(X3, P3), gp, 1e-9, "argnum -1")
    assert_close(gradient(CUBIC, argnums=1)(X3, P3), gp, 1e-9, "argnums alias")
    both = gradient(CUBIC, argnum=(0, 1))(X3, P3)
    assert isinstance(both, tuple) and len(both) == 2
    assert_close(both[0], gx, 1e-9, "tuple argnum, x")
    assert_close(both[1], gp, 1e-9, "tuple argnum, p")
    reverse = gradient(CUBIC, argnums=[1, 0])(X3, P3)
    np.testing.assert_array_equal(reverse[0], both[1])
    np.testing.assert_array_equal(reverse[1], both[0])
    single = gradient(CUBIC, argnum=(1,))(X3, P3)
    assert isinstance(single, tuple) and len(single) == 1
    np.testing.assert_array_equal(single[0], both[1])


def vector_map_numpy(x, p):
    return np.stack([(x * p).sum(), np.tanh(x).prod()]), np.sin(x) * p[::-1]


def vector_jacobian(j: int, a: int) -> np.ndarray:
    """Finite-difference Jacobian of output j of vector_map at (X3, P3) wrt argument a."""
    return numpy_jacobian(lambda x, p: vector_map_numpy(x, p)[j], [X3, P3], a)


def test_jacobian_with_tuple_argnum_nests_per_output_then_position():
    """As jax.jacfwd(f, argnums=(0, 1)) of a function of two outputs: J[output][position]."""
    blocks = jacobian(VECTOR, argnum=(0, 1))(X3, P3)
    assert [[b.shape for b in per_output] for per_output in blocks] == [[(2, 3), (2, 3)],
                                                                        [(3, 3), (3, 3)]]
    for j in (0, 1):
        for a in (0, 1):
            assert_close(blocks[j][a], vector_jacobian(j, a), 1e-9, f"block {j}, {a}")
    # one argument, several outputs: a tuple, one per output
    per_output = jacobian(VECTOR)(X3, P3)
    np.testing.assert_array_equal(per_output[0], blocks[0][0])
    np.testing.assert_array_equal(per_output[1], blocks[1][0])
    # one output, a tuple of positions: a tuple, one per position
    f = av.NumericalFunction("f", lambda x, p: av.sin(x) * p, (av.Arg(3), av.Arg(3)))
    jx, jp = jacobian(f, argnum=(0, 1))(X3, P3)
    assert_close(jx, np.diag(np.cos(X3) * P3), 1e-15, "d/dx")
    assert_close(jp, np.diag(np.sin(X3)), 1e-15, "d/dp")


def test_hessian_with_tuple_argnum_gives_a_tuple_of_rows_of_blocks():
    """As jax.hessian(f, argnums=(0, 1)): H[i][j] = d2f / (d arg_i d arg_j)."""
    blocks = hessian(CUBIC, argnum=(0, 1))(X3, P3)
    assert len(blocks) == 2 and all(len(row) == 2 for row in blocks)
    joint = av.NumericalFunction("joint", lambda z: cubic_mix(z[:3], z[3:]), (av.Arg(6),))
    full = hessian(joint)(np.concatenate([X3, P3]))
    np.testing.assert_allclose(np.block([list(blocks[0]), list(blocks[1])]), full,
                               rtol=1e-13, atol=1e-14)
    fd = difference_jacobian(lambda z: gradient(joint)(z), np.concatenate([X3, P3]))
    assert_close(np.block([list(blocks[0]), list(blocks[1])]), fd, 1e-8, "finite differences")
    np.testing.assert_allclose(blocks[0][1], blocks[1][0].T, rtol=1e-13, atol=1e-14)
    # the same block from another graph: equal up to the order of reassociated sums
    np.testing.assert_allclose(hessian(CUBIC, argnum=1)(X3, P3), blocks[1][1],
                               rtol=1e-14, atol=1e-15)
    single = hessian(CUBIC, argnum=(1,))(X3, P3)
    assert len(single) == 1 and len(single[0]) == 1
    np.testing.assert_allclose(single[0][0], blocks[1][1], rtol=1e-14, atol=1e-15)


def test_tuple_argnums_return_jax_nesting():
    """jax.grad and jax.value_and_grad with argnums=(0, 1) return (g0, g1) and (value, (g0, g1));
    the values are the closed forms of f(w, b) = sum((X w + b - y)^2) / n."""
    X = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    y = np.array([1.0, -2.0, 0.5])

    def loss(w, b):
        r = X @ w + b - y
        return (r * r).mean()
    w, b = np.array([0.3, -0.7]), np.array(0.2)
    r = X @ w + b - y
    dw, db = 2 * X.T @ r / 3, 2 * r.sum() / 3
    gw, gb = grad(loss, argnums=(0, 1))(w, b)
    assert_close(gw, dw, 1e-15, "dw")
    assert_close(gb, db, 1e-15, "db")
    value, (gw, gb) = value_and_grad(loss, argnums=(0, 1))(w, b)
    assert_close(value, (r * r).mean(), 1e-15, "value")
    assert_close(gw, dw, 1e-15, "dw")
    (hww, hwb), (hbw, hbb) = hessian(loss, argnums=(0, 1))(w, b)
    for block, expected in [(hww, 2 * X.T @ X / 3), (hwb, 2 * X.sum(axis=0) / 3),
                            (hbw, 2 * X.sum(axis=0) / 3), (hbb, 2.0)]:
        assert_close(block, expected, 1e-15, "hessian block")


def test_single_argnum_calls_the_native_function():
    """One int argnum (and a flat tuple of results) keeps the compiled entry point as the call;
    only nested results add a Python layer, over the same native function."""
    for fn in (gradient(CUBIC), jacobian(VECTOR), value_and_grad(CUBIC), hessian(CUBIC),
               gradient(CUBIC, argnum=(0, 1)), jvp(CUBIC, argnum=(0, 1))):
        fn.compile()
        assert type(fn).__call__ is fn.native, fn.name
    nested = value_and_grad(CUBIC, argnum=(0, 1)).compile()
    value, (gx, gp) = nested(X3, P3)
    flat = nested.native(X3, P3)
    assert isinstance(flat, tuple) and len(flat) == 3
    for a, b in zip((value, gx, gp), flat):
        np.testing.assert_array_equal(a, b)


def test_nested_results_compose():
    """Operators on a function with nested results nest theirs alike (as JAX's pytrees)."""
    vg = value_and_grad(CUBIC, argnum=(0, 1))
    # d/dx of (value, (gx, gp)) is (gx, (Hxx, Hpx)); with two positions, each leaf splits in two
    dvalue, (dgx, dgp) = jacobian(vg)(X3, P3)
    (hxx, hxp), (hpx, hpp) = hessian(CUBIC, argnum=(0, 1))(X3, P3)
    gx, gp = gradient(CUBIC, argnum=(0, 1))(X3, P3)
    np.testing.assert_allclose(dvalue, gx, rtol=1e-14)
    np.testing.assert_allclose(dgx, hxx, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dgp, hpx, rtol=1e-13, atol=1e-14)
    (jv_x, jv_p), ((jgx_x, jgx_p), (jgp_x, jgp_p)) = jacobian(vg, argnum=(0, 1))(X3, P3)
    for actual, expected in [(jv_x, gx), (jv_p, gp), (jgx_x, hxx), (jgx_p, hxp), (jgp_x, hpx),
                             (jgp_p, hpp)]:
        np.testing.assert_allclose(actual, expected, rtol=1e-13, atol=1e-14)
    # vmap keeps the nesting; derivative too
    values, (gxs, gps) = vmap(vg, in_axes=(0, None))(np.stack([X3, P3]), P3)
    np.testing.assert_allclose(values[1], CUBIC(P3, P3), rtol=1e-14)
    np.testing.assert_allclose(gxs[1], gradient(CUBIC)(P3, P3), rtol=1e-14)
    np.testing.assert_allclose(gps[0], gp, rtol=1e-14)
    curve = av.NumericalFunction("curve", lambda t, s: t * t * s, (av.Arg(()), av.Arg(())))
    d2, (dt, ds) = derivative(value_and_grad(curve, argnum=(0, 1)))(np.array(3.0), np.array(2.0))
    assert (float(d2), float(dt), float(ds)) == (12.0, 4.0, 6.0)    # d/dt of (t²s, (2ts, t²))
    # inside another trace, the nested results are tensors
    outer = av.NumericalFunction("outer", lambda x, p: vg(x, p)[1][1].sum(),
                                 (av.Arg(3), av.Arg(3)))
    np.testing.assert_allclose(outer(X3, P3), gp.sum(), rtol=1e-14)


def test_jvp_and_vjp_with_tuple_argnum():
    """As JAX's jvp (tangents per argument, J·t summed over them) and vjp (a cotangent per output,
    one result per argument); references by finite differences."""
    tx, tp = np.array([1.0, -0.5, 2.0]), np.array([0.3, 0.2, -1.0])
    y0, y1, t0, t1 = jvp(VECTOR, argnum=(0, 1))(X3, P3, tx, tp)
    for j, (y, t) in enumerate([(y0, t0), (y1, t1)]):
        np.testing.assert_array_equal(y, VECTOR(X3, P3)[j])
        assert_close(t, vector_jacobian(j, 0) @ tx + vector_jacobian(j, 1) @ tp, 1e-9,
                     f"tangent {j}")
    assert jvp(VECTOR, argnum=(0, 1)).arg_names == ["x", "p", "tangent0", "tangent1"]
    c0, c1 = np.array([1.0, 2.0]), np.array([-1.0, 0.5, 3.0])
    cx, cp = vjp(VECTOR, argnum=(0, 1))(X3, P3, c0, c1)
    for a, ct in ((0, cx), (1, cp)):
        assert_close(ct, c0 @ vector_jacobian(0, a) + c1 @ vector_jacobian(1, a), 1e-9,
                     f"cotangent of argument {a}")
    (single,) = vjp(VECTOR, argnum=(1,))(X3, P3, c0, c1)
    np.testing.assert_array_equal(single, cp)
    # a plain callable, three positions
    cw = vjp(lambda a, b, c: a * b + c, argnums=(0, 1, 2))(2.0, 3.0, 4.0, 1.0)
    assert [float(c) for c in cw] == [3.0, 2.0, 1.0]


def test_grad_of_a_plain_callable_inside_a_trace():
    """A traced callable's operator applied to the tensors of another trace is inlined there."""
    g = grad(lambda y: (y ** 3).sum())
    outer = av.NumericalFunction("outer", lambda x: (g(x) * x).sum(), (av.Arg(2),))
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(outer(x), (3 * x ** 2 * x).sum(), rtol=1e-15)


# ---- higher order by composition -----------------------------------------------------------
@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_jacobian_of_gradient_is_the_hessian(mode):
    H = hessian(CUBIC)(X3, P3)
    np.testing.assert_allclose(jacobian(gradient(CUBIC), mode=mode)(X3, P3), H, rtol=1e-13,
                               atol=1e-14)
    assert_close(H, difference_jacobian(lambda x: gradient(CUBIC)(x, P3), X3), 1e-9, "hessian")


def test_third_order_jacobian_of_hessian_matches_finite_differences():
    T = jacobian(hessian(CUBIC))(X3, P3)
    assert T.shape == (3, 3, 3)
    fd = difference_jacobian(lambda x: hessian(CUBIC)(x, P3).ravel(), X3).reshape(3, 3, 3)
    assert_close(T, fd, 1e-8, "third derivative")
    for perm in [(1, 0, 2), (0, 2, 1), (2, 1, 0)]:       # mixed partials commute
        np.testing.assert_allclose(T, T.transpose(perm), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jacobian(hessian(CUBIC), mode="rev")(X3, P3), T, rtol=1e-12,
                               atol=1e-13)


def test_hvp_is_hessian_times_vector():
    v = np.array([0.3, -2.0, 1.1])
    np.testing.assert_allclose(hvp(CUBIC)(X3, P3, v), hessian(CUBIC)(X3, P3) @ v, rtol=1e-13,
                               atol=1e-14)
    np.testing.assert_allclose(hvp(CUBIC, argnum=1)(X3, P3, v),
                               hessian(CUBIC, argnum=1)(X3, P3) @ v, rtol=1e-13, atol=1e-14)


def test_jvp_and_vjp_of_several_outputs():
    t = np.array([1.0, -0.5, 2.0])
    y0, y1, t0, t1 = jvp(VECTOR, argnum=1)(X3, P3, t)
    J0, J1 = jacobian(VECTOR, argnum=1)(X3, P3)
    np.testing.assert_array_equal(y0, VECTOR(X3, P3)[0])
    np.testing.assert_array_equal(y1, VECTOR(X3, P3)[1])
    np.testing.assert_allclose(t0, J0 @ t, rtol=1e-14)
    np.testing.assert_allclose(t1, J1 @ t, rtol=1e-14)
    c0, c1 = np.array([1.0, 2.0]), np.array([-1.0, 0.5, 3.0])
    pullback = vjp(VECTOR, argnum=1)
    assert pullback.arg_names == ["x", "p", "cotangent0", "cotangent1"]
    np.testing.assert_allclose(pullback(X3, P3, c0, c1), c0 @ J0 + c1 @ J1, rtol=1e-14)


def test_forward_and_reverse_over_forward():
    # jvp(jvp(f))(x, t, s) = (f, J t, J s, t' H s); vjp of jvp and jacobian of vjp give H too
    x = X3
    f = av.NumericalFunction("f", lambda x: cubic_mix(x, P3), (av.Arg(3),))
    H = hessian(f)(x)
    t, s = np.array([1.0, -0.5, 0.25]), np.array([0.5, 2.0, -1.0])
    value, Jt, Js, tHs = jvp(jvp(f))(x, t, s)
    g = gradient(f)(x)
    np.testing.assert_array_equal(value, f(x))
    np.testing.assert_allclose([Jt, Js], [g @ t, g @ s], rtol=1e-14)
    np.testing.assert_allclose(tHs, t @ H @ s, rtol=1e-13)
    # reverse over forward: cotangents (a, b) of (f, J t) pull back to a g + b H t
    np.testing.assert_allclose(vjp(jvp(f))(x, t, np.array(2.0), np.array(-3.0)),
                               2.0 * g - 3.0 * H @ t, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(jacobian(vjp(f))(x, np.array(1.0)), H, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(jvp(gradient(f))(x, t)[1], hvp(f)(x, t), rtol=1e-14)


@pytest.mark.parametrize("operator", [gradient, jacobian, hessian, value_and_gradient])
def test_float32_functions_keep_float32(operator):
    f = av.NumericalFunction("f", lambda x: (av.sin(x) * x).sum(), (av.Arg(4, av.float32),))
    x = np.linspace(-1, 1, 4, dtype=np.float32)
    results = operator(f)(x)
    for r in results if isinstance(results, tuple) else (results,):
        assert r.dtype == np.float32
    expected = {gradient: np.cos(x) * x + np.sin(x), jacobian: np.cos(x) * x + np.sin(x),
                hessian: np.diag(2 * np.cos(x) - np.sin(x) * x)}.get(operator)
    if expected is not None:
        np.testing.assert_allclose(results, expected, rtol=1e-6, atol=1e-7)


def test_derivatives_that_are_scalar_constants():
    linear = av.NumericalFunction("linear", lambda t: t * 3.0, (av.Arg(()),))
    assert gradient(linear)(np.array(1.0)) == 3.0
    independent = av.NumericalFunction("indep", lambda x, p: (p * p).sum(), (av.Arg(3), av.Arg(2)))
    assert jvp(independent)(np.ones(3), np.ones(2), np.ones(3))[1] == 0.0


# ---- scalar inputs -------------------------------------------------------------------------------
SCALAR = av.NumericalFunction("wave", lambda t: av.sin(t) * t ** 3, (av.Arg(()),))


def test_derivative_and_second_derivative_of_a_scalar_function():
    t = np.array(1.3)
    d = derivative(SCALAR)(t)
    assert d.shape == ()
    np.testing.assert_allclose(d, np.cos(t) * t ** 3 + 3 * np.sin(t) * t ** 2, rtol=1e-14)
    d2 = second_derivative(SCALAR)(t)
    expected = -np.sin(t) * t ** 3 + 6 * np.cos(t) * t ** 2 + 6 * np.sin(t) * t
    np.testing.assert_allclose(d2, expected, rtol=1e-14)
    np.testing.assert_allclose(derivative(derivative(SCALAR))(t), d2, rtol=1e-14)


def test_derivative_of_vector_and_several_outputs():
    curve = av.NumericalFunction("curve", lambda t, s: (av.stack([av.cos(t), av.sin(t) * s]),
                                                        t * s * s), (av.Arg(()), av.Arg(())))
    t, s = np.array(0.4), np.array(2.0)
    dpos, dval = derivative(curve)(t, s)
    np.testing.assert_allclose(dpos, [-np.sin(t), np.cos(t) * s], rtol=1e-15)
    np.testing.assert_allclose(dval, s * s, rtol=1e-15)
    d2pos, d2val = second_derivative(curve, argnum=1)(t, s)
    np.testing.assert_array_equal(d2pos, [0.0, 0.0])
    np.testing.assert_allclose(d2val, 2 * t, rtol=1e-15)


def test_derivative_of_a_plain_callable():
    np.testing.assert_array_equal(derivative(lambda x: x ** 3)(np.array(2.0)), 12.0)
    np.testing.assert_array_equal(second_derivative(lambda x: x ** 3)(np.array(2.0)), 12.0)


def test_scalar_arguments_as_python_numbers():
    f = av.NumericalFunction("f", lambda x: x ** 3, (av.Arg(()),))
    assert float(derivative(f)(2.0)) == 12.0                # the docstring example of derivative


# ---- value_and_* --------------------------------------------------------------------------------
def test_value_and_gradient_variants():
    value, g = value_and_gradient(CUBIC)(X3, P3)
    np.testing.assert_array_equal(value, CUBIC(X3, P3))
    np.testing.assert_array_equal(g, gradient(CUBIC)(X3, P3))
    value, (gx, gp) = value_and_grad(CUBIC, argnum=(0, 1))(X3, P3)
    np.testing.assert_array_equal(value, CUBIC(X3, P3))
    for a, b in zip((gx, gp), gradient(CUBIC, argnum=(0, 1))(X3, P3)):
        np.testing.assert_array_equal(a, b)
    value, grads = value_and_grad(CUBIC, argnums=(1,))(X3, P3)
    assert isinstance(grads, tuple) and len(grads) == 1
    np.testing.assert_array_equal(grads[0], gp)


def test_value_and_jacobian():
    """(value, jacobian), each nested as the function and jacobian return them."""
    (y0, y1), (J0, J1) = value_and_jacobian(VECTOR, argnum=1)(X3, P3)
    for a, b in zip((y0, y1, J0, J1), VECTOR(X3, P3) + jacobian(VECTOR, argnum=1)(X3, P3)):
        np.testing.assert_array_equal(a, b)
    (y0, y1), ((J00, J01), (J10, J11)) = value_and_jacobian(VECTOR, argnum=(0, 1))(X3, P3)
    np.testing.assert_array_equal(J01, J0)
    np.testing.assert_array_equal(J11, J1)
    assert_close(J00, vector_jacobian(0, 0), 1e-9, "J00")
    assert_close(J10, vector_jacobian(1, 0), 1e-9, "J10")


def test_value_gradient_and_hessian():
    # one graph for all three: the same values, up to how the shared work is fused
    value, g, H = value_gradient_and_hessian(CUBIC)(X3, P3)
    np.testing.assert_array_equal(value, CUBIC(X3, P3))
    np.testing.assert_allclose(g, gradient(CUBIC)(X3, P3), rtol=1e-15)
    np.testing.assert_allclose(H, hessian(CUBIC)(X3, P3), rtol=1e-15)
    value, (gx, gp), ((hxx, hxp), (hpx, hpp)) = value_gradient_and_hessian(
        CUBIC, argnum=(0, 1))(X3, P3)
    H = hessian(CUBIC, argnum=(0, 1))(X3, P3)
    for a, b in zip((gx, gp, hxx, hxp, hpx, hpp),
                    gradient(CUBIC, argnum=(0, 1))(X3, P3) + H[0] + H[1]):
        np.testing.assert_allclose(a, b, rtol=1e-15)


# ---- names -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("operator, suffix", [
    (gradient, "grad"), (jacobian, "jac"), (hessian, "hess"), (jvp, "jvp"), (vjp, "vjp"),
    (hvp, "hvp"), (value_and_gradient, "value_and_grad"), (value_and_jacobian, "value_and_jac"),
    (value_gradient_and_hessian, "value_grad_hess"),
])
def test_names(operator, suffix):
    assert operator(CUBIC).name == f"cubic_{suffix}"
    assert operator(CUBIC, name="custom").name == "custom"
    assert operator(CUBIC, name="custom").symbol == "custom"


def test_names_compose_and_name_the_new_arguments():
    assert jacobian(gradient(CUBIC)).name == "cubic_grad_jac"
    assert derivative(SCALAR).name == "wave_deriv"
    assert second_derivative(SCALAR).name == "wave_deriv2"
    assert vmap(CUBIC, axis_size=4).name == "cubic_vmap"
    assert gradient(CUBIC).arg_names == ["x", "p"]
    assert jvp(CUBIC).arg_names == ["x", "p", "tangent"]
    assert vjp(CUBIC).arg_names == ["x", "p", "cotangent"]
    assert hvp(CUBIC).arg_names == ["x", "p", "v"]
    assert jvp(CUBIC, argnum=(1, 0)).arg_names == ["x", "p", "tangent0", "tangent1"]
    # a new argument never repeats a name (names are C parameters and keywords)
    assert jvp(jvp(CUBIC)).arg_names == ["x", "p", "tangent", "tangent_1"]
    assert vjp(vjp(CUBIC)).arg_names == ["x", "p", "cotangent", "cotangent_1"]


def test_name_must_be_a_c_identifier():
    with pytest.raises(ValueError, match="not a valid C identifier"):
        gradient(CUBIC, name="my-grad")
    with pytest.raises(TypeError):
        gradient(CUBIC, name=3)


# ---- Jacobian modes ---------------------------------------------------------------------------------
def twisted(x):
    """R^(2,3) -> R^(3,2), neither elementwise nor square."""
    return (av.sin(x) * x[::-1]).T * x.sum() + av.exp(x[:, ::-2]).sum(axis=1)


def wide(x):
    return av.stack([x.prod(), av.exp(x).sum() * x[0]])


def tall(x):
    return av.concatenate([av.sin(x) * x[1], x * x, av.stack([x[0] / x[1]])])


@pytest.mark.parametrize("fn, shape", [(twisted, (2, 3)), (wide, (5,)), (tall, (2,))],
                         ids=["twisted", "wide", "tall"])
def test_jacobian_modes_and_unrolling_agree(fn, shape):
    f = av.NumericalFunction("f", fn, (av.Arg(shape),))
    x = np.linspace(0.3, 1.4, int(np.prod(shape))).reshape(shape)
    reference = jacobian(f, mode="fwd")(x)
    out_shape = f.output_shapes[0]
    assert reference.shape == out_shape + shape
    fd = difference_jacobian(lambda v: np.ravel(f(v)), x)
    assert_close(reference.reshape(fd.shape), fd, 1e-9, "jacobian vs finite differences")
    for mode in ("fwd", "rev", "auto"):
        for unroll in (False, True):
            np.testing.assert_allclose(jacobian(f, mode=mode, unroll=unroll)(x), reference,
                                       rtol=1e-14, atol=1e-15, err_msg=f"{mode} {unroll}")
    np.testing.assert_allclose(jacfwd(f)(x), reference, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(jacrev(f)(x), reference, rtol=1e-14, atol=1e-15)


def test_jacobian_of_a_constant_output_is_zero():
    f = av.NumericalFunction("f", lambda x, p: av.sin(p) * 2.0, (av.Arg(2), av.Arg(3)))
    for mode in ("fwd", "rev"):
        for unroll in (False, True):
            J = jacobian(f, mode=mode, unroll=unroll)(np.ones(2), np.ones(3))
            np.testing.assert_array_equal(J, np.zeros((3, 2)))


# ---- plain callables ---------------------------------------------------------------------------------
def test_plain_callables_are_traced_per_signature():
    g = grad(lambda x: (x ** 3).sum())
    np.testing.assert_array_equal(g(np.ones(3)), [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(g(np.array([1.0, 2.0])), [3.0, 12.0])      # another shape
    np.testing.assert_array_equal(g(np.array([[2.0]])), [[12.0]])
    value, gradient_ = value_and_grad(lambda x, y: (x * y).sum(), argnums=1)(np.ones(2),
                                                                             np.arange(2.0))
    assert value == 1.0
    np.testing.assert_array_equal(gradient_, [1.0, 1.0])
    np.testing.assert_array_equal(hessian(lambda x: (x ** 3).sum())(np.array([1.0, 2.0])),
                                  np.diag([6.0, 12.0]))


def test_traced_signatures_are_kept_least_recently_used(monkeypatch):
    """A plain callable (and a lazy vmap) keeps a bounded number of compiled signatures; an
    evicted one is traced again and still computes the right values."""
    from anvil_llvm.ad import operators
    monkeypatch.setattr(operators, "SIGNATURES_KEPT", 3)
    g = grad(lambda x: (x ** 3).sum())
    for n in (1, 2, 3, 4, 1, 5):
        np.testing.assert_array_equal(g(np.ones(n)), np.full(n, 3.0))
    assert len(g._cache) == 3
    assert [key[0][0] for key in g._cache] == [(4,), (1,), (5,)]
    batched = av.vmap(lambda x: (x * x).sum())
    for size in (1, 2, 3, 4, 2):
        rows = np.arange(size * 2.0).reshape(size, 2)
        np.testing.assert_array_equal(batched(rows), (rows * rows).sum(axis=1))
    assert len(batched._cache) <= 3


@pytest.mark.parametrize("operator", [jvp, vjp, hvp])
def test_jvp_vjp_hvp_of_plain_callables(operator):
    x = np.array([1.0, 2.0])
    t = 1.0 if operator is vjp else np.array([1.0, 0.0])   # a cotangent has the output's shape
    result = operator(lambda x: (x * x * x).sum())(x, t)
    expected = {jvp: (9.0, 3.0), vjp: [3.0, 12.0], hvp: [6.0, 0.0]}[operator]
    np.testing.assert_array_equal(result, expected)


# ---- errors -----------------------------------------------------------------------------------------
def test_gradient_of_a_non_scalar_function_names_it():
    f = av.NumericalFunction("vecf", lambda x: av.sin(x), (av.Arg(3),))
    for operator in (gradient, hessian, hvp, value_and_gradient, value_gradient_and_hessian):
        with pytest.raises(ValueError, match="vecf.*scalar"):
            operator(f)
    with pytest.raises(ValueError, match="scalar"):
        grad(lambda x: x * 2.0)(np.ones(3))


def test_argnum_errors():
    for bad in (2, -3, (0, 2)):
        with pytest.raises(ValueError, match="argnum.*out of range for cubic"):
            gradient(CUBIC, argnum=bad)
    with pytest.raises(ValueError, match="argnum"):
        gradient(CUBIC, argnum=())
    for bad in (True, 1.0, "x"):
        with pytest.raises(TypeError, match="argnum"):
            jacobian(CUBIC, argnum=bad)
    with pytest.raises(TypeError, match="hvp: argnum: expected one argument position"):
        hvp(CUBIC, argnum=(0, 1))
    with pytest.raises(TypeError, match="derivative: argnum: expected one argument position"):
        derivative(SCALAR, argnum=(0,))
    with pytest.raises(ValueError, match=r"argnum: an argument position is given twice in \(0, "):
        gradient(CUBIC, argnum=(0, -2))


@pytest.mark.parametrize("operator", [gradient, jacobian, hessian, jvp, vjp, value_and_grad])
def test_argnum_and_argnums_together(operator):
    """argnums is JAX's name for argnum: both may be given only if they agree."""
    with pytest.raises(TypeError, match="argnum and argnums.*argnum=0 and argnums=1"):
        operator(CUBIC, 0, argnums=1)
    with pytest.raises(TypeError, match=r"argnum=\(0, 1\) and argnums=1"):
        operator(CUBIC, argnum=(0, 1), argnums=1)
    operator(CUBIC, argnum=[0, 1], argnums=(0, 1))
    operator(CUBIC, 1, argnums=1)


@pytest.mark.parametrize("unroll", ["no", 0, 1, None, "False"])
def test_unroll_must_be_a_bool(unroll):
    for operator in (jacobian, jacfwd, jacrev, value_and_jacobian):
        with pytest.raises(TypeError, match=f"unroll: expected a bool, got {unroll!r}"):
            operator(VECTOR, unroll=unroll)
    np.testing.assert_array_equal(jacobian(VECTOR, unroll=np.True_)(X3, P3)[1],
                                  jacobian(VECTOR)(X3, P3)[1])


@pytest.mark.parametrize("operator", [gradient, jacobian, hessian, jvp, vjp, hvp,
                                      value_and_jacobian, value_gradient_and_hessian,
                                      derivative, second_derivative])
def test_integer_outputs_have_no_derivative(operator):
    """Only float outputs are differentiated: every operator refuses an int or bool output,
    naming it and its dtype (jacobian gave integer zeros)."""
    counts = av.NumericalFunction("counts", lambda t: ((t * t).sum(), (t > 0).astype(av.int64)),
                                  (av.Arg(()),))
    scalar = av.NumericalFunction("count", lambda t: (t > 0).astype(av.int64), (av.Arg(()),))
    scalar_ops = (gradient, hessian, hvp, value_gradient_and_hessian)
    f, output = (scalar, 0) if operator in scalar_ops else (counts, 1)
    with pytest.raises(TypeError, match=f"output {output} of {f.name} has dtype int64"):
        operator(f)
    flag = av.NumericalFunction("flag", lambda t: (t * 2.0, t > 0), (av.Arg(()),))
    if operator not in scalar_ops:
        with pytest.raises(TypeError, match="output 1 of flag has dtype bool"):
            operator(flag)


def test_argnum_of_an_integer_input():
    f = av.NumericalFunction("k", lambda x, i: (x * i).sum(), (av.Arg(3), av.Arg(3, av.int64)))
    np.testing.assert_array_equal(gradient(f)(np.ones(3), np.arange(3)), [0.0, 1.0, 2.0])
    for operator in (gradient, jacobian, hessian, jvp, vjp):
        with pytest.raises(TypeError, match="argument 1 \\('i'\\) of k has dtype int64"):
            operator(f, argnum=1)


def test_integer_arguments_of_a_plain_callable_keep_their_dtype():
    """Traced at the first call, an integer argument stays an integer (2**53 + 1 is not
    rounded to a float), and differentiating it is a clear error, as for a NumericalFunction."""
    def fn(x, k):
        return (x * (k - 2**53)).sum()
    np.testing.assert_array_equal(gradient(fn)(np.ones(2), np.array(2**53 + 1)), [1.0, 1.0])
    with pytest.raises(TypeError, match="argument 1 \\('k'\\) of fn has dtype int64"):
        gradient(fn, argnum=1)(np.ones(2), np.array(3))
    with pytest.raises(TypeError, match="argument 0 \\('x'\\) of fn has dtype int64"):
        gradient(fn)(np.arange(2), np.array(3))


def test_unknown_jacobian_mode():
    with pytest.raises(ValueError, match="mode.*'sideways'"):
        jacobian(CUBIC, mode="sideways")
    with pytest.raises(ValueError, match="mode"):
        value_and_jacobian(CUBIC, mode="backward")


def test_derivative_of_a_vector_input():
    with pytest.raises(ValueError, match="derivative: argument 0 of cubic must be a scalar"):
        derivative(CUBIC)
    with pytest.raises(ValueError, match="second_derivative"):
        second_derivative(CUBIC, argnum=1)


def test_operators_reject_non_functions():
    with pytest.raises(TypeError, match="NumericalFunction or a callable"):
        gradient(42)


# ---- graph size ---------------------------------------------------------------------------------------
def test_rosen_gradient_graph_is_small_and_has_no_contractions():
    f = problem("rosen", 100).function()
    g = gradient(f)
    primal, lines = f.graph.splitlines(), g.graph.splitlines()
    assert not any(" contract " in line for line in lines)
    # Each primal op's VJP rule adds a constant number of nodes (at most two here, plus one
    # accumulation add where a node has two consumers), so twice the primal graph bounds a reverse
    # sweep without duplicated work; it is 23 nodes against 17 today.
    assert len(lines) <= 2 * len(primal), g.graph
    assert len(gradient(problem("rosen", 10_000).function()).graph.splitlines()) == len(lines)


@pytest.mark.parametrize("build", [
    lambda f: jacobian(gradient(f), mode="fwd"),
    lambda f: jacobian(gradient(f), mode="rev"),
    hessian,
], ids=["jacfwd_grad", "jacrev_grad", "hessian"])
def test_hessian_graph_does_not_grow_with_n(build):
    small, large = (build(problem("rosen", n).function()) for n in (10, 1000))
    assert len(small.graph.splitlines()) == len(large.graph.splitlines())
    assert " contract " not in large.graph
    # the basis is an index comparison, never an n x n constant
    assert "const_array" not in large.graph and len(large.graph) < 10_000


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_jacobian_graph_does_not_grow_with_n(mode):
    def sizes(n):
        f = av.NumericalFunction("h", lambda x: av.sin(x) * x[::-1] + x.sum(), (av.Arg(n),))
        return len(jacobian(f, mode=mode, unroll=False).graph.splitlines())
    assert sizes(10) == sizes(1000)


def test_unrolled_jacobian_expands_the_seeds():
    def lines(n):
        f = av.NumericalFunction("h", lambda x: av.sin(x) * x[::-1], (av.Arg(n),))
        return len(jacobian(f, unroll=True).graph.splitlines())
    assert lines(8) > lines(4)
