"""The public problems and their derivatives exported, called from C, and compared with the JIT
(identical bits on the same target and CPU) and with NumPy."""
import subprocess

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.benchmarks.problems import problem

from export_helpers import (CC, build, driver_source, needs_cc, read_outputs, run, same_bits,
                            write_inputs)

pytestmark = needs_cc


def _cases():
    """(function, inputs, problem or None): each problem with derivatives of every kind."""
    cases = []

    def add(p, name, derivatives):
        f = p.function(name)
        x = p.x0 + 0.01 * np.random.default_rng(len(cases)).standard_normal(p.n)
        cases.append((f, [x], p))
        for op in derivatives:
            cases.append((op(f), [x], None))

    add(problem("sumsq"), "sumsq", [ad.gradient, ad.hessian])
    add(problem("rosen", 100), "rosen", [ad.gradient, ad.hessian,
                                         lambda f: ad.sphessian(f, name="rosen_sphess")])
    add(problem("rosen", 10_000), "rosen_big", [ad.gradient])
    add(problem("bratu2d", 10), "bratu", [ad.jacobian,
                                          lambda f: ad.spjacobian(f, name="bratu_spjac")])
    add(problem("bratu2d_E", 10), "bratu_E", [ad.gradient,
                                              lambda f: ad.sphessian(f, name="bratu_E_sphess")])
    add(problem("arrowhead", 1000), "arrowhead",
        [ad.gradient, lambda f: ad.sphessian(f, name="arrowhead_sphess")])
    add(problem("arm"), "arm", [ad.jacobian])
    add(problem("expdecay"), "expdecay", [ad.jacobian,
                                          lambda f: ad.spjacobian(f, name="expdecay_spjac")])
    add(problem("mlp"), "mlp", [ad.gradient])
    # index tables of 64 KiB and more: shared by address in the JIT, embedded in exports
    big = problem("bratu2d", 100)
    big_f = big.function("bratu_big")
    cases.append((big_f, [big.x0], big))
    cases.append((ad.spjacobian(big_f, name="bratu_big_spjac"), [big.x0], None))
    # other dtypes, several outputs, a scalar argument
    mixed = av.NumericalFunction(
        "mixed", lambda x, k, t: (x * t + 1.0, k * 3 + 1, x > 0.5, (x * x).sum()),
        (av.Arg(4, av.float32), av.Arg(3, av.int64), av.Arg((), av.float32)))
    cases.append((mixed, [np.linspace(0, 1, 4, dtype=np.float32), np.array([1, -2, 7]),
                          np.float32(2.5)], None))
    return cases


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """All cases in one library, called once by one C driver program."""
    cases = _cases()
    out = tmp_path_factory.mktemp("problems")
    lib = av.export([f for f, _, _ in cases], out / "build", "problems")
    data = out / "data"
    data.mkdir()
    for f, inputs, _ in cases:
        write_inputs(data, f.name, inputs)
    source = out / "driver.c"
    source.write_text(driver_source(lib))
    program = build(lib, source, out / "driver")
    run(program, data)
    results = {e.name: read_outputs(data, e) for e in lib.functions}
    return lib, cases, results, data


# mlp: the JIT calls BLAS for its large contractions (bound in this process), exports run them
# as loops, so their sums are ordered differently.
BLAS_IN_JIT = {"mlp", "mlp_grad"}


def test_every_function_gives_the_jits_bits(exported):
    lib, cases, results, _ = exported
    checked = 0
    for f, inputs, _ in cases:
        jit = f(*inputs)
        jit = list(jit) if isinstance(jit, tuple) else [jit]
        assert len(results[f.name]) == len(jit)
        for c, j in zip(results[f.name], jit):
            if f.name in BLAS_IN_JIT:
                np.testing.assert_allclose(c, j, rtol=1e-12, atol=1e-14, err_msg=f.name)
            else:
                assert same_bits(c, j), f"{f.name}: C and JIT results differ"
        checked += 1
    assert checked == len(lib.functions) == len(cases)


def test_values_match_numpy(exported):
    _, cases, results, _ = exported
    for f, inputs, p in cases:
        if p is not None:
            np.testing.assert_allclose(results[f.name][0], p.reference(*inputs), rtol=1e-12,
                                       atol=1e-12, err_msg=f.name)


def test_sparse_results_carry_their_structure_in_the_header(exported):
    """The CSC arrays of the header with the nonzeros from C give the JIT's dense matrix."""
    import scipy.sparse as sp
    lib, cases, results, data = exported
    by_name = {f.name: (f, inputs) for f, inputs, _ in cases}
    sparse = [e for e in lib.functions if e.sparsity is not None]
    assert len(sparse) == 6
    for e in sparse:
        f, inputs = by_name[e.name]
        colptr = np.fromfile(data / f"{e.name}.colptr", dtype=np.intc)
        rowind = np.fromfile(data / f"{e.name}.rowind", dtype=np.intc)
        np.testing.assert_array_equal(colptr, f.indptr)
        np.testing.assert_array_equal(rowind, f.indices)
        matrix = sp.csc_array((results[e.name][0], rowind, colptr), shape=f.shape)
        base = by_name[e.name.split("_sp")[0]][0]
        if f.shape[1] > 1000:             # no dense matrix: products with a vector (JVP)
            v = np.random.default_rng(0).standard_normal(f.shape[1])
            np.testing.assert_allclose(matrix @ v, ad.jvp(base)(*inputs, v)[1], rtol=1e-12,
                                       atol=1e-12, err_msg=e.name)
            continue
        dense_name = e.name.replace("_sphess", "_hess").replace("_spjac", "_jac")
        if dense_name in by_name:
            dense = results[dense_name][0]
        else:
            dense = (ad.hessian if "hess" in dense_name else ad.jacobian)(base)(*inputs)
        if "hess" in dense_name:              # sphessian: the upper triangle
            dense = np.triu(dense)
        np.testing.assert_allclose(matrix.toarray(), dense, rtol=1e-13, atol=1e-13,
                                   err_msg=e.name)


def test_undefined_symbols_are_libm_only(exported):
    """nm: the object needs nothing but libm (and glibc's libmvec, which -lm links) and the
    copies LLVM may call for its loops (memcpy, memmove, memset: what C requires of even a
    freestanding implementation)."""
    lib = exported[0]
    listing = subprocess.run(["nm", "-u", str(lib.object)], capture_output=True, text=True,
                             check=True).stdout.split()
    undefined = {name for name in listing if name != "U"}
    libm = subprocess.run(["nm", "-D", "--defined-only", _libm()], capture_output=True,
                          text=True, check=True).stdout.split()
    libm_names = {name.split("@")[0] for name in libm}
    not_libm = {n for n in undefined if n not in libm_names and not n.startswith("_ZGV")
                and n not in ("memcpy", "memmove", "memset")}
    assert not not_libm, f"symbols from outside libm: {sorted(not_libm)}"
    assert "exp" in undefined      # the problems do call libm


def _libm() -> str:
    found = subprocess.run([CC, "-print-file-name=libm.so.6"], capture_output=True,
                           text=True).stdout.strip()
    return found if found and found != "libm.so.6" else "/lib/x86_64-linux-gnu/libm.so.6"


def test_the_header_compiles_as_strict_c99_and_cxx11(exported, tmp_path):
    lib = exported[0]
    (tmp_path / "c99.c").write_text(f'#include "{lib.name}.h"\nint main(void) {{ return 0; }}\n')
    (tmp_path / "cxx11.cpp").write_text(f'#include "{lib.name}.hpp"\n'
                                        "int main() { return problems::rosen::n_in - 1; }\n")
    from export_helpers import CXX, WARNINGS
    for compiler, std, src in ((CC, "c99", "c99.c"), (CXX, "c++11", "cxx11.cpp")):
        if compiler is None:
            continue
        command = [compiler, f"-std={std}", "-pedantic", *WARNINGS, "-Wunused",
                   "-I", str(lib.directory), "-c", str(tmp_path / src), "-o",
                   str(tmp_path / "a.o")]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_header_documents_each_function(exported):
    lib = exported[0]
    text = lib.header.read_text()
    assert "rosen_grad(x: float64[100]) -> out: float64[100]" in text
    assert "int32_t problems_rosen_grad(const double *x, double *out, void *work);" in text
    assert "#define PROBLEMS_ROSEN_SPHESS_NNZ 199" in text       # 100 + 2 * 99 - 0 (tridiagonal)
    hpp = lib.cpp_header.read_text()
    assert "namespace bratu_spjac {" in hpp and "outerStarts" in hpp


def energy(x):
    return (x * x).sum()


def test_headers_name_the_python_definition_of_each_function_and_its_derivatives(tmp_path):
    f = av.NumericalFunction("energy", energy, (av.Arg(3),))
    lib = av.export([f, ad.gradient(f), ad.hessian(f)], tmp_path / "build", "defs")
    header = (tmp_path / "build" / "defs.h").read_text()
    where = f"Python definition {__name__}:energy"
    assert header.count(where) == 3, header
    assert set(lib.symbols) == {"energy", "energy_grad", "energy_hess"}


def test_sparse_structure_is_data_in_the_library_not_text_in_the_header(tmp_path):
    """The CSC arrays are exported data symbols (read-only data, `nm` type R) and the tables of
    the code are binary in the object: the header's size and the IR's do not grow with nnz."""
    sizes = {}
    for m in (8, 150):
        J = ad.spjacobian(problem("bratu2d", m).function("bratu"), name="jac")
        lib = av.export([J], tmp_path / str(m), "sizes")
        listing = subprocess.run(["nm", "--defined-only", str(lib.object)], capture_output=True,
                                 text=True, check=True).stdout.split()
        for name in ("sizes_jac_colptr", "sizes_jac_rowind"):
            assert listing[listing.index(name) - 1] == "R", listing
        sizes[m] = (J.nnz, len(lib.header.read_text()), len(lib.cpp_header.read_text()),
                    len(J.lowered(lib.target).ir))
    (nnz_small, *small), (nnz_big, *big) = sizes[8], sizes[150]
    assert nnz_big > 50 * nnz_small
    for a, b in zip(small[:2], big[:2]):
        assert abs(a - b) < 64, sizes                   # digits of the sizes only
    assert big[2] < nnz_big, sizes      # the tables (4 bytes a nonzero and more) are not IR text
