"""C++ programs against the C++ header: an Eigen sparse map of an exported sparse Jacobian, and
two threads calling one function with separate workspaces."""
import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import ad
from anvil_llvm.benchmarks.problems import problem

from export_helpers import build, needs_cxx, needs_eigen, run, same_bits

pytestmark = needs_cxx


@pytest.fixture(scope="module")
def bratu(tmp_path_factory):
    """bratu2d (m = 12) and its sparse Jacobian, exported."""
    p = problem("bratu2d", 12)
    f = p.function("dyn")
    J = ad.spjacobian(f, name="dyn_jac")
    # the colours' products decompressed by a kernel of their own live in its workspace (the
    # threads test needs one)
    colours = ad.spjacobian(f, name="dyn_colours", entrywise=False, sep_uncompression=True)
    lib = av.export([f, J, colours], tmp_path_factory.mktemp("bratu") / "build", "mymodel")
    return p, f, J, lib, colours


EIGEN_PROGRAM = r"""
#include <Eigen/Dense>
#include <Eigen/SparseCore>
#include <cstdio>
#include <fstream>
#include <vector>
#include "mymodel.hpp"

using namespace mymodel;
using SpMat = Eigen::SparseMatrix<double, Eigen::ColMajor, int>;

static std::vector<double> load(const char *path, std::size_t n) {
  std::vector<double> v(n);
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char *>(v.data()), n * 8);
  return v;
}
static void save(const char *path, const double *p, std::size_t n) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char *>(p), n * 8);
}

int main(int, char **argv) {
  std::vector<double> x = load(argv[1], dyn_jac::in_sizes[0]);
  std::vector<double> v = load(argv[2], dyn_jac::cols);
  std::vector<double> values(dyn_jac::nnz);
  Workspace work = dyn_jac::workspace();
  if (dyn_jac::eval(x.data(), values.data(), work.data()) != 0) return 1;
  Eigen::Map<const SpMat> J(dyn_jac::rows, dyn_jac::cols, dyn_jac::nnz, dyn_jac::outerStarts,
                            dyn_jac::innerIndices, values.data());
  Eigen::VectorXd Jv = J * Eigen::Map<const Eigen::VectorXd>(v.data(), dyn_jac::cols);
  Eigen::MatrixXd dense = Eigen::MatrixXd(J);                 // column-major
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rows = dense;
  save(argv[3], Jv.data(), Jv.size());
  save(argv[4], rows.data(), rows.size());
  std::printf("%d %d %d\n", dyn_jac::rows, dyn_jac::cols, dyn_jac::nnz);
  return 0;
}
"""


@needs_eigen
def test_eigen_maps_the_sparse_jacobian(bratu, tmp_path):
    p, f, J, lib, _ = bratu
    x = p.x0
    v = np.random.default_rng(3).standard_normal(p.n)
    x.tofile(tmp_path / "x.bin")
    v.tofile(tmp_path / "v.bin")
    (tmp_path / "eigen.cpp").write_text(EIGEN_PROGRAM)
    program = build(lib, tmp_path / "eigen.cpp", tmp_path / "eigen", cxx=True)
    out = run(program, tmp_path / "x.bin", tmp_path / "v.bin", tmp_path / "jv.bin",
              tmp_path / "dense.bin")
    assert out.split() == [str(J.shape[0]), str(J.shape[1]), str(J.nnz)]
    dense_jit = ad.jacobian(f)(x)                     # an independent dense derivative
    dense_c = np.fromfile(tmp_path / "dense.bin").reshape(J.shape)
    assert same_bits(dense_c, J.csc(x).toarray())     # the nonzeros are the JIT's bits
    np.testing.assert_allclose(dense_c, dense_jit, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(np.fromfile(tmp_path / "jv.bin"), dense_jit @ v, rtol=1e-13,
                               atol=1e-13)


THREADS_PROGRAM = r"""
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>
#include "mymodel.hpp"

using namespace mymodel;

int main(int, char **argv) {
  const std::size_t n = dyn_colours::in_sizes[0];
  std::vector<double> xs(2 * n);
  std::ifstream(argv[1], std::ios::binary).read(reinterpret_cast<char *>(xs.data()), 16 * n);
  std::vector<double> results(2 * dyn_colours::nnz);
  int failures[2] = {0, 0};
  auto worker = [&](int k) {
    Workspace work = dyn_colours::workspace();              // one workspace per thread
    std::vector<double> first(dyn_colours::nnz), again(dyn_colours::nnz);
    dyn_colours::eval(xs.data() + k * n, first.data(), work.data());
    for (int it = 0; it < 2000; ++it) {
      dyn_colours::eval(xs.data() + k * n, again.data(), work.data());
      if (std::memcmp(first.data(), again.data(), 8 * dyn_colours::nnz) != 0) ++failures[k];
    }
    std::memcpy(results.data() + k * dyn_colours::nnz, first.data(), 8 * dyn_colours::nnz);
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  std::ofstream(argv[2], std::ios::binary).write(reinterpret_cast<const char *>(results.data()),
                                                 8 * results.size());
  std::printf("%d %d\n", failures[0], failures[1]);
  return 0;
}
"""


def test_two_threads_call_one_function_with_separate_workspaces(bratu, tmp_path):
    p, f, _, lib, J = bratu
    assert J.work_bytes > 0             # the workspace is really used
    rng = np.random.default_rng(11)
    xs = np.stack([p.x0, 0.5 * rng.random(p.n)])
    xs.tofile(tmp_path / "xs.bin")
    (tmp_path / "threads.cpp").write_text(THREADS_PROGRAM)
    program = build(lib, tmp_path / "threads.cpp", tmp_path / "threads", cxx=True,
                    extra=["-pthread"])
    assert run(program, tmp_path / "xs.bin", tmp_path / "out.bin").split() == ["0", "0"]
    out = np.fromfile(tmp_path / "out.bin").reshape(2, J.nnz)
    for k in range(2):
        assert same_bits(out[k], J(xs[k]))
