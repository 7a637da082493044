"""Fault injection on who may train a store (issue 19, item 7): ``rankbias stop`` from a
client whose clock is 90 s behind the scheduler's (a stop left from before a scheduler started, by a
client an hour ahead: ``test_faults_scheduler``). Each sweep is the fault sweep of
``tests/data/faults/spec.toml``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from rankbias_tui import scheduler
from rankbias_tui.spec import load_spec
from rankbias_tui.store import Store
from rankbias_tui.sweep import expand
from tests.support.faults import SPEC, checkpointed, wait_for

pytestmark = pytest.mark.slow
REAL = time.time


def daemon(store: Path, *extra: str) -> subprocess.Popen[str]:
    """A background scheduler on ``store``, as the app starts it (its log on stderr here)."""
    argv = [sys.executable, "-m", "rankbias_tui.scheduler.daemon", "--store", str(store), "--devices", "cpu"]
    return subprocess.Popen([*argv, "--per-device", "1", *extra], stderr=subprocess.PIPE, text=True)


def test_a_stop_from_a_client_whose_clock_is_behind_is_obeyed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    with Store(store) as s:
        scheduler.launch(s, expand(load_spec(SPEC)))
    background = daemon(store, "--idle-exit", "0")
    wait_for(lambda: checkpointed(store, background), what="a checkpoint")
    monkeypatch.setattr(time, "time", lambda: REAL() - 90)  # an NTP step, or a client on another host
    began = time.monotonic()
    assert scheduler.stop(store, timeout_s=30) == background.pid
    assert time.monotonic() - began < 10
    _, log = background.communicate(timeout=60)
    assert background.returncode == 0 and "stopping (stop requested)" in log, log
    with Store(store) as s:
        assert {r.status for r in s.runs()} <= {"stopped", "done"}  # resumable, nothing lost

