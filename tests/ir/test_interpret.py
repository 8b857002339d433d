"""The NumPy reference interpreter and the UOp layer under it: every op's `numpy` rule against an
independent NumPy computation (and the compiled graph against the interpreter), general
contractions, input binding, interning, and the shape and dtype rules' errors."""
import numpy as np
import pytest
from avcheck import ULP64, arrays, assert_matches, check_function, fast
from hypothesis import given
from hypothesis import strategies as st
from scipy import special

import anvil_llvm as av
from anvil_llvm.ir import dtypes
from anvil_llvm.ir import ops as O
from anvil_llvm.ir.ops import control
from anvil_llvm.ir.ops.substitute import Program
from anvil_llvm.ir.interpret import evaluate
from anvil_llvm.ir.ops.movement import gather_arg
from anvil_llvm.ir.ops.source import const_array
from anvil_llvm.ir.uop import OpDef, Payload, UOp, graph_text, toposort

F64, I64, BOOL = dtypes.float64, dtypes.int64, dtypes.bool_
RNG = np.random.default_rng(7)
A = RNG.uniform(-0.9, 0.9, (2, 3))       # inside every math function's domain
B = RNG.uniform(0.1, 2.0, (2, 3))
K = RNG.integers(-5, 6, (2, 3))
P = A > 0
Q = B > 1


def inp(position: int, value: np.ndarray) -> UOp:
    return UOp(O.INPUT, (), (position, value.shape, dtypes.from_numpy(value.dtype)))


x, y = inp(0, A), inp(1, B)
i, p, q = inp(0, K), inp(0, P), inp(1, Q)
MATH = {O.SIN: np.sin, O.COS: np.cos, O.TAN: np.tan, O.EXP: np.exp, O.LOG: np.log,
        O.SQRT: np.sqrt, O.TANH: np.tanh, O.SINH: np.sinh, O.COSH: np.cosh, O.ASIN: np.arcsin,
        O.ACOS: np.arccos, O.ATAN: np.arctan, O.LOG1P: np.log1p, O.EXPM1: np.expm1,
        O.ERF: special.erf, O.ERFC: special.erfc, O.FLOOR: np.floor, O.CEIL: np.ceil,
        O.TRUNC: np.trunc, O.RINT: np.rint}
BINARY = {O.ADD: np.add, O.SUB: np.subtract, O.MUL: np.multiply, O.DIV: np.divide,
          O.MAX: np.maximum, O.MIN: np.minimum, O.POW: np.power, O.ATAN2: np.arctan2,
          O.MOD: np.mod,
          O.CMPLT: np.less, O.CMPLE: np.less_equal, O.CMPEQ: np.equal, O.CMPNE: np.not_equal}
LOGIC = {O.AND: np.logical_and, O.OR: np.logical_or, O.XOR: np.logical_xor}

# (op, output node, inputs, the independently computed NumPy value)
CASES = [
    *[(op, UOp(op, (x,)), [A], fn(np.abs(A) if op in (O.LOG, O.SQRT) else A))
      for op, fn in MATH.items() if op not in (O.LOG, O.SQRT)],
    (O.LOG, UOp(O.LOG, (y,)), [A, B], np.log(B)),
    (O.SQRT, UOp(O.SQRT, (y,)), [A, B], np.sqrt(B)),
    *[(op, UOp(op, (x, y)), [A, B], fn(A, B)) for op, fn in BINARY.items() if op is not O.POW],
    (O.POW, UOp(O.POW, (y, x)), [A, B], B ** A),          # a positive base
    *[(op, UOp(op, (i, i)), [K], fn(K, K)) for op, fn in BINARY.items()
      if op not in (O.DIV, O.POW, O.ATAN2, O.MOD)],
    (O.MOD, UOp(O.MOD, (i, i)), [K], np.zeros_like(K)),    # x mod x, and NumPy's 0 mod 0
    *[(op, UOp(op, (p, q)), [P, Q], fn(P, Q)) for op, fn in LOGIC.items()],
    (O.NOT, UOp(O.NOT, (p,)), [P], ~P),
    (O.NEG, UOp(O.NEG, (i,)), [K], -K),
    (O.ABS, UOp(O.ABS, (i,)), [K], np.abs(K)),
    (O.WHERE, UOp(O.WHERE, (inp(2, Q), x, y)), [A, B, Q], np.where(Q, A, B)),
    (O.CAST, UOp(O.CAST, (x,), I64), [A], A.astype(np.int64)),
    (O.CAST, UOp(O.CAST, (i,), dtypes.float32), [K], K.astype(np.float32)),
    (O.CAST, UOp(O.CAST, (x,), BOOL), [A], A != 0),
    (O.CONST, UOp(O.ADD, (x, UOp(O.EXPAND, (UOp(O.RESHAPE, (O.const(2.5),), (1, 1)),),
                                  (2, 3)))), [A], A + 2.5),
    (O.CONST_ARRAY, UOp(O.MUL, (x, const_array(B))), [A], A * B),
    (O.IOTA, UOp(O.MUL, (UOp(O.IOTA, (), ((2, 3, 4), 1)),) * 2), [],
     np.broadcast_to(np.arange(3)[:, None] ** 2, (2, 3, 4))),
    (O.INPUT, x, [A], A),
    (O.RESHAPE, UOp(O.RESHAPE, (x,), (3, 1, 2)), [A], A.reshape(3, 1, 2)),
    (O.PERMUTE, UOp(O.PERMUTE, (UOp(O.RESHAPE, (x,), (1, 2, 3)),), (2, 0, 1)), [A],
     A.reshape(1, 2, 3).transpose(2, 0, 1)),
    (O.EXPAND, UOp(O.EXPAND, (UOp(O.RESHAPE, (x,), (2, 1, 3)),), (2, 4, 3)), [A],
     np.repeat(A[:, None, :], 4, axis=1)),
    (O.SLICE, UOp(O.SLICE, (x,), ((1, -1, 2), (2, -2, 2))), [A], A[1::-1, 2::-2]),
    (O.SLICE, UOp(O.SLICE, (x,), ((0, 1, 0), (1, 1, 2))), [A], A[:0, 1:3]),
    (O.PAD, UOp(O.PAD, (x,), ((1, 0), (2, 3))), [A],
     np.concatenate([np.zeros((1, 8)), np.hstack([np.zeros((2, 2)), A, np.zeros((2, 3))])])),
    (O.CONCAT, UOp(O.CONCAT, (x, y, x), 1), [A, B], np.hstack([A, B, A])),
    (O.PICK, UOp(O.PICK, (x,), 1), [A], A[1]),
    (O.PICK, UOp(O.PICK, (UOp(O.PICK, (x,), 0),), 2), [A], A[0, 2]),
    (O.STACK, UOp(O.STACK, (x, y, x)), [A, B], np.stack([A, B, A])),
    (O.STACK, UOp(O.STACK, tuple(UOp(O.PICK, (UOp(O.PICK, (y,), 1),), k) for k in (2, 0))),
     [A, B], np.array([B[1, 2], B[1, 0]])),
    (O.GATHER, UOp(O.GATHER, (x,), gather_arg(1, np.array([[2, 0], [1, 1]]))), [A],
     np.stack([A[:, [2, 0]], A[:, [1, 1]]], axis=1)),
    (O.REDUCE_SUM, UOp(O.REDUCE_SUM, (i,), (0, 1)), [K], np.array(K.sum())),
    (O.REDUCE_PROD, UOp(O.REDUCE_PROD, (i,), (1,)), [K], K.prod(axis=1)),
    (O.REDUCE_MAX, UOp(O.REDUCE_MAX, (x,), (0,)), [A], A.max(axis=0)),
    (O.REDUCE_MIN, UOp(O.REDUCE_MIN, (x,), (1,)), [A], A.min(axis=1)),
    (O.CONTRACT, UOp(O.CONTRACT, (i, UOp(O.PERMUTE, (i,), (1, 0))), ((1,), (0,), (), ())),
     [K], K @ K.T),
]


def _scan_reference(init, xs):
    """c = c * x_i + i over the rows x_i of xs, each y_i the carry before the update."""
    c, ys = init.copy(), []
    for k, row in enumerate(xs):
        ys.append(c.copy())
        c = c * row + k
    return c, np.array(ys)


def _scan_case():
    index = control.param(0, 0, (), I64)
    carry, row = control.param(0, 1, (3,), F64), control.param(0, 2, (3,), F64)
    step = UOp(O.ADD, (UOp(O.MUL, (carry, row)), UOp(O.EXPAND, (UOp(O.RESHAPE, (
        UOp(O.CAST, (index,), F64),), (1,)),), (3,))))
    return control.loop(index, [carry], [row], [], [step, carry],
                        [UOp(O.REDUCE_SUM, (x,), (0,))], [y], 2)


def _substitution_case():
    """Values 0..2 from compressed entries 0..3: v0 = c1; c3 -= v0; v1 = c3; c0 -= v1;
    v2 = c0 (an acyclic colouring's kind of program)."""
    tables = [np.array(t, np.int64) for t in ([1, 3, 0], [0, 1, 2], [3, 0, -1])]
    program = Program(*(Payload(t) for t in tables), 3, 4)
    x4 = UOp(O.RESHAPE, (x,), (6,))
    node = UOp(O.SUBSTITUTE, (UOp(O.SLICE, (x4,), ((1, 1, 4),)),), program)
    c = A.reshape(-1)[1:5].copy()
    v0 = c[1]
    c[3] -= v0
    v1 = c[3]
    c[0] -= v1
    return node, np.array([v0, v1, c[0]])


LOOP_FINAL, LOOP_YS = _scan_case()
SUBSTITUTION, SUBSTITUTED = _substitution_case()
CASES.append((O.SUBSTITUTE, SUBSTITUTION, [A], SUBSTITUTED))
PLACED = np.zeros(8)
PLACED[[5, 0, 7, 2, 3]] = A.ravel()[[0, 2, 3, 4, 5]]
CASES.append((O.PLACE, UOp(O.PLACE, (x,), (Payload(np.array([[5, -1, 0], [7, 2, 3]])), 8)),
              [A], PLACED))
MATRIX = np.array([[0.5, 2.0, -1.0], [3.0, 0.2, 0.4], [-1.0, 1.0, 4.0]])   # pivots needed
CASES.append((O.SOLVE, UOp(O.SOLVE, (const_array(MATRIX), UOp(O.PERMUTE, (x,), (1, 0)))), [A],
              np.linalg.solve(MATRIX, A.T)))
def _eigh_signed(a: np.ndarray) -> np.ndarray:
    """NumPy's eigh packed as EIGH's result: eigenvalues over eigenvectors, each with its
    entry of largest magnitude positive."""
    w, v = np.linalg.eigh(a)
    v = v * np.sign(v[np.argmax(np.abs(v), axis=0), np.arange(len(w))])
    return np.vstack([w, v])


SPD = MATRIX @ MATRIX.T + np.eye(3)
SPD_NOISE = SPD + np.triu(np.full((3, 3), 7.0), 1)          # cholesky reads the lower triangle
CASES += [
    (O.SLOGDET, UOp(O.SLOGDET, (const_array(np.stack([MATRIX, MATRIX[::-1]])),)), [A],
     np.stack(np.linalg.slogdet(np.stack([MATRIX, MATRIX[::-1]])), axis=-1)),
    (O.CHOLESKY, UOp(O.CHOLESKY, (const_array(SPD_NOISE),)), [A], np.linalg.cholesky(SPD)),
    (O.EIGH, UOp(O.EIGH, (const_array(SPD_NOISE),)), [A], _eigh_signed(SPD)),
    (O.TRISOLVE, UOp(O.TRISOLVE, (const_array(SPD_NOISE), UOp(O.PERMUTE, (x,), (1, 0))),
                     (True, True)), [A], np.linalg.solve(np.tril(SPD_NOISE).T, A.T)),
    (O.QR, UOp(O.QR, (UOp(O.PERMUTE, (x,), (1, 0)),)), [A], np.vstack(np.linalg.qr(A.T))),
]
CASES += [(O.LOOP, LOOP_FINAL, [A, B], _scan_reference(A.sum(0), B)[0]),
          (O.PARAM, LOOP_YS, [A, B], _scan_reference(A.sum(0), B)[1])]


def all_opdefs() -> set:
    return {v for v in vars(O).values() if isinstance(v, OpDef)}


def test_every_op_has_a_case():
    missing = all_opdefs() - {case[0] for case in CASES}
    assert not missing, f"add a case for {sorted(op.name for op in missing)}"


@pytest.mark.parametrize("op, node, inputs, expected", CASES,
                         ids=[f"{c[0].name}-{k}" for k, c in enumerate(CASES)])
def test_interpreter_and_compiled_graph(op, node, inputs, expected):
    expected = np.asarray(expected)
    (value,) = evaluate([node], inputs)
    # linear algebra: in another order than LAPACK's, a few roundings apart
    tol = ULP64 if op in MATH or op in (O.POW, O.ATAN2, O.SOLVE, O.SLOGDET, O.CHOLESKY,
                                          O.TRISOLVE, O.EIGH, O.QR) else None
    assert_matches(value, expected.astype(node.dtype.np), tol, "interpreter vs NumPy")
    inputs = inputs or [np.zeros(())]        # a function takes at least one argument
    fn = av.NumericalFunction.from_graph("g", [av.Arg(v.shape, v.dtype) for v in inputs], [node],
                                         False)
    check_function(fn, inputs, [expected.astype(node.dtype.np)], tol)


@pytest.mark.parametrize("node", [O.const(2.5), UOp(O.IOTA, (), ((2, 3), 1))],
                         ids=["const", "iota"])
def test_source_node_as_output(node):
    fn = av.NumericalFunction.from_graph("g", [av.Arg(())], [node], False)
    check_function(fn, [np.zeros(())], evaluate([node], []))


def test_pad_of_a_scalar():
    s = inp(0, np.array(1.5))
    (value,) = evaluate([UOp(O.PAD, (s,), ())], [np.array(1.5)])
    assert value == 1.5


# ---- contraction (dot_general) -------------------------------------------------------------------
@st.composite
def contractions(draw):
    """Two operands and a dot_general argument with batch, contracted and free axes in any
    order on each side."""
    sizes = {kind: [draw(st.integers(0 if kind == "c" else 1, 3))
                    for _ in range(draw(st.integers(0, 2)))]
             for kind in ("b", "c", "fa", "fb")}
    left = [("b", k) for k in range(len(sizes["b"]))] + [("c", k) for k in range(len(
        sizes["c"]))] + [("fa", k) for k in range(len(sizes["fa"]))]
    right = [("b", k) for k in range(len(sizes["b"]))] + [("c", k) for k in range(len(
        sizes["c"]))] + [("fb", k) for k in range(len(sizes["fb"]))]
    left, right = draw(st.permutations(left)), draw(st.permutations(right))
    ints = st.integers(-4, 4)
    a = draw(arrays(tuple(sizes[kind][k] for kind, k in left), np.float64, elements=ints))
    b = draw(arrays(tuple(sizes[kind][k] for kind, k in right), np.float64, elements=ints))
    axes = {side: {item: n for n, item in enumerate(order)}
            for side, order in (("l", left), ("r", right))}
    arg = tuple(tuple(axes[side][(kind, k)] for k in range(len(sizes[kind])))
                for side, kind in (("l", "c"), ("r", "c"), ("l", "b"), ("r", "b")))
    # dot_general lists each side's free axes in increasing order.
    free_a = sorted(axes["l"][("fa", k)] for k in range(len(sizes["fa"])))
    free_b = sorted(axes["r"][("fb", k)] for k in range(len(sizes["fb"])))
    return a, b, arg, free_a, free_b


def dot_general(a, b, arg, free_a, free_b):
    """dot_general by transposes and one batched matmul (independent of the interpreter's
    einsum): batch axes, then a's free axes, then b's."""
    lc, rc, lb, rb = arg
    batch = [a.shape[k] for k in lb]
    fa, fb = [a.shape[k] for k in free_a], [b.shape[k] for k in free_b]
    k = int(np.prod([a.shape[j] for j in lc]))
    a2 = a.transpose(list(lb) + free_a + list(lc)).reshape(
        int(np.prod(batch)), int(np.prod(fa)), k)
    b2 = b.transpose(list(rb) + list(rc) + free_b).reshape(
        int(np.prod(batch)), k, int(np.prod(fb)))
    return (a2 @ b2).reshape(batch + fa + fb)


@fast(50)
@given(case=contractions())
def test_contract_is_dot_general(case):
    """Integer-valued operands: every summation order gives the exact result."""
    a, b, arg, free_a, free_b = case
    node = UOp(O.CONTRACT, (inp(0, a), inp(1, b)), arg)
    expected = dot_general(a, b, arg, free_a, free_b)
    (value,) = evaluate([node], [a, b])
    assert_matches(value, expected, None, "interpreter vs transposes and matmul")
    fn = av.NumericalFunction.from_graph("g", [av.Arg(a.shape), av.Arg(b.shape)], [node], False)
    check_function(fn, [a, b], [expected])


# ---- evaluate() ----------------------------------------------------------------------------------
def test_inputs_bind_by_position_and_convert():
    node = UOp(O.SUB, (inp(1, B), inp(0, A)))
    (value,) = evaluate([node], [A.tolist(), B.ravel()])
    np.testing.assert_array_equal(value, B - A)
    k = UOp(O.INPUT, (), (0, (3,), I64))
    (value,) = evaluate([UOp(O.ADD, (k, k))], [[1.0, 2.0, 3.0]])
    assert value.dtype == np.int64 and value.tolist() == [2, 4, 6]


def test_several_outputs_and_shared_nodes():
    s = UOp(O.SIN, (x,))
    outs = evaluate([s, UOp(O.ADD, (s, s)), s, x], [A])
    np.testing.assert_array_equal(outs[1], np.sin(A) + np.sin(A))
    assert outs[0] is not outs[2] and outs[3] is not A, "each output is a fresh array"


def test_results_do_not_alias_constants():
    table = const_array(np.arange(3.0))
    (value,) = evaluate([table], [])
    value[0] = 99.0
    assert table.arg.array[0] == 0.0


def test_deep_graphs_evaluate_without_recursion():
    node = x
    for _ in range(20_000):
        node = UOp(O.NEG, (node,))
    (value,) = evaluate([node], [A])
    np.testing.assert_array_equal(value, A)
    assert len(toposort([node])) == 20_001


def test_graph_text():
    text = graph_text([UOp(O.MUL, (x, x)), x], {x: "x"})
    assert text.splitlines() == ["%0 = input x : float64[2, 3]", "%1 = mul %0 %0 : float64[2, 3]",
                                 "return %1, %0"]


# ---- UOp construction ----------------------------------------------------------------------------
def test_nodes_are_interned():
    assert UOp(O.ADD, (x, y)) is UOp(O.ADD, (x, y))
    assert UOp(O.ADD, (x, y)) is not UOp(O.ADD, (y, x))
    assert O.const(0.0) is not O.const(-0.0), "signed zeros are different constants"
    assert O.const(1.0) is not O.const(1.0, dtypes.float32)
    assert O.const(np.nan) is O.const(float("nan")), "NaN constants compare by bits"
    assert const_array(np.arange(3.0)) is const_array(np.array([0.0, 1.0, 2.0]))
    assert const_array(np.arange(3.0)) is not const_array(np.arange(3))


def test_nodes_are_immutable():
    with pytest.raises(AttributeError):
        UOp(O.NEG, (x,)).arg = 1


@pytest.mark.parametrize("build, exception", [
    (lambda: UOp(O.ADD, (x,)), ValueError),
    (lambda: UOp(O.NEG, (x, x)), ValueError),
    (lambda: UOp(O.ADD, (x, UOp(O.RESHAPE, (x,), (3, 2)))), ValueError),
    (lambda: UOp(O.ADD, (x, UOp(O.CAST, (x,), dtypes.float32))), TypeError),
    (lambda: UOp(O.SIN, (i,)), TypeError),
    (lambda: UOp(O.DIV, (i, i)), TypeError),
    (lambda: UOp(O.AND, (x, x)), TypeError),
    (lambda: UOp(O.NOT, (x,)), TypeError),
    (lambda: UOp(O.WHERE, (x, x, x)), TypeError),
    (lambda: UOp(O.WHERE, (q, x, UOp(O.CAST, (x,), I64))), TypeError),
    (lambda: UOp(O.REDUCE_SUM, (p,), (0,)), TypeError),
    (lambda: UOp(O.REDUCE_SUM, (x,), (2,)), ValueError),
    (lambda: UOp(O.RESHAPE, (x,), (4, 2)), ValueError),
    (lambda: UOp(O.PERMUTE, (x,), (0, 0)), ValueError),
    (lambda: UOp(O.PERMUTE, (x,), (0,)), ValueError),
    (lambda: UOp(O.EXPAND, (x,), (2, 6)), ValueError),
    (lambda: UOp(O.EXPAND, (x,), (3,)), ValueError),
    (lambda: UOp(O.SLICE, (x,), ((0, 1, 3), (0, 1, 3))), ValueError),
    (lambda: UOp(O.SLICE, (x,), ((0, 0, 1), (0, 1, 3))), ValueError),
    (lambda: UOp(O.SLICE, (x,), ((0, 1, 2),)), ValueError),
    (lambda: UOp(O.PAD, (x,), ((0, -1), (0, 0))), ValueError),
    (lambda: UOp(O.PAD, (x,), ((0, 1),)), ValueError),
    (lambda: UOp(O.CONCAT, (x, UOp(O.RESHAPE, (x,), (3, 2))), 0), ValueError),
    (lambda: UOp(O.CONCAT, (x, x), 2), ValueError),
    (lambda: UOp(O.CONCAT, (x, UOp(O.CAST, (x,), I64)), 0), TypeError),
    (lambda: UOp(O.GATHER, (x,), gather_arg(1, np.array([3]))), ValueError),
    (lambda: UOp(O.GATHER, (x,), gather_arg(2, np.array([0]))), ValueError),
    (lambda: UOp(O.CONTRACT, (x, x), ((1,), (0,), (), ())), ValueError),
    (lambda: UOp(O.CONTRACT, (x, i), ((1,), (1,), (), ())), TypeError),
    (lambda: UOp(O.CONTRACT, (x, x), ((1,), (1, 0), (), ())), ValueError),
])
def test_shape_and_dtype_rules_refuse_bad_nodes(build, exception):
    with pytest.raises(exception):
        build()
