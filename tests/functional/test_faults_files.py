"""Fault injection on a store's files (issue 19, item 3): symbolic links planted as
``scheduler.lock``, ``scheduler.json`` and ``scheduler.log`` (in a store that was shared once), and
a store directory others can write in or that belongs to another user. The commands exit with one
line saying why; the links' targets are untouched, and so are the links.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rankbias_tui import scheduler
from rankbias_tui.scheduler import SchedulerOptions
from rankbias_tui.store import DB_NAME, Store, StorePaths, UnsafeStore
from tests.support import runs
from tests.support.faults import RUN


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    return path


def planted(tmp_path: Path, name: str, target: Path) -> Path:
    """A store of this user's with ``name`` a link to ``target``."""
    store = tmp_path / "store"
    Store(store).close()
    getattr(StorePaths.of(store), name).symlink_to(target)
    return store


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_lock_file_planted_as_a_link(tmp_path: Path, victim: Path) -> None:
    store = planted(tmp_path, "lock", victim)
    done = runs.rankbias(*RUN, "--store", str(store))
    assert done.returncode == 1
    assert f"refusing to open {store / 'scheduler.lock'}: it is a symbolic link" in one_line(done)
    assert victim.read_text() == "keep me" and (store / "scheduler.lock").is_symlink()
    with Store(store) as s:
        assert s.runs() == []  # nothing was queued


def test_a_state_file_planted_as_a_link(tmp_path: Path, victim: Path) -> None:
    store = planted(tmp_path, "state", victim)
    argv = [sys.executable, "-m", "rankbias_tui.scheduler.daemon", "--store", str(store), "--devices", "cpu"]
    done = subprocess.run([*argv, "--idle-exit", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"refusing to open {store / 'scheduler.json'}: it is a symbolic link" in done.stderr, done.stderr
    assert victim.read_text() == "keep me"
    assert (store / "scheduler.json").is_symlink()  # not deleted at exit either: it is not its file
    assert scheduler.status(store).pid is None  # and the lock was given back


def test_a_log_planted_as_a_link(tmp_path: Path, victim: Path) -> None:
    store = planted(tmp_path, "log", victim)
    with pytest.raises(UnsafeStore, match="scheduler.log: it is a symbolic link"):
        scheduler.spawn(store, SchedulerOptions(devices="cpu"))  # as `rankbias run` and the app do
    assert victim.read_text() == "keep me" and (store / "scheduler.log").is_symlink()
    assert scheduler.status(store).pid is None  # nothing was started


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_a_store_others_can_write_in_is_refused(tmp_path: Path, victim: Path, mode: int) -> None:
    store = tmp_path / "lab"
    store.mkdir()
    store.chmod(mode)
    (store / "scheduler.lock").symlink_to(victim)  # planted by another user
    done = runs.rankbias(*RUN, "--store", str(store))
    assert done.returncode == 1
    line = one_line(done)
    assert f"refusing to write the store at {store}" in line and f"(mode {mode:04o})" in line
    assert f"chmod go-w {store}" in line and f"chmod -R g+rX {store}" in line  # how to share it safely
    assert victim.read_text() == "keep me" and not (store / DB_NAME).exists()


def test_a_shared_store_can_still_be_read(tmp_path: Path) -> None:
    store = tmp_path / "store"
    Store(store).close()
    store.chmod(0o777)
    done = runs.rankbias("list", "--store", str(store))
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_store_of_another_user_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "theirs"
    Store(store).close()
    os.chown(store, 65534, 65534)
    done = runs.rankbias(*RUN, "--store", str(store))
    assert done.returncode == 1
    line = one_line(done)
    assert f"refusing to write the store at {store}: it belongs to" in line and "not to you" in line
    assert "pass --store with a directory of your own" in line
