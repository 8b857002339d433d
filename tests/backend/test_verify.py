"""The graph and schedule verifiers: real schedules pass; each broken invariant is caught and
named (schedules are broken on purpose, as a faulty pass would)."""
import dataclasses

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm.ad import gradient, hessian, jacobian
from anvil_llvm.backend.schedule import WINDOW, schedule
from anvil_llvm.backend.verify import verify_schedule
from anvil_llvm.benchmarks.problems import problem
from anvil_llvm.ir.dtypes import float32
from anvil_llvm.ir.uop import UOp
from anvil_llvm.ir.verify import VerifyError, verify_graph


def scheduled(fn):
    return schedule(fn.inputs, fn.outputs)


@pytest.mark.parametrize("name, size, op", [
    ("rosen", 100, hessian), ("mlp", 9610, gradient), ("bratu2d_E", 10, gradient),
    ("arm", 6, jacobian), ("arrowhead", 1000, gradient)])
def test_schedules_of_the_problems_verify(name, size, op):
    fn = op(problem(name, size).function())
    verify_graph(fn.outputs)
    verify_schedule(scheduled(fn))


def two_intermediates():
    """Two realised reductions alive together, both read by the output's kernel."""
    return av.NumericalFunction(
        "two", lambda x: x * x.sum(axis=0) + x * x.max(axis=0) + x.sum(axis=1, keepdims=True),
        (av.Arg((40, 30)),))


def test_overlapping_live_workspace_is_caught():
    sched = scheduled(two_intermediates())
    verify_schedule(sched)
    work = [n for n, b in sched.buffers.items() if b.kind == "work"]
    assert len(work) >= 2
    first, second = work[:2]
    sched.buffers[second] = dataclasses.replace(sched.buffers[second],
                                                position=sched.buffers[first].position)
    with pytest.raises(VerifyError, match="overlaps"):
        verify_schedule(sched)


def test_workspace_outside_its_size_is_caught():
    sched = scheduled(two_intermediates())
    node = next(n for n, b in sched.buffers.items() if b.kind == "work")
    sched.buffers[node] = dataclasses.replace(sched.buffers[node], position=sched.work_bytes)
    with pytest.raises(VerifyError, match="outside the workspace"):
        verify_schedule(sched)


def test_reading_before_storing_is_caught():
    sched = scheduled(two_intermediates())
    sched.kernels.reverse()
    with pytest.raises(VerifyError, match="before any kernel stores it"):
        verify_schedule(sched)


def test_an_output_left_unwritten_is_caught():
    sched = scheduled(two_intermediates())
    sched.kernels = [k for k in sched.kernels if sched.outputs[0] not in k.roots]
    with pytest.raises(VerifyError, match="output 0 .* never written"):
        verify_schedule(sched)


def test_a_store_of_the_wrong_dtype_is_caught():
    sched = scheduled(two_intermediates())
    kernel = sched.kernels[-1]
    node, buffer = kernel.stores[0]
    kernel.stores[0] = (node, dataclasses.replace(buffer, dtype=float32))
    with pytest.raises(VerifyError, match="stores .* into a buffer of float32"):
        verify_schedule(sched)


def test_an_illegal_window_is_caught():
    fn = gradient(problem("rosen", 100).function())
    sched = scheduled(fn)
    kernel = next(k for k in sched.kernels if k.shape and not k.flat and k.reduction is None)
    node = next(iter(kernel.roots))
    kernel.windows[node.src[0]] = (0, WINDOW)
    with pytest.raises(VerifyError, match="not a legal window"):
        verify_schedule(sched)


def test_tiled_output_with_a_gap_is_caught():
    """The mlp gradient is computed as blocks in place in its output."""
    sched = scheduled(gradient(problem("mlp", 9610).function()))
    blocks = [(n, b) for n, b in sched.buffers.items() if b.kind == "output" and b.offset]
    assert blocks
    node, buffer = blocks[0]
    sched.buffers[node] = dataclasses.replace(buffer, offset=buffer.offset + 1)
    with pytest.raises(VerifyError, match="gap or overlap|cover"):
        verify_schedule(sched)


def test_graph_node_disagreeing_with_its_rules_is_caught():
    f = av.NumericalFunction("f", lambda x: av.sin(x) * 2.0, (av.Arg(4),))
    node = f.outputs[0]
    forged = object.__new__(UOp)
    for field in ("op", "dtype", "shape", "src", "arg", "size"):
        object.__setattr__(forged, field, getattr(node, field))
    object.__setattr__(forged, "shape", (5,))
    with pytest.raises(VerifyError, match=r"mul.*gives float64\[4\].*says float64\[5\]"):
        verify_graph([forged])


def test_verification_runs_on_compile_when_asked(monkeypatch):
    from anvil_llvm.backend import lower as lower_module
    calls = []
    monkeypatch.setenv("ANVIL_LLVM_VERIFY", "1")
    monkeypatch.setattr(lower_module, "verify_schedule", lambda s: calls.append(s))
    f = av.NumericalFunction("verified", lambda x: (x * 3.0).sum(), (av.Arg(7),))
    assert float(f(np.ones(7))) == 21.0
    assert len(calls) == 1
