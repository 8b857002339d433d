"""The compile caches: in memory by graph (one compile for identical graphs) and on disk across
processes (files written, loaded by a second process, damaged or foreign entries rebuilt, unsafe
directories and entries that are not regular files refused, failed writes cleaned up, the size
cap with least-recently-used eviction, the command line, a fresh cache for each test run)."""
import contextlib
import errno
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import cli
from anvil_llvm.backend import cache, jit

ENTRY = "anvil_entry_"     # Python entry points: one module per signature, shared
COMPILE = jit.compile_object   # the compiler itself, for entries a test places (not counted)
REPO = Path(__file__).resolve().parents[2]
GiB = 1 << 30


@pytest.fixture
def compiles(monkeypatch):
    """The LLVM compilations of functions so far (jit.compile_object calls) in this test; the
    entry point of a signature compiles once per process, whichever test comes first."""
    calls = []

    def counting(*args, **kwargs):
        if ENTRY not in args[0]:
            calls.append(args)
        return COMPILE(*args, **kwargs)
    monkeypatch.setattr(jit, "compile_object", counting)
    return calls


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private, empty on-disk cache directory for this test, with the default cap."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("ANVIL_LLVM_CACHE_DIR", str(directory))
    monkeypatch.delenv("ANVIL_LLVM_NO_CACHE", raising=False)
    monkeypatch.delenv("ANVIL_LLVM_CACHE_MAX_BYTES", raising=False)
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


def entry_path(f) -> Path:
    """Where the object of `f` is cached (in the current cache directory, made if need be)."""
    return cache.directory() / f"{f.cache_key}.o"


def entry_bytes(f, built_for=None) -> bytes:
    """A well-formed entry holding the object of `f`, built for `built_for` (default: this
    host), compiled without counting as a compilation of the test."""
    low = f.lowered()
    obj, externals = COMPILE(low.ir, low.codegen_opt)
    info = {"symbol": low.symbol, "work_bytes": low.work_bytes, "release_gil": low.release_gil}
    return cache.encode(obj, externals, cache.host_record() if built_for is None else built_for,
                        info)


def leftovers(directory) -> list:
    return list(Path(directory).glob(".tmp-*"))


def test_identical_graphs_compile_once(cache_dir, compiles):
    c = random.random()
    f = av.NumericalFunction("same", lambda x: x * c + 1.0, (av.Arg(4),))
    g = av.NumericalFunction("same", lambda y: y * c + 1.0, (av.Arg(4),))
    np.testing.assert_array_equal(f(np.ones(4)), g(np.ones(4)))
    assert len(compiles) == 1
    assert f.address == g.address


def test_different_graphs_compile_separately(cache_dir, compiles):
    """Same name, different graphs: two objects in the JIT, each keeping its own code (their
    symbols carry a digest of the code)."""
    f, expected_f = fresh_function()
    g, expected_g = fresh_function()
    assert_right(g, expected_g)
    assert_right(f, expected_f)
    assert len(compiles) == 2
    assert f.address != g.address


def test_cache_files_are_written(cache_dir, compiles):
    f, expected = fresh_function()
    assert_right(f, expected)
    files = function_objects(cache_dir)
    assert files == [entry_path(f)] and files[0].stat().st_size > 0
    assert not leftovers(cache_dir), "temporary files are renamed into place"
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700


def test_a_cached_object_is_loaded_instead_of_compiled(cache_dir, compiles):
    f, expected = fresh_function()
    entry_path(f).write_bytes(entry_bytes(f))
    assert_right(f, expected)
    assert len(compiles) == 0


@pytest.mark.parametrize("damage", [
    lambda data: data[:len(data) // 2],
    lambda data: b"",
    lambda data: b"XXXXXXXXX" + data[9:],
    lambda data: data + b"\0",
    lambda data: data[:-1] + bytes([data[-1] ^ 1]),
], ids=["truncated", "empty", "bad magic", "trailing byte", "last bit"])
def test_damaged_cache_files_are_rebuilt(cache_dir, compiles, damage):
    f, expected = fresh_function()
    entry, good = entry_path(f), entry_bytes(f)
    entry.write_bytes(damage(good))
    assert_right(f, expected)
    assert len(compiles) == 1
    assert entry.read_bytes() == good, "the rebuilt entry replaces the damaged one"


@pytest.mark.parametrize("field, value", [
    ("cpu", "some-other-cpu"), ("features", "+sse2"), ("code_model", "small"),
    ("triple", "aarch64-unknown-linux-gnu"), ("llvmlite", "0.0.1"), ("llvm", "1.0.0"),
])
def test_entries_built_for_another_host_are_not_loaded(cache_dir, compiles, field, value):
    """An entry under this host's key whose record names another target or other versions
    (copied from another machine, say) is rebuilt, never loaded."""
    f, expected = fresh_function()
    foreign = dict(cache.host_record(), **{field: value})
    assert foreign != cache.host_record()
    entry_path(f).write_bytes(entry_bytes(f, foreign))
    assert_right(f, expected)
    assert len(compiles) == 1
    assert cache.decode(entry_path(f).read_bytes()) is not None, "replaced by this host's"


class Blocked(Exception):
    """Not an OSError (as TimeoutError is), which the cache would take for a miss."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise Blocked in the block once `seconds` have passed (interrupting a blocked open)."""
    def expire(signum, frame):
        raise Blocked(f"still blocked after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def link_to_good_entry(path: Path, good: bytes) -> None:
    elsewhere = path.parent.parent / "elsewhere.o"
    elsewhere.write_bytes(good)
    path.symlink_to(elsewhere)


@pytest.mark.parametrize("make", [
    lambda path, good: os.mkfifo(path),
    lambda path, good: path.symlink_to("/dev/zero"),
    link_to_good_entry,
    lambda path, good: path.mkdir(),
], ids=["fifo", "link to /dev/zero", "link to a good entry", "directory"])
def test_entries_that_are_not_regular_files_are_misses(cache_dir, compiles, caplog, make):
    """Neither waits on a FIFO nor reads a device nor follows a link: a miss. The next write
    renames a regular file over it, except over a directory, which fails with a warning."""
    f, expected = fresh_function()
    entry, good = entry_path(f), entry_bytes(f)
    make(entry, good)
    with deadline(10), caplog.at_level(logging.WARNING, logger="anvil_llvm"):
        assert_right(f, expected)
    assert len(compiles) == 1
    assert not leftovers(cache_dir)
    if entry.is_dir() and not entry.is_symlink():
        assert any("Is a directory" in r.getMessage() for r in caplog.records)
    else:
        assert stat.S_ISREG(entry.lstat().st_mode) and entry.read_bytes() == good


def test_a_full_disk_leaves_no_temporary_file(cache_dir, compiles, caplog, monkeypatch):
    """The disk fills up halfway through writing an entry: the build goes on, a warning is
    logged and the partial temporary file is removed."""
    write = os.write

    def full_disk(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(cache_dir)):
            write(fd, data[:len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(fd, data)
    monkeypatch.setattr(os, "write", full_disk)
    f, expected = fresh_function()
    with caplog.at_level(logging.WARNING, logger="anvil_llvm"):
        assert_right(f, expected)
    monkeypatch.undo()
    assert not leftovers(cache_dir) and not entry_path(f).exists()
    assert any(os.strerror(errno.ENOSPC) in r.getMessage() for r in caplog.records)


FILE_SIZE_LIMIT = textwrap.dedent("""
    import resource, signal
    import numpy as np
    import anvil_llvm as av

    f = av.NumericalFunction("limited", lambda x: x.sin() * 2.5, (av.Arg(3),))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # write() then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
    x = np.linspace(0.0, 1.0, 3)
    print(bool(np.allclose(f(x), np.sin(x) * 2.5, rtol=1e-14, atol=0)))
""")


def test_a_file_size_limit_leaves_no_temporary_file(cache_dir):
    """Under RLIMIT_FSIZE an entry's write fails after 1000 bytes: no partial file stays."""
    done = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True"]
    assert os.strerror(errno.EFBIG) in done.stderr
    assert not leftovers(cache_dir) and not list(cache_dir.glob("*.o"))


def test_least_recently_used_entries_go_past_the_cap(cache_dir, monkeypatch):
    """Written in the order f1, f2, but f1 read since: a write past the cap removes the oldest
    files (f2 and any entry point) and keeps f1 and the new f3."""
    (f1, e1), (f2, e2), (f3, e3) = fresh_function(), fresh_function(), fresh_function()
    assert_right(f1, e1)
    assert_right(f2, e2)
    long_ago = time.time() - 3600
    for path in cache_dir.iterdir():
        os.utime(path, (long_ago, long_ago))
    one, two = entry_path(f1), entry_path(f2)
    os.utime(two, (long_ago + 60, long_ago + 60))
    assert cache.read(one.stem) is not None          # a use: one is now the newest
    assert one.stat().st_mtime > time.time() - 600
    others = set(cache_dir.glob("*.o")) - {one, two}
    cap = one.stat().st_size + two.stat().st_size + 200
    monkeypatch.setenv("ANVIL_LLVM_CACHE_MAX_BYTES", str(cap))
    assert_right(f3, e3)
    assert set(cache_dir.glob("*.o")) == {one, entry_path(f3)}, f"{others} and {two} go"
    assert sum(p.stat().st_size for p in cache_dir.glob("*.o")) <= cap
    assert usage(cache_dir)[0] == sum(p.stat().st_size for p in cache_dir.glob("*.o"))


def usage(directory) -> tuple[int, int]:
    """The usage record of the cache in `directory`: (bytes, writes since they were counted)."""
    return tuple(map(int, (directory / "usage").read_text().split()))


def write_entries(count: int, size: int = 1000) -> list[str]:
    """Write `count` entries of random `size`-byte objects under new random keys."""
    keys = [f"{random.getrandbits(256):064x}" for _ in range(count)]
    for k in keys:
        cache.write(k, random.randbytes(size), [])
    return keys


def stored_bytes(directory) -> int:
    """The bytes of the entries in `directory`."""
    return sum(p.stat().st_size for p in directory.glob("*.o"))


def test_writes_below_the_cap_add_to_the_usage_record_without_counting(cache_dir, monkeypatch):
    """The first write counts the files (no record yet); later ones below the cap only add
    their bytes to the record, which then equals the entries' total on disk."""
    write_entries(3)
    assert usage(cache_dir) == (stored_bytes(cache_dir), 2)

    def no_count(root):
        raise AssertionError("the files were counted below the cap")
    monkeypatch.setattr(cache, "_files", no_count)
    write_entries(5)
    assert usage(cache_dir) == (stored_bytes(cache_dir), 7)


@pytest.mark.parametrize("record", [None, "garbage", "12", "5 300"])
def test_a_missing_damaged_or_old_usage_record_makes_a_count(cache_dir, record):
    """Without a readable record, or one RECOUNT_WRITES writes old, a write counts the files
    again: the record is then the true total (here, after files the record never saw)."""
    write_entries(2)
    (cache_dir / f"{'a' * 64}.o").write_bytes(b"z" * 4321)
    if record is None:
        (cache_dir / "usage").unlink()
    else:
        (cache_dir / "usage").write_text(record)
    assert cache.RECOUNT_WRITES <= 300
    write_entries(1)
    assert usage(cache_dir) == (stored_bytes(cache_dir), 0)


def test_an_understated_record_is_corrected_within_recount_writes(cache_dir, monkeypatch):
    """A record that lost updates (racing writers) says the cap is not reached while it is:
    at the latest RECOUNT_WRITES writes later the files are counted and the cap holds."""
    monkeypatch.setattr(cache, "RECOUNT_WRITES", 4)
    write_entries(2)
    monkeypatch.setenv("ANVIL_LLVM_CACHE_MAX_BYTES", str(stored_bytes(cache_dir) + 3000))
    (cache_dir / "usage").write_text("0 0")
    write_entries(6)
    assert stored_bytes(cache_dir) <= cache.max_bytes()
    assert usage(cache_dir)[0] == stored_bytes(cache_dir)


@pytest.mark.parametrize("value", ["lots", "-1", "0", "1.5", "1e9"])
def test_a_bad_cap_is_ignored_with_a_warning(cache_dir, monkeypatch, caplog, value):
    monkeypatch.setenv("ANVIL_LLVM_CACHE_MAX_BYTES", value)
    with caplog.at_level(logging.WARNING, logger="anvil_llvm"):
        assert cache.max_bytes() == GiB
    assert any("ANVIL_LLVM_CACHE_MAX_BYTES" in r.getMessage() for r in caplog.records)


def test_info_and_clear(cache_dir):
    for _ in range(2):
        f, expected = fresh_function()
        assert_right(f, expected)
    files = list(cache_dir.glob("*.o"))
    assert len(files) >= 2
    assert av.cache.info() == (cache_dir, len(files), sum(p.stat().st_size for p in files), GiB)
    assert av.cache.clear() == len(files)
    assert not list(cache_dir.iterdir())
    assert av.cache.info().entries == 0


def test_command_line(cache_dir, capsys, monkeypatch):
    cache_dir.mkdir(mode=0o700)
    (cache_dir / f"{'0' * 64}.o").write_bytes(b"x" * 100)
    (cache_dir / f"{'1' * 64}.o").write_bytes(b"y" * 50)
    monkeypatch.setenv("ANVIL_LLVM_CACHE_MAX_BYTES", "123456")
    assert cli.main(["cache", "info"]) == 0
    shown = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert shown == {"directory": str(cache_dir), "entries": "2", "bytes": "150",
                     "max_bytes": "123456"}
    done = subprocess.run([sys.executable, "-m", "anvil_llvm", "cache", "clear"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "removed 2 files"
    assert not list(cache_dir.iterdir())
    with pytest.raises(SystemExit):
        cli.main(["cache", "shrink"])
    assert "invalid choice: 'shrink'" in capsys.readouterr().err


def test_the_command_is_installed_as_anvil_llvm():
    tomllib = pytest.importorskip("tomllib")        # Python 3.11
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"anvil-llvm": "anvil_llvm.cli:main"}


def test_cache_directory_is_created_private(tmp_path, monkeypatch):
    directory = tmp_path / "a" / "b"
    monkeypatch.setenv("ANVIL_LLVM_CACHE_DIR", str(directory))
    monkeypatch.delenv("ANVIL_LLVM_NO_CACHE", raising=False)
    assert cache.directory() == directory
    assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o722])
def test_directory_writable_by_others_is_refused(cache_dir, compiles, caplog, mode):
    cache_dir.mkdir()
    cache_dir.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="anvil_llvm"):
        f, expected = fresh_function()
        assert_right(f, expected)
    assert any("writable by others" in r.getMessage() and str(cache_dir) in r.getMessage()
               for r in caplog.records)
    assert not list(cache_dir.iterdir()), "nothing may be written to an unsafe directory"


def test_an_unsafe_directory_is_reported_once(cache_dir, compiles, caplog):
    """Each build reads and writes the cache; the warning comes once in the process."""
    cache_dir.mkdir()
    cache_dir.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="anvil_llvm"):
        for _ in range(3):
            f, expected = fresh_function()
            assert_right(f, expected)
    assert len(compiles) == 3
    assert sum(str(cache_dir) in r.getMessage() for r in caplog.records) == 1


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                    reason="giving a directory to another user needs root")
def test_directory_of_another_user_is_refused(cache_dir, compiles, caplog):
    cache_dir.mkdir(mode=0o700)
    os.chown(cache_dir, 12345, -1)
    with caplog.at_level(logging.WARNING, logger="anvil_llvm"):
        f, expected = fresh_function()
        assert_right(f, expected)
    assert any("another user" in r.getMessage() for r in caplog.records)
    assert not list(cache_dir.iterdir())


def test_cache_path_that_is_a_file_still_works(tmp_path, monkeypatch, compiles):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("ANVIL_LLVM_CACHE_DIR", str(blocker))
    f, expected = fresh_function()
    assert_right(f, expected)
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize("value, cached", [
    ("1", False), ("true", False), ("TRUE", False), ("Yes", False), ("on", False),
    ("0", True), ("false", True), ("No", True), ("OFF", True), ("", True),
])
def test_no_cache_switch(cache_dir, monkeypatch, compiles, value, cached):
    monkeypatch.setenv("ANVIL_LLVM_NO_CACHE", value)
    f, expected = fresh_function()
    assert_right(f, expected)
    assert entry_path(f).exists() if cached else not cache_dir.exists()


def test_the_run_has_a_fresh_cache_directory():
    """conftest.py gives each test run a new cache directory of its own."""
    if os.environ.get("ANVIL_LLVM_TEST_KEEP_CACHE"):
        pytest.skip("ANVIL_LLVM_TEST_KEEP_CACHE is set: the run uses the usual cache")
    path = Path(os.environ["ANVIL_LLVM_CACHE_DIR"])
    assert path.parent == Path(tempfile.gettempdir())
    assert path.name.startswith("anvil-llvm-test-cache-") and path.is_dir()


def test_the_run_cache_directory_is_removed_at_the_end(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop("ANVIL_LLVM_CACHE_DIR", None)
    env.pop("ANVIL_LLVM_TEST_KEEP_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q",
         f"{__file__}::test_the_run_has_a_fresh_cache_directory"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]
    assert not list(tmp_path.glob("anvil-llvm-test-cache-*"))


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


def start_process(directory) -> subprocess.Popen:
    """SCRIPT in a new Python process using `directory` as its cache."""
    env = dict(os.environ, ANVIL_LLVM_CACHE_DIR=str(directory))
    env.pop("ANVIL_LLVM_NO_CACHE", None)
    return subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def outcome(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def run_process(directory) -> dict:
    return outcome(start_process(directory))


def test_processes_filling_one_cache_at_once(tmp_path):
    """Entries are published by an atomic rename: concurrent writers leave one good file."""
    directory = tmp_path / "cache"
    processes = [start_process(directory) for _ in range(3)]
    assert all(outcome(p)["ok"] for p in processes)
    assert len(function_objects(directory)) == 1
    assert not leftovers(directory)
    assert run_process(directory) == {"compiled": 0, "entries": 0, "ok": True}


def test_second_process_loads_from_disk_and_a_corrupt_file_is_rebuilt(tmp_path):
    directory = tmp_path / "cache"
    assert run_process(directory) == {"compiled": 1, "entries": 1, "ok": True}
    (entry,) = function_objects(directory)
    good = entry.read_bytes()
    assert run_process(directory) == {"compiled": 0, "entries": 0, "ok": True}

    middle = len(good) // 2
    entry.write_bytes(good[:middle] + bytes(b ^ 0xFF for b in good[middle:middle + 8])
                      + good[middle + 8:])
    assert run_process(directory) == {"compiled": 1, "entries": 0, "ok": True}
    assert entry.read_bytes() == good, "the rebuilt entry replaces the corrupt one"


# ---- keys from the graph: a hit needs no lowering ----------------------------------------------
GRAPH_HIT = textwrap.dedent("""
    import sys
    import numpy as np
    import anvil_llvm as av
    from anvil_llvm.ad import gradient
    from anvil_llvm.backend import lower

    if sys.argv[1] == "hit":
        def refuse(*args, **kwargs):
            raise AssertionError("lowered although the disk cache holds the function")
        lower.schedule = refuse

    def chain(x):
        y = x
        for _ in range(300):
            y = y * 1.001 + av.tanh(y) * 1e-3
        return (y * y).sum()

    g = gradient(av.NumericalFunction("chain", chain, (av.Arg(3),)))
    x = np.array([0.1, -0.2, 0.3])
    y, dy = x.copy(), np.ones(3)
    for _ in range(300):
        y, dy = y * 1.001 + np.tanh(y) * 1e-3, dy * (1.001 + (1 - np.tanh(y) ** 2) * 1e-3)
    np.testing.assert_allclose(g(x), 2 * y * dy, rtol=1e-12)
    print("ok")
""")


def test_a_disk_hit_skips_lowering(cache_dir):
    env = dict(os.environ, ANVIL_LLVM_CACHE_DIR=str(cache_dir))
    for mode in ("miss", "hit"):
        done = subprocess.run([sys.executable, "-c", GRAPH_HIT, mode], env=env, text=True,
                              capture_output=True, timeout=300)
        assert done.returncode == 0 and done.stdout.strip() == "ok", (mode, done.stderr[-1500:])


def test_a_function_built_twice_is_lowered_once(cache_dir, monkeypatch):
    from anvil_llvm import function
    lowered = []
    original = function.lower
    monkeypatch.setattr(function, "lower",
                        lambda *args: lowered.append(args[0]) or original(*args))
    c = random.random()
    for _ in range(2):
        f = av.NumericalFunction("twice", lambda x: (x * c).sin().sum(), (av.Arg(6),))
        assert float(f(X[:1].repeat(6))) == pytest.approx(6 * np.sin(X[0] * c), rel=1e-14)
    assert lowered == ["twice"]


def test_keys_differ_by_name_signature_and_graph():
    def make(name, fn, *args):
        return av.NumericalFunction(name, fn, args).cache_key
    base = make("k", lambda x: x * 2.0, av.Arg(3))
    assert base == make("k", lambda y: y * 2.0, av.Arg(3))           # argument names: no code
    assert base != make("k2", lambda x: x * 2.0, av.Arg(3))
    assert base != make("k", lambda x: x * 2.0, av.Arg(4))
    assert base != make("k", lambda x: x * 2.0, av.Arg(3, np.float32))
    assert base != make("k", lambda x: x * 3.0, av.Arg(3))
    assert base != make("k", lambda x: x * -0.0 + x * 2.0, av.Arg(3))
    assert make("k", lambda x: x * np.arange(3.0), av.Arg(3)) != make(
        "k", lambda x: x * np.arange(1.0, 4.0), av.Arg(3))


def test_entries_record_the_source_they_were_built_by():
    assert cache.host_record()["source"] == cache._source_stamp()


def test_an_installed_copy_is_told_by_its_folder_and_a_checkout_by_its_files(tmp_path):
    checkout = tmp_path / "src" / "anvil_llvm"
    installed = tmp_path / "lib" / "site-packages" / "anvil_llvm"
    for package in (checkout, installed):
        package.mkdir(parents=True)
        (package / "a.py").write_text("x = 1\n")
    assert cache._source_stamp(str(checkout)) == _walked_digest(str(checkout))
    stamp = cache._source_stamp(str(installed))
    assert stamp != _walked_digest(str(installed))
    time.sleep(0.01)
    shutil.rmtree(installed)                   # installed again: a new folder
    installed.mkdir()
    (installed / "a.py").write_text("x = 1\n")
    assert cache._source_stamp(str(installed)) != stamp


def _walked_digest(package: str) -> str:
    """The digest as a plain os.walk over the sources computes it (the reference)."""
    lines = []
    for folder, subfolders, files in os.walk(package):
        subfolders[:] = [f for f in subfolders if f != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                info = os.stat(os.path.join(folder, name))
                lines.append(f"{folder[len(package):]}/{name}:{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def test_the_source_digest_follows_every_source_file_and_nothing_else(tmp_path):
    for name in ("a.py", "sub/b.py", "sub/deeper/c.py", "sub/__pycache__/b.cpython.py",
                 "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    package = str(tmp_path)
    first = cache._source_digest(package)
    assert first == _walked_digest(package)
    (tmp_path / "notes.txt").write_text("changed\n")
    (tmp_path / "sub/__pycache__/b.cpython.py").write_text("changed\n")
    assert cache._source_digest(package) == first
    (tmp_path / "sub/deeper/c.py").write_text("x = 22\n")
    edited = cache._source_digest(package)
    assert edited != first and edited == _walked_digest(package)
    os.utime(tmp_path / "a.py", ns=(0, 0))
    touched = cache._source_digest(package)
    assert touched != edited and touched == _walked_digest(package)
    (tmp_path / "sub/new.py").write_text("")
    assert cache._source_digest(package) not in (first, edited, touched)
    assert cache._source_digest() == _walked_digest(os.path.dirname(av.__file__))
