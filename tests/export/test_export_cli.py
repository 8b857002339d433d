"""`anvil-llvm export MODULE:ATTRIBUTE ... -o DIR --name NAME`: help, exports, exit codes."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from anvil_llvm.cli import main

from export_helpers import build, driver_source, needs_cc, read_outputs, run, write_inputs

MODULE = textwrap.dedent("""
    import anvil_llvm as av
    from anvil_llvm import ad
    dyn = av.NumericalFunction("dyn", lambda x: av.sin(x[1:]) * x[:-1], (av.Arg(6),))
    dyn_jac = ad.spjacobian(dyn, name="dyn_jac")
    pair = [dyn, ad.jacobian(dyn)]
    not_a_function = 3
""")


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package `clipkg` with a module `models`, importable from the working directory."""
    (tmp_path / "clipkg").mkdir()
    (tmp_path / "clipkg" / "__init__.py").write_text("")
    (tmp_path / "clipkg" / "models.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "clipkg" or m.startswith("clipkg.")]:
        del sys.modules[name]


@needs_cc
def test_python_m_anvil_llvm_export(package):
    """The real entry point in a fresh process, then a C program against what it wrote."""
    result = subprocess.run([sys.executable, "-m", "anvil_llvm", "export",
                             "clipkg.models:dyn", "clipkg.models:dyn_jac", "-o", "build",
                             "--name", "mymodel"], capture_output=True, text=True, cwd=package)
    assert result.returncode == 0, result.stderr
    assert "mymodel_dyn_jac: dyn_jac(x: float64[6]) -> out: float64[10]" in result.stdout
    header = (package / "build" / "mymodel.h").read_text()
    assert "Python definition clipkg.models:dyn_jac" in header
    from clipkg.models import dyn, dyn_jac        # the same definitions, traced here
    x = np.linspace(0.1, 1.2, 6)
    lib = _library(package / "build", "mymodel", [dyn, dyn_jac])
    assert lib.directory == package / "build"
    for f in (dyn, dyn_jac):
        write_inputs(package, f.name, [x])
    (package / "driver.c").write_text(driver_source(lib))
    run(build(lib, package / "driver.c", package / "driver"), package)
    for f, e in zip((dyn, dyn_jac), lib.functions):
        np.testing.assert_array_equal(read_outputs(package, e)[0], f(x))


def _library(directory, name, functions):
    """The Library record of an export made by the command line: the same export made again
    elsewhere writes the same object bytes (exports are deterministic)."""
    import dataclasses
    import anvil_llvm as av
    again = av.export(functions, directory.parent / "again", name)
    assert again.object.read_bytes() == (directory / f"{name}.o").read_bytes()
    assert again.archive.read_bytes() == (directory / f"lib{name}.a").read_bytes()
    return dataclasses.replace(again, directory=directory)


def test_help_describes_the_command(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["export", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "MODULE:ATTRIBUTE" in out and "--name" in out and "--shared" in out


def test_a_list_attribute_and_options(package, capsys):
    assert main(["export", "clipkg.models:pair", "-o", "out", "--name", "pairlib",
                 "--target", "aarch64-linux-gnu"]) == 0
    out = capsys.readouterr().out
    assert "aarch64-linux-gnu" in out and "pairlib_dyn_jac" in out
    assert (package / "out" / "libpairlib.a").exists()
    assert "clipkg.models:pair[1]" in (package / "out" / "pairlib.h").read_text()


def test_name_defaults_to_the_single_functions(package, capsys):
    assert main(["export", "clipkg.models:dyn", "-o", "out"]) == 0
    assert (package / "out" / "libdyn.a").exists()


@pytest.mark.parametrize("argv, message", [
    (["nocolon"], "is not MODULE:ATTRIBUTE"),
    (["no_such_module_xyz:f"], "cannot import module 'no_such_module_xyz'"),
    (["clipkg.models:missing"], "has no attribute 'missing'"),
    (["clipkg.models:not_a_function"], "is a int, not a NumericalFunction"),
    (["clipkg.models:dyn", "clipkg.models:dyn_jac"], "--name is needed"),
    (["clipkg.models:dyn", "--name", "2x"], "--name: '2x' is not a valid C identifier"),
    (["clipkg.models:dyn", "clipkg.models:dyn", "--name", "m"], "used twice"),
    (["clipkg.models:dyn", "--target", "pdp11-unknown-none"], "--target: LLVM does not"),
    (["clipkg.models:dyn", "--cpu", "pentium9000"], "--cpu: 'pentium9000'"),
])
def test_bad_input_exits_1_with_a_message(package, capsys, argv, message):
    assert main(["export", *argv, "-o", "out"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("anvil-llvm export: error: ") and message in err, err


def test_unwritable_output(package, capsys):
    (package / "file").write_text("")
    assert main(["export", "clipkg.models:dyn", "-o", "file/sub"]) == 1
    assert "-o/--output: cannot create" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["export", "clipkg.models:dyn"])          # no -o
    assert stop.value.code == 2
    assert "-o/--output" in capsys.readouterr().err


@needs_cc
def test_casadi_derivatives_flag_lets_casadi_differentiate_the_export(package, capsys):
    """--casadi-derivatives (implying --casadi) exports jac_dyn: CasADi's jacobian() of the
    external function reads it; checked against CasADi's own SX jacobian of the formula."""
    casadi = pytest.importorskip("casadi")
    assert main(["export", "clipkg.models:dyn", "-o", "out", "--shared",
                 "--casadi-derivatives"]) == 0
    capsys.readouterr()
    ext = casadi.external("dyn", str(package / "out" / "libdyn.so"))
    X = casadi.SX.sym("x", 6)
    theirs = casadi.Function("j", [X], [casadi.jacobian(casadi.sin(X[1:]) * X[:-1], X)])
    x = np.linspace(0.1, 1.2, 6)
    ours = ext.jacobian()(x, ext(x))
    np.testing.assert_allclose(np.array(casadi.DM(ours).full()),
                               np.array(theirs(x).full()), rtol=1e-14, atol=1e-15)
