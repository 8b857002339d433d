"""shared=True: a shared library linked by cc, loaded with ctypes, computing the JIT's bits."""
import ctypes

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.benchmarks.problems import problem

from export_helpers import needs_cc, same_bits

pytestmark = needs_cc


def test_shared_library_loads_and_computes_the_jits_bits(tmp_path):
    p = problem("bratu2d_E", 10)
    f = p.function("energy")
    H = ad.sphessian(f, name="energy_hess")
    lib = av.export([f, ad.gradient(f), H], tmp_path, "shared_demo", shared=True)
    assert lib.shared == tmp_path / "libshared_demo.so"
    dll = ctypes.CDLL(str(lib.shared))
    x = p.x0
    work = np.zeros(max(e.work_bytes for e in lib.functions) + 64, np.uint8)
    aligned = work.ctypes.data + (-work.ctypes.data % 64)
    for fn, e in zip([f, ad.gradient(f), H], lib.functions):
        out = np.empty(e.outputs[0].shape)
        call = getattr(dll, e.symbol)
        call.restype = ctypes.c_int32
        assert call(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(out.ctypes.data),
                    ctypes.c_void_p(aligned)) == 0
        assert same_bits(out, fn(x)), e.name
    np.testing.assert_allclose(float(f(x)), p.reference(x), rtol=1e-13)


def test_repeating_placements_export_with_the_jits_bits(tmp_path):
    """Sparse Hessians stored period by period (backend/placement.py), one with rows that keep
    the slot table: the exported library computes the JIT's bits."""
    def chain(x):
        return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()

    def grid(x):
        return ((x[:, 1:] - x[:, :-1] ** 2) ** 2).sum() + (x[0] ** 2 * x[1]).sum()
    hessians = [ad.sphessian(av.NumericalFunction("chain", chain, (av.Arg(3000),))),
                ad.sphessian(av.NumericalFunction("grid", grid, (av.Arg((40, 40)),)))]
    assert all("period.head" in H.llvm_ir for H in hessians)
    lib = av.export(hessians, tmp_path, "periods", shared=True)
    dll = ctypes.CDLL(str(lib.shared))
    rng = np.random.default_rng(8)
    for H, e in zip(hessians, lib.functions):
        x = rng.uniform(0.5, 1.5, H.inputs[0].shape)
        work = np.zeros(e.work_bytes + 64, np.uint8)
        out = np.empty(H.nnz)
        call = getattr(dll, e.symbol)
        call.restype = ctypes.c_int32
        assert call(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(out.ctypes.data),
                    ctypes.c_void_p(work.ctypes.data + (-work.ctypes.data % 64))) == 0
        assert same_bits(out, H(x)), e.name
