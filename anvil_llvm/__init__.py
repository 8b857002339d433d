"""anvil_llvm: trace numerical Python functions, differentiate them, compile them with LLVM."""
