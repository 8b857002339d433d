"""backend/codegen.py: the LLVM module of a schedule, read back by LLVM's own parser and
verifier: the C-ABI entry point (one pointer per input, per output and the workspace), one
internal function per kernel called in order, chunks of huge scalar code kept out of the
optimiser, and each constant table once with the bytes of its array."""
from __future__ import annotations

import re

import llvmlite.binding as llvm
import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm.backend import codegen, vecmath
from anvil_llvm.backend.schedule import schedule
from anvil_llvm.ir.ops import CONST_ARRAY, GATHER
from anvil_llvm.ir.uop import toposort

C = np.linspace(0.5, 2.0, 12).reshape(3, 4)
MASK = C > 1.2
IDX = np.array([2, 0, 1, 2])     # both gather indices and an int64 constant: one table


def scalar_chain(x):
    """Over a thousand shape-() operations: split into several chunk functions."""
    s = x[0]
    for k in range(1200):
        s = s * 0.75 + x[k % 5] * x[(3 * k + 1) % 5]
    return s


GRAPHS = {
    "elementwise": (lambda x: av.sin(x) * 2.0 + x, [av.Arg((3, 4))]),
    "dtypes": (lambda x, k: (x > 0, k * 3 + 1, av.where(x > 0, x, 0.0).astype(np.float32)),
               [av.Arg((3, 4)), av.Arg(5, np.int64)]),
    "loops": (lambda x: ((av.exp(x) * x).sum(axis=1) + x[:, 0], x.sum(axis=0)),
              [av.Arg((40, 50))]),
    "reductions": (lambda x: (x.sum(axis=1), x.max(), x.sum(axis=0), x.prod(axis=1),
                              x.min(axis=0), x.mean()), [av.Arg((6, 7))]),
    "movement": (lambda x: (x.T, x[::-1, 1:], av.concatenate([x, x * 2.0], axis=1),
                            av.pad(x, ((1, 0), (2, 1))), x.reshape(4, 3)), [av.Arg((3, 4))]),
    "stencil": (lambda x: av.sin(x[2:]) - 2.0 * av.sin(x[1:-1]) + av.sin(x[:-2]),
                [av.Arg(100)]),
    "contraction": (lambda a, b, v: (a @ b, b.T @ v[:4]), [av.Arg((3, 4)), av.Arg((4, 5)),
                                                           av.Arg(6)]),
    "gemm": (lambda a, b: av.tanh(a @ b) @ b, [av.Arg((40, 40)), av.Arg((40, 40))]),
    "constants": (lambda x, k, y: (x * C + av.sin(x) * C, x[:, IDX], k * IDX,
                                   av.where(MASK, x, 0.0), y * C.astype(np.float32)),
                  [av.Arg((3, 4)), av.Arg(4, np.int64), av.Arg((3, 4), np.float32)]),
    "workspace": (lambda x: (av.exp(x @ x.T) @ x).sum(axis=1), [av.Arg((30, 30))]),
    "chunked": (lambda x: (scalar_chain(x), av.exp(x) * 2.0), [av.Arg(5)]),
}
VECTOR_MATH = [False, pytest.param(True, marks=pytest.mark.skipif(
    not vecmath.load(), reason="libmvec is not available"))]


def lowered(name: str, vector_math: bool = False, shared: int | None = None):
    """(schedule, module text, parsed and verified module) of one graph of GRAPHS, arrays of
    `shared` bytes and more referenced, not embedded."""
    fn, args = GRAPHS[name]
    f = av.NumericalFunction(name, fn, args, reroll=False)     # straight-line code
    sched = schedule(f.inputs, f.outputs)
    text = codegen.module_text(sched, "sym", vecmath.ISAS if vector_math else (), shared)
    module = llvm.parse_assembly(text)
    module.verify()
    return sched, text, module


def attributes(fn) -> set[str]:
    return {word for group in fn.attributes for word in group.decode().split()}


def decoded(constant: str) -> bytes:
    """The bytes of an `[N x i8] c"..."` global as LLVM prints it (escapes and plain chars)."""
    body = re.search(r'c"(.*)"', constant)
    if body is None:
        assert "zeroinitializer" in constant
        return b""
    return bytes(int(t[1:], 16) if t.startswith("\\") else ord(t)
                 for t in re.findall(r"\\[0-9A-Fa-f]{2}|[^\\]", body.group(1)))


@pytest.mark.parametrize("vector_math", VECTOR_MATH)
@pytest.mark.parametrize("name", GRAPHS)
def test_module_verifies_and_has_the_c_abi_entry_point(name, vector_math):
    sched, text, module = lowered(name, vector_math)
    n_in, n_out = len(sched.inputs), len(sched.outputs)
    signature = re.findall(r"^define dso_local i32 @sym\((.*)\) nounwind \{$", text, re.M)
    assert signature == [", ".join([f"ptr noalias readonly %in{i}" for i in range(n_in)]
                                   + [f"ptr noalias %out{j}" for j in range(n_out)]
                                   + ["ptr noalias %work"])]
    entry = module.get_function("sym")
    assert not entry.is_declaration and entry.linkage == llvm.Linkage.external
    assert str(entry.global_value_type) == "i32 (" + ", ".join(["ptr"] * (n_in + n_out + 1)) + ")"


@pytest.mark.parametrize("name", GRAPHS)
def test_one_internal_function_per_kernel_called_in_order(name):
    sched, _, module = lowered(name)
    kernels = [f"sym.k{k}" for k in range(len(sched.kernels))]
    defined = [f for f in module.functions if not f.is_declaration and f.name != "sym"]
    assert [f.name for f in defined] == kernels
    assert all(f.linkage == llvm.Linkage.internal for f in defined)
    assert all(str(f.global_value_type).startswith("void (") for f in defined)
    calls = re.findall(r"call void @([\w.]+)\(", str(module.get_function("sym")))
    assert calls == kernels


@pytest.mark.parametrize("name", GRAPHS)
def test_only_chunks_of_chunked_scalar_code_are_noinline_optnone(name):
    sched, _, module = lowered(name)
    chunked = codegen.is_chunked(sched)
    assert chunked == (name == "chunked")
    for k, kernel in enumerate(sched.kernels):
        words = attributes(module.get_function(f"sym.k{k}"))
        assert "nounwind" in words
        kept_out = chunked and kernel.chunk is not None
        assert ({"noinline", "optnone"} <= words) == kept_out
        assert ("optnone" in words) == kept_out


def test_a_chunked_graph_mixes_chunks_and_loop_kernels():
    sched, _, _ = lowered("chunked")
    chunks = [kernel.chunk for kernel in sched.kernels if kernel.chunk is not None]
    assert len(set(chunks)) > 1 and len(chunks) < len(sched.kernels)


@pytest.mark.parametrize("name, shared", [("constants", None), ("constants", 64),
                                          ("constants", 1), ("movement", None),
                                          ("elementwise", None)])
def test_constant_tables_appear_once_each_with_their_arrays_bytes(name, shared):
    """Each distinct array once: embedded with its bytes, or from `shared` bytes on declared
    as an external global of its size."""
    sched, text, module = lowered(name, shared=shared)
    nodes = toposort(sched.outputs)
    payloads = {n.arg for n in nodes if n.op is CONST_ARRAY} | {n.arg[1] for n in nodes
                                                                 if n.op is GATHER}
    if name == "constants":      # C twice, IDX as int32 gather indices and as an int64
        assert len(payloads) == 5    # constant, MASK, C32
    referenced = [p for p in payloads if shared is not None and p.array.nbytes >= shared]
    embedded = [p for p in payloads if p not in referenced]
    tables = [g for g in module.global_variables if re.fullmatch(r"sym\.c\d+", g.name)]
    assert len(re.findall(r"^@sym\.c\d+ = ", text, re.M)) == len(tables) == len(embedded)
    expected = sorted(np.ascontiguousarray(p.array, dtype=np.uint8 if p.array.dtype == bool
                                           else p.array.dtype).tobytes() for p in embedded)
    assert sorted(decoded(str(g)) for g in tables) == expected
    declared = [g for g in module.global_variables if g.is_declaration]
    assert len(declared) == len(set(g.name for g in declared)) == len(referenced)
    assert sorted(str(g.global_value_type) for g in declared) == sorted(
        f"[{p.array.nbytes} x i8]" for p in referenced)


def test_gemm_kernels_declare_the_blas_symbol_once():
    _, text, module = lowered("gemm")
    assert len(re.findall(r"^declare .*@anvil_dgemm\(", text, re.M)) == 1
    dgemm = module.get_function("anvil_dgemm")
    assert dgemm.is_declaration and len(list(dgemm.arguments)) == 13
    assert "anvil_sgemm" not in text


@pytest.mark.parametrize("vector_math", VECTOR_MATH)
def test_vector_functions_only_with_vector_math(vector_math):
    _, text, _ = lowered("loops", vector_math)
    assert ("_ZGV" in text) == vector_math
    assert ("vector-function-abi-variant" in text) == vector_math


W = np.linspace(0.5, 1.5, 1200).reshape(30, 40)


@pytest.mark.parametrize("fn, divides", [
    (lambda x: x.reshape(5, 30, 40) * W, False),              # merges (30, 40) of the nest
    (lambda x: x.reshape(5, 1, 30, 40).reshape(5, 30, 40) * W, False),
    (lambda x: (x.reshape(5, 30, 40) * W).reshape(5, 1200)[:, ::-1], True),   # splits
])
def test_a_reshape_that_merges_whole_axes_needs_no_division(fn, divides):
    """A nest over (5, 30, 40) reading a (5, 1200) array through a reshape combines its
    counters into the merged axis (i * 40 + j); a nest over (5, 1200) reading a (5, 30, 40)
    expression splits its counter (division)."""
    f = av.NumericalFunction("merge", fn, (av.Arg((5, 1200)),))
    x = np.random.default_rng(0).uniform(-1, 1, (5, 1200))
    np.testing.assert_array_equal(f(x), fn(x))
    assert (re.search(r"\b[us](div|rem) i64", f.llvm_ir) is not None) == divides


@pytest.mark.skipif(not vecmath.load(), reason="libmvec is not available")
def test_workspace_buffers_are_disjoint_alias_scopes_so_row_normalisations_vectorise():
    """The row maximum and the row's exponentials live in one workspace: without alias scopes
    LLVM cannot hoist the maximum out of the loop that stores the exponentials, and the loop
    stays scalar (scalar exp calls); with them the exponentials are vector calls."""
    def loss(z):
        top = z.max(axis=1, keepdims=True)
        return (av.log(av.exp(z - top).sum(axis=1)) + top[:, 0]).sum()
    g = av.ad.gradient(av.NumericalFunction("ce", loss, (av.Arg((64, 100)),)))
    text = g.lowered().ir
    assert "!alias.scope" in text and "!noalias" in text
    optimised = g.optimized_llvm_ir
    assert re.search(r"call .*@_ZGV\w+_exp", optimised), "the exponentials stay scalar"
    assert "call double @llvm.exp.f64" not in optimised
    z = np.random.default_rng(0).normal(size=(64, 100))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(g(z), e / e.sum(axis=1, keepdims=True), rtol=1e-13, atol=1e-15)


@pytest.mark.skipif(not vecmath.load(), reason="libmvec is not available")
@pytest.mark.parametrize("cpu, isas", [("generic", ()), ("x86-64-v2", ()), ("x86-64-v3", ("d",)),
                                       ("x86-64-v4", ("e", "d"))])
def test_code_calls_only_the_vector_math_its_cpu_runs(cpu, isas):
    """A libmvec variant is declared only for a CPU with its ISA: LLVM would call the AVX2 or
    AVX-512 variant from code for a CPU without it, passing the vector in other registers."""
    import dataclasses
    from anvil_llvm.backend.target import Target
    f = av.NumericalFunction("vm", lambda x: av.sin(x) * av.exp(x), (av.Arg(64),))
    target = dataclasses.replace(Target.jit(), cpu=cpu, features="")
    ir = f.lowered(target).ir
    assert {isa for isa in "ed" if f"@_ZGV{isa}N" in ir} == set(isas)


def test_a_sparse_derivative_computing_its_colours_per_position_runs_a_parallel_loop():
    """bratu2d's Jacobian has five colours: the placement's nest runs over the grid and stores
    the five products of each position through the slot table; its loads and stores are one
    access group its loops declare free of loop-carried dependences, and LLVM vectorises the
    stores (scatters). The values are the dense Jacobian's; a kernel folding a sum is never
    declared parallel (its partial sums are a dependence through memory)."""
    from anvil_llvm.ad import jacobian, spjacobian
    from anvil_llvm.benchmarks.problems import problem
    case = problem("bratu2d", 40)
    f = case.function("f")
    J = spjacobian(f)
    text = J.lowered().ir
    assert "llvm.loop.parallel_accesses" in text and "!llvm.access.group" in text
    from anvil_llvm.backend.target import Target
    if "+avx512f" in Target.jit().features.split(","):        # a CPU with vector scatters
        assert re.search(r"llvm\.masked\.scatter", J.optimized_llvm_ir), "the stores stay scalar"
    x = case.x0 + np.linspace(-0.1, 0.1, case.n)
    dense = jacobian(f)(x)
    np.testing.assert_allclose(J.csc(x).toarray(), dense, rtol=1e-13, atol=1e-13)
    g = av.ad.gradient(av.NumericalFunction("s", lambda x: (av.sin(x) * x).sum(), (av.Arg(64),)))
    assert "parallel_accesses" not in g.lowered().ir


def _vector_ops(text: str) -> int:
    """Vector floating-point arithmetic in optimised IR (any width of at least two lanes)."""
    return len(re.findall(r"= f(?:add|sub|mul|div)(?: \w+)* <\d+ x double>", text))


def test_max_and_min_reductions_are_vectorised_and_exact():
    """A full max or min folds with llvm.maximum/minimum, which LLVM vectorises (the
    elementwise ops' compare-and-select, exact to NumPy's sign of a tie of zeros, would keep the
    loop scalar); the values are NumPy's, NaN included."""
    f = av.NumericalFunction("spread", lambda x: av.stack([x.max(), x.min()]), (av.Arg(1000),))
    ir = f.optimized_llvm_ir
    assert re.search(r"@llvm\.(?:vector\.reduce\.fmaximum|maximum)\.v\d+f64", ir), "max: scalar"
    assert re.search(r"@llvm\.(?:vector\.reduce\.fminimum|minimum)\.v\d+f64", ir), "min: scalar"
    x = np.random.default_rng(2).normal(size=1000)
    np.testing.assert_array_equal(f(x), [x.max(), x.min()])
    x[123] = np.nan
    assert np.isnan(f(x)).all()


@pytest.mark.skipif(not vecmath.load(), reason="libmvec is not available")
def test_a_stencil_energy_gradient_is_vectorised():
    """Class 3 of the array benchmarks: the reverse pass of forward differences of a grid
    (pads of slices accumulated in one nest) runs in vector registers; its gradient equals the
    closed form."""
    n = 48

    def energy(u):
        g = u.reshape(n, n)
        dx, dy = g[1:, :-1] - g[:-1, :-1], g[:-1, 1:] - g[:-1, :-1]
        return av.sqrt(1.0 + dx * dx + dy * dy).sum() + av.exp(u).sum()
    grad = av.ad.gradient(av.NumericalFunction("surface", energy, (av.Arg(n * n),)))
    assert _vector_ops(grad.optimized_llvm_ir) >= 4, "the stencil's reverse pass stays scalar"
    u = np.random.default_rng(1).normal(size=n * n) * 0.3
    g = u.reshape(n, n)
    dx, dy = g[1:, :-1] - g[:-1, :-1], g[:-1, 1:] - g[:-1, :-1]
    r = np.sqrt(1 + dx * dx + dy * dy)
    expected = np.exp(g)
    expected[1:, :-1] += dx / r
    expected[:-1, 1:] += dy / r
    expected[:-1, :-1] -= (dx + dy) / r
    np.testing.assert_allclose(grad(u), expected.ravel(), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not vecmath.load(), reason="libmvec is not available")
def test_the_hessian_of_a_quadratic_form_is_one_vectorised_fill_without_gemm():
    """Class 2: the Hessian of x^T A x + sum(cos x), A a constant, is the closed form
    A + A^T - diag(cos x) filled by one vectorised loop: no BLAS call."""
    n = 64
    A = np.random.default_rng(2).normal(size=(n, n))
    f = av.NumericalFunction("q", lambda x: x @ (A @ x) + av.cos(x).sum(), (av.Arg(n),))
    H = av.ad.hessian(f)
    text = H.optimized_llvm_ir
    assert "gemm" not in text.lower(), "the identity seeds went through a matrix product"
    assert _vector_ops(text) >= 4, "the fill stays scalar"
    x = np.linspace(-1.0, 1.0, n)
    np.testing.assert_allclose(H(x), A + A.T - np.diag(np.cos(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not vecmath.load(), reason="libmvec is not available")
def test_batched_small_jacobians_are_vectorised_across_the_batch():
    """The batched-Jacobian class: vmap(jacobian) of a planar 3-link arm over 256
    configurations computes the batch in vector registers; each Jacobian equals the analytic
    one."""
    lengths = np.array([1.0, 0.8, 0.5])

    def tip(q):
        angles = q.cumsum()
        return av.stack([(lengths * av.cos(angles)).sum(), (lengths * av.sin(angles)).sum()])
    J = av.vmap(av.ad.jacobian(av.NumericalFunction("tip", tip, (av.Arg(3),))), 0, 256)
    assert _vector_ops(J.optimized_llvm_ir) >= 4, "the batch runs one configuration at a time"
    Q = np.random.default_rng(4).uniform(-1, 1, size=(256, 3))
    angles = np.cumsum(Q, axis=1)
    dx = -lengths * np.sin(angles)
    dy = lengths * np.cos(angles)
    # d tip / d q_j sums the links from j on
    expected = np.stack([np.cumsum(dx[:, ::-1], axis=1)[:, ::-1],
                         np.cumsum(dy[:, ::-1], axis=1)[:, ::-1]], axis=1)
    np.testing.assert_allclose(J(Q), expected, rtol=1e-12, atol=1e-12)
