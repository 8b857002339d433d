"""casadi=True: CasADi's external-function API, loaded by casadi.external from the shared library
(values identical to the JIT), NULL inputs and outputs, and the acados `int` variant from C."""
import ctypes

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.benchmarks.problems import problem

from export_helpers import build, needs_cc, run, same_bits

casadi = pytest.importorskip("casadi")
pytestmark = needs_cc


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    p = problem("bratu2d", 6)
    f = p.function("dyn")
    J = ad.spjacobian(f, name="dyn_jac")
    two = av.NumericalFunction("two", lambda x, y: (x * y, av.sin(x).sum() + y[0]),
                               (av.Arg(4), av.Arg(4)))
    lib = av.export([f, J, two], tmp_path_factory.mktemp("casadi"), "mymodel", shared=True,
                    casadi=True)
    return p, f, J, two, lib


def test_casadi_external_computes_the_jits_bits(exported):
    p, f, J, _, lib = exported
    F = casadi.external("dyn", str(lib.shared))
    G = casadi.external("dyn_jac", str(lib.shared))
    assert (F.n_in(), F.n_out(), F.name_in(0), F.name_out(0)) == (1, 1, "x", "out")
    x = p.x0 + 0.1
    assert same_bits(np.array(F(x)).ravel(), f(x))
    sparsity = G.sparsity_out(0)
    assert (sparsity.size1(), sparsity.size2(), sparsity.nnz()) == (*J.shape, J.nnz)
    np.testing.assert_array_equal(sparsity.colind(), J.indptr)
    np.testing.assert_array_equal(sparsity.row(), J.indices)
    values = np.array(G(x).nonzeros())
    assert same_bits(values, J(x))
    # independent: CasADi's own finite differences of our F agree with our Jacobian
    X = casadi.MX.sym("x", p.n)
    Ffd = casadi.external("dyn", str(lib.shared), {"enable_fd": True})
    jac = casadi.Function("jfd", [X], [casadi.jacobian(Ffd(X), X)])
    np.testing.assert_allclose(np.array(jac(x)), J.csc(x).toarray(), atol=1e-6)


def test_casadi_symbolic_use_inside_an_expression(exported):
    p, f, _, two, lib = exported
    T = casadi.external("two", str(lib.shared))
    x, y = np.linspace(0.1, 0.4, 4), np.linspace(1.0, 2.0, 4)
    X = casadi.MX.sym("x", 4)
    Y = casadi.MX.sym("y", 4)
    a, b = T(X, Y)
    H = casadi.Function("h", [X, Y], [casadi.sum1(a) + 2 * b])
    expected = (x * y).sum() + 2 * (np.sin(x).sum() + y[0])
    assert float(H(x, y)) == pytest.approx(expected, rel=1e-14)


def _api(lib, name, int_type=ctypes.c_longlong):
    dll = ctypes.CDLL(str(lib.shared))
    fn = getattr(dll, name)
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
                   ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    work = getattr(dll, name + "_work")
    work.restype = ctypes.c_int
    sizes = [int_type(-1) for _ in range(4)]
    assert work(*[ctypes.byref(s) for s in sizes]) == 0
    return fn, [s.value for s in sizes]


def test_null_inputs_read_zeros_and_null_outputs_are_skipped(exported):
    _, _, _, two, lib = exported
    fn, (sz_arg, sz_res, sz_iw, sz_w) = _api(lib, "two")
    assert (sz_arg, sz_res, sz_iw) == (2, 2, 0) and sz_w > 0
    x = np.linspace(0.1, 0.4, 4)
    w = np.full(sz_w, np.nan)                     # garbage: the zeros must be written
    first = np.full(4, np.nan)
    arg = (ctypes.c_void_p * 2)(x.ctypes.data, None)                  # y = NULL: zeros
    res = (ctypes.c_void_p * 2)(first.ctypes.data, None)              # second not wanted
    assert fn(arg, res, None, w.ctypes.data_as(ctypes.c_void_p), 0) == 0
    a, _ = two(x, np.zeros(4))
    assert same_bits(first, a)
    second = np.empty(())
    res = (ctypes.c_void_p * 2)(None, second.ctypes.data)
    arg = (ctypes.c_void_p * 2)(None, x.ctypes.data)                  # x = NULL
    assert fn(arg, res, None, w[1:].ctypes.data_as(ctypes.c_void_p), 0) == 0   # misaligned w
    assert same_bits(second, two(np.zeros(4), x)[1])


ACADOS_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mymodel.h"   /* declares the API with casadi_int = int */

int main(int argc, char **argv) {
  (void)argc;
  int sz_arg, sz_res, sz_iw, sz_w;
  if (dyn_jac_work(&sz_arg, &sz_res, &sz_iw, &sz_w) != 0) return 1;
  const int *sp = dyn_jac_sparsity_out(0);
  int n = dyn_jac_sparsity_in(0)[0];
  double *x = malloc(n * sizeof(double));
  FILE *f = fopen(argv[1], "rb");
  if (fread(x, sizeof(double), n, f) != (size_t)n) return 2;
  fclose(f);
  int nnz = sp[2 + sp[1]];
  double *values = malloc(nnz * sizeof(double));
  double *w = malloc(sz_w * sizeof(double));
  int *iw = malloc((sz_iw + 1) * sizeof(int));
  const double *arg[1] = {x};
  double *res[1] = {values};
  /* acados calls through int (*)(const double **, double **, int *, double *, void *) */
  int (*fun)(const double **, double **, int *, double *, void *) =
      (int (*)(const double **, double **, int *, double *, void *))dyn_jac;
  if (fun(arg, res, iw, w, NULL) != 0) return 3;
  if (dyn_jac_sparsity_out(1) != NULL || dyn_jac_sparsity_in(-1) != NULL) return 4;
  printf("%d %d %d %d %d %d %s %s\n", dyn_jac_n_in(), dyn_jac_n_out(), sp[0], sp[1], nnz,
         sz_arg, dyn_jac_name_in(0), dyn_jac_name_out(0));
  f = fopen(argv[2], "wb");
  fwrite(values, sizeof(double), nnz, f);
  fclose(f);
  return 0;
}
"""


def test_acados_int_variant_from_c(tmp_path):
    p = problem("bratu2d", 6)
    J = ad.spjacobian(p.function("dyn"), name="dyn_jac")
    lib = av.export([J], tmp_path / "build", "mymodel", casadi=True, casadi_int="int")
    assert "int dyn_jac_n_in(void);" in lib.header.read_text()
    (tmp_path / "acados.c").write_text(ACADOS_PROGRAM)
    program = build(lib, tmp_path / "acados.c", tmp_path / "acados", extra=["-Wno-cast-function-type"])
    x = p.x0 - 0.05
    x.tofile(tmp_path / "x.bin")
    out = run(program, tmp_path / "x.bin", tmp_path / "values.bin").split()
    assert out == ["1", "1", str(J.shape[0]), str(J.shape[1]), str(J.nnz), "1", "x", "out"]
    assert same_bits(np.fromfile(tmp_path / "values.bin"), J(x))


def test_casadi_needs_float64(tmp_path):
    g = av.NumericalFunction("g", lambda x: x * 2.0, (av.Arg(3, av.float32),))
    with pytest.raises(ValueError, match="^casadi: function 'g' has argument 'x' of dtype "
                       "float32"):
        av.export([g], tmp_path, "lib", casadi=True)


def test_casadi_names_must_not_collide_with_c_symbols(tmp_path):
    f = av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(3),))
    g = av.NumericalFunction("lib_f", lambda x: x * 3.0, (av.Arg(3),))    # CasADi's "lib_f"
    with pytest.raises(ValueError, match="'lib_f' is used twice"):
        av.export([f, g], tmp_path, "lib", casadi=True)


def test_casadi_names_must_not_replace_c_library_functions(tmp_path):
    g = av.NumericalFunction("exp", lambda x: av.exp(x), (av.Arg(3),))
    assert av.export([g], tmp_path, "lib").symbols == {"exp": "lib_exp"}    # prefixed: fine
    with pytest.raises(ValueError, match="^casadi: function 'exp' would define exp"):
        av.export([g], tmp_path, "lib", casadi=True)
