"""The hot loops of each class of array code (issue 20; scripts/bench_arrays.py) are vectorised
in the optimised IR (`fn.optimized_llvm_ir`): row normalisations, a Hessian filled without a
GEMM, a 3-D stencil gradient, a vmapped Jacobian over a batch, a batched RK4 loss gradient.

A loop is read from the module LLVM's parser gives back: the blocks from a header to a block
branching back to it. No loop doing floating-point arithmetic may stay scalar (at any vector
width: two doubles or more), but for the scalar remainders of vectorised loops, and the
transcendental functions of the hot loops must be libmvec's vector variants where this CPU has
some. Each check is seen to fail with LLVM's loop and SLP vectorisers off, and each function's
values are compared with a closed form or complex-step derivatives. (Further kernels of the
same classes: tests/backend/test_codegen.py.)

LLVM's cost model decides per CPU: the checks hold on x86-64 CPUs with AVX2 (the 3-D stencil's
with AVX-512); elsewhere they are expected to fail (xfail) where a loop stays scalar.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import llvmlite.binding as llvm
import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.backend import objectcode
from anvil_llvm.backend.target import _X86_LEVELS, Target

ARITHMETIC = frozenset({"fadd", "fsub", "fmul", "fdiv", "fneg"})
STEP = 1e-30          # complex step


def has_vector_unit(target: Target) -> bool:
    """Whether every CPU of the target's architecture holds two doubles in a register: SSE2 is
    part of x86-64, Advanced SIMD of AArch64."""
    return target.triple.split("-")[0] in ("x86_64", "aarch64", "arm64")


def cpu_features(target: Target) -> set[str]:
    """The features of the target's CPU: those it lists, or those of its x86-64 level."""
    if target.features:
        return {f[1:] for f in target.features.split(",") if f.startswith("+")}
    return set(_X86_LEVELS.get(target.cpu, ()))


pytestmark = pytest.mark.skipif(not has_vector_unit(Target.jit()),
                                reason="no vector unit for doubles on every CPU of this "
                                       "architecture")


# ---- reading the optimised IR ----------------------------------------------------------------
@dataclass(frozen=True)
class Loop:
    """A loop of an optimised module: its function and header, its instructions (the blocks
    from its header to the block branching back, in LLVM's layout; inner loops included), and
    whether LLVM's loop vectoriser handled it (`llvm.loop.isvectorized`: the vector loop and
    its scalar remainder)."""

    name: str
    instructions: tuple
    handled: bool


def loops(ir: str) -> list[Loop]:
    """The loops of the module `ir`, one per branch back to an earlier block."""
    metadata = dict(re.findall(r"^(![\w.]+) = (?:distinct )?(!\{.*\})$", ir, re.MULTILINE))

    def handled(terminator) -> bool:
        loop = re.search(r"!llvm\.loop (![\w.]+)", str(terminator))
        return loop is not None and any(
            '"llvm.loop.isvectorized"' in metadata.get(node, "")
            for node in re.findall(r"![\w.]+", metadata.get(loop.group(1), "")))

    found = []
    for fn in llvm.parse_assembly(ir, context=llvm.create_context()).functions:
        blocks = list(fn.blocks)
        index = {block.name: i for i, block in enumerate(blocks)}
        for i, block in enumerate(blocks):
            *_, terminator = block.instructions
            for header in terminator.operands:
                if str(header.type) == "label" and index[header.name] <= i:
                    body = blocks[index[header.name]:i + 1]
                    found.append(Loop(f"{fn.name}, {header.name}",
                                      tuple(ins for b in body for ins in b.instructions),
                                      handled(terminator)))
    return found


def lanes(instruction) -> int:
    """The doubles an instruction computes: 1 for a scalar, N for `<N x double>`."""
    vector = re.fullmatch(r"<(\d+) x double>", str(instruction.type))
    return int(vector.group(1)) if vector else 1


def arithmetic(loop: Loop) -> list:
    return [ins for ins in loop.instructions if ins.opcode in ARITHMETIC]


def scalar_loops(ir: str) -> list[str]:
    """The loops of `ir` whose floating-point arithmetic is all scalar, but for the scalar
    remainders of vectorised loops."""
    return [loop.name for loop in loops(ir) if arithmetic(loop) and not loop.handled
            and all(lanes(ins) == 1 for ins in arithmetic(loop))]


def vectorised(ir: str) -> bool:
    """Whether the loops of `ir` compute in vector registers (of any width), none left scalar."""
    return (any(lanes(ins) >= 2 for loop in loops(ir) for ins in arithmetic(loop))
            and not scalar_loops(ir))


def callees(ir: str, in_loops: bool) -> set[str]:
    """The functions called in the loops of `ir` (`in_loops`) or anywhere in it."""
    if in_loops:
        return {list(ins.operands)[-1].name for loop in loops(ir)
                for ins in loop.instructions if ins.opcode == "call"}
    return set(re.findall(r"\bcall [^@\n]*@([\w.$]+)\(", ir))


def calls_gemm(ir: str) -> bool:
    return any("gemm" in name.lower() for name in callees(ir, in_loops=False))


def vector_math(ir: str, name: str) -> bool:
    """Whether the loops of `ir` call a libmvec vector variant of `name` (`_ZGV<isa>N<lanes>v_`)."""
    return any(re.fullmatch(rf"_ZGV\w+_{name}", f) for f in callees(ir, in_loops=True))


# ---- one representative of each class, small ------------------------------------------------
@dataclass(frozen=True)
class Case:
    """`make()`: the function; `inputs()`: its arguments; `expected(*inputs)`: its value,
    independently; `math`: the transcendental functions its hot loops compute; `gemm_free`: it
    must call no GEMM; `needs`: the CPU feature LLVM needs to vectorise all its loops."""

    make: Callable[[], av.NumericalFunction]
    inputs: Callable[[], tuple]
    expected: Callable[..., np.ndarray]
    math: tuple[str, ...] = ()
    gemm_free: bool = False
    needs: str = "avx2"


ROWS, COLS = 64, 256
WEIGHTS = np.random.default_rng(30).standard_normal((ROWS, COLS))


def softmax_loss(X):
    E = np.exp(X - X.max(axis=1, keepdims=True))
    return (WEIGHTS * (E / E.sum(axis=1, keepdims=True))).sum()


def softmax_gradient(X):
    E = np.exp(X - X.max(axis=1, keepdims=True))
    S = E / E.sum(axis=1, keepdims=True)
    return S * (WEIGHTS - (WEIGHTS * S).sum(axis=1, keepdims=True))


def layer_norm_loss(X):
    D = X - X.mean(axis=1, keepdims=True)
    return (WEIGHTS * (D / np.sqrt((D * D).mean(axis=1, keepdims=True) + 1e-5))).sum()


def layer_norm_gradient(X):
    D = X - X.mean(axis=1, keepdims=True)
    s = np.sqrt((D * D).mean(axis=1, keepdims=True) + 1e-5)
    Y = D / s
    return (WEIGHTS - WEIGHTS.mean(axis=1, keepdims=True)
            - Y * (WEIGHTS * Y).mean(axis=1, keepdims=True)) / s


N = 64       # the Hessian's size


def quadratic_form(x, M):
    return x @ M @ x + np.cos(x).sum()


GRID = 16    # points per side of the 3-D grid
SHIFTS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


def interior(shift=(0, 0, 0)) -> tuple[slice, ...]:
    return tuple(slice(1 + s, GRID - 1 + s) for s in shift)


def laplacian(g):
    return sum(g[interior(s)] for s in SHIFTS) - 6 * g[interior()]


def curvature_energy(u):
    """sum sqrt(1 + L^2), L the 7-point Laplacian of the grid, plus sum(exp(u))."""
    L = laplacian(u.reshape(GRID, GRID, GRID))
    return np.sqrt(1 + L * L).sum() + np.exp(u).sum()


def curvature_gradient(u):
    g = u.reshape(GRID, GRID, GRID)
    L = laplacian(g)
    t = L / np.sqrt(1 + L * L)
    G = np.exp(g)
    for s in SHIFTS:
        G[interior(s)] += t
    G[interior()] -= 6 * t
    return G.ravel()


LINKS = np.array([0.5, 0.45, 0.4, 0.35, 0.3, 0.2, 0.1])
BATCH = 256


def planar_arm(q):
    """x, y and orientation of the end of a planar chain of revolute joints (angles q)."""
    angle, x, y = 0.0, 0.0, 0.0
    for i, length in enumerate(LINKS):
        angle = angle + q[i]
        x = x + length * np.cos(angle)
        y = y + length * np.sin(angle)
    return np.stack([x, y, angle])


def arm_jacobians(Q):
    """(batch, 3, joints) by the complex step, one joint at a time for the whole batch."""
    columns = [planar_arm((Q + 1j * STEP * e).T).imag / STEP for e in np.eye(len(LINKS))]
    return np.stack(columns, axis=-1).transpose(1, 0, 2)


POINTS, RK4_STEPS, H = 512, 5, 0.04
DATA = 0.1 * np.random.default_rng(31).standard_normal(POINTS)


def pendulum_loss(p, theta, omega):
    """sum((theta(T) - DATA)^2) after RK4 steps of theta'' = -k sin(theta) - c theta' from
    every point; p = [k, c]."""
    def slopes(a, b):
        return b, -p[0] * np.sin(a) - p[1] * b

    state = (theta, omega)
    for _ in range(RK4_STEPS):
        k1 = slopes(*state)
        k2 = slopes(*(s + H / 2 * d for s, d in zip(state, k1)))
        k3 = slopes(*(s + H / 2 * d for s, d in zip(state, k2)))
        k4 = slopes(*(s + H * d for s, d in zip(state, k3)))
        state = tuple(s + H / 6 * (a + 2 * b + 2 * c + d)
                      for s, a, b, c, d in zip(state, k1, k2, k3, k4))
    return ((state[0] - DATA) ** 2).sum()


def pendulum_gradient(p, theta, omega):
    return np.array([pendulum_loss(p + 1j * STEP * e, theta, omega).imag / STEP
                     for e in np.eye(2)])


def rows_input():
    return (np.random.default_rng(32).standard_normal((ROWS, COLS)),)


CASES = {
    "softmax": Case(
        lambda: ad.gradient(av.NumericalFunction("softmax", softmax_loss, (av.Arg((ROWS, COLS)),))),
        rows_input, softmax_gradient, math=("exp",)),
    "layer norm": Case(
        lambda: ad.gradient(av.NumericalFunction("ln", layer_norm_loss, (av.Arg((ROWS, COLS)),))),
        rows_input, layer_norm_gradient),
    "Hessian, matrix argument": Case(
        lambda: ad.hessian(av.NumericalFunction("quad", quadratic_form,
                                                (av.Arg(N), av.Arg((N, N))))),
        lambda: (np.linspace(-1.0, 1.0, N), np.random.default_rng(33).standard_normal((N, N))),
        lambda x, M: M + M.T - np.diag(np.cos(x)), gemm_free=True),   # cos: n, not n^2
    "3-D stencil gradient": Case(
        lambda: ad.gradient(av.NumericalFunction("curv", curvature_energy, (av.Arg(GRID ** 3),))),
        lambda: (0.1 * np.random.default_rng(34).standard_normal(GRID ** 3),),
        curvature_gradient, math=("exp",), needs="avx512f"),
    "vmapped arm Jacobian": Case(
        lambda: ad.vmap(ad.jacobian(av.NumericalFunction("arm", planar_arm,
                                                         (av.Arg(len(LINKS)),))),
                        axis_size=BATCH),
        lambda: (np.random.default_rng(35).uniform(-1.0, 1.0, (BATCH, len(LINKS))),),
        arm_jacobians, math=("sin", "cos")),
    "batched RK4 gradient": Case(
        lambda: ad.gradient(av.NumericalFunction(
            "rk4", pendulum_loss, (av.Arg(2), av.Arg(POINTS), av.Arg(POINTS))), 0),
        lambda: (np.array([2.0, 0.3]), *np.random.default_rng(36).uniform(-1, 1, (2, POINTS))),
        pendulum_gradient, math=("sin", "cos")),
}


def on_this_cpu(names) -> list:
    """`names` as parameters, each expected to fail where this CPU lacks what it needs: on the
    16^3 grid the 3-D stencil's gradient tests the pads of its middle axis inside a short loop
    (branches around its loads), which LLVM finds worth vectorising with AVX-512's masked loads
    only; with SSE alone a strided or gathered read keeps a loop scalar."""
    features = cpu_features(Target.jit())
    return [pytest.param(name, marks=pytest.mark.xfail(
        CASES[name].needs not in features, reason=f"LLVM vectorises it with {CASES[name].needs}"))
        for name in names]


@functools.cache
def function(name: str) -> av.NumericalFunction:
    return CASES[name].make()


@pytest.mark.parametrize("name", CASES)
def test_the_values_are_right(name):
    case = CASES[name]
    inputs = case.inputs()
    np.testing.assert_allclose(function(name)(*inputs), case.expected(*inputs), rtol=1e-11,
                               atol=1e-12)


@pytest.mark.parametrize("name", on_this_cpu(CASES))
def test_no_loop_stays_scalar(name):
    ir = function(name).optimized_llvm_ir
    assert vectorised(ir), f"{name}: scalar loops {scalar_loops(ir)}"


@pytest.mark.skipif(not Target.jit().vector_isas, reason="no libmvec variants for this CPU")
@pytest.mark.parametrize("name", on_this_cpu(n for n, case in CASES.items() if case.math))
def test_the_hot_loops_call_libmvec(name):
    ir = function(name).optimized_llvm_ir
    for math in CASES[name].math:
        assert vector_math(ir, math), f"{name}: {math} is called one element at a time"


@pytest.mark.parametrize("name", [n for n, case in CASES.items() if case.gemm_free])
def test_a_closed_form_hessian_calls_no_gemm(name):
    assert not calls_gemm(function(name).optimized_llvm_ir), \
        f"{name}: the basis seeds went through a matrix product"


@pytest.mark.parametrize("name", CASES)
def test_the_checks_fail_with_llvms_vectorisers_off(name, monkeypatch):
    """The same IR through the pipeline without loop and SLP vectorisation: no check passes.
    (Only the IR is optimised so: compiling would write scalar code to the disk cache.)"""
    monkeypatch.setattr(objectcode, "optimise",
                        functools.partial(objectcode.optimise, vectorise=False))
    ir = function(name).optimized_llvm_ir
    assert not vectorised(ir) and scalar_loops(ir)
    assert not any(vector_math(ir, math) for math in CASES[name].math)


def test_the_gemm_check_finds_a_gemm():
    """A product of two 64 x 64 arguments is a GEMM call (above blas.GEMM_WORK)."""
    f = av.NumericalFunction("mm", lambda a, b: a @ b, (av.Arg((N, N)), av.Arg((N, N))))
    assert calls_gemm(f.optimized_llvm_ir)


def test_a_compiled_function_still_shows_its_optimised_ir():
    """Compiling drops the IR text; the property lowers the function again."""
    f = av.NumericalFunction("twice", lambda x: x * 2.0, (av.Arg(1000),))
    before = f.optimized_llvm_ir
    np.testing.assert_array_equal(f(np.arange(1000.0)), np.arange(1000.0) * 2.0)
    assert f.optimized_llvm_ir == before and vectorised(before)
