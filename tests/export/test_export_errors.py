"""Bad input to export: clear exceptions naming the argument, and files replaced atomically."""
import os
import pathlib

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.backend.target import Target


@pytest.fixture(scope="module")
def f():
    return av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(3),))


@pytest.mark.parametrize("name", ["2x", "my-lib", "", "int", "bool", "__x", "_Lib", "main",
                                  "a b"])
def test_bad_library_names(f, tmp_path, name):
    with pytest.raises(ValueError, match="^name: "):
        av.export([f], tmp_path, name)


def test_library_name_must_be_a_str(f, tmp_path):
    with pytest.raises(TypeError, match="^name: expected a str"):
        av.export([f], tmp_path, 3)


def test_function_names_reserved_in_cxx(tmp_path):
    g = av.NumericalFunction("bool", lambda x: x + 1.0, (av.Arg(2),))     # a C name, not C++
    with pytest.raises(ValueError, match=r"^functions\[0\].name: 'bool' is reserved"):
        av.export([g], tmp_path, "lib")


def test_duplicate_function_names(f, tmp_path):
    g = av.NumericalFunction("f", lambda x: x.sum(), (av.Arg(3),))
    with pytest.raises(ValueError, match=r"^functions: the name 'f' is used twice"):
        av.export([f, g], tmp_path, "lib")


def test_names_that_collide_in_the_header(tmp_path):
    a = av.NumericalFunction("g", lambda x: x.sum(), (av.Arg(3),))
    b = av.NumericalFunction("G", lambda x: x.sum(), (av.Arg(3),))
    with pytest.raises(ValueError, match="header macros"):
        av.export([a, b], tmp_path, "lib")


def test_a_function_named_like_another_ones_array(tmp_path):
    h = av.NumericalFunction("h", lambda x: x[1:] * x[:-1], (av.Arg(4),))
    J = ad.spjacobian(h, name="J")
    clash = av.NumericalFunction("J_colptr", lambda x: x.sum(), (av.Arg(3),))
    with pytest.raises(ValueError, match="'lib_J_colptr' is used twice"):
        av.export([J, clash], tmp_path, "lib")


@pytest.mark.parametrize("functions", [[], (), [lambda x: x], ["f"], 3])
def test_not_functions(tmp_path, functions):
    with pytest.raises((TypeError, ValueError), match="^functions"):
        av.export(functions, tmp_path, "lib")


def test_operator_of_a_plain_callable_is_explained(tmp_path):
    with pytest.raises(TypeError, match="apply it to a NumericalFunction"):
        av.export([ad.gradient(lambda x: (x * x).sum())], tmp_path, "lib")


def test_out_dir_under_a_file(f, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="^out_dir: cannot create"):
        av.export([f], tmp_path / "file" / "build", "lib")
    with pytest.raises(ValueError, match="^out_dir: .* is not a directory"):
        av.export([f], tmp_path / "file", "lib")


def test_unwritable_out_dir(f):
    with pytest.raises(ValueError, match="^out_dir: "):
        av.export([f], "/proc/anvil-llvm-export-test", "lib")


def test_out_dir_must_be_a_path(f):
    with pytest.raises(TypeError, match="^out_dir: expected a path"):
        av.export([f], 3, "lib")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_out_dir(f, tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="^out_dir: .* is not writable"):
            av.export([f], tmp_path, "lib")
    finally:
        tmp_path.chmod(0o700)


def test_unknown_target_and_cpu(f, tmp_path):
    with pytest.raises(ValueError, match="^target: LLVM does not support the triple"):
        av.export([f], tmp_path, "lib", target="pdp11-unknown-none")
    with pytest.raises(ValueError, match="^cpu: 'pentium9000' is not a CPU"):
        av.export([f], tmp_path, "lib", cpu="pentium9000")
    with pytest.raises(ValueError, match="^target: .* 32-bit"):
        av.export([f], tmp_path, "lib", target="i686-pc-linux-gnu")
    with pytest.raises(TypeError, match="^target: expected None, a triple"):
        av.export([f], tmp_path, "lib", target=64)
    with pytest.raises(ValueError, match="^target: exported code is position independent"):
        av.export([f], tmp_path, "lib", target=Target.jit())
    with pytest.raises(TypeError, match="^cpu: "):
        av.export([f], tmp_path, "lib", cpu=3)


def test_bad_flags(f, tmp_path):
    with pytest.raises(TypeError, match="^shared: expected a bool"):
        av.export([f], tmp_path, "lib", shared="yes")
    with pytest.raises(ValueError, match="^casadi_int: "):
        av.export([f], tmp_path, "lib", casadi=True, casadi_int="long")


def test_missing_linker(f, tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(RuntimeError, match="needs a C compiler driver.*no-such-cc"):
        av.export([f], tmp_path, "lib", shared=True)
    assert (tmp_path / "liblib.a").exists()       # the static library was written before


def test_shared_for_another_machine(f, tmp_path):
    with pytest.raises(ValueError, match="^shared: "):
        av.export([f], tmp_path / "out", "lib", target="aarch64-linux-gnu", shared=True)
    assert not (tmp_path / "out").exists()          # refused before anything was written


def test_files_are_replaced_atomically(f, tmp_path):
    first = av.export([f], tmp_path, "lib")
    with open(first.header) as old:
        before = old.read()
        g = av.NumericalFunction("g", lambda x: x * 2.0, (av.Arg(3),))
        second = av.export([f, g], tmp_path, "lib")
        old.seek(0)
        assert old.read() == before and "lib_g" not in before     # the old file, untouched
        assert os.fstat(old.fileno()).st_ino != os.stat(second.header).st_ino
    assert "lib_g" in second.header.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib.h", "lib.hpp", "lib.o",
                                                          "liblib.a"]        # no temporaries


def test_export_method(f, tmp_path):
    lib = f.export(tmp_path)
    assert lib.name == "f" and lib.symbols == {"f": "f_f"}
    lib = f.export(tmp_path, name="other")
    assert lib.header == pathlib.Path(tmp_path) / "other.h"
    np.testing.assert_equal(lib.functions[0].work_bytes, f.work_bytes)


def test_export_is_the_function_and_aot_the_package():
    """`anvil_llvm.export` is the function; its package `anvil_llvm.aot` imports by dotted path
    (a package named like the function was shadowed by it)."""
    import inspect

    import anvil_llvm
    import anvil_llvm.aot.casadi
    from anvil_llvm import export
    assert inspect.isfunction(export) and export is anvil_llvm.export is anvil_llvm.aot.export
    assert inspect.ismodule(anvil_llvm.aot.casadi)
    assert "casadi_derivatives" in inspect.signature(export).parameters
