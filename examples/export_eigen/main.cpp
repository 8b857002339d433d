// Newton's method for the Bratu problem F(u) = 0 in C++: F and its sparse Jacobian come from
// the library exported by anvil_llvm (mymodel.hpp), the linear solves from Eigen's SparseLU.
#include <Eigen/SparseCore>
#include <Eigen/SparseLU>
#include <cstdio>
#include <fstream>
#include <vector>

#include "mymodel.hpp"

using namespace mymodel;
using SpMat = Eigen::SparseMatrix<double, Eigen::ColMajor, int>;

int main(int argc, char **argv) {
  const int n = static_cast<int>(dyn::in_sizes[0]);
  Eigen::VectorXd u = Eigen::VectorXd::Zero(n), F(n);
  std::vector<double> values(dyn_jac::nnz);
  Workspace work_f = dyn::workspace(), work_j = dyn_jac::workspace();
  Eigen::SparseLU<SpMat> lu;
  for (int it = 0; it < 20; ++it) {
    dyn::eval(u.data(), F.data(), work_f.data());
    std::printf("iteration %d: |F| = %.3e\n", it, F.norm());
    if (F.norm() < 1e-12) {
      std::printf("converged: max u = %.15f\n", u.maxCoeff());
      if (argc > 1)
        std::ofstream(argv[1], std::ios::binary)
            .write(reinterpret_cast<const char *>(u.data()), sizeof(double) * n);
      return 0;
    }
    dyn_jac::eval(u.data(), values.data(), work_j.data());
    Eigen::Map<const SpMat> J(dyn_jac::rows, dyn_jac::cols, dyn_jac::nnz,
                              dyn_jac::outerStarts, dyn_jac::innerIndices, values.data());
    if (it == 0) lu.analyzePattern(J);             // the pattern never changes
    lu.factorize(J);
    u -= lu.solve(F);
  }
  std::printf("no convergence\n");
  return 1;
}
