"""lower(): the one lowering result (IR, symbol, externals, specs, workspace) and targets."""
import dataclasses
import platform
import shutil
import subprocess

import llvmlite.binding as llvm
import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm.ad import gradient
from anvil_llvm.backend import jit
from anvil_llvm.backend.target import Target
from anvil_llvm.benchmarks.problems import problem


@pytest.mark.parametrize("name, size", [("mlp", 9610), ("rosen", 100), ("bratu2d_E", 10)])
def test_externals_are_those_of_the_parsed_module(name, size):
    low = gradient(problem(name, size).function()).lowered()
    module = llvm.parse_assembly(low.ir)
    declared = sorted(f.name for f in module.functions if f.is_declaration)
    declared += sorted(g.name for g in module.global_variables if g.is_declaration)
    assert low.externals == tuple(sorted(n for n in declared if not n.startswith("llvm.")))


def test_specs_and_workspace_describe_the_function():
    f = av.NumericalFunction("pair", lambda x, k: (x * 2.0, (k * 3).sum()),
                             (av.Arg((2, 3)), av.Arg(4, np.int64)))
    low = f.lowered()
    assert [(s.name, s.shape, s.dtype) for s in low.inputs] == [
        ("x", (2, 3), np.float64), ("k", (4,), np.int64)]
    assert [(s.shape, s.dtype) for s in low.outputs] == [((2, 3), np.float64), ((), np.int64)]
    assert low.symbol.startswith("pair.") and f"@{low.symbol}(" in low.ir
    assert low.target == Target.jit()


def test_scalar_math_target_declares_no_vector_functions():
    f = av.NumericalFunction("e", lambda x: av.exp(x).sum(), (av.Arg(64),))
    jit_target = Target.jit()
    if jit_target.vector_math:
        assert any("_ZGV" in n for n in f.lowered().externals)
    scalar = dataclasses.replace(jit_target, vector_math=False)
    low = f.lowered(scalar)
    assert not any("_ZGV" in n for n in low.externals)
    assert "vector-function-abi-variant" not in low.ir


def test_targets_differ_in_cache_keys_and_code_models():
    assert Target.jit().key != Target.object().key
    assert (Target.jit().code_model, Target.jit().reloc) == ("large", "static")
    assert (Target.object().code_model, Target.object().reloc) == ("small", "pic")


@pytest.mark.skipif(shutil.which("readelf") is None or platform.machine() != "x86_64",
                    reason="needs binutils' readelf on x86-64")
def test_jit_objects_use_only_64_bit_absolute_relocations(tmp_path):
    """Under the small code model the loader aborts the process when sections land more than
    2 GiB apart (tests/backend/test_jit_memory.py); JIT objects must not have 32-bit ones."""
    c = np.linspace(0.5, 2.0, 9)
    f = gradient(av.NumericalFunction("r", lambda x: (av.exp(x * c) + c).sum(), (av.Arg(9),)))
    low = f.lowered()
    obj, _ = jit.compile_object(low.ir, low.codegen_opt)
    path = tmp_path / "f.o"
    path.write_bytes(obj)
    listing = subprocess.run(["readelf", "-rW", str(path)], capture_output=True, text=True,
                             check=True).stdout
    kinds = {line.split()[2] for line in listing.splitlines()
             if line[:1].isalnum() and "R_X86_64" in line}
    assert kinds and kinds <= {"R_X86_64_64", "R_X86_64_PC64"}, kinds


def test_a_target_without_blas_runs_contractions_as_loop_nests():
    """The C ABI function of a target with `gemm=None` needs no BLAS and computes the same."""
    import ctypes
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((64, 48)), rng.standard_normal((48, 40))
    f = av.NumericalFunction("mm", lambda a, b: a @ b, (av.Arg((64, 48)), av.Arg((48, 40))))
    with_blas = f.lowered()
    assert "anvil_dgemm" in with_blas.externals
    target = dataclasses.replace(Target.jit(), gemm=None)
    low = f.lowered(target)
    assert not any("gemm" in name for name in low.externals)
    code = jit.build(low.ir, low.symbol, low.codegen_opt)
    native = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_void_p] * 4)(code.addresses[low.symbol])
    out = np.empty((64, 40))
    work = np.empty(low.work_bytes + 64, np.uint8)
    aligned = work.ctypes.data + (-work.ctypes.data % 64)
    assert native(A.ctypes.data, B.ctypes.data, out.ctypes.data, aligned) == 0
    np.testing.assert_allclose(out, A @ B, rtol=1e-12, atol=1e-12)
