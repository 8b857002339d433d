"""Pictures of what a function became: a sparsity pattern with its colouring (`spy`), the UOp
graph as Graphviz text (`to_dot`) and the kernels (loop nests) of its schedule
(`schedule_text`).

Only `spy` needs matplotlib, imported when it draws (`pip install anvil_llvm[viz]`).
"""
from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from ._lazy import scipy_sparse as sp
from .ad.coloring import Coloring
from .backend.kernel import Kernel, over_source
from .backend.schedule import Schedule, schedule
from .backend.target import Target
from .ir.ops import INPUT
from .ir.uop import OpKind, UOp, _short, toposort

_UNCOLORED = (0.1, 0.1, 0.1, 1.0)


# ---- spy: sparsity patterns and colourings ------------------------------------------------------
def _matplotlib():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("anvil_llvm.viz.spy draws with matplotlib, which is not installed: "
                          "pip install anvil_llvm[viz]") from e
    return matplotlib


def _as_pattern(pattern: Any) -> sp.csc_array:
    if isinstance(pattern, np.ndarray) and pattern.ndim == 2 or sp.issparse(pattern):
        found = sp.csc_array(pattern) != 0
        found.sort_indices()
        return found
    raise TypeError(f"pattern: expected a 2-D scipy.sparse array, a 2-D NumPy array or a sparse "
                    f"function (spjacobian, sphessian), got {type(pattern).__name__}")


def entry_products(coloring: Coloring) -> np.ndarray:
    """For each nonzero of `coloring.pattern` (CSC order), the directional derivative it is read
    from: column colours first (0 .. ncolumn_colors - 1), then row colours. For a column
    colouring that is its column's colour, for a row colouring its row's.

    >>> import scipy.sparse as sp
    >>> from anvil_llvm.ad.coloring import jacobian_coloring
    >>> r = jacobian_coloring(sp.csc_array([[1, 1, 0], [0, 1, 1]]) != 0, partition="column")
    >>> entry_products(r).tolist() == [r.colors[j] for j in (0, 1, 1, 2)]
    True
    """
    rows, n = coloring.pattern.shape
    tables, c1 = coloring.tables, coloring.ncolumn_colors
    source = np.asarray(tables.source, np.int64)
    products = np.where(source < rows * c1, source // max(rows, 1),
                        c1 + (source - rows * c1) // max(n, 1))
    if tables.direct:
        return products
    found = np.full(coloring.pattern.nnz, -1, np.int64)
    found[np.asarray(tables.target, np.int64)] = products
    return found


def _mark_products(pattern: sp.csc_array, coloring: Coloring) -> np.ndarray:
    """The product of each nonzero of `pattern` (CSC order), looked up in `coloring.pattern`;
    below the diagonal of a Hessian colouring (an upper triangle), at the mirrored entry."""
    if pattern.shape != coloring.pattern.shape:
        raise ValueError(f"coloring: a colouring of a {coloring.pattern.shape} pattern, the "
                         f"pattern is {pattern.shape}")
    m = pattern.shape[0]
    known = sp.csc_array(coloring.pattern) != 0
    known.sort_indices()
    keys = np.repeat(np.arange(known.shape[1]), np.diff(known.indptr)) * m + known.indices
    products = entry_products(coloring)
    rows = pattern.indices
    cols = np.repeat(np.arange(pattern.shape[1]), np.diff(pattern.indptr))
    wanted = cols * m + rows
    if coloring.method in ("star", "acyclic"):          # Hessian colourings: the upper triangle
        lower = rows > cols
        wanted[lower] = rows[lower] * m + cols[lower]
    at = np.searchsorted(keys, wanted)
    found = at < keys.size
    found[found] = keys[at[found]] == wanted[found]
    if not found.all():
        k = int(np.argmin(found))
        raise ValueError(f"pattern: entry ({rows[k]}, {cols[k]}) is not in the colouring's "
                         "pattern")
    return products[at]


def palette(count: int) -> np.ndarray:
    """`count` distinct RGBA colours (matplotlib's tab10 or tab20, else spaced along turbo).

    >>> palette(3).shape
    (3, 4)
    """
    mpl = _matplotlib()
    if count <= 20:
        table = mpl.colormaps["tab10" if count <= 10 else "tab20"]
        return np.array([table(k) for k in range(count)]).reshape(count, 4)
    return mpl.colormaps["turbo"](np.linspace(0.0, 1.0, count))


def spy(pattern: Any, coloring: Coloring | None = None, *, ax: Any = None,
        path: str | pathlib.Path | None = None, title: str | None = None,
        size: float = 6.0) -> Any:
    """Draw a sparsity pattern with matplotlib: one square mark per nonzero, coloured by the
    directional derivative it is read from when a `coloring` is given (a column colouring
    colours columns, a row colouring rows; a Hessian colouring its whole symmetric pattern).

    `pattern` is a 2-D scipy.sparse or NumPy array, or a sparse function (`spjacobian`,
    `sphessian`), whose pattern and colouring are then used. Draws into `ax` (else a new
    figure `size` inches wide); returns the axes, or, given a `path`, writes a PNG there and
    returns the path.

    >>> import tempfile, pathlib, anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x[1:] * x[:-1], (av.Arg(6),))
    >>> J = av.ad.spjacobian(f)
    >>> png = spy(J, path=pathlib.Path(tempfile.mkdtemp()) / "J.png")
    >>> png.read_bytes()[:4]
    b'\\x89PNG'
    """
    if coloring is None and hasattr(pattern, "coloring") and hasattr(pattern, "pattern"):
        pattern, coloring = pattern.pattern, pattern.coloring
    elif hasattr(pattern, "pattern") and not sp.issparse(pattern):
        pattern = pattern.pattern
    if coloring is not None and not isinstance(coloring, Coloring):
        raise TypeError(f"coloring: expected an anvil_llvm.ad.coloring.Coloring or None, got "
                        f"{type(coloring).__name__}")
    csc = _as_pattern(pattern)
    _matplotlib()
    m, n = csc.shape
    if coloring is None:
        colors = np.tile(_UNCOLORED, (csc.nnz, 1))
        count = 0
    else:
        products = _mark_products(csc, coloring)
        count = coloring.ncolors
        colors = np.vstack([palette(count), _UNCOLORED])[products]
    if ax is None:
        ax = _new_axes(m, n, size, path is not None)
    rows = csc.indices
    cols = np.repeat(np.arange(n), np.diff(csc.indptr))
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(m - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.xaxis.tick_top()
    box = ax.get_window_extent()
    cell = min(box.width / max(n, 1), box.height / max(m, 1)) * 72.0 / ax.figure.dpi
    ax.scatter(cols, rows, c=colors, marker="s", s=max(0.9 * cell, 0.5) ** 2, linewidths=0)
    ax.set_title(title if title is not None else _caption(csc, coloring, count))
    if path is None:
        return ax
    # no version stamp in the file: the same picture makes the same bytes
    ax.figure.savefig(path, format="png", dpi=100, bbox_inches="tight",
                      metadata={"Software": None})
    return pathlib.Path(path)


def _new_axes(m: int, n: int, size: float, offscreen: bool):
    height = min(max(size * m / max(n, 1), 1.5), 2 * size) + 0.6
    if offscreen:          # no pyplot: nothing is kept or shown
        from matplotlib.figure import Figure
        return Figure(figsize=(size, height)).add_subplot()
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(size, height))[1]


def _caption(pattern: sp.csc_array, coloring: Coloring | None, count: int) -> str:
    m, n = pattern.shape
    text = f"{m} x {n}, {pattern.nnz} nonzeros"
    if coloring is None:
        return text
    return f"{text}, {count} colours ({coloring.partition}, {coloring.method})"


# ---- to_dot: the UOp graph ----------------------------------------------------------------------
_KIND_COLORS = {OpKind.SOURCE: "gray90", OpKind.ELEMENTWISE: "white",
                OpKind.MOVEMENT: "lightblue", OpKind.REDUCE: "orange",
                OpKind.CONTRACT: "orange", OpKind.LOOP: "pink", OpKind.PROGRAM: "pink"}


def _graph_of(fn: Any) -> tuple[list[UOp], dict[UOp, str], str]:
    """(outputs, input labels, name) of a function, a node or a sequence of nodes."""
    if isinstance(fn, UOp):
        return [fn], {}, "graph"
    if hasattr(fn, "outputs") and hasattr(fn, "inputs"):
        names = getattr(fn, "arg_names", [])
        return list(fn.outputs), dict(zip(fn.inputs, names)), getattr(fn, "name", "graph")
    if isinstance(fn, (list, tuple)) and fn and all(isinstance(o, UOp) for o in fn):
        return list(fn), {}, "graph"
    raise TypeError(f"fn: expected a NumericalFunction, a UOp or a sequence of UOps, got "
                    f"{type(fn).__name__}")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_parts(node: UOp, number: int, labels: dict[UOp, str] | None) -> tuple[str, str]:
    label = (labels or {}).get(node)
    if label is None and node.op.kind is OpKind.SOURCE and node.op is not INPUT:
        label = _short(node.arg)
    extra = f" {label}" if label else ""
    return f"%{number} {node.op.name}{extra}", f"{node.dtype}{list(node.shape)}"


def node_label(node: UOp, number: int, labels: dict[UOp, str] | None = None) -> str:
    """A node as the graph's text form names it: `%3 mul float64[5]` (inputs by name,
    constants with their value).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(3),))
    >>> node_label(f.outputs[0], 2)
    '%2 mul float64[3]'
    """
    return " ".join(_node_parts(node, number, labels))


def to_dot(fn: Any) -> str:
    """The UOp graph of `fn` (a NumericalFunction, a UOp or a list of UOps) as Graphviz text:
    one node per UOp, numbered as in `fn.graph` and labelled by op, shape and dtype (coloured
    by kind; outputs drawn with a double border), and one edge per source, from the source to
    its user (labelled by position where a node has several). Render it with
    `dot -Tsvg`.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x * x, (av.Arg(2),))
    >>> print(to_dot(f))
    digraph "f" {
      rankdir=TB;
      node [shape=box, style=filled, fontname="monospace"];
      n0 [label="%0 input x\\nfloat64[2]", fillcolor="gray90"];
      n1 [label="%1 mul\\nfloat64[2]", fillcolor="white", peripheries=2];
      n0 -> n1 [label="0"];
      n0 -> n1 [label="1"];
    }
    """
    outputs, labels, name = _graph_of(fn)
    order = toposort(outputs)
    number = {node: i for i, node in enumerate(order)}
    returned = set(outputs)
    lines = [f"digraph {_quoted(name)} {{", "  rankdir=TB;",
             '  node [shape=box, style=filled, fontname="monospace"];']
    for i, node in enumerate(order):
        head, tail = _node_parts(node, i, labels)
        color = _KIND_COLORS[node.op.kind]
        attrs = f'label={_quoted(head + chr(10) + tail)}, fillcolor="{color}"'
        if node in returned:
            attrs += ", peripheries=2"
        lines.append(f"  n{i} [{attrs}];")
    for i, node in enumerate(order):
        for k, s in enumerate(node.src):
            label = f' [label="{k}"]' if len(node.src) > 1 else ""
            lines.append(f"  n{number[s]} -> n{i}{label};")
    lines.append("}")
    return "\n".join(lines)


# ---- schedule_text: the kernels -----------------------------------------------------------------
def function_schedule(fn: Any, target: Target | None = None) -> Schedule:
    """The schedule `fn` is (or would be) compiled with for `target` (default: the JIT), made
    without generating code.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(100),))
    >>> len(function_schedule(f).kernels)
    1
    """
    target = Target.jit() if target is None else target
    return schedule(list(fn.inputs), list(fn.outputs), gemm=target.gemm == "scipy")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _kernel_head(kernel: Kernel, sched: Schedule) -> str:
    root = kernel.roots[0]
    if kernel.body is not None:
        return (f"loop of {root.arg.length} steps over shape {root.shape}, calling its body "
                f"({_count(len(kernel.body.kernels), 'kernel')})")
    if root.op.kind is OpKind.PROGRAM:
        where = ", on its source in place" if kernel.in_place else ""
        return f"program {root.op.name} (a sequential kernel{where})"
    if root in sched.gemms:
        return f"GEMM call (BLAS) for shape {root.shape}"
    flat = ", flat" if kernel.flat else ""
    if kernel.chunk is not None:
        return f"chunk {kernel.chunk} of scalar code ({_count(kernel.ops, 'operation')})"
    if kernel.reduction is not None:
        inner = tuple(root.op.reduction.reduced_shape(root))
        return f"nest over {kernel.shape}{flat}, reducing over {inner} inside"
    if over_source(root):
        flat += f", folding into {root.op.name}'s result as it goes"
    return f"nest over {kernel.shape}{flat} ({_count(kernel.ops, 'operation')} per position)"


def _where(buffer) -> str:
    if buffer.kind == "work":
        return f"workspace at byte {buffer.position}"
    block = f" from element {buffer.offset}" if buffer.offset else ""
    return f"{buffer.kind} {buffer.position}{block}"


def _schedule_lines(sched: Schedule, outputs: list[UOp], labels: dict[UOp, str],
                    indent: str) -> list[str]:
    """The kernels of `sched`, nodes numbered as in the graph of `outputs` (the scheduler may
    rewrite a few, for BLAS: those are not numbered)."""
    number = {node: i for i, node in enumerate(toposort(outputs))}

    def name(node: UOp) -> str:
        if node in number:
            return node_label(node, number[node], labels)
        return f"{node.op.name} {node.dtype}{list(node.shape)}"

    lines = []
    for k, kernel in enumerate(sched.kernels):
        lines.append(f"{indent}kernel {k}: {_kernel_head(kernel, sched)}")
        stored = dict(kernel.stores)
        for root in kernel.roots:
            where = _where(stored[root]) if root in stored else "registers (read in this nest)"
            lines.append(f"{indent}  {name(root)} -> {where}")
        for node, (low, high) in kernel.windows.items():
            lines.append(f"{indent}  carries {name(node)} in registers, read at offsets "
                         f"{low}..{high}")
        if kernel.body is not None:
            lines.extend(_schedule_lines(kernel.body, kernel.body.outputs, {}, indent + "    "))
    return lines


def schedule_text(fn: Any, target: Target | None = None) -> str:
    """The kernels `fn` (a NumericalFunction) becomes, in execution order: each a loop nest
    (with its shape and how much code fuses into it), a reduction, a chunk of scalar code, a
    GEMM call, a sequential program or a loop calling its body (whose kernels follow,
    indented), and the nodes it computes (numbered as in `fn.graph`) with where each is
    stored. Nothing is compiled. This is what decides the function's speed: fewer nests, and
    fewer intermediates in the workspace, run faster.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (av.exp(x) * x).sum(), (av.Arg(100),))
    >>> print(schedule_text(f))
    f: 1 kernel, 0 bytes of workspace
    kernel 0: nest over (100,), folding into sum's result as it goes (3 operations per position)
      %3 sum float64[] -> output 0
    """
    if not (hasattr(fn, "inputs") and hasattr(fn, "outputs")):
        raise TypeError(f"fn: expected a NumericalFunction, got {type(fn).__name__}")
    sched = function_schedule(fn, target)
    labels = dict(zip(fn.inputs, getattr(fn, "arg_names", [])))
    head = (f"{getattr(fn, 'name', 'function')}: {_count(len(sched.kernels), 'kernel')}, "
            f"{sched.work_bytes} bytes of workspace")
    return "\n".join([head, *_schedule_lines(sched, list(fn.outputs), labels, "")])


__all__ = ["entry_products", "function_schedule", "node_label", "palette", "schedule_text",
           "spy", "to_dot"]

