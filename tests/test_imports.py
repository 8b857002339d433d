"""`import anvil_llvm` stays light: SciPy's sparse arrays and numba are imported when a sparse
derivative or a colouring first needs them (a program building dense functions never pays)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

CHILD = """
import json, sys, numpy as np, anvil_llvm as av
f = av.NumericalFunction("f", lambda x: (av.sin(x) * x).sum(), (av.Arg(3),))
dense = [float(f(np.ones(3))), av.ad.gradient(f)(np.zeros(3)).tolist()]
loaded = [m for m in ("scipy.sparse", "numba") if m in sys.modules]
J = av.ad.spjacobian(av.NumericalFunction("s", lambda x: x[1:] * x[:-1], (av.Arg(4),)))
print(json.dumps({"dense": dense, "loaded": loaded, "sparse": "scipy.sparse" in sys.modules,
                  "J": J.csc(np.arange(4.0)).toarray().tolist()}))
"""


def test_dense_work_imports_neither_scipy_sparse_nor_numba():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["loaded"] == []
    np.testing.assert_allclose(out["dense"][0], 3 * np.sin(1.0), rtol=1e-14)
    assert out["dense"][1] == [0.0, 0.0, 0.0]
    assert out["sparse"]                     # loaded once a sparse derivative needs it
    np.testing.assert_array_equal(out["J"], [[1, 0, 0, 0], [0, 2, 1, 0], [0, 0, 3, 2]])
