"""The schedule verifier: what the code generator relies on, checked before it runs.

Every kernel reads only what is computed before it (inputs, constants, and buffers stored by
earlier kernels or earlier in its own nest), stores each of its roots into a buffer of the
root's dtype and size, workspace buffers alive at the same time do not overlap and lie inside
the workspace, every output is written whole (by one kernel or by blocks tiling it), and carried
windows are legal. Errors name the kernel and the node. Run when ANVIL_LLVM_VERIFY is set.
"""
from __future__ import annotations

from ..ir.uop import UOp
from ..ir.verify import VerifyError
from .kernel import Buffer, buffer_nbytes
from .schedule import WINDOW, Schedule, loads


def verify_schedule(sched: Schedule) -> None:
    """Raise VerifyError at the first broken invariant of `sched`.

    >>> import anvil_llvm as av
    >>> from anvil_llvm.backend.schedule import schedule
    >>> f = av.NumericalFunction("v", lambda x: x * x.sum(), (av.Arg(50),))
    >>> verify_schedule(schedule(f.inputs, f.outputs))
    """
    written: set[UOp] = set(n for n, b in sched.buffers.items() if b.kind in ("input", "const"))
    blocks = _output_blocks(sched)
    live: dict[UOp, list[int]] = {}              # work buffer -> [stored at, last read at]
    for t, (where, kernel, roots) in enumerate(_steps(sched)):
        for node in loads(roots, sched.buffers):
            if node not in written and node not in roots:
                raise VerifyError(f"{where} reads {node} before any kernel stores it")
            if node in live:
                live[node][1] = t
        for node in roots:
            for read in loads([node], sched.buffers):
                if read in roots and read not in written:
                    raise VerifyError(f"{where} reads {read} in the same nest before storing it")
            written.add(node)
        for node, buffer in kernel.stores:
            if node in roots:
                _check_store(where, node, buffer)
                if buffer.kind == "work":
                    live.setdefault(node, [t, t])
        for node, (lo, hi) in kernel.windows.items():
            if node in sched.buffers or not 0 <= hi - lo < WINDOW or kernel.flat \
                    or kernel.chunk is not None or kernel.reduction is not None:
                raise VerifyError(f"{where} carries {node} at offsets {lo}..{hi}, which is "
                                  "not a legal window")
        for output in blocks:
            if output not in written and all(b in written for _, b in blocks[output]):
                written.add(output)
    for j, output in enumerate(sched.outputs):
        if output.size and output not in written:
            raise VerifyError(f"output {j} ({output}) is never written whole")
    _check_workspace(sched, live)
    for k, kernel in enumerate(sched.kernels):
        if kernel.body is not None:
            if not 0 <= kernel.scratch <= kernel.scratch + kernel.scratch_bytes <= \
                    sched.work_bytes:
                raise VerifyError(f"kernel {k} (a loop) borrows workspace bytes "
                                  f"{kernel.scratch}..{kernel.scratch + kernel.scratch_bytes} "
                                  f"outside the workspace of {sched.work_bytes} bytes")
            verify_schedule(kernel.body)


def _steps(sched: Schedule):
    """(label, kernel, roots) in execution order: a loop nest is one step (its roots are
    computed together, position by position); the scalar roots of a chunk run one after the
    other, each a step."""
    for k, kernel in enumerate(sched.kernels):
        where = f"kernel {k} over {kernel.shape}"
        if kernel.chunk is None:
            yield where, kernel, list(kernel.roots)
        else:
            for root in kernel.roots:
                yield where, kernel, [root]


def _check_store(where: str, node: UOp, buffer: Buffer) -> None:
    if buffer.dtype != node.dtype or buffer.size < node.size:
        raise VerifyError(f"{where} stores {node} into a buffer of {buffer.dtype}"
                          f"[{buffer.size}]")


def _output_blocks(sched: Schedule) -> dict[UOp, list[tuple[int, UOp]]]:
    """Outputs computed as blocks in place (`Buffer.offset`), or as one node they reshape: the
    blocks, which must tile the output exactly."""
    blocks: dict[UOp, list[tuple[int, UOp]]] = {}
    for j, output in enumerate(sched.outputs):
        parts = sorted((b.offset, n) for n, b in sched.buffers.items()
                       if b.kind == "output" and b.position == j and n is not output)
        if not parts:
            continue
        end = 0
        for offset, node in parts:
            if offset != end:
                raise VerifyError(f"output {j} ({output}): its blocks leave a gap or overlap "
                                  f"at element {end} ({node} starts at {offset})")
            end += node.size
        if end != output.size:
            raise VerifyError(f"output {j} ({output}): its blocks cover {end} of "
                              f"{output.size} elements")
        blocks[output] = parts
    return blocks


def _check_workspace(sched: Schedule, live: dict[UOp, list[int]]) -> None:
    """Workspace buffers lie inside the workspace, and no two alive at once overlap (a sweep
    over the steps in order; a buffer last read in the step that stores another is alive
    there)."""
    active: list[tuple[int, int, int, UOp]] = []   # (last read, start byte, end byte, node)
    for node, (start, end) in sorted(live.items(), key=lambda item: item[1][0]):
        buffer = sched.buffers[node]
        first = buffer.position
        last = first + buffer_nbytes(buffer.dtype, buffer.size)
        if first < 0 or last > sched.work_bytes:
            raise VerifyError(f"{node}: workspace bytes {first}..{last} outside the "
                              f"workspace of {sched.work_bytes} bytes")
        active = [a for a in active if a[0] >= start]
        for _, a_first, a_last, other in active:
            if first < a_last and a_first < last:
                raise VerifyError(f"{node} (bytes {first}..{last}, kernels {start}..{end}) "
                                  f"overlaps {other} (bytes {a_first}..{a_last}), still alive")
        active.append((end, first, last, node))
