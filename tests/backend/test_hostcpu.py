"""The host CPU is asked of LLVM once per boot: the record in the cache directory is used only
when the same boot, llvmlite, LLVM and Python wrote it, and a damaged or foreign file is never
believed."""
from __future__ import annotations

import json
import os

import llvmlite.binding as llvm
import pytest

from anvil_llvm.backend import hostcpu

ask = hostcpu.host_cpu.__wrapped__           # without the per-process memo
needs_boot_id = pytest.mark.skipif(not os.path.exists(hostcpu._BOOT_ID),
                                   reason="no boot id on this system")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ANVIL_LLVM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ANVIL_LLVM_NO_CACHE", raising=False)
    return tmp_path


def llvm_says() -> hostcpu.HostCPU:
    return hostcpu.HostCPU(llvm.get_process_triple(), llvm.get_host_cpu_name(),
                           llvm.get_host_cpu_features().flatten())


def record(cache_dir):
    return json.loads((cache_dir / hostcpu._FILE).read_text())


def test_the_host_cpu_is_what_llvm_says(cache_dir):
    assert ask() == llvm_says()
    assert ask() == llvm_says()                 # now from the record
    assert hostcpu.host_cpu() == llvm_says()


@needs_boot_id
def test_the_record_is_read_back_in_place_of_asking(cache_dir):
    ask()
    written = record(cache_dir)
    assert written["cpu"] == list(llvm_says())
    written["cpu"][1] = "a-cpu-only-the-record-names"
    (cache_dir / hostcpu._FILE).write_text(json.dumps(written))
    assert ask().name == "a-cpu-only-the-record-names"


@needs_boot_id
@pytest.mark.parametrize("damage", ["another boot", "not json", "wrong fields", "a list",
                                    "a number", "a link", "a folder"])
def test_a_record_of_another_boot_or_damaged_is_not_believed(cache_dir, tmp_path_factory,
                                                             damage):
    ask()
    path = cache_dir / hostcpu._FILE
    written = record(cache_dir)
    fake = [written["cpu"][0], "fake-cpu", "+fake"]
    if damage == "another boot":
        path.write_text(json.dumps({"asker": ["another", *written["asker"][1:]], "cpu": fake}))
    elif damage == "not json":
        path.write_text('{"asker": ')
    elif damage == "wrong fields":
        path.write_text(json.dumps({"asker": written["asker"], "cpu": [1, 2, 3]}))
    elif damage == "a list":
        path.write_text(json.dumps([written["asker"], fake]))
    elif damage == "a number":
        path.write_text("7")
    elif damage == "a link":
        elsewhere = tmp_path_factory.mktemp("elsewhere") / "record.json"
        elsewhere.write_text(json.dumps({"asker": written["asker"], "cpu": fake}))
        path.unlink()
        path.symlink_to(elsewhere)
    else:
        path.unlink()
        path.mkdir()
    assert ask() == llvm_says()
    if damage != "a folder":                    # written again, right
        assert record(cache_dir)["cpu"] == list(llvm_says())


def test_without_a_cache_directory_llvm_is_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("ANVIL_LLVM_NO_CACHE", "1")
    monkeypatch.setenv("ANVIL_LLVM_CACHE_DIR", str(tmp_path))
    assert ask() == llvm_says()
    assert not (tmp_path / hostcpu._FILE).exists()
