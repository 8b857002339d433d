"""The documentation site builds with `mkdocs build --strict` (every page in the nav, every link
and anchor found), its API reference has an entry for every public name of the modules it
documents, and the pictures of the docs are the ones scripts/make_figures.py draws."""
import importlib
import os
import pathlib
import re
import runpy
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for package in SITE_PACKAGES:
        pytest.importorskip(package, reason=f"the site needs {package}: pip install -e .[docs]")
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                          str(ROOT / "mkdocs.yml"), "-d", str(out)],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def test_mkdocs_build_strict_passes_with_every_page(site):
    for page in (ROOT / "docs").rglob("*.md"):
        page = page.relative_to(ROOT / "docs").with_suffix("")
        built = site / (page.parent if page.name == "index" else page) / "index.html"
        assert built.is_file(), f"docs/{page}.md was not built"


def _documented() -> list[tuple[str, list[str]]]:
    """The modules docs/api.md documents, each with the names it lists (its `members:`, else
    the module's __all__)."""
    text = (ROOT / "docs" / "api.md").read_text()
    found = []
    for module, options in re.findall(r"^::: ([\w.]+)\n((?:    .*\n)*)", text, re.M):
        members = re.findall(r"^        - (\w+)$", options, re.M)
        found.append((module, members or list(importlib.import_module(module).__all__)))
    return found


def test_the_api_reference_has_an_entry_for_every_public_name(site):
    html = (site / "api" / "index.html").read_text()
    anchors = set(re.findall(r'id="([\w.]+)"', html))
    documented = _documented()
    assert {m for m, _ in documented} >= {"anvil_llvm", "anvil_llvm.ad", "anvil_llvm.ad.coloring",
                                          "anvil_llvm.viz"}
    missing = [f"{m}.{n}" for m, names in documented for n in names if f"{m}.{n}" not in anchors]
    assert not missing, f"no API entry for {missing}"
    assert "&gt;&gt;&gt;" in html and "<blockquote>" not in html    # examples shown as code


def test_the_docs_pictures_are_the_ones_make_figures_draws(tmp_path):
    pytest.importorskip("matplotlib")
    script = runpy.run_path(str(ROOT / "scripts" / "make_figures.py"))
    drawn = {p.name for p in script["main"](tmp_path)}
    assert drawn == {p.name for p in tmp_path.iterdir()}
    assert drawn == {p.name for p in (ROOT / "docs" / "images").glob("*.png")}
    used = set()
    for page in (ROOT / "docs").rglob("*.md"):
        used |= set(re.findall(r"\]\(images/([\w.-]+\.png)\)", page.read_text()))
    assert used == drawn
