"""The backend: scheduling into kernels, LLVM IR emission, JIT compilation and the call path."""
