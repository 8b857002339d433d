"""LLVM in a helper process (backend/compiler.py): the same object code as in this process, a
process that builds many functions stops growing by the O3 pipeline's leak, and the helper's
failures (killed, bad module, forked parent) are handled."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm.ad import gradient
from anvil_llvm.backend import compiler, jit


def _module(name: str, n: int = 64) -> str:
    """A function's kernel module (optimised by the O3 pipeline), made unique by `name`."""
    f = av.NumericalFunction(name, lambda x: av.sin(x) * x + 1.5, (av.Arg(n),))
    return f.llvm_ir


@pytest.fixture
def helper_always(monkeypatch):
    monkeypatch.setenv("ANVIL_LLVM_IN_PROCESS_RUNS", "0")
    monkeypatch.setenv("ANVIL_LLVM_NO_CACHE", "1")


def test_the_helper_emits_the_object_this_process_emits(helper_always, monkeypatch):
    ir = _module("same_object")
    before = compiler.stats()["helper_builds"]
    there = jit.compile_object(ir)
    assert compiler.stats()["helper_builds"] == before + 1
    monkeypatch.setenv("ANVIL_LLVM_IN_PROCESS_RUNS", "never")
    here = jit.compile_object(ir)
    assert there == here


def test_functions_built_by_the_helper_compute_numpys_values(helper_always):
    x = np.linspace(-2.0, 3.0, 37)
    f = av.NumericalFunction("helper_value", lambda x: av.exp(x) * av.cos(x), (av.Arg(37),))
    g = gradient(lambda x: (av.exp(x) * av.cos(x)).sum(), name="helper_gradient")
    before = compiler.stats()["helper_builds"]
    np.testing.assert_allclose(f(x), np.exp(x) * np.cos(x), rtol=1e-14)
    np.testing.assert_allclose(g(x), np.exp(x) * (np.cos(x) - np.sin(x)), rtol=1e-13)
    assert compiler.stats()["helper_builds"] >= before + 2


def test_a_killed_helper_is_restarted(helper_always):
    jit.compile_object(_module("before_kill"))
    helper = compiler._state["helper"]
    helper.kill()
    helper.wait()
    code, _ = jit.compile_object(_module("after_kill"))
    assert code[:4] == b"\x7fELF"
    assert compiler._state["helper"] is not helper and compiler.stats()["helper"]


def test_a_module_llvm_rejects_is_a_runtime_error_naming_it(helper_always):
    with pytest.raises(RuntimeError, match="helper process.*(error|expected)"):
        jit.compile_object("define double @broken(double %x) {\n  ret i32 %x\n}")
    assert compiler.stats()["helper"]          # the helper survives and serves the next one
    assert jit.compile_object(_module("after_error"))[0][:4] == b"\x7fELF"


def _build_in_child(queue):
    ir = _module("in_forked_child")
    queue.put((jit.compile_object(ir)[0][:4], compiler._state["helper"] is not None))


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_child_starts_its_own_helper(helper_always):
    jit.compile_object(_module("before_fork"))
    parents = compiler._state["helper"]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_build_in_child, args=(queue,))
    child.start()
    magic, had_helper = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and magic == b"\x7fELF" and had_helper
    assert compiler._state["helper"] is parents and parents.poll() is None
    assert jit.compile_object(_module("after_fork"))[0][:4] == b"\x7fELF"


def test_without_a_python_to_run_the_builds_stay_in_this_process(helper_always, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/true")          # exits without a word
    monkeypatch.setitem(compiler._state, "helper", None)
    monkeypatch.setitem(compiler._state, "unavailable", False)
    with pytest.warns(RuntimeWarning, match="could not be started"):
        code, _ = jit.compile_object(_module("without_helper"))
    assert code[:4] == b"\x7fELF" and compiler._state["unavailable"]
    assert compiler._state["helper"] is None


def test_a_frozen_application_never_starts_itself_as_the_helper(helper_always, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setitem(compiler._state, "helper", None)
    monkeypatch.setitem(compiler._state, "unavailable", False)
    started = []
    monkeypatch.setattr(compiler.subprocess, "Popen", lambda *a, **k: started.append(a))
    with pytest.warns(RuntimeWarning, match="no Python executable"):
        jit.compile_object(_module("frozen"))
    assert not started and compiler._state["unavailable"]


@pytest.mark.parametrize("value", ["lots", "-3", "1.5"])
def test_a_bad_limit_is_a_value_error_naming_the_variable(value, monkeypatch):
    monkeypatch.setenv("ANVIL_LLVM_IN_PROCESS_RUNS", value)
    with pytest.raises(ValueError, match="ANVIL_LLVM_IN_PROCESS_RUNS"):
        compiler.runs_in_process_before_helper()


_SHAPES = textwrap.dedent("""
    import json, sys
    import numpy as np
    import anvil_llvm as av
    from anvil_llvm.ad import gradient
    from anvil_llvm.backend import compiler

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    g = gradient(lambda x: (av.sin(x) * x).sum())
    for k in range(1, 61):
        g(np.linspace(0.0, 1.0, k))
    start = rss()
    for k in range(61, 261):
        x = np.linspace(0.0, 1.0, k)
        assert np.allclose(g(x), np.sin(x) + x * np.cos(x))
    print(json.dumps({"growth": rss() - start, **compiler.stats()}))
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="Linux /proc")
def test_many_shapes_stop_growing_the_process_once_the_helper_compiles():
    """200 new shapes through `gradient` (64 specialisations kept): each shape is a new O3 run,
    which leaks ~55 KB where it runs. With the helper past 50 in-process runs the process grows
    by at most half of what it grows when every run stays in it."""
    def run(limit):
        env = dict(os.environ, ANVIL_LLVM_IN_PROCESS_RUNS=limit, ANVIL_LLVM_NO_CACHE="1")
        out = subprocess.run([sys.executable, "-c", _SHAPES], env=env, capture_output=True,
                             text=True, timeout=600, check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])
    helped, alone = run("50"), run("never")
    assert helped["runs"] == 50 and helped["helper_builds"] > 0
    assert alone["runs"] >= 260 and alone["helper_builds"] == 0
    assert helped["growth"] < 0.5 * alone["growth"], (helped, alone)
