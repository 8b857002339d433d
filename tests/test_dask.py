"""Compiled functions on Dask (issue 21): `dask.array.map_blocks`, `client.map` and
`client.scatter(fn, broadcast=True)` on a `LocalCluster` of two spawned worker processes give
the local results, and the workers compile nothing: their code comes with the pickled
functions (`anvil_llvm.stats()` on every worker: `builds == 0`, `object_loads > 0`). The workers
get an empty disk cache of their own, so that the test process's cache cannot serve them."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad

N, CHUNK, DIM = 1_000_000, 250_000, 3


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    cache = tmp_path_factory.mktemp("dask-worker-cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # e.g. "Port 8787 is already in use"
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
            silence_logs=50, env={"ANVIL_LLVM_CACHE_DIR": str(cache),
                                  "OPENBLAS_NUM_THREADS": "1"})
    with cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        assert set(client.run(_cache_dir).values()) == {str(cache)}
        yield client


def _cache_dir():
    import os
    return os.environ.get("ANVIL_LLVM_CACHE_DIR")


def assert_no_worker_built(client) -> None:
    stats = client.run(av.stats)
    assert len(stats) == 2, stats
    for worker in stats.values():
        assert worker["builds"] == 0 and worker["object_loads"] > 0, stats


@pytest.fixture(scope="module")
def cost():
    return av.NumericalFunction(
        "cost", lambda x: (anp.sin(x) ** 2).sum() + anp.sqrt(1 + (x * x).sum()), (av.Arg(DIM),))


@pytest.fixture(scope="module")
def points():
    return np.random.default_rng(21).normal(size=(N, DIM))


def blocks(points):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # "Sending large graph": the points go inline
        return da.from_array(points, chunks=(CHUNK, DIM))


def compute(array):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return array.compute()


def test_map_blocks_of_a_vmapped_function_builds_nothing_on_the_workers(client, cost, points):
    batched = av.vmap(cost, 0, CHUNK)                          # a NumericalFunction
    values = compute(blocks(points).map_blocks(batched, drop_axis=1, dtype=float))
    np.testing.assert_array_equal(values, cost.map(points, threads=1))
    assert values.shape == (N,)
    assert_no_worker_built(client)


def test_map_blocks_of_a_gradient_builds_nothing_on_the_workers(client, cost, points):
    batched = av.vmap(ad.gradient(cost), 0, CHUNK)
    grads = compute(blocks(points).map_blocks(batched, dtype=float))
    np.testing.assert_array_equal(grads, ad.gradient(cost).map(points, threads=1))
    np.testing.assert_allclose(        # and the gradient is the gradient
        grads[:5], 2 * np.sin(points[:5]) * np.cos(points[:5])
        + points[:5] / np.sqrt(1 + (points[:5] ** 2).sum(1, keepdims=True)), rtol=1e-13)
    assert_no_worker_built(client)


def test_client_map_over_a_list_of_points(client, cost):
    g = ad.value_and_grad(cost)
    points = [np.array([0.1 * k, -0.2 * k, 1.0]) for k in range(40)]
    got = client.gather(client.map(g, points))
    for (value, grad), x in zip(got, points):
        want_value, want_grad = g(x)
        assert value == want_value
        np.testing.assert_array_equal(grad, want_grad)
    assert_no_worker_built(client)


def test_a_function_scattered_to_every_worker(client, cost, points):
    batched = av.vmap(ad.hessian(cost), 0, 1000)
    shipped = client.scatter(batched, broadcast=True)
    chunks = [points[i:i + 1000] for i in range(0, 8000, 1000)]
    got = client.gather(client.map(lambda fn, x: fn(x), [shipped] * len(chunks), chunks))
    for hessians, x in zip(got, chunks):
        np.testing.assert_array_equal(hessians, batched(x))
    assert hessians.shape == (1000, DIM, DIM)
    assert_no_worker_built(client)


def test_fn_map_in_a_task_gives_the_local_result(client, cost, points):
    """`fn.map` inside a task is correct; it vmaps for the task's block size there, so a size
    not compiled beforehand is built on the worker (checked last, since it builds)."""
    g = ad.gradient(cost)
    chunk = points[:30_000]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X = da.from_array(chunk, chunks=(10_000, DIM))
    got = compute(X.map_blocks(lambda b: g.map(b, threads=1), dtype=float))
    np.testing.assert_array_equal(got, g.map(chunk, threads=2))
