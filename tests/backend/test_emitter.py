"""backend/emitter.py: the folding of i64 index arithmetic (literals, identities, the spans of
loop counters) against Python's integers and against what LLVM computes for the instructions the
emitter writes when it cannot fold; declarations emitted once; libmvec attributes; and the text
of functions built with `Emitter` parsed, verified and run by LLVM itself."""
from __future__ import annotations

import ctypes
import functools
import itertools
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anvil_llvm.backend import vecmath
from anvil_llvm.backend.emitter import Emitter, ModuleParts

I64 = ctypes.c_int64
INTS = st.integers(-(1 << 31), 1 << 31)          # sums and products stay far from i64 overflow
NATURALS = st.integers(0, 1 << 40)
DIVISORS = (1, 2, 3, 7, 64, 1000)
ARGS = ("%a0", "%a1", "%a2", "%a3")
# doubles per vector register of each x86 ISA letter of the vector function ABI (SSE, AVX,
# AVX2, AVX-512)
VFABI_LANES = {"b": 2, "c": 4, "d": 4, "e": 8}
needs_libmvec = pytest.mark.skipif(not vecmath.load(), reason="libmvec is not available")


def is_literal(text: str) -> bool:
    return re.fullmatch(r"-?\d+", text) is not None


def parsed(text: str):
    """The module `text` as LLVM parses and verifies it."""
    module = llvm.parse_assembly(text)
    module.verify()
    return module


def i64_function(name: str, build, nargs: int, parts: ModuleParts | None = None) -> tuple:
    """`define i64 @name(i64 %a0, ...)` returning `build(e, *args)`; with its emitter."""
    e = Emitter(parts)
    result = build(e, *ARGS[:nargs])
    params = ", ".join(f"i64 {a}" for a in ARGS[:nargs])
    text = (f"{e.parts.text()}\n\ndefine i64 @{name}({params}) nounwind {{\nentry:\n"
            f"{e.body()}\n  ret i64 {result}\n}}\n")
    return text, e


@functools.lru_cache(maxsize=1)
def _engine():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    machine = llvm.Target.from_default_triple().create_target_machine()
    return llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)


def run_by_llvm(text: str, name: str, restype, *argtypes):
    """The function `name` of the module `text`, compiled by LLVM's own JIT, as a callable."""
    engine = _engine()
    engine.add_module(parsed(text))
    engine.finalize_object()
    return ctypes.CFUNCTYPE(restype, *argtypes)(engine.get_function_address(name))


_names = itertools.count()


@functools.cache
def unfolded(op: str, n: int | None = None):
    """What LLVM computes for the instruction the emitter writes for `op` on values it knows
    nothing about (function arguments), as a Python callable."""
    builds = {"add": lambda e, a, b: e.add_i(a, b), "mul": lambda e, a, b: e.mul_i(a, b),
              "div": lambda e, a: e.div_i(a, n), "rem": lambda e, a: e.rem_i(a, n),
              "clamp": lambda e, a: e.clamp_i(a, n)}
    nargs = 2 if op in ("add", "mul") else 1
    name = f"{op}{next(_names)}"
    text, _ = i64_function(name, builds[op], nargs)
    return run_by_llvm(text, name, I64, *[I64] * nargs)


# ---- folding of literals -------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(INTS, INTS)
def test_add_and_mul_of_literals_fold_to_the_integer_llvm_computes(a, b):
    e = Emitter()
    assert e.add_i(str(a), str(b)) == str(a + b) == str(unfolded("add")(a, b))
    assert e.mul_i(str(a), str(b)) == str(a * b) == str(unfolded("mul")(a, b))
    assert not e.lines


@settings(max_examples=200, deadline=None)
@given(NATURALS, st.sampled_from(DIVISORS))
def test_div_and_rem_of_literals_fold_to_the_integer_llvm_computes(a, n):
    e = Emitter()
    assert e.div_i(str(a), n) == str(a // n) == str(unfolded("div", n)(a))
    assert e.rem_i(str(a), n) == str(a % n) == str(unfolded("rem", n)(a))
    assert not e.lines


def test_div_and_rem_of_negative_literals_agree_with_the_emitted_instructions():
    e = Emitter()
    assert (e.div_i("-7", 2), e.rem_i("-7", 2)) == (str(unfolded("div", 2)(-7)),
                                                    str(unfolded("rem", 2)(-7)))


@given(st.integers(-20, 20), st.integers(1, 8))
def test_clamp_of_literals_folds_like_llvm(a, n):
    e = Emitter()
    assert e.clamp_i(str(a), n) == str(int(np.clip(a, 0, n - 1))) == str(unfolded("clamp", n)(a))


def test_clamp_of_unknown_values_in_llvm_equals_numpy_clip():
    clamp = unfolded("clamp", 5)
    values = np.arange(-4, 10)
    assert [clamp(int(v)) for v in values] == np.clip(values, 0, 4).tolist()


def test_identities_emit_nothing():
    e = Emitter()
    x = "%x"
    assert e.add_i("0", x) == e.add_i(x, "0") == x
    assert e.mul_i("1", x) == e.mul_i(x, "1") == x
    assert e.mul_i("0", x) == e.mul_i(x, "0") == "0"
    assert e.div_i(x, 1) == x and e.rem_i(x, 1) == "0"
    assert not e.lines


# ---- the spans of values with known ranges -------------------------------------------------------
@st.composite
def span(draw, low: int = -6, high: int = 30):
    lo = draw(st.integers(low, high))
    return lo, draw(st.integers(lo, high))


def check_sound(e: Emitter, result: str, arg: str, truths: dict) -> None:
    """`result` of an operation on `arg` is right for every value `arg` may hold (`truths`:
    value -> the true result): a folded literal (or i1 constant) equals every true result, `arg`
    itself each value, and a span recorded for a new value contains all the true results."""
    if result in ("true", "false"):
        assert all(t == (result == "true") for t in truths.values())
    elif is_literal(result):
        assert all(t == int(result) for t in truths.values())
    elif result == arg:
        assert all(t == v for v, t in truths.items())
    elif result in e.spans:
        lo, hi = e.spans[result]
        assert all(lo <= t <= hi for t in truths.values())


@settings(max_examples=150, deadline=None)
@given(span(), st.integers(1, 40), st.sampled_from(["div", "rem", "in_range", "less", "clamp"]))
def test_folds_decided_by_spans_hold_for_every_value_in_the_span(s, n, op):
    if op in ("div", "rem"):
        s = (abs(s[0]), abs(s[0]) + s[1] - s[0])     # udiv and urem: non-negative indices
    reference = {"div": lambda v: v // n, "rem": lambda v: v % n,
                 "in_range": lambda v: 0 <= v < n, "less": lambda v: v < n,
                 "clamp": lambda v: min(max(v, 0), n - 1)}[op]
    e = Emitter()
    e.spans["%a"] = s
    method = {"div": e.div_i, "rem": e.rem_i, "in_range": e.in_range, "less": e.less_i,
              "clamp": e.clamp_i}[op]
    result = method("%a", n)
    check_sound(e, result, "%a", {v: reference(v) for v in range(s[0], s[1] + 1)})


@settings(max_examples=150, deadline=None)
@given(span(-5, 5), span(-5, 5), st.sampled_from(["add", "mul"]))
def test_spans_of_sums_and_products_contain_every_result(sa, sb, op):
    e = Emitter()
    e.spans["%a"], e.spans["%b"] = sa, sb
    result = (e.add_i if op == "add" else e.mul_i)("%a", "%b")
    assert result in e.spans
    lo, hi = e.spans[result]
    for a, b in itertools.product(range(sa[0], sa[1] + 1), range(sb[0], sb[1] + 1)):
        assert lo <= (a + b if op == "add" else a * b) <= hi


@given(st.lists(st.tuples(st.integers(-9, 9), st.booleans()), max_size=6))
def test_offsets_follow_additions_of_literals(steps):
    e = Emitter()
    value = "%base"
    for literal, literal_first in steps:
        value = e.add_i(str(literal), value) if literal_first else e.add_i(value, str(literal))
    assert e.offset_of(value) == ("%base", sum(literal for literal, _ in steps))


# ---- flatten -------------------------------------------------------------------------------------
SHAPES = [(5,), (3, 4), (2, 1, 3), (4, 1, 1, 6)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_flatten_of_literals_is_numpys_row_major_index(shape):
    e = Emitter()
    for dims in itertools.product(*map(range, shape)):
        assert e.flatten(tuple(map(str, dims)), shape) == str(np.ravel_multi_index(dims, shape))
    assert not e.lines


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_flatten_of_unknown_values_computes_numpys_row_major_index(shape):
    name = f"flat{next(_names)}"
    text, _ = i64_function(name, lambda e, *dims: e.flatten(dims, shape), len(shape))
    flat = run_by_llvm(text, name, I64, *[I64] * len(shape))
    for dims in itertools.product(*map(range, shape)):
        assert flat(*dims) == np.ravel_multi_index(dims, shape)


# ---- declarations --------------------------------------------------------------------------------
def test_a_declaration_is_emitted_once_however_often_it_is_used():
    parts = ModuleParts()
    bodies = []
    for k in range(2):                     # two functions of one module
        e = Emitter(parts)
        x = "%x"
        for _ in range(3):
            x = e.call("double", "tanh", [("double", x)], pure=True)
        x = e.call("double", "llvm.fabs.f64", [("double", x)])
        e.call("void", "llvm.donothing", [])
        bodies.append(f"define double @f{k}(double %x) {{\nentry:\n{e.body()}\n"
                      f"  ret double {x}\n}}")
    text = parts.text() + "\n\n" + "\n\n".join(bodies)
    module = parsed(text)
    for name in ("tanh", "llvm.fabs.f64", "llvm.donothing"):
        assert len(re.findall(rf"^declare .*@{re.escape(name)}\(", text, re.M)) == 1, name
        assert module.get_function(name).is_declaration


def test_module_parts_define_keeps_the_first_text():
    parts = ModuleParts()
    parts.define("helper", "define internal i64 @helper() {\n  ret i64 1\n}")
    parts.define("helper", "define internal i64 @helper() {\n  ret i64 2\n}")
    assert parts.text().count("@helper") == 1 and "ret i64 1" in parts.text()
    parsed(parts.text())


# ---- vector math ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scalar", ["llvm.exp.f64", "llvm.pow.f64", "tanh", "sqrt"])
def test_no_vector_attribute_without_vector_math(scalar):
    parts = ModuleParts()
    assert parts.vector_attribute(scalar) == ""
    assert parts.text() == ""


@needs_libmvec
def test_no_vector_attribute_for_a_function_libmvec_lacks():
    parts = ModuleParts(vecmath.ISAS)
    assert parts.vector_attribute("llvm.sqrt.f64") == "" and parts.text() == ""


@needs_libmvec
@pytest.mark.parametrize("scalar, arity", [("llvm.exp.f64", 1), ("llvm.pow.f64", 2),
                                           ("tanh", 1), ("atan2", 2)])
def test_vector_attribute_names_libmvec_variants_of_this_process(scalar, arity):
    parts = ModuleParts(vecmath.ISAS)
    attribute = parts.vector_attribute(scalar)
    assert re.fullmatch(r"#\d+", attribute)
    assert parts.vector_attribute(scalar) == attribute          # one group, declared once
    text = parts.text()
    group = re.search(rf"^attributes {attribute} = {{ (.*) }}$", text, re.M).group(1)
    mappings = re.fullmatch(r'"vector-function-abi-variant"="(.*)"', group).group(1).split(",")
    libmvec = ctypes.CDLL("libmvec.so.1")
    module = parsed(text)
    for mapping in mappings:
        lanes, name = re.fullmatch(rf"_ZGV_LLVM_N(\d+){'v' * arity}_{re.escape(scalar)}"
                                   rf"\((_ZGV[a-z]N\d+{'v' * arity}_\w+)\)", mapping).groups()
        assert int(lanes) == VFABI_LANES[name[4]] and name.startswith(f"_ZGV{name[4]}N{lanes}")
        assert hasattr(libmvec, name), f"{name} is not in libmvec"
        assert text.count(f"declare <{lanes} x double> @{name}(") == 1
        declared = module.get_function(name)
        assert [str(a.type) for a in declared.arguments] == [f"<{lanes} x double>"] * arity
        assert f"ptr @{name}" in text       # kept alive in llvm.compiler.used


# ---- a whole function ----------------------------------------------------------------------------
@pytest.mark.parametrize("vector_math", [False, pytest.param(True, marks=needs_libmvec)])
def test_a_loop_built_with_the_emitter_verifies_and_runs_in_llvm(vector_math):
    """sum(exp(x[i]) * 2) for i < n, with an index loop whose counter has a span: the text is
    parsed and verified by LLVM and its result is NumPy's."""
    parts = ModuleParts(vecmath.ISAS if vector_math else ())
    e = Emitter(parts)
    acc, slot = e.alloca("double"), e.alloca("i64")
    e.line(f"store double 0.0, ptr {acc}")
    e.line(f"store i64 0, ptr {slot}")
    head, body, end = e.label("head"), e.label("body"), e.label("end")
    e.line(f"br label %{head}")
    e.block(head)
    i = e.op(f"load i64, ptr {slot}")
    e.line(f"br i1 {e.op(f'icmp slt i64 {i}, %n')}, label %{body}, label %{end}")
    e.block(body)
    e.spans[i] = (0, 1 << 20)
    assert e.in_range(i, 1 << 21) == "true"                # folded: nothing emitted
    address = e.op(f"getelementptr inbounds double, ptr %x, i64 {e.add_i(i, '0')}")
    value = e.call("double", "llvm.exp.f64", [("double", e.op(f"load double, ptr {address}"))])
    twice = e.op(f"fmul double {value}, 2.0")
    total = e.op(f"fadd double {e.op(f'load double, ptr {acc}')}, {twice}")
    e.line(f"store double {total}, ptr {acc}")
    e.line(f"store i64 {e.add_i(i, '1')}, ptr {slot}")
    e.line(f"br label %{head}")
    e.block(end)
    result = e.op(f"load double, ptr {acc}")
    name = f"sumexp{next(_names)}"
    text = (f"{parts.text()}\n\ndefine double @{name}(ptr %x, i64 %n) nounwind {{\n"
            f"entry:\n{e.body()}\n  ret double {result}\n}}\n")
    assert ("_ZGV" in text) == vector_math
    f = run_by_llvm(text, name, ctypes.c_double, ctypes.c_void_p, I64)
    x = np.linspace(-2.0, 1.5, 37)
    np.testing.assert_allclose(f(x.ctypes.data, x.size), np.sum(np.exp(x) * 2), rtol=1e-14)


def test_libmvec_is_predicted_as_it_loads():
    # the prediction from the C library's name and version (cheap: every cache key and pickle
    # check holds it) against actually loading libmvec and finding its functions
    assert vecmath.available() == vecmath.load()
