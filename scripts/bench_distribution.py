"""Distribution benchmarks (issue 21): batch evaluation of a small function and of its gradient
over many points on one thread, with `fn.map` on two threads, and on a Dask LocalCluster of two
worker processes, beside JAX's `jit(vmap(...))`; the fixed overhead per task of each; and the
time to unpickle a compiled function and call it once in a fresh process against a fresh build
of the same function there. Prints markdown tables and writes them to
docs/benchmarks/distribution.md.

    python scripts/bench_distribution.py            # the full run (docs/benchmarks/distribution.md)
    python scripts/bench_distribution.py --quick    # reduced sizes, a smoke test
    python scripts/bench_distribution.py --only unpickling --out /tmp/distribution.md

Every tool's output is checked against a reference (anvil's single-threaded result, itself
checked against NumPy) before it is timed; times are medians over interleaved rounds.
"""
import os
import pickle
import shutil
import statistics
import tempfile
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# Before NumPy: NumPy's and SciPy's OpenBLAS thread pools fight on this 2-core machine.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import benchtools as bt
import numpy as np
from benchtools import Row, Section, Tool, peers

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad

SCRIPT = str(Path(__file__).resolve())
DIM = 3
# the points travel inline in the Dask graph when they come from the client: say so once, here
warnings.filterwarnings("ignore", message=".*large graph.*")


@dataclass(frozen=True)
class Config(bt.Timing):
    points: int             # section 1: batch size
    chunk: int              # section 1: points per Dask task (and per vmapped function)
    tiny: int               # section 2: points per task when timing the fixed overhead
    tasks: int              # section 2: tiny tasks per Dask graph
    timeout: float          # seconds allowed to one fresh process of section 3
    chain: bool             # section 1: the batch of chain gradients too
    jax_block: int          # section 1: points per call of JAX's chain gradient (its memory)
    small_batch: int        # section 3: points of the vmapped functions that carry the goal


FULL = Config(rounds=7, seconds=0.2, build_rounds=1, processes=9, points=1_000_000,
              chunk=250_000, tiny=16, tasks=200, timeout=120, chain=True, jax_block=50_000,
              small_batch=1_000)
QUICK = Config(rounds=2, seconds=0.02, build_rounds=1, processes=1, points=20_000,
               chunk=5_000, tiny=16, tasks=10, timeout=60, chain=False, jax_block=1_000,
               small_batch=100)


def cost(x):
    """The small function: sum(sin(x)^2) + sqrt(1 + |x|^2) on a 3-vector."""
    return (anp.sin(x) ** 2).sum() + anp.sqrt(1 + (x * x).sum())


def cost_numpy(X):
    return (np.sin(X) ** 2).sum(1) + np.sqrt(1 + (X * X).sum(1))


def grad_numpy(X):
    return 2 * np.sin(X) * np.cos(X) + X / np.sqrt(1 + (X * X).sum(1, keepdims=True))


def chain(x):
    """A larger function: CHAIN steps of a Python loop (unrolled into the graph), then cost."""
    for _ in range(CHAIN):
        x = x * 1.00001 + anp.sin(x[::-1]) * 1e-3
    return cost(x)


CHAIN = 200


def functions(name: str = "cost", source=cost):
    """anvil's function and its gradient (one point each)."""
    f = av.NumericalFunction(name, source, (av.Arg(DIM),))
    return {"value": f, "gradient": ad.gradient(f)}


def jax_functions(source=cost):
    """JAX's `jit(vmap(...))` of the function and of its gradient. The chain's loop is a
    `lax.fori_loop`: XLA's compile of the unrolled loop's vmapped gradient grows with the steps
    beyond reason (1 s at 10 steps, 6 s at 25; at 200 steps, more than 20 GB and 20 minutes)."""
    jax, jnp = peers.jax, peers.jnp

    def f(x):
        if source is chain:
            x = jax.lax.fori_loop(0, CHAIN, lambda _, x: x * 1.00001 + jnp.sin(x[::-1]) * 1e-3,
                                  x)
        return (jnp.sin(x) ** 2).sum() + jnp.sqrt(1 + (x * x).sum())
    return {"value": jax.jit(jax.vmap(f)), "gradient": jax.jit(jax.vmap(jax.grad(f)))}


def in_blocks(fn, size: int):
    """`fn` of a batch of points applied to blocks of `size` points, its results concatenated
    into one NumPy array: the memory of one block's call, not of the whole batch's.

    >>> in_blocks(lambda X: X.sum(1), 2)(np.ones((5, 3)))
    array([3., 3., 3., 3., 3.])
    """
    def call(X):
        if len(X) <= size:
            return np.asarray(fn(X))
        return np.concatenate([np.asarray(fn(X[k:k + size])) for k in range(0, len(X), size)])
    return call


def chain_numpy(X):
    """The chain's gradient by a hand-written reverse sweep in NumPy (the reference)."""
    xs = [X]
    for _ in range(CHAIN):
        xs.append(xs[-1] * 1.00001 + np.sin(xs[-1][:, ::-1]) * 1e-3)
    g = grad_numpy(xs[-1])
    for x in reversed(xs[:-1]):
        g = g * 1.00001 + (np.cos(x[:, ::-1]) * 1e-3 * g)[:, ::-1]
    return g


class Cluster:
    """A LocalCluster of two spawned worker processes with one thread each, their disk cache
    off (the environment of this script), so that they can only load shipped code or build."""

    def __enter__(self):
        from dask.distributed import Client, LocalCluster
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.cluster = LocalCluster(
                n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                silence_logs=50, env={"ANVIL_LLVM_NO_CACHE": "1", "OPENBLAS_NUM_THREADS": "1",
                                      "ANVIL_LLVM_CACHE_DIR": tempfile.mkdtemp()})
        self.client = Client(self.cluster)
        self.client.wait_for_workers(2)
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        self.cluster.close()


def worker_builds(client) -> str:
    stats = client.run(av.stats)
    return "; ".join(f"worker {i}: builds {s['builds']}, object loads {s['object_loads']}"
                     for i, s in enumerate(stats.values()))


def persisted_evenly(client, X: np.ndarray, chunk: int):
    """`X` as a persisted Dask array of blocks of `chunk` rows, the workers holding them in
    turn (persisting lets the scheduler place them: it put three of four blocks on one worker,
    whose tasks then ran one after the other while the other worker waited). Each block is
    scattered under its own key, so the array's graph is its data, as a persisted one's."""
    import uuid

    import dask.array as da
    workers = sorted(client.scheduler_info()["workers"])
    name = f"points-{uuid.uuid4().hex}"
    starts = range(0, len(X), chunk)
    futures = {}
    for w, worker in enumerate(workers):
        futures.update(client.scatter({(name, k, 0): X[i:i + chunk] for k, i in enumerate(starts)
                                       if k % len(workers) == w}, workers=[worker]))
    sizes = tuple(min(chunk, len(X) - i) for i in starts)
    return da.Array(futures, name, (sizes, X.shape[1:]), dtype=X.dtype)


# ---- section 1: throughput -------------------------------------------------------------------
def throughput(cfg: Config) -> Section:
    import dask.array as da
    n, chunk = cfg.points, cfg.chunk
    X = np.random.default_rng(21).normal(size=(n, DIM))
    fns = functions()
    references = {"value": cost_numpy(X), "gradient": grad_numpy(X)}
    jax_fns = jax_functions() if hasattr(peers, "jax") else {}
    rows = []
    with Cluster() as client:
        client.wait_for_workers(2)
        persisted = persisted_evenly(client, X, chunk)
        small = X[:n // 10]
        persisted_small = persisted_evenly(client, small, chunk // 10)
        # (what, function, points, ..., JAX's function, JAX's block of points)
        cases = [(kind, fn, X, persisted, chunk, references[kind], jax_fns.get(kind), n)
                 for kind, fn in fns.items()]
        if cfg.chain:
            cases.append((f"gradient of a {CHAIN}-step chain", functions("chain", chain)[
                "gradient"], small, persisted_small, chunk // 10, chain_numpy(small),
                jax_functions(chain)["gradient"] if jax_fns else None, cfg.jax_block))
        for kind, fn, X, persisted, chunk, reference, jax_fn, jax_block in cases:
            n = len(X)
            expected = fn.map(X, threads=1)
            assert bt.rel_error(expected, reference) < 1e-12, kind
            batched = av.vmap(fn, 0, chunk).compile()     # what the Dask tasks run
            fn.map(X, threads=2)                         # its vmapped chunks compiled
            drop = {"drop_axis": 1} if kind == "value" else {}
            env = {"fn": fn, "X": X, "batched": batched, "da": da, "persisted": persisted,
                   "drop": drop, "chunk": chunk, "DIM": DIM,
                   "jax": in_blocks(jax_fn, jax_block) if jax_fn else bt.unavailable("jax")}
            tools = {
                "1 thread": Tool("fn.map(X, threads=1)", env, lambda e=expected: e),
                "fn.map 2 threads": Tool("fn.map(X, threads=2)", env, lambda e=expected: e),
                "Dask 2 workers, points on the workers": Tool(
                    "persisted.map_blocks(batched, dtype=float, **drop).compute()", env,
                    lambda e=expected: e),
                "Dask 2 workers, points from the client": Tool(
                    "da.from_array(X, chunks=(chunk, DIM)).map_blocks(batched, dtype=float, "
                    "**drop).compute()", env, lambda e=expected: e)}
            tools["JAX jit(vmap)"] = Tool("jax(X)", env, lambda e=expected: e)
            times = bt.side_by_side(tools, cfg.rounds, cfg.seconds)
            rate = "; ".join(f"{name}: {n / t / 1e6:.3g} M points/s" for name, t in
                             times.items() if isinstance(t, float))
            blocks = f"; JAX: `lax.fori_loop`, in blocks of {jax_block:,} points" \
                if jax_block < n else ""
            rows.append(Row(f"{kind}, {n:,} points", times.pop("1 thread"), times,
                            against=("JAX jit(vmap)",), note=rate + blocks))
        builds = worker_builds(client)
    return Section(
        f"1. Batch evaluation over {cfg.points:,} points: throughput", rows, textwrap.dedent(f"""\
        f(x) = sum(sin(x)^2) + sqrt(1 + |x|^2) on x in R^3, and its gradient, at each of
        {cfg.points:,} points; a heavier function: the gradient of f after {CHAIN} steps of
        x <- 1.00001 x + 1e-3 sin(reverse(x)) (a Python loop, unrolled into the graph), at
        {cfg.points // 10:,} points, in blocks of {cfg.chunk // 10:,}. anvil (the "anvil"
        column): `fn.map(X, threads=1)`, one call of the vmapped function.
        `fn.map(X, threads=2)`: two chunks on two threads (the vmapped functions for
        those chunk sizes compiled beforehand). Dask: a `LocalCluster(n_workers=2,
        processes=True, threads_per_worker=1)`, `map_blocks` of `av.vmap(fn, 0, block)` over
        blocks of {cfg.chunk:,} points, the result gathered into one NumPy array on the client;
        "points on the workers": the points sent to the workers beforehand, its blocks
        dealt to them in turn (half on each); "points from
        the client": `da.from_array(X)` each time, so the points travel in the graph. JAX:
        `jit(vmap(f))` / `jit(vmap(grad(f)))`, float64, its default threading, the output
        converted to NumPy; for the chain, its loop a `lax.fori_loop` (XLA's compile of the
        unrolled loop's vmapped gradient takes more than 20 GB) called on blocks of
        {cfg.jax_block:,} points, concatenated (peak memory under 1 GB). Ratio: anvil on one
        thread over JAX. After the run the workers
        report: {builds} (their disk cache off: all their code came with the pickles).
        The machine has 2 cores, shared with other jobs: the two-thread and two-worker figures
        cannot exceed 2x and are sensitive to that load (see the load average above)."""))


# ---- section 2: fixed overhead per task --------------------------------------------------------
def overhead(cfg: Config) -> Section:
    import dask.array as da
    tiny, tasks = cfg.tiny, cfg.tasks
    X = np.random.default_rng(7).normal(size=(tiny * tasks, DIM))
    jax_fns = jax_functions() if hasattr(peers, "jax") else {}
    rows = []
    with Cluster() as client:
        for kind, fn in functions().items():
            batched = av.vmap(fn, 0, tiny).compile()
            one = X[:tiny]
            fn.map(one, threads=1), fn.map(one, threads=2)
            many = client.persist(da.from_array(X, chunks=(tiny, DIM)))
            shipped = client.scatter(batched, broadcast=True)
            drop = {"drop_axis": 1} if kind == "value" else {}
            env = {"fn": fn, "one": one, "many": many, "batched": batched, "drop": drop,
                   "client": client, "shipped": shipped, "np": np, "call": _call,
                   "jax": jax_fns.get(kind, bt.unavailable("jax"))}
            expected = fn.map(one, threads=1)
            everything = fn.map(X, threads=1)
            tools = {
                "1 thread": Tool("fn.map(one, threads=1)", env, lambda e=expected: e),
                "fn.map 2 threads": Tool("fn.map(one, threads=2)", env, lambda e=expected: e),
                "Dask: one task, round trip": Tool(
                    "client.submit(call, shipped, one, pure=False).result()", env,
                    lambda e=expected: e),
                f"Dask: {tasks} tasks, per task": Tool(
                    "many.map_blocks(batched, dtype=float, **drop).compute()", env,
                    lambda e=everything: e)}
            tools["JAX jit(vmap)"] = Tool("np.asarray(jax(one).block_until_ready())", env,
                                          lambda e=expected: e)
            times = bt.side_by_side(tools, cfg.rounds, cfg.seconds)
            key = f"Dask: {tasks} tasks, per task"
            if isinstance(times[key], float):
                times[key] /= tasks
            rows.append(Row(f"{kind}, {tiny} points per task", times.pop("1 thread"), times,
                            against=("JAX jit(vmap)",)))
        builds = worker_builds(client)
    return Section(
        "2. Fixed overhead per task", rows, textwrap.dedent(f"""\
        The same functions on a batch of {tiny} points, where the work is negligible: what one
        task costs whatever its size. anvil: `fn.map(one, threads=1)` (argument checks and one
        native call); `fn.map(one, threads=2)` adds the hand-off of the second half to a
        thread the process keeps, and a second native call. Dask, one task: `client.submit`
        of a call of the function scattered to the workers beforehand
        (`client.scatter(fn, broadcast=True)`), waiting for its result (a round trip through
        the scheduler). Dask, {tasks} tasks: `map_blocks` over {tasks}
        persisted blocks of {tiny} points, the total time divided by {tasks} (two workers run
        them side by side). JAX: one call of `jit(vmap(f))` on {tiny} points. Workers after the
        run: {builds} (their disk cache off: `scatter(..., broadcast=True)` has one worker
        pickle the function again to copy it to the other, which ships the code it came
        with)."""))


def _call(fn, x):
    return fn(x)


# ---- section 3: unpickling against building, in fresh processes ---------------------------------
class Case(NamedTuple):
    """A row of section 3: the function (`source`, `kind`, vmapped over `size` points or
    not), whether the process has loaded (built) another function first (`warm`), whether
    anvil_llvm runs as installed or from the checkout, and whether the row carries the goal."""

    source: object
    kind: str
    size: int | None
    warm: bool = False
    installed: bool = True
    goal: bool = True


def unpickling(cfg: Config) -> Section:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp) / "cache"
        # The disk cache on, as users have it, in a directory of its own: it keeps the host CPU
        # record an earlier process of this boot wrote (`host`), and no compiled object
        # survives a process (`_forget_objects`): every build compiles.
        env = {"ANVIL_LLVM_NO_CACHE": None, "ANVIL_LLVM_CACHE_DIR": str(cache_dir)}
        bt.run_worker(SCRIPT, {"kind": "host"}, env, cfg.timeout)
        cases = [Case(cost, kind, size) for kind in ("value", "gradient")
                 for size in (None, cfg.small_batch)]
        cases += [Case(chain, "gradient", None), Case(cost, "value", None, warm=True),
                  Case(cost, "value", None, installed=False, goal=False),
                  Case(cost, "gradient", cfg.chunk, goal=False)]
        for case in cases:
            name = case.source.__name__
            fn = functions(f"{name}_{case.kind}", case.source)[case.kind]
            if case.size is not None:
                fn = av.vmap(fn, 0, case.size)
            path = Path(tmp) / f"{name}_{case.kind}_{case.size}_{case.warm}_{case.installed}.pkl"
            spec = {"blob": str(path), "function": case.kind, "size": case.size,
                    "source": name, "warm": case.warm}
            case_env = {**env, "PYTHONPATH": _installed_copy(Path(tmp))} if case.installed \
                else env
            loads, builds, rebuilt = [], [], 0
            for _ in range(cfg.processes):
                # pickled by a fresh process just before: the host record stamps the anvil_llvm
                # sources, which other work may change while this script runs
                for mode, into in (("pickle", []), ("unpickle", loads), ("build", builds)):
                    result = bt.run_worker(
                        SCRIPT, {**spec, "kind": mode},
                        case_env if case.installed or mode != "pickle" else {}, cfg.timeout)
                    _forget_objects(cache_dir)
                    into.append(result)
                if not isinstance(loads[-1], str) and loads[-1]["stats"]["builds"]:
                    loads.pop()                 # the sources changed in between: not counted
                    rebuilt += 1
            blob = path.read_bytes()
            status = _status(loads + builds, fn) if loads else \
                f"every unpickling rebuilt ({rebuilt}): the sources changed during the run?"
            what = _case_text(case)
            if status:
                rows.append(Row(what, status))
                continue
            load = statistics.median(r["seconds"] for r in loads)
            build = statistics.median(r["seconds"] for r in builds)
            warm = statistics.median(r["warm"] for r in loads + builds)
            stats = loads[0]["stats"]
            net = (f"; less one warm call ({warm * 1e3:.1f} ms of compute): "
                   f"{(load - warm) * 1e3:.1f} against {(build - warm) * 1e3:.1f} ms, "
                   f"{(build - warm) / (load - warm):.0f}x faster" if warm > 0.05 * load else "")
            rows.append(Row(
                what, load, {"fresh build": build}, against=("fresh build",),
                bound=0.1 if case.goal else None,
                note=f"pickle {len(blob):,} bytes; in the unpickling process: builds "
                     f"{stats['builds']}, object loads {stats['object_loads']}; first call "
                     f"alone {statistics.median(r['call'] for r in loads) * 1e3:.1f} ms "
                     f"after unpickling, "
                     f"{statistics.median(r['call'] for r in builds) * 1e3:.1f} ms after "
                     f"building; {build / load:.0f}x faster" + net
                     + (f"; {rebuilt} sample(s) dropped: the sources changed" if rebuilt
                        else "")))
    return Section(
        "3. Unpickle and first call in a fresh process, against a fresh build there", rows,
        textwrap.dedent(f"""\
        Each figure: median over {cfg.processes} fresh interpreters (anvil_llvm and NumPy
        imported before the clock starts), anvil_llvm installed (copied into a site-packages
        folder as pip installs it), as a worker runs it. anvil: `pickle.loads` of the function
        pickled by another fresh process just before, then its first call (on one point, or on
        a batch of the vmapped size, made before the clock starts): the object code comes with
        the pickle and is mapped by the package's own linker, no LLVM runs nor is set up. Fresh
        build: the same function traced, differentiated, vmapped and compiled from the Python
        source, then its first call. The disk cache is on, as users have it, in a directory
        that holds the host CPU record an earlier process of this boot wrote (the first
        anvil_llvm process after a reboot asks LLVM, ~0.5 ms more) and no compiled object
        (each is removed after every process: builds compile). "In a worker that has loaded
        another function": the cost per function on a live worker, the process having
        unpickled and called another function first (on the build side: built and called it),
        so that LLVM is set up already on both sides. Target: unpickling at least 10x faster
        (ratio <= 0.1). Two rows are shown without the target: in a source checkout (an
        editable install) the host record digests the package's source files, ~0.4 ms more in
        a fresh process (an installed copy stats its folder once); and a vmapped function over
        {cfg.chunk:,} points (section 1's blocks), whose first call computes for milliseconds
        and touches its output and workspace for the first time (the page faults of fresh
        memory, which the building process mostly skips: its heap holds what LLVM freed),
        whatever made the function: its note compares both sides less one warm call."""))


def _case_text(case: Case) -> str:
    """The row's `what`."""
    if case.source is chain:
        text = f"{case.kind} of a {CHAIN}-step chain (larger graph), one point"
    elif case.size is None:
        text = f"{case.kind}, one point"
    else:
        text = f"{case.kind}, vmapped over {case.size:,} points"
    if case.warm:
        text += (", in a worker that has loaded another function (against a build in one "
                 "that has built it)")
    if not case.installed:
        text += ", in a source checkout (an editable install) rather than installed"
    return text


def _installed_copy(tmp: Path) -> str:
    """A copy of the anvil_llvm package in `tmp`/site-packages (made once), as `pip install`
    puts it: its code is stamped by the folder, not by digesting the sources (cache.py)."""
    site = tmp / "site-packages"
    if not site.exists():
        shutil.copytree(Path(av.__file__).parent, site / "anvil_llvm",
                        ignore=shutil.ignore_patterns("__pycache__"))
    return os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


def _forget_objects(cache_dir: Path) -> None:
    """Remove the compiled objects (and their size record) from `cache_dir`, keeping the host
    CPU record."""
    for path in cache_dir.glob("*"):
        if path.name.endswith(".o") or path.name == "usage":
            path.unlink()


def _status(results: list, fn) -> str | None:
    for r in results:
        if isinstance(r, str):
            return r
    x = _input(fn)
    expected = fn(x)
    for r in results:
        error = bt.rel_error(r["out"], expected)
        if not error <= bt.TOLERANCE:
            return f"DISAGREE (err {error:.1e})"
    return None


def _input(fn) -> np.ndarray:
    return _points(fn.args[0].shape)


def _points(shape: tuple) -> np.ndarray:
    return np.random.default_rng(3).normal(size=shape)


def _built(spec: dict):
    source = {"cost": cost, "chain": chain}[spec["source"]]
    fn = functions(f"{spec['source']}_{spec['function']}", source)[spec["function"]]
    if spec["size"] is not None:
        fn = av.vmap(fn, 0, spec["size"])
    return fn.compile()


# the function a warm worker has loaded (or built) before the one timed
WARM_UP = {"function": "value", "size": None, "source": "chain"}


def worker_host(spec: dict) -> dict:
    from anvil_llvm.backend.target import Target
    Target.jit()
    return {}


def worker_pickle(spec: dict) -> dict:
    Path(spec["blob"]).write_bytes(pickle.dumps(_built(spec)))
    if spec["warm"]:
        Path(spec["blob"] + ".warm").write_bytes(pickle.dumps(_built(WARM_UP)))
    return {}


def worker_unpickle(spec: dict) -> dict:
    blob = Path(spec["blob"]).read_bytes()
    if spec["warm"]:
        other = pickle.loads(Path(spec["blob"] + ".warm").read_bytes())
        other(_input(other))
    return _first_call(lambda: pickle.loads(blob), spec)


def worker_build(spec: dict) -> dict:
    if spec["warm"]:
        other = _built(WARM_UP)
        other(_input(other))
    return _first_call(lambda: _built(spec), spec)


def _first_call(make, spec: dict) -> dict:
    """The seconds `make()` and the first call of what it makes take (on points made before
    the clock starts: the caller's data), that call's alone, and a second (warm) call's: the
    compute that any first call includes."""
    x = _points((DIM,) if spec["size"] is None else (spec["size"], DIM))
    start = time.perf_counter()
    fn = make()
    made = time.perf_counter()
    out = fn(x)
    done = time.perf_counter()
    fn(x)
    warm = time.perf_counter() - done
    return {"seconds": done - start, "call": done - made, "warm": warm,
            "out": np.ravel(out).tolist(), "stats": av.stats()}


SECTIONS = [throughput, overhead, unpickling]
WORKERS = {"host": worker_host, "pickle": worker_pickle, "unpickle": worker_unpickle,
           "build": worker_build}


AREA = bt.Area("distribution", "Distribution benchmarks", tuple(SECTIONS), QUICK, FULL, WORKERS,
               intro="Batch evaluation on threads and on Dask worker processes, and shipping "
                     "compiled functions by pickle. ")


if __name__ == "__main__":
    AREA.main(__doc__)
