"""The compile caches: in memory by graph (one compile for identical graphs) and on disk across
processes (files written, loaded by a second process, corrupt files rebuilt, unsafe directories
refused)."""
import json
import logging
import os
import random
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm.backend import jit


ENTRY = "anvil_entry_"     # Python entry points: one module per signature, shared


@pytest.fixture
def compiles(monkeypatch):
    """The LLVM compilations of functions so far (jit.compile_object calls) in this test; the
    entry point of a signature compiles once per process, whichever test comes first."""
    calls = []
    original = jit.compile_object

    def counting(*args, **kwargs):
        if ENTRY not in args[0]:
            calls.append(args)
        return original(*args, **kwargs)
    monkeypatch.setattr(jit, "compile_object", counting)
    return calls


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private, empty on-disk cache directory for this test."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("ANVIL_LLVM_CACHE_DIR", str(directory))
    monkeypatch.delenv("ANVIL_LLVM_NO_CACHE", raising=False)
    return directory


def fresh_function(name="cached"):
    """A function whose graph no earlier test built (a random constant), so it must compile."""
    c = random.random()
    f = av.NumericalFunction(name, lambda x: (x * c).sin() + 1.0, (av.Arg(5),))
    return f, lambda x: np.sin(x * c) + 1.0


X = np.linspace(-2.0, 2.0, 5)


def function_objects(directory) -> list:
    """The cached objects of functions (not of entry points) in `directory`."""
    return [p for p in directory.glob("*.o") if ENTRY.encode() not in p.read_bytes()]


def assert_right(f, expected):
    """`f` computes `expected` at X (to a few ulp of the sine)."""
    np.testing.assert_allclose(f(X), expected(X), rtol=1e-14, atol=1e-15)


def test_identical_graphs_compile_once(cache, compiles):
    c = random.random()
    before = set(jit._memory)
    f = av.NumericalFunction("same", lambda x: x * c + 1.0, (av.Arg(4),))
    g = av.NumericalFunction("same", lambda y: y * c + 1.0, (av.Arg(4),))
    np.testing.assert_array_equal(f(np.ones(4)), g(np.ones(4)))
    assert len(compiles) == 1
    added = [jit._memory[key] for key in set(jit._memory) - before]
    assert len([a for a in added if not any(ENTRY in name for name in a)]) == 1
    assert f.address == g.address


def test_different_graphs_compile_separately(cache, compiles):
    """Same name, different graphs: two objects in the one JIT engine, each keeping its own
    code (their symbols carry a digest of the code)."""
    f, expected_f = fresh_function()
    g, expected_g = fresh_function()
    assert_right(g, expected_g)
    assert_right(f, expected_f)
    assert len(compiles) == 2
    assert f.address != g.address


def rebuilt(f):
    """A new function of `f`'s graph, with the in-memory copy forgotten: building it must go to
    the disk cache."""
    jit._memory.pop(jit.cache_key(f.llvm_ir))
    return av.NumericalFunction.from_graph(f.name, f.args, f.outputs, False)


def test_cache_files_are_written_and_read(cache, compiles):
    f, expected = fresh_function()
    assert_right(f, expected)
    files = function_objects(cache)
    assert len(files) == 1 and files[0].stat().st_size > 0
    assert not list(cache.glob(".tmp-*")), "temporary files are renamed into place"
    assert_right(rebuilt(f), expected)
    assert len(compiles) == 1


@pytest.mark.parametrize("damage", [
    lambda data: data[:len(data) // 2],
    lambda data: b"",
    lambda data: b"XXXXXXXXX" + data[9:],
    lambda data: data + b"\0",
    lambda data: data[:-1] + bytes([data[-1] ^ 1]),
], ids=["truncated", "empty", "bad magic", "trailing byte", "last bit"])
def test_damaged_cache_files_are_rebuilt(cache, compiles, damage):
    f, expected = fresh_function()
    assert_right(f, expected)
    (entry,) = function_objects(cache)
    good = entry.read_bytes()
    entry.write_bytes(damage(good))
    assert_right(rebuilt(f), expected)
    assert len(compiles) == 2
    assert entry.read_bytes() == good, "the rebuilt entry replaces the damaged one"


def test_cache_directory_is_created_private(tmp_path, monkeypatch):
    directory = tmp_path / "a" / "b"
    monkeypatch.setenv("ANVIL_LLVM_CACHE_DIR", str(directory))
    monkeypatch.delenv("ANVIL_LLVM_NO_CACHE", raising=False)
    assert jit.cache_dir() == directory
    assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o722])
def test_directory_writable_by_others_is_refused(cache, compiles, caplog, mode):
    cache.mkdir()
    cache.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="anvil_llvm"):
        f, expected = fresh_function()
        assert_right(f, expected)
    assert any("writable by others" in r.getMessage() and str(cache) in r.getMessage()
               for r in caplog.records)
    assert not list(cache.iterdir()), "nothing may be written to an unsafe directory"


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                    reason="giving a directory to another user needs root")
def test_directory_of_another_user_is_refused(cache, compiles, caplog):
    cache.mkdir(mode=0o700)
    os.chown(cache, 12345, -1)
    with caplog.at_level(logging.WARNING, logger="anvil_llvm"):
        f, expected = fresh_function()
        assert_right(f, expected)
    assert any("another user" in r.getMessage() for r in caplog.records)
    assert not list(cache.iterdir())


def test_cache_path_that_is_a_file_still_works(tmp_path, monkeypatch, compiles):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("ANVIL_LLVM_CACHE_DIR", str(blocker))
    f, expected = fresh_function()
    assert_right(f, expected)
    assert blocker.read_text() == "not a directory"


def test_no_cache_switch(cache, monkeypatch, compiles):
    monkeypatch.setenv("ANVIL_LLVM_NO_CACHE", "1")
    f, expected = fresh_function()
    assert_right(f, expected)
    assert not cache.exists() or not list(cache.iterdir())


# ---- across processes ---------------------------------------------------------------------------
SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import anvil_llvm as av
    from anvil_llvm.backend import jit

    calls = []
    original = jit.compile_object
    jit.compile_object = lambda *a, **k: (calls.append("anvil_entry_" in a[0]),
                                          original(*a, **k))[1]
    f = av.NumericalFunction("cached", lambda x, y: ((x * y).sin() + 2.5 * x, (x @ y).exp()),
                             (av.Arg(7), av.Arg(7)))
    x, y = np.linspace(-1.0, 1.0, 7), np.linspace(0.5, 2.0, 7)
    a, b = f(x, y)
    ok = (np.allclose(a, np.sin(x * y) + 2.5 * x, rtol=1e-14, atol=0)
          and np.allclose(b, np.exp(x @ y), rtol=1e-13, atol=0))
    print(json.dumps({"compiled": calls.count(False), "entries": calls.count(True),
                      "ok": bool(ok)}))
""")


def start_process(cache_dir) -> subprocess.Popen:
    """SCRIPT in a new Python process using `cache_dir` as its cache."""
    env = dict(os.environ, ANVIL_LLVM_CACHE_DIR=str(cache_dir))
    env.pop("ANVIL_LLVM_NO_CACHE", None)
    return subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def outcome(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def run_process(cache_dir) -> dict:
    return outcome(start_process(cache_dir))


def test_processes_filling_one_cache_at_once(tmp_path):
    """Entries are published by an atomic rename: concurrent writers leave one good file."""
    cache_dir = tmp_path / "cache"
    processes = [start_process(cache_dir) for _ in range(3)]
    assert all(outcome(p)["ok"] for p in processes)
    assert len(function_objects(cache_dir)) == 1
    assert not list(cache_dir.glob(".tmp-*"))
    assert run_process(cache_dir) == {"compiled": 0, "entries": 0, "ok": True}


def test_second_process_loads_from_disk_and_a_corrupt_file_is_rebuilt(tmp_path):
    cache_dir = tmp_path / "cache"
    assert run_process(cache_dir) == {"compiled": 1, "entries": 1, "ok": True}
    (entry,) = function_objects(cache_dir)
    good = entry.read_bytes()
    assert run_process(cache_dir) == {"compiled": 0, "entries": 0, "ok": True}

    middle = len(good) // 2
    entry.write_bytes(good[:middle] + bytes(b ^ 0xFF for b in good[middle:middle + 8])
                      + good[middle + 8:])
    assert run_process(cache_dir) == {"compiled": 1, "entries": 0, "ok": True}
    assert entry.read_bytes() == good, "the rebuilt entry replaces the corrupt one"
