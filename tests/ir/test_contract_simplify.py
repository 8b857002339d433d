"""Contractions that the simplifier removes: one product per result (a size-1 or absent
contracted axis) becomes a product, and a contraction with the symbolic identity of dense
derivatives (`iota == iota`, reshaped, permuted, broadcast, scaled) becomes a selection, so
that the basis seeds of a dense Jacobian or Hessian never meet a contraction as an n x n matrix.
Each rewrite is checked against NumPy and against the interpreter on the graph before it, and
on the shape of the graph after it; the derivatives it serves are checked end to end, with the
GEMM calls counted in the generated code."""
import numpy as np
import pytest
from avcheck import Tol, assert_matches, assert_same, check_function, fast
from hypothesis import given
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.ir import build as B
from anvil_llvm.ir import dtypes
from anvil_llvm.ir import ops as O
from anvil_llvm.ir.interpret import evaluate
from anvil_llvm.ir.simplify import identity_axes, simplify
from anvil_llvm.ir.uop import UOp, toposort

RNG = np.random.default_rng(20)


def inp(k: int, shape: tuple) -> UOp:
    return UOp(O.INPUT, (), (k, tuple(shape), dtypes.float64))


def contractions_in(nodes) -> list[UOp]:
    return [n for n in toposort(list(nodes)) if n.op is O.CONTRACT]


def check_rewrite(node: UOp, inputs: list, removed: bool = True) -> UOp:
    """`node` simplified gives the raw graph's value (bit for bit: integer-valued inputs) and
    NumPy's; with `removed`, no contraction is left."""
    raw = evaluate([node], inputs)[0]
    (simple,) = simplify([node])
    assert simple.shape == node.shape and simple.dtype == node.dtype
    assert_same(evaluate([simple], inputs)[0], raw, "simplified vs raw graph")
    if removed:
        assert not contractions_in([simple]), "a contraction is left"
    return simple


def integers(shape) -> np.ndarray:
    return RNG.integers(-4, 5, shape).astype(np.float64)


def dense(node: UOp) -> np.ndarray:
    return evaluate([node], [])[0]


# ---- one product per result ------------------------------------------------------------------
@pytest.mark.parametrize("a_shape, b_shape, arg", [
    ((1, 1), (5, 6, 1), ((1,), (2,), (), ())),        # the 1 x 1 seed of a reverse pass
    ((4, 1), (1, 3), ((1,), (0,), (), ())),           # an outer product
    ((4,), (3,), ((), (), (), ())),                   # no contracted axis
    ((2, 4, 1), (1, 2, 3), ((2,), (0,), (0,), (1,))),  # batched
])
def test_a_contraction_of_one_term_is_a_product(a_shape, b_shape, arg):
    a, b = integers(a_shape), integers(b_shape)
    node = B.contract(inp(0, a_shape), inp(1, b_shape), *arg)
    simple = check_rewrite(node, [a, b])
    assert O.MUL in {n.op for n in toposort([simple])}
    expected = np.einsum(*_einsum_spec(a.ndim, b.ndim, arg), a, b)
    assert_matches(evaluate([simple], [a, b])[0], expected, None, "vs NumPy")


def test_one_term_keeps_the_contractions_positive_zero():
    """0.0 * -1.0 is -0.0, but a contraction sums from +0.0."""
    node = B.contract(inp(0, ()), inp(1, ()), (), ())
    check_rewrite(node, [np.array(0.0), np.array(-1.0)])


def test_a_one_by_one_constant_vanishes():
    x = inp(0, (5, 1))
    node = B.contract(x, B.full((1, 1), 1.0), (1,), (0,))
    (simple,) = simplify([node])
    assert {n.op for n in toposort([simple])} <= {O.INPUT, O.RESHAPE, O.ADD, O.CONST, O.EXPAND}


def _einsum_spec(a_ndim, b_ndim, arg):
    lc, rc, lb, rb = arg
    letters = iter("abcdefghijklmnop")
    sa = [next(letters) for _ in range(a_ndim)]
    sb = [None] * b_ndim
    for i, j in zip(lc + lb, rc + rb):
        sb[j] = sa[i]
    sb = [s or next(letters) for s in sb]
    free = lambda n, c, bt: [i for i in range(n) if i not in c and i not in bt]
    out = ([sa[i] for i in lb] + [sa[i] for i in free(a_ndim, lc, lb)]
           + [sb[j] for j in free(b_ndim, rc, rb)])
    return (f"{''.join(sa)},{''.join(sb)}->{''.join(out)}",)


# ---- the symbolic identity -------------------------------------------------------------------
def test_identity_axes_follow_movement_ops():
    basis = B.basis((2, 3))                      # (6, 2, 3): row axis 0, column axes 1, 2
    assert identity_axes(basis) == ((0,), (1, 2))
    moved = B.permute(basis, (2, 0, 1))          # (3, 6, 2)
    assert identity_axes(moved) == ((1,), (2, 0))
    split = B.reshape(basis, (2, 3, 2, 3))
    assert identity_axes(split) == ((0, 1), (2, 3))
    wide = B.broadcast_to(B.reshape(basis, (6, 1, 2, 3)), (6, 4, 2, 3))
    assert identity_axes(wide) == ((0,), (2, 3))
    assert identity_axes(B.cast(wide, dtypes.float32)) == ((0,), (2, 3))
    # merging a column axis with a broadcast one is not an identity of whole axes
    assert identity_axes(B.reshape(B.permute(wide, (0, 2, 1, 3)), (6, 8, 3))) is None
    assert identity_axes(B.full((6, 6), 1.0)) is None


@pytest.mark.parametrize("seed_shape, x_shape, e_axes, x_axes", [
    ((6,), (6, 4), (1,), (0,)),        # x^T A with A (6, 4): basis against its rows
    ((6,), (4, 6), (0,), (1,)),        # against the stacking axis
    ((2, 3), (2, 3, 5), (1, 2), (0, 1)),     # a matrix seed against two axes of x
    ((2, 3), (3, 2, 5), (2, 1), (0, 1)),     # in the other order
    ((2, 3), (6, 5), (0,), (0,)),             # the stacking axis splits into x's (2, 3)
    ((2, 3), (5, 3), (2,), (1,)),             # part of a group: a selection times a delta
    ((6,), (1, 6), (1,), (1,)),
])
def test_contraction_with_the_basis_is_a_selection(seed_shape, x_shape, e_axes, x_axes):
    basis = B.basis(seed_shape)
    x = integers(x_shape)
    for node in (B.contract(basis, inp(0, x_shape), e_axes, x_axes),
                 B.contract(inp(0, x_shape), basis, x_axes, e_axes)):
        check_rewrite(node, [x])
        expected = np.einsum(*_einsum_spec(node.src[0].ndim, node.src[1].ndim, node.arg),
                             *(dense(s) if s is basis else x for s in node.src))
        assert_same(evaluate(simplify([node]), [x])[0], expected, "vs NumPy")


def test_batched_contraction_with_a_broadcast_basis():
    """vmap leaves the basis broadcast along a batch axis of the other operand."""
    basis = B.broadcast_to(B.reshape(B.basis((4,)), (1, 4, 4)), (3, 4, 4))
    x = integers((3, 4, 2))
    node = B.contract(basis, inp(0, (3, 4, 2)), (2,), (1,), (0,), (0,))
    check_rewrite(node, [x])


def test_a_scaled_basis_reads_the_scale_on_the_diagonal():
    """The JVP along a basis seed of M @ sin(x) contracts M with cos(x) * seed."""
    scale = B.broadcast_to(B.reshape(UOp(O.COS, (inp(1, (5,)),)), (1, 5)), (5, 5))
    seeds = UOp(O.MUL, (B.basis((5,)), scale))
    m, v = integers((4, 5)), integers((5,))
    node = B.contract(inp(0, (4, 5)), B.reshape(seeds, (5, 5, 1)), (1,), (1,))
    simple = check_rewrite(node, [m, v])
    strides = {step for n in toposort([simple]) if n.op is O.SLICE for _, step, _ in n.arg}
    assert strides <= {1}, "a broadcast needs no strided diagonal"
    scale2 = UOp(O.MUL, (inp(1, (5, 5)), B.basis((5,))))       # varies along both axes
    node = B.contract(inp(0, (4, 5)), scale2, (1,), (1,))
    check_rewrite(node, [m, integers((5, 5))])


def test_contraction_with_both_groups_is_left_alone():
    """A trace needs a diagonal of the other operand: kept as it is, and still right."""
    x = integers((4, 4))
    node = B.contract(inp(0, (4, 4)), B.basis((4,)), (0, 1), (0, 1))
    check_rewrite(node, [x], removed=False)


def test_added_zeros_do_not_hide_an_identity():
    """A contraction's sum ignores the sign of zeros: y + 0.0 contracts as y."""
    seeds = UOp(O.ADD, (B.basis((5,)), B.full((5, 5), 0.0)))
    x = integers((5, 3))
    check_rewrite(B.contract(seeds, inp(0, (5, 3)), (1,), (0,)), [x])


@st.composite
def identity_contractions(draw):
    """A basis under random movement ops (and maybe a scale), contracted over random axes with
    a random operand."""
    seed_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    e = B.basis(seed_shape)
    if draw(st.booleans()):          # a broadcast axis, as vmap makes
        size = draw(st.integers(1, 3))
        e = B.broadcast_to(B.reshape(e, (1,) + e.shape), (size,) + e.shape)
    e = B.permute(e, tuple(draw(st.permutations(range(e.ndim)))))
    inputs, scaled = [], draw(st.booleans())
    if scaled:
        inputs.append(draw(st.sampled_from([(), e.shape])))
        e = UOp(O.MUL, (e, B.broadcast_to(inp(1, inputs[0]), e.shape)))
    contracted = draw(st.lists(st.sampled_from(range(e.ndim)), min_size=1, unique=True))
    free_sizes = draw(st.lists(st.integers(1, 3), max_size=2))
    x_axes = [("c", i) for i in contracted] + [("f", k) for k in range(len(free_sizes))]
    x_axes = draw(st.permutations(x_axes))
    x_shape = tuple(e.shape[i] if kind == "c" else free_sizes[i] for kind, i in x_axes)
    x_contracted = tuple(x_axes.index(("c", i)) for i in contracted)
    if draw(st.booleans()):
        node = B.contract(inp(0, x_shape), e, x_contracted, tuple(contracted))
    else:
        node = B.contract(e, inp(0, x_shape), tuple(contracted), x_contracted)
    return node, [integers(x_shape)] + [integers(s) for s in inputs]


@fast(200)
@given(case=identity_contractions())
def test_identity_rewrites_preserve_values(case):
    node, inputs = case
    raw = evaluate([node], inputs)[0]
    (simple,) = simplify([node])
    assert_same(evaluate([simple], inputs)[0], raw, "simplified vs raw graph")


@fast(15)
@given(case=identity_contractions())
def test_identity_rewrites_compile(case):
    node, inputs = case
    raw = evaluate([node], inputs)[0]
    args = [av.Arg(x.shape) for x in inputs]
    fn = av.NumericalFunction.from_graph("f", args, [node], False)
    check_function(fn, inputs, [raw])


# ---- the derivatives this serves --------------------------------------------------------------
def gemm_calls(fn) -> int:
    return fn.lowered().ir.count("call void @anvil_dgemm")


N = 40
A = RNG.standard_normal((N, N))
C = RNG.standard_normal((30, N))
D = RNG.standard_normal((30,))
X0 = RNG.standard_normal(N)


def _gauss_newton():
    residual = av.NumericalFunction("r", lambda x: C @ av.tanh(x), [av.Arg((N,))])
    jac = ad.jacobian(residual)
    return av.NumericalFunction("gn", lambda x: jac(x).T @ jac(x), [av.Arg((N,))])


JT = C * (1 - np.tanh(X0) ** 2)
CASES = {
    "x^T A x + sum cos x": (lambda: ad.hessian(av.NumericalFunction(
        "quad", lambda x: x @ A @ x + av.cos(x).sum(), [av.Arg((N,))])), [X0],
        A + A.T - np.diag(np.cos(X0)), 0),
    "x^T M x, M an argument": (lambda: ad.hessian(av.NumericalFunction(
        "argquad", lambda x, M: x @ M @ x, [av.Arg((N,)), av.Arg((N, N))])), [X0, A],
        A + A.T, 0),
    "sum((C x - d)^2)": (lambda: ad.hessian(av.NumericalFunction(
        "lsq", lambda x: ((C @ x - D) ** 2).sum(), [av.Arg((N,))])), [X0],
        2 * C.T @ C, 1),
    "Gauss-Newton J^T J": (_gauss_newton, [X0], JT.T @ JT, 1),
    "Jacobian of M sin(x), M an argument": (lambda: ad.jacobian(av.NumericalFunction(
        "msin", lambda x, M: M @ av.sin(x), [av.Arg((N,)), av.Arg((N, N))])), [X0, A],
        A * np.cos(X0), 0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dense_derivatives_contract_no_identity(name):
    """The basis seeds reach no contraction: what is left are the products the closed form
    needs (C^T C, J^T J), one GEMM each at most."""
    make, inputs, expected, gemms = CASES[name]
    fn = make()
    np.testing.assert_allclose(fn(*inputs), expected, rtol=1e-12, atol=1e-12)
    for node in contractions_in(fn.outputs):
        for operand in node.src:
            assert identity_axes(operand) is None, f"a contraction with an identity: {node}"
    assert len(contractions_in(fn.outputs)) == gemm_calls(fn) == gemms
    # sums of products in another order (BLAS): a few ulp of the largest entry
    assert_matches(evaluate(fn.outputs, inputs)[0], fn(*inputs), Tol(1e-13, 1e-13),
                   "interpreter")
