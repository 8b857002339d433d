"""Crashes that only a whole process shows: JIT code loaded after the process has mapped GiBs of
other memory (relocations must not assume 32-bit distances), and the teardown of deep graphs.
Each scenario runs in subprocesses, several times, and must exit cleanly with right results."""
import os
import resource
import subprocess
import sys
import textwrap

import pytest

LOAD_AFTER_BIG_MAPPINGS = textwrap.dedent("""
    import sys
    import numpy as np
    import anvil_llvm as av
    from anvil_llvm.ad import gradient

    rng = np.random.default_rng(int(sys.argv[1]))

    def build(k):
        c = rng.standard_normal(3 + (k * 7) % 300)
        f = av.NumericalFunction(f"f{k}", lambda x: (av.exp(x * c) * av.sin(x) + c).sum(),
                                 (av.Arg(c.size),))
        return gradient(f).compile(), c

    built = [build(k) for k in range(5)]
    held = [np.empty(8 << 20) for _ in range(48)]     # 3 GiB of address space between loads
    built += [build(k) for k in range(5, 80)]
    for g, c in built:
        x = np.linspace(0.0, 1.0, c.size)
        np.testing.assert_allclose(g(x), np.exp(x * c) * (c * np.sin(x) + np.cos(x)),
                                   rtol=1e-12, atol=1e-14)
    print("ok")
""")

DEEP_CHAIN = textwrap.dedent("""
    import numpy as np
    import anvil_llvm as av
    from anvil_llvm.ad import gradient

    def chain(x):
        y = x
        for _ in range(8000):
            y = y * 1.00001 + av.tanh(y) * 1e-6
        return (y * y).sum()

    g = gradient(av.NumericalFunction("chain", chain, (av.Arg(2),))).compile()
    x = np.array([0.1, 0.2])
    y, dy = x.copy(), np.ones(2)          # the chain's elementwise derivative, by hand
    for _ in range(8000):
        y, dy = y * 1.00001 + np.tanh(y) * 1e-6, dy * (1.00001 + (1 - np.tanh(y) ** 2) * 1e-6)
    np.testing.assert_allclose(g(x), 2 * y * dy, rtol=1e-12)
    print("ok")                           # then the interpreter tears the graph down
""")


def small_stack() -> None:
    """In the child: a 1 MiB main-thread stack (8 MiB is usual), so that freeing or building a
    deep graph by deep C recursion would crash instead of passing by luck."""
    hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
    resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, hard))


def run(script: str, *args: str, cache_dir=None, preexec_fn=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    if cache_dir is None:
        env["ANVIL_LLVM_NO_CACHE"] = "1"
    else:
        env.pop("ANVIL_LLVM_NO_CACHE", None)
        env["ANVIL_LLVM_CACHE_DIR"] = str(cache_dir)
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", script, *args],
                          capture_output=True, text=True, env=env, timeout=600,
                          preexec_fn=preexec_fn)


@pytest.mark.parametrize("seed", range(3))
def test_code_loaded_after_gigabytes_of_mappings(seed):
    done = run(LOAD_AFTER_BIG_MAPPINGS, str(seed))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_code_loaded_from_disk_after_gigabytes_of_mappings(tmp_path):
    for attempt in range(2):           # compiled and written, then loaded from the disk cache
        done = run(LOAD_AFTER_BIG_MAPPINGS, "7", cache_dir=tmp_path)
        assert done.returncode == 0, (attempt, done.stderr[-2000:])
    assert any(p.suffix == ".o" for p in tmp_path.iterdir())


def test_deep_graph_teardown(tmp_path):
    for attempt in range(2):           # built and written, then loaded from the disk cache
        done = run(DEEP_CHAIN, cache_dir=tmp_path, preexec_fn=small_stack)
        assert done.returncode == 0, (attempt, done.stderr[-2000:])
        assert done.stdout.strip() == "ok"
