"""Functions pickle with their graph and object code: a process on the same host loads the code
(no LLVM run, by `anvil_llvm.stats()`), another host or version compiles the graph again, and
damaged object code is an error, never loaded."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad
from anvil_llvm.backend import cache

X = np.array([0.3, -1.2, 2.0, 0.7])


def functions():
    f = av.NumericalFunction("f", lambda x, p: (anp.sin(x) * p).sum() + anp.linalg.norm(x),
                             (av.Arg(4), av.Arg(())))
    g = ad.value_and_grad(f, argnums=(0, 1))
    h = ad.sphessian(av.NumericalFunction(
        "rosen", lambda x: ((x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum(), (av.Arg(4),)))
    v = av.NumericalFunction("v", av.vmap(lambda x: anp.cumsum(anp.exp(x))), (av.Arg((3, 4)),))
    return f, g, h, v


def results(f, g, h, v) -> list:
    value, (gx, gp) = g(X, 1.5)
    return [f(X, 1.5), value, gx, gp, h(X), v(np.stack([X, -X, 2 * X]))]


CHILD = """
import pickle, sys, numpy as np, anvil_llvm as av
sys.path.insert(0, {tests!r})
from test_pickle import results
fns = pickle.loads(sys.stdin.buffer.read())
out = results(*fns)
sys.stdout.buffer.write(pickle.dumps((out, av.stats(), fns[2].nnz, fns[2].indices)))
"""


SHIP_AGAIN = """
import pickle, sys, numpy as np, anvil_llvm as av
sys.path.insert(0, {tests!r})
from test_pickle import results
fns = pickle.loads(sys.stdin.buffer.read())
results(*fns)
sys.stdout.buffer.write(pickle.dumps((pickle.dumps(fns), av.stats())))
"""


def run_child(blob: bytes, tmp_path, script: str = CHILD) -> tuple:
    """Unpickle and call in a fresh interpreter with an empty disk cache of its own."""
    env = dict(os.environ, ANVIL_LLVM_CACHE_DIR=str(tmp_path / "child-cache"))
    done = subprocess.run([sys.executable, "-c", script.format(tests=os.path.dirname(__file__))],
                          input=blob, capture_output=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return pickle.loads(done.stdout)


def test_a_fresh_process_loads_the_object_code_and_compiles_nothing(tmp_path):
    fns = functions()
    expected = results(*fns)
    out, stats, nnz, indices = run_child(pickle.dumps(fns), tmp_path)
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(got, want)
    assert stats["builds"] == 0, stats
    assert stats["object_loads"] == 2 * len(fns)     # each function's code and entry point
    assert nnz == fns[2].nnz and np.array_equal(indices, fns[2].indices)


def test_shipped_code_ships_again_from_memory_and_is_not_written_to_disk(tmp_path):
    fns = functions()
    expected = results(*fns)
    again, stats = run_child(pickle.dumps(fns), tmp_path, SHIP_AGAIN)
    assert stats["builds"] == 0, stats
    assert not list((tmp_path / "child-cache").glob("*.o"))
    out, stats, _, _ = run_child(again, tmp_path / "second")
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(got, want)
    assert stats["builds"] == 0, stats


def test_a_function_built_here_pickles_again_without_compiling(monkeypatch):
    """The code a process built stays with it: pickling the function again (Dask pickles it
    into every task) compiles nothing, even without a disk cache to read it back from."""
    monkeypatch.setenv("ANVIL_LLVM_NO_CACHE", "1")
    f = av.NumericalFunction("pickled_often", lambda x: (anp.sin(x) * 3.0).sum() + x[0],
                             (av.Arg(4),)).compile()
    g = ad.gradient(f).compile()
    before = av.stats()["builds"]
    blobs = [pickle.dumps((f, g)) for _ in range(3)]
    assert av.stats()["builds"] == before
    again_f, again_g = pickle.loads(blobs[-1])
    assert float(again_f(X)) == float(f(X))
    np.testing.assert_allclose(float(f(X)), (np.sin(X) * 3.0).sum() + X[0], rtol=1e-14)
    np.testing.assert_array_equal(again_g(X), g(X))


def test_object_code_for_another_host_is_not_loaded_but_rebuilt(tmp_path, monkeypatch):
    fns = functions()
    expected = results(*fns)
    other = {**cache.host_record(), "features": "+some-other-cpu"}
    monkeypatch.setattr(cache, "host_record", lambda: other)
    blob = pickle.dumps(fns)
    monkeypatch.undo()
    out, stats, _, _ = run_child(blob, tmp_path)
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(got, want)
    assert stats["object_loads"] == 0 and stats["builds"] > 0, stats


def test_damaged_object_code_is_an_error():
    blob = bytearray(pickle.dumps(functions()[0]))
    at = blob.index(b"ANVILOBJ")
    blob[at + 200] ^= 0xFF
    with pytest.raises(ValueError, match="unpickling f: a damaged anvil_llvm object entry"):
        pickle.loads(bytes(blob))
    with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
        pickle.loads(pickle.dumps(functions()[0])[:-40])


def test_a_deep_graph_pickles_without_recursion():
    def chain(x):
        for _ in range(6000):
            x = x * 1.00001 + anp.sin(x) * 1e-6
        return (x * x).sum()
    g = ad.gradient(av.NumericalFunction("chain", chain, (av.Arg(2),)))
    x = np.array([0.3, -0.7])
    again = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(again(x), g(x))
    assert again.outputs == g.outputs          # the same interned nodes


def test_an_unpickled_function_differentiates_again():
    f = pickle.loads(pickle.dumps(functions()[0]))
    grad = ad.gradient(f)(X, 1.5)
    np.testing.assert_allclose(grad, 1.5 * np.cos(X) + X / np.linalg.norm(X), rtol=1e-14)


def test_a_process_pool_runs_shipped_code_without_building():
    f = functions()[0]
    points = [X * k for k in range(6)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        values = list(pool.map(f, points, [1.5] * len(points)))
        stats = pool.submit(av.stats).result()
    np.testing.assert_array_equal(values, [f(x, 1.5) for x in points])
    assert stats["builds"] == 0 and stats["object_loads"] == 2, stats


def test_a_pickle_of_another_format_is_refused():
    from anvil_llvm.function import _unpickled
    reduced = functions()[0].__reduce__()
    with pytest.raises(ValueError, match="format 99"):
        _unpickled(reduced[1][0], 99, reduced[1][2])


MAKER = """
import pickle, sys, anvil_llvm as av
sys.path.insert(0, {tests!r})
from test_pickle import functions, results
fns = functions()
sys.stdout.buffer.write(pickle.dumps((pickle.dumps(fns), results(*fns))))
"""


def test_portable_code_loads_wherever_the_same_portable_cpu_is_asked_for(tmp_path):
    """ANVIL_LLVM_CPU=generic: a process builds for the baseline x86-64 (or aarch64) CPU, so its
    pickles load in any process asking for it (a worker of a mixed cluster) with no build;
    a process building for its own CPU compiles them again. All give the same values."""
    env = dict(os.environ, ANVIL_LLVM_CACHE_DIR=str(tmp_path / "maker"), ANVIL_LLVM_CPU="generic")
    made = subprocess.run([sys.executable, "-c", MAKER.format(tests=os.path.dirname(__file__))],
                          capture_output=True, env=env, timeout=300, check=False)
    assert made.returncode == 0, made.stderr.decode()[-3000:]
    blob, expected = pickle.loads(made.stdout)
    host_expected = results(*functions())
    for portable, native in zip(expected, host_expected):
        np.testing.assert_allclose(portable, native, rtol=1e-13, atol=1e-14)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANVIL_LLVM_CPU", "generic")
        out, stats, _, _ = run_child(blob, tmp_path / "portable")
    assert stats["builds"] == 0, stats
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(got, want)
    out, stats, _, _ = run_child(blob, tmp_path / "native")
    assert stats["builds"] > 0
    for got, want in zip(out, host_expected):
        np.testing.assert_array_equal(got, want)


def test_a_portable_cpu_is_checked_against_the_host(monkeypatch):
    from anvil_llvm.backend.target import jit_cpu
    haswell = dict.fromkeys(("cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3", "avx",
                             "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe"), True)
    monkeypatch.setenv("ANVIL_LLVM_CPU", "x86-64-v4")
    with pytest.raises(ValueError, match=r"cannot run x86-64-v4 code \(it lacks avx512f, "
                                         r"avx512bw, avx512cd, avx512dq, avx512vl\)"):
        jit_cpu("x86_64-pc-linux-gnu", haswell)
    monkeypatch.setenv("ANVIL_LLVM_CPU", "x86-64-v3")
    assert jit_cpu("x86_64-pc-linux-gnu", haswell) == ("x86-64-v3", "")
    monkeypatch.setenv("ANVIL_LLVM_CPU", "pentium4")
    with pytest.raises(ValueError, match="ANVIL_LLVM_CPU: expected host or one of generic"):
        jit_cpu("x86_64-pc-linux-gnu", {})
    monkeypatch.setenv("ANVIL_LLVM_CPU", "x86-64-v3")
    with pytest.raises(ValueError, match="one of generic on aarch64"):
        jit_cpu("aarch64-unknown-linux-gnu", {})
    monkeypatch.setenv("ANVIL_LLVM_CPU", "host")
    assert jit_cpu("x86_64-pc-linux-gnu", {}) is None
