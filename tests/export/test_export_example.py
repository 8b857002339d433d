"""examples/export_eigen: `make run` exports the model through the command line, builds the C++
Newton solver (Eigen's SparseLU on the exported sparse Jacobian) and runs it."""
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from export_helpers import needs_cxx, needs_eigen

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "export_eigen"


@needs_cxx
@needs_eigen
@pytest.mark.skipif(shutil.which("make") is None, reason="no make on the PATH")
def test_the_cxx_newton_example_solves_bratu(tmp_path):
    work = tmp_path / "export_eigen"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("build", "newton", "*.bin"))
    result = subprocess.run(["make", "run", f"PYTHON={sys.executable}"], cwd=work,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "converged" in result.stdout
    u = np.fromfile(work / "solution.bin")
    # Independent check: Newton in Python with SciPy on the JIT-compiled model.
    sys.path.insert(0, str(work))
    try:
        import model
    finally:
        sys.path.remove(str(work))
        sys.modules.pop("model", None)
    np.testing.assert_allclose(model.bratu.reference(u), 0.0, atol=1e-12)
    v = np.zeros_like(u)
    for _ in range(20):
        F = model.dyn(v)
        if np.linalg.norm(F) < 1e-12:
            break
        v -= spla.spsolve(model.dyn_jac.csc(v).tocsc(), F)
    np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-13)
