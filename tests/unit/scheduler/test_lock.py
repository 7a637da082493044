"""The store's lock file never opened through a symbolic link, and no lock in a store others can
write in (scheduler/lock.py; issue 19 item 3). Nothing trains here."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankbias_tui import scheduler
from rankbias_tui.scheduler import SchedulerLock
from rankbias_tui.store import StorePaths, UnsafeStore


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
