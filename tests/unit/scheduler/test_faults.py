"""Why a scheduler stopped, in one line, and signals as Ctrl-C (scheduler.faults)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from rankbias_tui.scheduler.faults import (
    DiskFull,
    Interrupted,
    StopRequested,
    StoreGone,
    signals_stop,
    stopped_outcome,
)


def test_each_stop_says_cause_outcome_and_advice_on_one_line() -> None:
    stop = Interrupted(signal.SIGTERM)
    stop.outcome = stopped_outcome(2, recorded=True)
    text = str(stop)
    assert stop.exit_code == 143 and "\n" not in text
    assert text.startswith(
        "interrupted by SIGTERM; nothing recorded was lost: 2 runs in progress stopped and resume"
    )
    assert text.endswith("run the same command again to resume")
    assert Interrupted(signal.SIGHUP).exit_code == 129 and StopRequested("stop requested").exit_code == 130
    full = DiskFull("/s/checkpoints/x/step-1.tmp", "No space left on device")
    full.outcome = stopped_outcome(1, recorded=False)
    assert "the disk is full: writing /s/checkpoints/x/step-1.tmp failed" in str(full)
    assert "show as interrupted" in str(full) and "free some space" in str(full)
    assert "was deleted" in str(StoreGone(Path("/s/rankbias.sqlite"), replaced=False))
    assert "replaced" in str(StoreGone(Path("/s/rankbias.sqlite"), replaced=True))


def test_signals_stop_raises_once_then_ignores_and_restores() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info, signals_stop():
        try:
            os.kill(os.getpid(), signal.SIGHUP)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # while shutting down: ignored
    assert info.value.signal == "SIGHUP"
    assert signal.getsignal(signal.SIGTERM) is before
