"""The package's own linker (backend/loader.py) against LLVM's MCJIT loading the same objects,
its fallback to MCJIT, and damaged objects."""
import ctypes
import math
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm.backend import engines, loader, objectcode
from anvil_llvm.backend.target import Target

pytestmark = pytest.mark.skipif(not loader.supported(), reason="the linker is for x86-64 Linux")

# A module exercising what generated code refers to: an external function (sin), a symbol the
# process defines for JIT code (like NumPy's API table), constants in read-only data, a
# writable global, a call between functions of the module and a switch (a jump table).
SCALE = np.array([1.5, -2.0, 0.25], dtype=np.float64)
IR = textwrap.dedent("""
    @table = private unnamed_addr constant [4 x double]
        [double 1.0, double 2.5, double -3.0, double 7.0]
    @counter = internal global i64 0
    @anvil_test_scale = external global [3 x double]
    declare double @sin(double)

    define internal double @pick(i64 %k) noinline {
      switch i64 %k, label %other [i64 0, label %a
                                   i64 1, label %b
                                   i64 2, label %c
                                   i64 3, label %d
                                   i64 5, label %e]
    a: ret double 11.0
    b: ret double 13.0
    c: ret double 17.0
    d: ret double 19.0
    e: ret double 23.0
    other: ret double 29.0
    }

    define double @anvil_test_entry(double %x, i64 %k) {
      %i = and i64 %k, 3
      %tp = getelementptr [4 x double], ptr @table, i64 0, i64 %i
      %t = load double, ptr %tp
      %j = urem i64 %k, 3
      %sp = getelementptr [3 x double], ptr @anvil_test_scale, i64 0, i64 %j
      %s = load double, ptr %sp
      %y = call double @sin(double %x)
      %p = call double @pick(i64 %k)
      %n = load i64, ptr @counter
      %n1 = add i64 %n, 1
      store i64 %n1, ptr @counter
      %nf = sitofp i64 %n1 to double
      %a = fmul double %y, %t
      %b = fmul double %a, %s
      %c = fadd double %b, %p
      %d = fmul double %nf, 1.0e-3
      %r = fadd double %c, %d
      ret double %r
    }
""")
ENTRY = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_int64)


def expected(x: float, k: int, calls: int) -> float:
    picked = {0: 11.0, 1: 13.0, 2: 17.0, 3: 19.0, 5: 23.0}.get(k, 29.0)
    table = [1.0, 2.5, -3.0, 7.0][k & 3]
    return math.sin(x) * table * SCALE[k % 3] + picked + calls * 1e-3


@pytest.fixture(scope="module")
def object_code():
    loader.define("anvil_test_scale", SCALE.ctypes.data)
    code, externals, _ = objectcode.compile_module(IR, Target.jit().machine, 3)
    assert "sin" in externals and "anvil_test_scale" in externals
    return code


def test_linked_code_computes_what_mcjit_loaded_code_does(object_code):
    image = loader.Image(object_code)
    mcjit = engines._MCJIT()
    try:
        ours = ENTRY(image.symbols["anvil_test_entry"])
        theirs = ENTRY(mcjit.add(object_code).get("anvil_test_entry"))
        for calls, (x, k) in enumerate([(0.3, 0), (1.1, 1), (-2.0, 2), (0.7, 3), (4.0, 5),
                                        (0.1, 9), (2.5, 4)], 1):
            assert ours(x, k) == theirs(x, k) == expected(x, k, calls)
    finally:
        image.close()
        mcjit.close()


def test_sections_get_their_protection(object_code):
    image = loader.Image(object_code)
    try:
        rights = {}
        with open("/proc/self/maps") as maps:
            for line in maps:
                span, perms = line.split()[:2]
                start, end = (int(part, 16) for part in span.split("-"))
                if image.base <= start < image.base + image.size:
                    rights[perms[:3]] = rights.get(perms[:3], 0) + end - start
        assert rights.get("r-x", 0) > 0, rights         # code: executable, not writable
        assert rights.get("rw-", 0) > 0, rights         # the counter
        assert not any("w" in p and "x" in p for p in rights), rights
        assert sum(rights.values()) == image.size
    finally:
        image.close()


def test_a_missing_symbol_is_named():
    ir = "declare double @anvil_test_nowhere(double)\n" \
         "define double @f(double %x) {\n  %y = call double @anvil_test_nowhere(double %x)\n" \
         "  ret double %y\n}"
    code, _, _ = objectcode.compile_module(ir, Target.jit().machine, 3)
    with pytest.raises(RuntimeError, match="anvil_test_nowhere"):
        loader.Image(code)


def test_objects_it_does_not_link_are_loaded_by_llvm(object_code):
    """Position-independent code (small code model: PC-relative relocations) is not this
    linker's; engines.load hands it to MCJIT and the code runs."""
    pic = Target.object().machine
    code, _, _ = objectcode.compile_module(IR, pic, 3)
    with pytest.raises(loader.Unsupported, match="relocation type"):
        loader.Image(code)
    lease = engines.load("test-loader-pic", code, ["anvil_test_entry"])
    entry = ENTRY(lease.addresses["anvil_test_entry"])
    assert entry(0.5, 1) == expected(0.5, 1, 1)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_objects_are_refused_or_linked_never_crash(object_code, data):
    """A damaged object (truncated, bytes changed) raises Unsupported or RuntimeError, or maps
    without writing outside its mapping (the code is not run)."""
    damaged = bytearray(object_code)
    if data.draw(st.booleans()):
        damaged = damaged[:data.draw(st.integers(0, len(damaged) - 1))]
    for _ in range(data.draw(st.integers(0, 8))):
        if damaged:
            damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    try:
        loader.Image(bytes(damaged)).close()
    except (loader.Unsupported, RuntimeError):
        pass


def test_an_unpickled_function_runs_without_setting_up_llvm(tmp_path):
    """The point of the linker: a process that only runs shipped code never initialises
    LLVM's native target (~1 ms) nor creates an engine."""
    f = av.NumericalFunction("loader_shipped", lambda x: av.sin(x) * 3.0 + x[::-1],
                             (av.Arg(5),)).compile()
    blob = tmp_path / "f.pkl"
    blob.write_bytes(pickle.dumps(f))
    x = np.linspace(-1.0, 2.0, 5)
    script = textwrap.dedent(f"""
        import pickle, numpy as np
        import anvil_llvm as av
        from anvil_llvm.backend import engines, objectcode
        f = pickle.loads(open({str(blob)!r}, "rb").read())
        print(f(np.linspace(-1.0, 2.0, 5)).tolist())
        print(av.stats()["builds"], objectcode._initialised, engines._current.keys() == {{True}})
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "ANVIL_LLVM_NO_CACHE": "1"},
                         check=True).stdout.splitlines()
    np.testing.assert_allclose(eval(out[0]), np.sin(x) * 3.0 + x[::-1], rtol=1e-15, atol=1e-15)
    assert out[1] == "0 False True"


def test_thread_local_storage_is_left_to_llvm():
    ir = "@t = thread_local global double 1.5\n" \
         "define double @anvil_test_tls(double %x) {\n  %v = load double, ptr @t\n" \
         "  %y = fadd double %x, %v\n  store double %y, ptr @t\n  ret double %y\n}"
    code, _, _ = objectcode.compile_module(ir, Target.jit().machine, 3)
    with pytest.raises(loader.Unsupported, match="thread-local"):
        loader.Image(code)


def test_where_the_linker_does_not_apply_llvm_loads_everything(tmp_path):
    """Another platform (the linker not `supported`): every object goes to MCJIT and symbols
    are LLVM's to find, in a process that only unpickles (no build made LLVM search the
    process first); values against NumPy (in a subprocess: the choice is made once)."""
    big = np.linspace(1.0, 2.0, 70_000)          # a shared constant (a defined symbol)
    f = av.NumericalFunction("other", lambda x: (av.sin(x) * big).sum() + (x @ x),
                             (av.Arg(70_000),))
    blob = tmp_path / "f.pkl"
    h = av.NumericalFunction("scalar", lambda x: av.exp(x[0]) * x[1], (av.Arg(2),))
    blob.write_bytes(pickle.dumps((h.compile(), f.compile(), av.ad.gradient(f).compile())))
    script = textwrap.dedent(f"""
        import pickle
        import numpy as np
        import anvil_llvm as av
        from anvil_llvm.backend import engines, loader
        loader.supported = lambda: False
        h, f, g = pickle.loads(open({str(blob)!r}, "rb").read())
        print(float(h(np.array([0.5, 3.0]))))     # first: its code needs exp from libm
        x = np.cos(np.arange(70_000.0))
        print(float(f(x)))
        print(g(x).tolist()[:3])
        print(sorted({{e.code.native for e in engines._current.values()}}), av.stats()["builds"])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "ANVIL_LLVM_NO_CACHE": "1"},
                         check=True).stdout.splitlines()
    x = np.cos(np.arange(70_000.0))
    assert float(out[0]) == math.exp(0.5) * 3.0
    np.testing.assert_allclose(float(out[1]), (np.sin(x) * big).sum() + x @ x, rtol=1e-12)
    np.testing.assert_allclose(eval(out[2]), (np.cos(x) * big + 2 * x)[:3], rtol=1e-12)
    assert out[3] == "[False] 0"
