"""Fault injection on who may train a store (issue 19, items 4 and 7): the lock file removed while a
sweep trains, then the same command again (and a background scheduler); ``rankbias stop`` from a
client whose clock is 90 s behind the scheduler's (a stop left from before a scheduler started, by a
client an hour ahead: ``test_faults_scheduler``). Each sweep is the fault sweep of
``tests/data/faults/spec.toml``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rankbias_tui import checkpoints, scheduler
from rankbias_tui.spec import load_spec
from rankbias_tui.store import Store, StorePaths
from rankbias_tui.sweep import expand
from tests.support.faults import SPEC, checkpointed, run, start, wait_for

pytestmark = pytest.mark.slow
REAL = time.time


def daemon(store: Path, *extra: str) -> subprocess.Popen[str]:
    """A background scheduler on ``store``, as the app starts it (its log on stderr here)."""
    argv = [sys.executable, "-m", "rankbias_tui.scheduler.daemon", "--store", str(store), "--devices", "cpu"]
    return subprocess.Popen([*argv, "--per-device", "1", *extra], stderr=subprocess.PIPE, text=True)


@pytest.mark.soak
def test_a_removed_lock_file_lets_no_second_scheduler_train(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = start(store)
    wait_for(lambda: checkpointed(store, first), what="a checkpoint")
    StorePaths.of(store).lock.unlink()  # "clearing a stale lock" while it trains
    with frozen(first.pid):  # alive but not training: it cannot finish before the others are tried
        tried_while_it_trains(store)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0 and "Finished: 2 done" in out, out + err
    with Store(store) as s:  # trained once each, no checkpoint lost ("no readable checkpoint left")
        assert [(r.status, r.attempts, r.warnings) for r in s.runs()] == [("done", 1, ())] * 2


def tree(pid: int) -> list[int]:
    """``pid`` and every process descending from it (its workers)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, p in parents.items() if p == parent]
        found += children
        todo += children
    return found


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The process tree of ``pid`` stopped (SIGSTOP) for the block, then continued."""
    pids = tree(pid)
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)


def tried_while_it_trains(store: Path) -> None:
    again = run(store)  # the same command again
    assert again.returncode == 1, again.stdout + again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "a scheduler is already running on" in lines[0], again.stderr
    assert "scheduler.lock was removed while it ran" in lines[0] and "train the same runs" in lines[0]
    background = daemon(store, "--idle-exit", "1")  # what the app would start
    _, log = background.communicate(timeout=120)
    assert background.returncode == 2 and "a scheduler is already running on" in log, log
    with Store(store) as s:  # its checkpoints are still there: nobody pruned or restarted them
        for row in s.runs():
            assert (row.status, row.attempts) == ("running", 1)
            directory = checkpoints.run_directory(s.paths.checkpoints, row.run_id)
            assert row.checkpoint_step in checkpoints.steps(directory)


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
