"""Loaded code is freed with the functions that use it: engines of at most OBJECTS_PER_ENGINE
objects are disposed once no function (and no entry point of a live function) needs them."""
import gc

import numpy as np

import anvil_llvm as av
from anvil_llvm.backend import engines


def build(k: int):
    f = av.NumericalFunction(f"e{k}", lambda x: (x * (k + 0.5)).sum(), (av.Arg(k + 1),))
    return f.compile()


def test_engines_of_dropped_functions_are_disposed():
    kept = build(0)
    count = 3 * engines.OBJECTS_PER_ENGINE
    dropped = [build(k) for k in range(1, count)]
    keys = [f.cache_key for f in dropped]
    assert all(engines.loaded(key) is not None for key in keys)
    del dropped
    gc.collect()
    # Engines that held only dropped code (and the entry points of their signatures) are gone;
    # the kept function's engine, the current one, and any with other tests' code remain.
    unloaded = sum(engines.loaded(key) is None for key in keys)
    assert unloaded >= engines.OBJECTS_PER_ENGINE
    assert float(kept(np.ones(1))) == 0.5


def test_a_function_built_again_after_its_engine_went_is_reloaded():
    fs = [build(k) for k in range(200, 200 + 2 * engines.OBJECTS_PER_ENGINE)]
    del fs
    gc.collect()
    again = build(200)
    np.testing.assert_array_equal(again(np.arange(201.0)), np.arange(201.0).sum() * 200.5)


def test_native_entry_point_keeps_its_code_alive():
    native = build(300).native
    for k in range(301, 301 + 2 * engines.OBJECTS_PER_ENGINE):
        build(k)
    gc.collect()
    assert float(native(np.full(301, 2.0))) == 2.0 * 301 * 300.5


def test_threads_building_and_dropping_functions():
    """Engines are disposed while other threads load and call code (in a subprocess: a
    mistake here is a crash, not an exception)."""
    import subprocess
    import sys
    import textwrap
    script = textwrap.dedent("""
        import gc, threading
        import numpy as np
        import anvil_llvm as av

        def work(t):
            for k in range(60):
                n = 1 + (7 * k + t) % 40
                f = av.NumericalFunction(f"t{t}_{k}", lambda x: (x * (k + 1.0)).sum(), (av.Arg(n),))
                assert float(f(np.ones(n))) == n * (k + 1.0)
                if k % 7 == 0:
                    gc.collect()

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
