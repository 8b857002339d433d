"""Automatic differentiation: the derivative operators (`gradient`, `jacobian`, `hessian`, `jvp`,
`vjp`, `hvp`, ...), each taking a function and returning a new function."""
from .operators import (derivative, gradient, grad, hessian, hvp, jacfwd, jacobian, jacrev, jvp,
                        second_derivative, sphessian, spjacobian, value_and_grad,
                        value_and_gradient, value_and_jacobian, value_gradient_and_hessian, vjp,
                        vmap)
from .sparsity import hessian_sparsity, jacobian_sparsity

__all__ = [
    "derivative", "gradient", "grad", "hessian", "hessian_sparsity", "hvp", "jacfwd",
    "jacobian", "jacobian_sparsity", "jacrev", "jvp", "second_derivative", "sphessian",
    "spjacobian", "value_and_grad",
    "value_and_gradient", "value_and_jacobian", "value_gradient_and_hessian", "vjp", "vmap",
]
