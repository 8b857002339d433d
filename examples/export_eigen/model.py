"""The model the C++ program solves: the Bratu problem on a 30 x 30 grid (the public problem
`bratu2d`), F(u) = 0, and its sparse Jacobian. `make` exports both with

    python -m anvil_llvm export model:functions -o build --name mymodel

(run as a script, this file does the same through the Python API)."""
import sys

import anvil_llvm as av
from anvil_llvm.ad import spjacobian
from anvil_llvm.benchmarks.problems import problem

M = 30
bratu = problem("bratu2d", M)
dyn = bratu.function("dyn")                       # F: R^900 -> R^900
dyn_jac = spjacobian(dyn, name="dyn_jac")         # its nonzeros in CSC order (5-point stencil)
functions = [dyn, dyn_jac]

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "build"
    lib = av.export(functions, out, "mymodel")
    print(f"wrote {lib.archive}, {lib.header.name} and {lib.cpp_header.name}")
