"""Rerolling random step programs: whatever repetition it finds, the rolled graph computes what
the unrolled one does, to the last bit in the reference interpreter."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm.ir import dtypes, reroll
from anvil_llvm.ir.interpret import evaluate
from anvil_llvm.ir.ops import INPUT, LOOP
from anvil_llvm.ir.uop import UOp, toposort

SIZE = 3

# one instruction of a step: (kind, operand a, operand b); operands index the step's values
instruction = st.tuples(st.sampled_from(["add", "mul", "sin", "tanh", "flip", "pick", "stack",
                                         "where", "scale"]),
                        st.integers(0, 50), st.integers(0, 50), st.integers(0, SIZE - 1))

program = st.fixed_dictionaries({
    "body": st.lists(instruction, min_size=2, max_size=9),
    "substeps": st.integers(1, 3),
    "steps": st.integers(4, 40),
    "varying": st.booleans(),          # a constant that changes each step (a time)
    "trajectory": st.booleans(),       # each step's state collected and concatenated
    "control": st.booleans(),          # each step reads its own slice of the input
})


def run(prog, z, m):
    """The program traced (m = anvil_llvm) or computed (m = numpy) on z = [state, controls]."""
    x, states = z[:SIZE], []
    for k in range(prog["steps"]):
        for _ in range(prog["substeps"]):
            values = [x, z[SIZE + k] if prog["control"] else x[0]]
            for kind, a, b, i in prog["body"]:
                u, v = values[a % len(values)], values[b % len(values)]
                if kind == "add":
                    values.append(u + v)
                elif kind == "mul":
                    values.append(u * v * 0.5)
                elif kind == "sin":
                    values.append(m.sin(u))
                elif kind == "tanh":
                    values.append(m.tanh(u) + (0.01 * k if prog["varying"] else 0.0))
                elif kind == "flip":
                    values.append(u[::-1] if u.ndim else -u)
                elif kind == "pick":
                    values.append(u[i] if u.ndim else u * 1.5)
                elif kind == "stack":
                    values.append(m.stack([u[i] if u.ndim else u, u[0] if u.ndim else u,
                                           v[i] if v.ndim else v]))
                elif kind == "where":
                    values.append(m.where(u > 0.1, u, v * 0.25))
                else:
                    values.append(u * 0.75 - 0.125)
            vectors = [v for v in values[2:] if v.ndim]
            x = 0.5 * x + 0.25 * m.tanh(vectors[-1] if vectors else x * values[-1])
        states.append(x)
    return m.concatenate(states) if prog["trajectory"] else x


@pytest.fixture
def small_loops(monkeypatch):
    """Rerolling of repetitions of any size (a random step is a handful of nodes)."""
    monkeypatch.setattr(reroll, "MIN_NODES", 12)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prog=program, seed=st.integers(0, 2 ** 16))
def test_rolled_random_programs_compute_the_unrolled_values(small_loops, prog, seed):
    size = SIZE + (prog["steps"] if prog["control"] else 0)
    z = UOp(INPUT, (), (0, (size,), dtypes.float64))
    unrolled = [run(prog, av.Tensor(z), av).node]
    rolled = reroll.reroll(unrolled)
    value = np.random.default_rng(seed).uniform(-1.0, 1.0, size)
    want = evaluate(unrolled, [value])[0]
    np.testing.assert_array_equal(evaluate(rolled, [value])[0], want)
    np.testing.assert_allclose(want, run(prog, value, np), rtol=1e-12, atol=1e-14)
    nodes = toposort(rolled)
    if any(n.op is LOOP for n in nodes):
        assert len(nodes) < len(toposort(unrolled))
