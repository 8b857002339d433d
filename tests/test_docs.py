"""The examples of the README and of every page under docs/ run: interactive sessions (>>>) print
what they show, every other ```python block runs as a script (in page order, sharing the page's
names); and the op table of docs/ops.md lists every op of the registry, each recorded by the
code it is written as."""
import doctest
import pathlib
import re

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm.ir import ops as O
from anvil_llvm.ir.uop import OpDef, toposort

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
IDS = [str(p.relative_to(ROOT)) for p in PAGES]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.M | re.S)


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_examples_in_the_page_run(page):
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{page.name}: {result.failed} example(s) failed"


def scripts(page: pathlib.Path) -> list[str]:
    """The ```python blocks of `page` that are not interactive sessions (doctest runs those)
    nor excerpts of an example."""
    return [block for block in FENCE.findall(page.read_text())
            if not block.lstrip().startswith((">>>", EXCERPT))]


def excerpts(page: pathlib.Path) -> list[str]:
    """The ```python blocks of `page` that are excerpts of an example file (their first line
    is `# from examples/<name>.py`): tests/test_examples.py runs the example."""
    return [block for block in FENCE.findall(page.read_text())
            if block.lstrip().startswith(EXCERPT)]


EXCERPT = "# from examples/"
SCRIPTED = [p for p in PAGES if scripts(p)]
def _page_param(page: pathlib.Path):
    return pytest.param(page, id=str(page.relative_to(ROOT)))


def test_the_blocks_found_include_the_readme_example():
    assert any("gradient(cost)" in block for block in scripts(ROOT / "README.md"))


@pytest.mark.parametrize("page", [_page_param(p) for p in SCRIPTED])
def test_code_blocks_in_the_page_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # blocks may write files
    scope = {"__name__": "__docs__"}      # `if __name__ == "__main__":` parts are the examples'
    for k, block in enumerate(scripts(page)):
        exec(compile(block, f"{page.name}, python block {k}", "exec"), scope)


@pytest.mark.parametrize("page", [p for p in PAGES if excerpts(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_excerpts_are_lines_of_their_example_in_order(page):
    for block in excerpts(page):
        first, *lines = block.strip().splitlines()
        example = ROOT / first.removeprefix("# from ").strip()
        assert example.parent.name == "examples" and example.is_file(), first
        text = [line.strip() for line in example.read_text().splitlines()]
        at = 0
        for line in filter(None, (line.strip() for line in lines)):
            assert line in text[at:], f"{page.name}: {line!r} is not in {example.name} there"
            at = text.index(line, at) + 1


# ---- docs/ops.md: the op table -----------------------------------------------------------------
ROW = re.compile(r"^\| `(\w+)` \| (\w+) \| (\w+) \| (\S+) \| (.*) \|$", re.M)
REGISTRY = {op.name: op for op in vars(O).values() if isinstance(op, OpDef)}


def _table() -> dict[str, tuple[str, str, str, str]]:
    rows = ROW.findall((ROOT / "docs" / "ops.md").read_text())
    table = {name: rest for name, *rest in rows}
    assert len(table) == len(rows), "an op is listed twice"
    return table


def _every_op(outputs) -> set[str]:
    """The ops of a graph and of the graphs of its loops' bodies."""
    found, stack, seen = set(), [list(outputs)], set()
    while stack:
        for node in toposort(stack.pop()):
            if node not in seen:
                seen.add(node)
                found.add(node.op.name)
                inner = getattr(node.arg, "inner_outputs", None)
                if inner:
                    stack.append(list(inner))
    return found


def _internal_graphs() -> dict[str, list]:
    """Graphs built by the transforms that hold the ops users never write."""
    from anvil_llvm.ad import jacobian, sphessian, spjacobian
    from anvil_llvm.benchmarks.problems import problem
    bratu = problem("bratu2d", 10).function()
    loop = av.NumericalFunction("loop", lambda x: av.fori_loop(0, 3, lambda i, c: c * c, x),
                                (av.Arg(3),))
    return {"iota": jacobian(bratu, mode="fwd").outputs, "place": spjacobian(bratu).outputs,
            "substitute": sphessian(problem("bratu2d_E", 10).function(),
                                    method="acyclic", entrywise=False).outputs,
            "param": loop.outputs}


def test_the_op_table_lists_every_op_of_the_registry_with_its_rules():
    table = _table()
    assert sorted(table) == sorted(REGISTRY)
    for name, (kind, sources, linearity, _) in table.items():
        op = REGISTRY[name]
        assert kind == op.kind.value, name
        assert sources == ("any" if op.arity is None else str(op.arity)), name
        assert linearity == (op.linearity.value if op.linearity else "—"), name


def test_each_op_of_the_table_is_recorded_by_the_code_it_is_written_as():
    import scipy.special  # noqa: F401  (the table's erf)
    import anvil_llvm.numpy as anp
    internal = _internal_graphs()
    for name, (*_, written) in _table().items():
        if written.startswith("internal:"):
            assert name in _every_op(internal.pop(name)), name
            continue
        code = re.fullmatch(r"`([^`]+)`", written).group(1)
        scope = {"np": np, "scipy": scipy, "av": av, "anp": anp}
        fn = av.NumericalFunction("written", lambda x, y: eval(code, scope, {"x": x, "y": y}),
                                  (av.Arg((3, 3)), av.Arg((3, 3))))
        assert name in _every_op(fn.outputs), f"{name}: {code}"
    assert not internal, f"internal ops missing from the table: {sorted(internal)}"
