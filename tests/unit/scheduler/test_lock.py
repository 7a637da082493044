"""One scheduler per store, even when its lock file is removed or replaced by a link, and never a
second trainer for a run whose scheduler is alive (scheduler/lock.py, recovery.py; issue 19
items 3 and 4). Nothing trains here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rankbias_tui import checkpoints, scheduler
from rankbias_tui.scheduler import SchedulerLock, SchedulerOptions, StoreBusy
from rankbias_tui.scheduler.recovery import adopt
from rankbias_tui.store import Store, StorePaths, UnsafeStore, owner
from tests.support import runs


@pytest.fixture
def other_scheduler() -> Iterator[str]:
    """The owner token of a live process that is not this one (a scheduler of another command)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield owner.token(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_a_removed_lock_file_does_not_free_the_store(tmp_path: Path) -> None:
    spawned: list[Path] = []
    with SchedulerLock(tmp_path):
        StorePaths.of(tmp_path).lock.unlink()  # someone "clearing a stale lock"
        with pytest.raises(StoreBusy) as info:
            SchedulerLock(tmp_path).__enter__()
        assert "scheduler.lock was removed while it ran" in str(info.value)
        assert "a second scheduler would train the same runs" in str(info.value)
        assert scheduler.scheduler_pid(tmp_path) == -1  # held, by a process whose pid is unknown
        pid, started = scheduler.ensure(tmp_path, SchedulerOptions(), lambda d, o: spawned.append(d))
        assert (pid, started, spawned) == (-1, None, [])  # no second scheduler is started
        assert not StorePaths.of(tmp_path).lock.exists()  # the refused one made no new lock file
    assert scheduler.scheduler_pid(tmp_path) is None
    with SchedulerLock(tmp_path):  # free again once the holder has ended
        assert scheduler.scheduler_pid(tmp_path) == os.getpid()


def test_the_busy_message_names_the_holder(tmp_path: Path) -> None:
    with (
        SchedulerLock(tmp_path),
        pytest.raises(StoreBusy, match=f"a scheduler \\(pid {os.getpid()}\\) is already"),
    ):
        SchedulerLock(tmp_path).__enter__()


def test_an_older_rankbias_holding_only_the_lock_file_still_counts(tmp_path: Path) -> None:
    import fcntl

    fd = os.open(StorePaths.of(tmp_path).lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"4242")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert scheduler.scheduler_pid(tmp_path) == 4242
        with pytest.raises(StoreBusy, match="pid 4242"):
            SchedulerLock(tmp_path).__enter__()
    finally:
        os.close(fd)
    with SchedulerLock(tmp_path):  # the directory lock was given back after the refusal
        pass


def test_a_lock_file_planted_as_a_link_is_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    store = tmp_path / "store"
    store.mkdir(mode=0o700)
    StorePaths.of(store).lock.symlink_to(victim)
    with pytest.raises(UnsafeStore, match="scheduler.lock: it is a symbolic link"):
        SchedulerLock(store).__enter__()
    assert victim.read_text() == "keep me" and StorePaths.of(store).lock.is_symlink()
    assert scheduler.scheduler_pid(store) is None  # a link is nobody's lock
    StorePaths.of(store).lock.unlink()
    with SchedulerLock(store):  # the refusal left nothing locked
        pass


def test_a_store_others_can_write_in_cannot_be_locked(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    try:
        with pytest.raises(UnsafeStore, match="may create files in it"):
            SchedulerLock(tmp_path).__enter__()
        assert not StorePaths.of(tmp_path).lock.exists()
    finally:
        tmp_path.chmod(0o700)


def test_adoption_never_takes_a_run_whose_scheduler_is_alive(tmp_path: Path, other_scheduler: str) -> None:
    trained, dead = runs.planned(lr=0.1), runs.planned(lr=0.2)
    with Store(tmp_path) as store:
        store.add_runs([trained, dead], {})
        store.start_attempt(trained.run_id, "cpu", 5, owner=other_scheduler)
        store.set_checkpoint(trained.run_id, 40)
        store.start_attempt(dead.run_id, "cpu", 6, owner="999999999:1")
        run_dir = checkpoints.run_directory(store.paths.checkpoints, trained.run_id)
        run_dir.mkdir(parents=True)
        writing = checkpoints.partial(checkpoints.path(run_dir, 80))
        writing.write_bytes(b"being written by the live scheduler")
        with pytest.raises(StoreBusy) as info:
            adopt(store)
        text = str(info.value)
        assert f"pid {owner.pid_of(other_scheduler)} trains 1 run(s)" in text and "train them twice" in text
        rows = {r.run_id: r for r in store.runs()}
        assert rows[trained.run_id].status == "running" and rows[trained.run_id].attempts == 1
        assert rows[dead.run_id].status == "interrupted"  # untouched too: nothing was adopted
        assert writing.exists()  # its checkpoint write in progress was not cleaned away
