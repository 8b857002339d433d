"""Quick start: trace a function, call the compiled code, differentiate it."""
import numpy as np

import anvil_llvm as av
from anvil_llvm.ad import gradient, hessian, jacobian


@av.numerical_function("cost", 5)           # name, then one shape per argument
def cost(x: av.Tensor) -> av.Tensor:
    return (x * x).sum()


f = av.NumericalFunction("f", lambda x: av.Tensor.stack(x[0] * x[1], x[1] ** 2), (av.Arg(2),))

print(cost(np.arange(1.0, 6.0)))             # 55.0
print(f(np.array([3.0, 4.0])))               # [12. 16.]
print(gradient(cost)(np.arange(1.0, 6.0)))   # [ 2.  4.  6.  8. 10.]
print(jacobian(f)(np.array([3.0, 4.0])))     # [[4. 3.] [0. 8.]]

c = av.NumericalFunction("c", lambda x: x[0] ** 2 + x[0] * x[1] + x[1] ** 2, (av.Arg(2),))
print(hessian(c)(np.array([1.0, 1.0])))      # [[2. 1.] [1. 2.]]
print(cost.graph)                            # the traced graph, one line per node
