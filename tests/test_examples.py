"""Every example runs and prints what it promises."""
import pathlib
import runpy

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_prints_the_documented_values(capsys):
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert float(lines[0]) == 55.0
    assert lines[1] == str(np.array([12.0, 16.0]))
    assert lines[2] == str(np.array([2.0, 4.0, 6.0, 8.0, 10.0]))


def test_newton_reaches_the_global_minimum_checked_by_numpy(capsys):
    scope = runpy.run_path(str(EXAMPLES / "newton_rosenbrock.py"), run_name="__main__")
    assert "converged" in capsys.readouterr().out
    x, p = scope["x"], scope["p"]
    np.testing.assert_allclose(x, np.ones_like(x), atol=1e-8)      # rosen's global minimum
    h = 1e-6
    numeric = [(p.reference(x + h * e) - p.reference(x - h * e)) / (2 * h)
               for e in np.eye(x.size)]
    np.testing.assert_allclose(numeric, 0.0, atol=1e-6)
    assert float(scope["f"](x)) == pytest.approx(float(p.reference(x)), rel=1e-14)


# optional extras an example needs (it checks its own results)
NEEDS = {"dask_sweep.py": ("dask.array", "distributed"),
         "ipopt_optimal_control.py": ("cyipopt", "casadi")}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_every_example_runs(path):
    for module in NEEDS.get(path.name, ()):
        pytest.importorskip(module)
    runpy.run_path(str(path), run_name="__main__")
