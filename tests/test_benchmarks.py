"""The benchmark suite (scripts/bench.py): its quick run agrees on every value in every area
(the scripts check each tool's output against an independent reference before timing it), a
disagreement fails the run, a missing peer is reported as missing, and the reports and plots
are made from the data. Deselect with `-m "not bench"`."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench
import benchtools as bt

pytestmark = pytest.mark.bench

QUICK_SUBSET = {
    "core": "call_overhead", "arrays": "gauss_newton_product", "sparse": "rosen_hessian",
    "loops": "rk4_value", "numba": "numba_loop", "coloring": "colourings",
    "distribution": "unpickling", "linalg": "solve_gradient", "export": "calls",
}
"""One section per area that checks values against a reference (the full quick run takes
about two minutes; this subset keeps the test suite's budget)."""


def test_quick_subset_of_every_area_agrees(tmp_path):
    areas = bench.available()
    only = [f"{area}:{QUICK_SUBSET[area]}" for area in areas]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick",
                           "--out", str(tmp_path), "--only", *only],
                          check=False, capture_output=True, text=True, timeout=600)
    results = json.loads((tmp_path / "results.json").read_text())
    problems = {area: r["disagreements"] + r["errors"] for area, r in results["areas"].items()
                if r["status"] != "ok"}
    assert proc.returncode == 0, (problems, proc.stderr[-2000:])
    assert list(results["areas"]) == areas
    for area, record in results["areas"].items():
        assert record["disagreements"] == [], area
        assert (tmp_path / f"{area}.md").exists()
        rows = [row for section in record["sections"] for row in section["rows"]]
        assert rows, f"{area}: no rows measured"
        # a tool's time is reported only once its values agreed: no cell says otherwise
        assert not [row for row in rows if bt.is_disagreement(row["anvil"])]
    assert {"cpu", "cpus", "llvm_host_cpu", "load_average"} <= set(results["machine"])
    assert {"python", "numpy", "numba", "llvmlite", "LLVM", "casadi", "jax"} <= \
        set(results["versions"]) | {"python"}


FAKE_AREA = '''
    """A fake area: {doc}"""
    import benchtools as bt
    import numpy as np
    from benchtools import Point, Row, Section, Tool

    def compared(title, f, peer, cfg):
        x = np.linspace(0.0, 1.0, 3)
        tools = {{"anvil": Tool("f(x)", {{"f": f, "x": x}}, lambda: f(x)),
                  "peer": Tool("f(x)", {{"f": peer, "x": x}}, lambda: f(x))}}
        t = bt.side_by_side(tools, cfg.rounds, cfg.seconds)
        return Section(title, [Row(f.__name__, t["anvil"], {{"peer": t["peer"]}}, ("peer",), 2.0,
                                   point=Point(f.__name__, "value", "run", 3))])

    def sines(cfg):
        return compared("sines", np.sin, {peer}, cfg)

    def cosines(cfg):
        return compared("{cosines}", np.cos, np.cos, cfg)

    CFG = bt.Timing(rounds=1, seconds=0.001, build_rounds=1, processes=0)
    AREA = bt.Area("fake", "Fake", (sines, cosines), CFG, CFG)

    if __name__ == "__main__":
        AREA.main(__doc__)
'''


@pytest.fixture
def fake_area(tmp_path, monkeypatch):
    """bench.py's areas replaced by one script in tmp_path whose first section's peer computes
    `peer` (against np.sin) and whose second section is titled `cosines`."""
    def make(peer: str, cosines: str = "cosines") -> Path:
        scripts = tmp_path / "scripts"
        scripts.mkdir(exist_ok=True)
        for helper in ("benchtools.py", "benchreport.py"):
            (scripts / helper).write_text((ROOT / "scripts" / helper).read_text())
        (scripts / "bench_fake.py").write_text(textwrap.dedent(FAKE_AREA).format(
            doc=peer, peer=peer, cosines=cosines))
        monkeypatch.setattr(bench, "AREAS", ("fake",))
        monkeypatch.setattr(bench, "script", lambda area: scripts / f"bench_{area}.py")
        return tmp_path / "out"
    return make


def test_a_disagreement_fails_the_run(fake_area):
    out = fake_area("lambda x: np.sin(x) + 1e-6")
    assert bench.main(["--quick", "--out", str(out)]) == 1
    record = json.loads((out / "results.json").read_text())["areas"]["fake"]
    assert record["status"] == "disagree"
    assert record["disagreements"] == ["sines: sin: peer: DISAGREE (err 1.2e-06)"]
    assert [section["title"] for section in record["sections"]] == ["sines", "cosines"]
    assert "DISAGREE" in (out / "fake.md").read_text()


def test_agreeing_tools_pass_and_reports_come_from_the_data(fake_area):
    out = fake_area("np.sin")
    assert bench.main(["--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    row = results["areas"]["fake"]["sections"][0]["rows"][0]
    assert isinstance(row["anvil"], float) and isinstance(row["peers"]["peer"], float)
    assert row["ratio"] == pytest.approx(row["anvil"] / row["peers"]["peer"])
    (out / "fake.md").unlink()
    assert bench.main(["--report-only", "--json", str(out / "results.json")]) == 0
    report = (out / "fake.md").read_text()
    assert f"{row['ratio']:.2f}x peer" in report
    assert (out / "plots" / "fake-value.png").exists()
    assert "](plots/fake-value.png)" in report


def test_a_missing_peer_is_reported_as_missing():
    peers = bt.Peers()          # nothing imported: every peer is missing
    tool = bt.Tool("peers.jnp.sin(x)", {"peers": peers, "x": np.ones(2)}, lambda: np.ones(2))
    assert tool.status() == bt.missing("jax")
    assert not hasattr(peers, "ca")
    section = bt.run_section(lambda cfg: peers.ca.SX, None)
    assert section.error == bt.missing("casadi")
    assert bt.outcome([section.to_dict()])["status"] == "ok"
    assert bt.failure(ModuleNotFoundError("no", name="dask.array")) == bt.missing("dask")


def test_an_uninstalled_peer_shows_missing_and_the_others_run(tmp_path):
    (tmp_path / "jax.py").write_text("raise ModuleNotFoundError('no jax here', name='jax')\n")
    data = tmp_path / "arrays.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_arrays.py"), "--quick",
                           "--only", "gauss_newton_product", "--json", str(data)],
                          check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(data.read_text())
    assert record["versions"]["jax"] == "missing" and record["status"] == "ok"
    rows = record["sections"][0]["rows"]
    assert [row["peers"]["JAX"] for row in rows] == [bt.missing("jax")] * 2
    assert all(isinstance(row["anvil"], float) and isinstance(row["peers"]["CasADi MX"], float)
               for row in rows)


def test_plotted_points_merge_rows_and_place_other_sizes():
    rows = [bt.Row("a", 1.0, {"JAX": 2.0, "numba": "missing (numba)"}, ("JAX",), 1.0,
                   point=bt.Point("rosen", "gradient", "run", 100)),
            bt.Row("a again", 5.0, {"JAX": 6.0, "CasADi": 3.0}, ("CasADi",), 1.0,
                   point=bt.Point("rosen", "gradient", "run", 100)),
            bt.Row("growth", 4.0, {"anvil n=10": 0.5}, ("anvil n=10",), 1.0,
                   point=bt.Point("rosen", "value", "build", 1000, at={"anvil n=10": 10}))]
    record = {"sections": [bt.Section("s", rows).to_dict()]}
    assert bench.points(record) == {
        ("gradient", "run"): {"rosen": {"anvil": {100: 1.0}, "JAX": {100: 2.0},
                                        "CasADi": {100: 3.0}}},
        ("value", "build"): {"rosen": {"anvil": {1000: 4.0, 10: 0.5}}}}


def test_a_section_run_merges_into_the_data_and_the_report(fake_area):
    out = fake_area("np.sin")
    assert bench.main(["--out", str(out)]) == 0
    first = json.loads((out / "results.json").read_text())["areas"]["fake"]
    fake_area("np.sin", cosines="cosines again")     # the area's second section changed
    assert bench.main(["--out", str(out), "--only", "fake:2"]) == 0
    record = json.loads((out / "results.json").read_text())["areas"]["fake"]
    assert record["sections"][0] == first["sections"][0]    # kept as it was
    assert [s["title"] for s in record["sections"]] == ["sines", "cosines again"]
    assert [s["name"] for s in record["sections"]] == record["section_names"] == ["sines",
                                                                                   "cosines"]
    assert record["command"] == "python scripts/bench.py --only fake:2"
    report = (out / "fake.md").read_text()
    assert "## sines" in report and "## cosines again" in report
    assert "_Section 2, `--only fake:cosines`: measured " in report
    # a section that does not exist: the script lists them, the data is kept
    assert bench.main(["--out", str(out), "--only", "fake:3"]) == 1
    failed = json.loads((out / "results.json").read_text())["areas"]["fake"]
    assert failed["sections"] == record["sections"]
    assert failed["status"] == "failed" and "exited with status 2" in failed["errors"][-1]
    proc = subprocess.run([sys.executable, str(bench.script("fake")), "--only", "sines", "3"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no section '3' in fake; expected a name or a number: 1 sines, 2 cosines" in \
        proc.stderr
