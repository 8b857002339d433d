"""Progress of long builds: the stages a build goes through are timed, and a build that runs past
the threshold reports them through the "anvil_llvm" logger at INFO (a short one says nothing);
verbose mode draws a progress line on a terminal."""
import io
import logging

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm import ad, progress


def chain_gradient(steps: int, rate: float):
    def chain(x):
        y = x
        for _ in range(steps):
            y = y * 1.00001 + av.sin(y) * rate
        return (y * y).sum()
    return ad.gradient(av.NumericalFunction("chain", chain, (av.Arg(2),)))


def info_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "anvil_llvm" and r.levelno == logging.INFO]


def test_a_big_build_reports_its_stages_past_the_threshold(caplog):
    caplog.set_level(logging.INFO, logger="anvil_llvm")
    g = chain_gradient(3000, 1.2345e-6)            # its own constant: never in the disk cache
    g.compile()
    stages = progress.last_build()
    names = [name for name, depth, seconds in stages]
    assert names[-1] == "compile" and {"lower", "code generation"} <= set(names)
    total = stages[-1][2]
    messages = info_messages(caplog)
    if total > progress.THRESHOLD:
        for name, depth, seconds in stages:
            assert any(m.startswith(f"chain_grad: {'  ' * (depth - 1)}{name} ")
                       for m in messages), name
        assert messages[-1].startswith("chain_grad: built in")
    else:                                          # a machine fast enough to stay under it
        assert not messages


def test_stages_are_reported_as_they_end_once_past_the_threshold(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="anvil_llvm")
    monkeypatch.setattr(progress, "THRESHOLD", 0.0)
    f = av.NumericalFunction("tiny", lambda x: av.exp(x * 2.5).sum(), (av.Arg(3),))
    messages = info_messages(caplog)
    assert messages[0].startswith("tiny: trace ") and messages[-1].startswith("tiny: built in")
    caplog.clear()
    ad.gradient(f)(np.ones(3))
    messages = info_messages(caplog)
    assert any(m.startswith("tiny: gradient ") for m in messages)
    assert any(m.startswith("tiny_grad: compile ") for m in messages)


def test_a_short_build_reports_nothing(caplog):
    caplog.set_level(logging.INFO, logger="anvil_llvm")
    f = av.NumericalFunction("brief", lambda x: x * 3.25 + 1.0, (av.Arg(4),))
    np.testing.assert_array_equal(f(np.arange(4.0)), np.arange(4.0) * 3.25 + 1.0)
    assert sum(seconds for name, depth, seconds in progress.last_build() if depth == 1) < 1.0
    assert not info_messages(caplog)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_verbose_draws_a_progress_line_on_a_terminal(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setitem(progress._settings, "verbose", True)
    av.NumericalFunction("shown", lambda x: av.cos(x) * 0.75, (av.Arg(2),)).compile()
    text = terminal.getvalue()
    assert "anvil_llvm: shown: trace" in text and "anvil_llvm: shown: compile" in text
    assert text.endswith("\r\x1b[K")                 # the line is cleared when the build ends


def test_no_progress_line_without_a_terminal(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    monkeypatch.setitem(progress._settings, "verbose", True)
    av.NumericalFunction("hidden", lambda x: av.cos(x) * 0.5, (av.Arg(2),)).compile()
    assert pipe.getvalue() == ""


def test_verbose_wants_a_bool():
    with pytest.raises(TypeError, match="verbose: on must be True or False"):
        progress.verbose(1)


def test_the_garbage_collector_is_paused_during_a_build_and_restored_after():
    import gc
    assert gc.isenabled()
    with progress.stage("outer", "f"):
        assert not gc.isenabled()
        with progress.stage("inner", "f"):
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with progress.stage("outer", "f"):
            pass
        assert not gc.isenabled()      # a caller's choice stays
    finally:
        gc.enable()
