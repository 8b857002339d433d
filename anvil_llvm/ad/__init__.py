"""Automatic differentiation: derivative operators, sparsity and colouring."""
