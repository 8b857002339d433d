"""anvil_llvm.viz: `spy` draws one mark per nonzero, coloured by the colouring; `to_dot` has one
node per UOp and one edge per source; `schedule_text` names every kernel the code generator
emits."""
from __future__ import annotations

import collections
import re
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from avcheck import fast
from hypothesis import given
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm import viz
from anvil_llvm.ad import gradient, jacobian, sphessian, spjacobian
from anvil_llvm.ad.coloring import hessian_coloring, jacobian_coloring
from anvil_llvm.backend.schedule import schedule
from anvil_llvm.benchmarks.problems import problem



def _axes():
    """New axes of a figure made without pyplot (spy's tests need matplotlib)."""
    return pytest.importorskip("matplotlib.figure").Figure().add_subplot()


# ---- spy -----------------------------------------------------------------------------------------
def _marks(ax) -> tuple[list[tuple[int, int]], list[tuple]]:
    """The (row, column) and RGBA colour of every mark drawn in `ax`, read off its artists."""
    where, colors = [], []
    for artist in ax.collections:
        offsets = np.asarray(artist.get_offsets())
        faces = np.broadcast_to(np.asarray(artist.get_facecolors()), (len(offsets), 4))
        where += [(int(round(y)), int(round(x))) for x, y in offsets]
        colors += [tuple(c) for c in faces]
    for line in ax.lines:
        xs, ys = line.get_data()
        where += [(int(round(y)), int(round(x))) for x, y in zip(xs, ys)]
        colors += [line.get_color()] * len(xs)
    return where, colors


def _same_partition(groups: list, expected: list) -> bool:
    """Whether two labellings of the same marks split them the same way."""
    return len(set(zip(groups, expected))) == len(set(groups)) == len(set(expected))


@st.composite
def patterns(draw, square: bool = False):
    m = draw(st.integers(1, 12))
    n = m if square else draw(st.integers(1, 12))
    cells = draw(st.lists(st.booleans(), min_size=m * n, max_size=m * n))
    dense = np.array(cells, bool).reshape(m, n)
    return (dense | dense.T) if square else dense


def _draw(pattern, coloring=None):
    return viz.spy(pattern, coloring, ax=_axes())


@fast(25)
@given(patterns(), st.sampled_from(["column", "row"]))
def test_spy_draws_each_nonzero_once_coloured_by_its_column_or_row(dense, partition):
    coloring = jacobian_coloring(sp.csc_array(dense), partition=partition)
    where, colors = _marks(_draw(sp.csr_array(dense.astype(float)), coloring))
    assert len(where) == dense.sum()
    assert sorted(where) == sorted(zip(*map(list, np.nonzero(dense))))
    side = coloring.colors
    expected = [side[j] if partition == "column" else side[i] for i, j in where]
    assert _same_partition(colors, expected)


def _readable(dense: np.ndarray, colors: np.ndarray, i: int, j: int) -> set[int]:
    """The colours whose Hessian-vector product holds H[i, j] alone in one of its entries:
    column j's colour at row i, or (H symmetric) column i's colour at row j."""
    found = set()
    for row, col in ((i, j), (j, i)):
        same = [c for c in np.flatnonzero(dense[row]) if colors[c] == colors[col]]
        if same == [col]:
            found.add(int(colors[col]))
    return found


@fast(25)
@given(patterns(square=True), st.sampled_from(["star", "acyclic"]))
def test_spy_colours_a_symmetric_pattern_by_the_products_that_hold_its_entries(dense, method):
    np.fill_diagonal(dense, True)
    coloring = hessian_coloring(sp.csc_array(dense), method=method)
    where, colors = _marks(_draw(dense, coloring))
    assert sorted(where) == sorted(zip(*map(list, np.nonzero(dense))))
    if method == "acyclic":      # substitution: products are not read alone; one colour per mark
        assert len(set(colors)) <= coloring.ncolors
        return
    groups = collections.defaultdict(list)
    for (i, j), color in zip(where, colors):
        groups[color].append(_readable(dense, coloring.colors, i, j))
    chosen = [set.intersection(*options) for options in groups.values()]
    assert all(chosen) and len(groups) <= coloring.ncolors


def test_spy_of_a_sparse_jacobian_marks_the_nonzeros_of_the_dense_jacobian():
    f = problem("bratu2d", 5).function()
    x = np.random.default_rng(0).uniform(0.1, 0.9, 25)
    dense = jacobian(f)(x) != 0          # the dense Jacobian, computed without colours
    J = spjacobian(f, partition="column")
    where, colors = _marks(J.spy(ax=_axes()))
    assert sorted(where) == sorted(zip(*map(list, np.nonzero(dense))))
    assert _same_partition(colors, [J.coloring.colors[j] for _, j in where])
    assert len(set(colors)) == J.ncolors


def test_spy_of_a_sparse_hessian_draws_its_upper_triangle():
    f = problem("arrowhead", 30).function()
    H = sphessian(f)
    where, _ = _marks(H.spy(ax=_axes()))
    dense = np.triu(av.ad.hessian(f)(np.linspace(0.5, 1.5, 30)) != 0)
    assert sorted(where) == sorted(zip(*map(list, np.nonzero(dense))))


def test_spy_without_colouring_draws_nonzeros_only_in_one_colour():
    matrix = sp.csr_array(np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))
    matrix.data[0] = 0.0                 # an explicit zero is not a nonzero
    where, colors = _marks(_draw(matrix))
    assert sorted(where) == [(0, 2), (1, 2)] and len(set(colors)) == 1


def test_spy_writes_a_png(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    path = viz.spy(np.eye(4), path=tmp_path / "eye.png")
    assert path == tmp_path / "eye.png"
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] == 4


def test_spy_without_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=re.escape("pip install anvil_llvm[viz]")):
        viz.spy(np.eye(2))


@pytest.mark.parametrize("pattern, coloring, error, words", [
    ([[1, 0]], None, TypeError, "pattern: expected a 2-D"),
    (np.ones(3), None, TypeError, "got ndarray"),
    (np.eye(2), "column", TypeError, "coloring: expected"),
    (np.eye(3), jacobian_coloring(sp.eye_array(2, format="csc")), ValueError, "(2, 2)"),
    (np.ones((2, 2)), jacobian_coloring(sp.eye_array(2, format="csc")), ValueError,
     "entry (1, 0) is not in"),
])
def test_spy_rejects_bad_arguments(pattern, coloring, error, words):
    with pytest.raises(error, match=re.escape(words)):
        _draw(pattern, coloring)


# ---- to_dot --------------------------------------------------------------------------------------
def _walk(outputs):
    """Every node reachable from `outputs` (by identity) and every (source, user) edge, one per
    source position, found by a depth-first walk."""
    nodes, edges, stack = {}, [], list(outputs)
    while stack:
        node = stack.pop()
        if id(node) in nodes:
            continue
        nodes[id(node)] = node
        edges += [(s, node) for s in node.src]
        stack.extend(node.src)
    return list(nodes.values()), edges


def _key(node) -> str:
    return f"{node.op.name} {node.dtype}{list(node.shape)}"


def _loop_function():
    return av.NumericalFunction(
        "loop", lambda xs: av.scan(lambda c, x: (c + x * x, c), xs[0] * 0, xs)[0], (av.Arg(6),))


FUNCTIONS = {
    "square": lambda: av.NumericalFunction("square", lambda x: x * x, (av.Arg(3),)),
    "rosen_gradient": lambda: gradient(problem("rosen", 100).function()),
    "two_outputs": lambda: av.NumericalFunction(
        "two", lambda x, y: (x @ y, av.sin(x).sum()), (av.Arg((3, 3)), av.Arg((3, 3)))),
    "loop_gradient": lambda: gradient(_loop_function()),
    "bratu_spjacobian": lambda: spjacobian(problem("bratu2d", 4).function()),
}


@pytest.mark.parametrize("make", FUNCTIONS.values(), ids=FUNCTIONS.keys())
def test_to_dot_has_one_node_per_uop_and_one_edge_per_source(make):
    fn = make()
    dot = fn.to_dot()
    nodes, edges = _walk(fn.outputs)
    labels = dict(re.findall(r'^  (n\d+) \[label="%\d+ (.*?)", fillcolor', dot, re.M))
    found = re.findall(r"^  (n\d+) -> (n\d+)", dot, re.M)
    assert len(labels) == len(re.findall(r"^  n\d+ \[", dot, re.M)) == len(nodes)

    def kind(label: str) -> str:       # "mul\nfloat64[3]" or "input x\nfloat64[3]" -> op, type
        head, _, tail = label.partition("\\n")
        return f"{head.split(' ')[0]} {tail}"

    assert collections.Counter(kind(v) for v in labels.values()) == collections.Counter(
        _key(n) for n in nodes)
    assert collections.Counter((kind(labels[a]), kind(labels[b])) for a, b in found) == \
        collections.Counter((_key(s), _key(u)) for s, u in edges)
    outputs = re.findall(r"^  (n\d+) \[.*peripheries=2", dot, re.M)
    assert sorted(kind(labels[o]) for o in outputs) == sorted({_key(o) for o in fn.outputs})
    assert dot == make().to_dot()       # deterministic: the same text for a new trace


def test_to_dot_rejects_what_has_no_graph():
    with pytest.raises(TypeError, match="fn: expected a NumericalFunction"):
        viz.to_dot(np.ones(3))


# ---- schedule_text -------------------------------------------------------------------------------
def _chunked():
    def fn(x):
        for _ in range(300):
            x = av.sin(x) * 1.01 + x[::-1] * 0.5
        return x
    return av.NumericalFunction("chunky", fn, (av.Arg(3),))


SCHEDULED = {**FUNCTIONS, "mlp": lambda: problem("mlp", 9610).function(),
             "bratu_sphessian": lambda: sphessian(problem("bratu2d_E", 4).function()),
             "solve": lambda: av.NumericalFunction(
                 "solve", lambda a, b: np.linalg.solve(a, b), (av.Arg((3, 3)), av.Arg(3))),
             "chunked": _chunked}


def _kernel_functions(ir: str, symbol: str, inside: str = "") -> list[str]:
    """The kernel functions the code generator defined for the schedule of `symbol` (or of the
    loop bodies nested in it: `inside` matches their part of the name)."""
    return re.findall(rf"^define internal void @{re.escape(symbol)}{inside}\.k(\d+)\(", ir, re.M)


@pytest.mark.parametrize("make", SCHEDULED.values(), ids=SCHEDULED.keys())
def test_schedule_text_names_every_kernel_the_code_generator_emits(make):
    fn = make()
    text = fn.schedule_text()
    low = fn.lowered()
    top = re.findall(r"^kernel (\d+): ", text, re.M)
    nested = re.findall(r"^ +kernel (\d+): ", text, re.M)
    assert sorted(map(int, top)) == sorted(map(int, _kernel_functions(low.ir, low.symbol)))
    assert len(nested) == len(_kernel_functions(low.ir, low.symbol, r"\.body\d+(?:\.\S+?)?"))
    assert f"{low.work_bytes} bytes of workspace" in text.splitlines()[0]
    # each kernel of the schedule is listed with the nodes it stores
    sched = schedule(fn.inputs, fn.outputs, gemm=low.target.gemm == "scipy")
    blocks = re.split(r"^kernel \d+: ", text, flags=re.M)[1:]
    assert len(blocks) == len(sched.kernels)
    for block, kernel in zip(blocks, sched.kernels):
        for root in kernel.roots:
            assert f"{root.op.name}" in block and f"{root.dtype}{list(root.shape)}" in block


def test_schedule_text_compiles_nothing():
    fn = problem("rosen", 1000).function()
    before = av.stats()
    fn.schedule_text()
    assert av.stats() == before and fn._native is None
