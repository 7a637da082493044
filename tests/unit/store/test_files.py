"""A store's own files never written through a link, and a store others can write in refused
(store/files.py, issue 19 item 3)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from rankbias_tui.store import (
    DB_NAME,
    Store,
    UnsafeStore,
    check_directory,
    open_private,
    read_end,
    remove_own,
    write_private,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of this user's outside the store, which a planted link points at."""
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    return path


def private(path: Path, mode: int = 0o700) -> Path:
    path.mkdir()
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("mode", "who"), [(0o777, "its group and others"), (0o703, "others"), (0o770, "its group")]
)
def test_a_directory_others_can_write_in_is_refused_with_how_to_share(
    tmp_path: Path, mode: int, who: str
) -> None:
    directory = private(tmp_path / "shared", mode)
    with pytest.raises(UnsafeStore) as info:
        check_directory(directory)
    text = str(info.value)
    assert f"{who} may create files in it (mode {mode:04o})" in text
    assert f"chmod go-w {directory}" in text and f"chmod -R g+rX {directory}" in text
    with pytest.raises(UnsafeStore):
        Store(directory)  # a writer: refused before anything is written
    assert list(directory.iterdir()) == []


def test_a_private_or_group_readable_directory_is_accepted(tmp_path: Path) -> None:
    for mode in (0o700, 0o750, 0o755):
        check_directory(private(tmp_path / f"d{mode:o}", mode))
    check_directory(tmp_path / "missing")  # made owner-only by whoever creates it


@needs_root
def test_a_directory_of_another_user_is_refused_to_writers_but_read(tmp_path: Path) -> None:
    directory = tmp_path / "theirs"
    Store(directory).close()
    os.chown(directory, 65534, 65534)
    with pytest.raises(UnsafeStore, match="belongs to .*not to you"):
        Store(directory)
    with Store(directory, create=False) as store:  # reading another user's results stays possible
        assert store.runs() == []


def test_open_private_never_follows_a_link_and_never_truncates_its_target(
    tmp_path: Path, victim: Path
) -> None:
    link = tmp_path / "scheduler.lock"
    link.symlink_to(victim)
    with pytest.raises(UnsafeStore, match="it is a symbolic link"):
        open_private(link, os.O_RDWR | os.O_CREAT)
    with pytest.raises(UnsafeStore):
        write_private(link, "123")
    assert victim.read_text() == "keep me" and link.is_symlink()
    assert read_end(link) == b""  # readers do not follow it either


def test_open_private_refuses_a_hard_link_and_a_fifo_without_blocking(tmp_path: Path, victim: Path) -> None:
    hard = tmp_path / "scheduler.json"
    os.link(victim, hard)
    with pytest.raises(UnsafeStore, match="another name"):
        write_private(hard, "{}")
    assert victim.read_text() == "keep me"
    fifo = tmp_path / "scheduler.log"
    os.mkfifo(fifo)
    done: list[BaseException] = []
    opener = threading.Thread(target=lambda: done.append(_raises(fifo)), daemon=True)
    opener.start()
    opener.join(5)
    assert done and isinstance(done[0], UnsafeStore), "opening a FIFO blocked or was accepted"
    assert read_end(fifo) == b""


def _raises(path: Path) -> BaseException | None:
    try:
        os.close(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND))
    except BaseException as err:  # noqa: BLE001 - handed to the test thread
        return err
    return None


def test_write_private_is_owner_only_and_remove_own_removes_only_that_file(
    tmp_path: Path, victim: Path
) -> None:
    state = tmp_path / "scheduler.json"
    written = write_private(state, '{"pid": 1}')
    assert state.read_text() == '{"pid": 1}' and stat.S_IMODE(state.stat().st_mode) == 0o600
    assert write_private(state, "{}") == written and state.read_text() == "{}"  # rewritten whole
    state.unlink()
    state.symlink_to(victim)  # a link put in its place while it ran
    assert not remove_own(state, written)
    assert state.is_symlink() and victim.read_text() == "keep me"
    state.unlink()
    assert remove_own(state, write_private(state, "{}")) and not state.exists()
    assert not remove_own(state, None)


def test_read_end_reads_the_last_bytes_of_a_regular_file(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    log.write_bytes(b"a" * 100 + b"tail")
    assert read_end(log, 4) == b"tail" and read_end(log) == b"a" * 100 + b"tail"
    assert read_end(tmp_path / "missing") == b"" and read_end(tmp_path) == b""


def test_readers_open_a_store_others_can_write_in(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    Store(directory).close()
    directory.chmod(0o777)
    with Store(directory, create=False) as store:  # list, show, export: still readable
        assert store.runs() == []
    assert (directory / DB_NAME).exists()
