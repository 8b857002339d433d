"""fn.map: a function at every point of a batch, over threads, against a Python loop."""
from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import ad


def rosen(x):
    return ((x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("size", [1, 7, 100])
def test_map_equals_a_loop_of_calls(threads, size):
    g = ad.value_and_grad(av.NumericalFunction("rosen", rosen, (av.Arg(5),)))
    xs = np.random.default_rng(size).normal(size=(size, 5))
    values, grads = g.map(xs, threads=threads)
    for k, x in enumerate(xs):
        value, grad = g(x)
        assert values[k] == value
        np.testing.assert_array_equal(grads[k], grad)


def test_an_argument_of_the_function_shape_is_shared_by_every_point():
    f = av.NumericalFunction("f", lambda x, p: av.sin(x * p).sum(), (av.Arg(3), av.Arg(3)))
    xs = np.arange(12.0).reshape(4, 3)
    p = np.array([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(f.map(xs, p, threads=2), [f(x, p) for x in xs])


@pytest.mark.parametrize("args, threads, error, match", [
    ((np.ones((4, 2)),), 2, ValueError, r"argument 'x' of shape \(4, 2\) is neither a batch"),
    ((np.ones(3),), 2, ValueError, "no argument has a batch axis"),
    ((np.ones((4, 3)),), 0, ValueError, "threads must be a positive integer"),
    ((np.ones((4, 3)), np.ones(3)), 2, TypeError, "expected 1 arguments, got 2"),
], ids=["shape", "no-batch", "threads", "arity"])
def test_map_refuses_what_does_not_fit(args, threads, error, match):
    f = av.NumericalFunction("f", lambda x: x.sum(), (av.Arg(3),))
    with pytest.raises(error, match=match):
        f.map(*args, threads=threads)


def test_batches_of_different_lengths_are_refused():
    f = av.NumericalFunction("f", lambda x, y: (x * y).sum(), (av.Arg(2), av.Arg(2)))
    with pytest.raises(ValueError, match=r"differ in length \[3, 4\]"):
        f.map(np.ones((3, 2)), np.ones((4, 2)))


def test_each_thread_runs_a_function_of_its_own_whose_workspace_its_calls_reuse():
    """Two equal chunks on two threads: two vmapped functions (one workspace each, reused by
    every call), where one shared function would make the second thread allocate a new
    workspace per call; the results equal a loop of calls."""
    f = ad.gradient(av.NumericalFunction(
        "chain", lambda x: (av.sin(x * 1.5) * x).sum(), (av.Arg(2),)))
    X = np.random.default_rng(3).normal(size=(40, 2))
    first = f.map(X, threads=2)
    again = f.map(X, threads=2)
    batched = f.__dict__["_batched"]
    assert len(batched) == 2 and len({id(b) for b in batched.values()}) == 2
    tables = [b.native.__self__[1] for b in batched.values()]   # [..., busy, workspace]
    assert tables[0] is not tables[1]
    expected = np.stack([f(x) for x in X])
    np.testing.assert_allclose(first, expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(again, first)


def test_maps_from_several_threads_share_the_pool():
    """Threads of the caller each mapping over 3 threads at once (the pool's threads take
    chunks of all of them): every result equals its loop of calls."""
    f = av.NumericalFunction("shared", lambda x, p: (av.exp(x * p) - x).sum(),
                             (av.Arg(3), av.Arg(())))
    batches = [np.random.default_rng(k).normal(size=(50 + k, 3)) for k in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as callers:
        results = list(callers.map(lambda k: f.map(batches[k], float(k), threads=3), range(6)))
    for k, (xs, got) in enumerate(zip(batches, results)):
        # a vmapped exp may call libmvec where one point calls libm: the last bit differs
        np.testing.assert_allclose(got, [f(x, float(k)) for x in xs], rtol=1e-14)


def test_map_in_a_forked_child():
    """A child forked after the parent mapped over threads maps over threads of its own (the
    parent's pool is not in the child), in a subprocess: a mistake here hangs."""
    script = textwrap.dedent("""
        import os
        import numpy as np
        import anvil_llvm as av
        f = av.NumericalFunction("forked", lambda x: av.sin(x).sum(), (av.Arg(2),))
        xs = np.linspace(0.0, 1.0, 40).reshape(20, 2)
        expected = np.sin(xs).sum(axis=1)
        assert np.allclose(f.map(xs, threads=2), expected)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if np.allclose(f.map(xs, threads=2), expected) else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["0"]
