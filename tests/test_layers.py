"""Layers import only leftwards (docs/architecture.md): ir nothing of ours but the leaf module
_lazy; ad and backend only ir (and the leaf modules _lazy, _version and progress, which import
nothing of ours); nothing below function.py imports it but the public operators, which trace
callables."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "anvil_llvm"
ALLOWED = {"ir": {"ir", "_lazy"}, "backend": {"ir", "backend", "_lazy", "_version", "progress"},
           "ad": {"ir", "ad", "_lazy", "progress"}}
# The public operators make NumericalFunctions of plain callables (tracing them as jax.jit does):
# the one module below function.py that imports it, lazily.
# The loop op's transform rules transform its body graph: they call the graph transforms of ad,
# lazily (as JAX's control-flow primitives call its ad and batching modules).
EXCEPTIONS = {"ad/operators.py": {"function"}, "ir/ops/control.py": {"ad"}}


def _imports(path: pathlib.Path) -> set[str]:
    """First-level subpackages of anvil_llvm imported (relative or absolute) by one module."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(path.relative_to(PACKAGE).parts[:depth])
                up = node.level - 1
                base = parts[:len(parts) - up] if up else parts
                target = base + (node.module.split(".") if node.module else [])
                names = [target[0]] if target else [a.name for a in node.names]
                found.update(names)
            elif node.module and node.module.startswith("anvil_llvm."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("anvil_llvm."))
    return {name.removesuffix(".py") for name in found}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_leftwards(layer):
    for path in (PACKAGE / layer).rglob("*.py"):
        module = path.relative_to(PACKAGE).as_posix()
        extra = _imports(path) - ALLOWED[layer] - EXCEPTIONS.get(module, set())
        assert not extra, f"{path.relative_to(PACKAGE)} imports {sorted(extra)}"
