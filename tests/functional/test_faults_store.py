"""Fault injection on the store (issue 9): read-only, corrupt, truncated, permissions.

A read-only store is made with a read-only bind mount in a private mount namespace (``unshare -m``,
root only), which is what a read-only NFS export or a snapshot looks like to rankbias; where that
is not allowed the test skips. Every command must answer in one line, never with a traceback."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rankbias_tui.store import DB_NAME, Store, StoreError
from tests.support.trend_store import build_store

RANKBIAS = str(Path(sys.executable).with_name("rankbias"))


def _can_mount() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


def _read_only(directory: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``rankbias COMMAND`` with ``directory`` mounted read-only (root sees EROFS too)."""
    d = str(directory)
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, d, RANKBIAS, *command], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.fixture
def shared_store(trend_store: Path) -> Path:
    return trend_store


@pytest.mark.skipif(not _can_mount(), reason="needs root and unshare -m for a read-only mount")
@pytest.mark.parametrize(
    ("command", "expect"),
    [
        (["list"], "20 runs"),
        (["export"], "run_id,sweep,status"),
        (["export", "--what", "spectra"], "sigma"),
        (["claims", "--sweep", "trend"], "claim"),
        (["plot", "--kind", "rank-curves", "--sweep", "trend", "-o", "OUT"], "wrote"),
    ],
)
def test_a_read_only_store_can_be_read(
    shared_store: Path, tmp_path: Path, command: list[str], expect: str
) -> None:
    command = [str(tmp_path / "fig.png") if c == "OUT" else c for c in command]
    before = sorted(p.name for p in shared_store.iterdir())
    done = _read_only(shared_store, *command, "--store", str(shared_store))
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in shared_store.iterdir()) == before  # nothing written beside it


@pytest.mark.skipif(not _can_mount(), reason="needs root and unshare -m for a read-only mount")
def test_running_on_a_read_only_store_says_why(shared_store: Path) -> None:
    spec = Path(__file__).resolve().parents[1] / "data" / "golden" / "spec.toml"
    done = _read_only(shared_store, "run", str(spec), "--store", str(shared_store), "--headless")
    assert done.returncode == 1
    assert "cannot write to the store" in done.stderr and "read-only" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: p.write_bytes(os.urandom(8192)), "file is not a database"),
        (lambda p: p.write_bytes(p.read_bytes()[:6000]), "malformed"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 90), "not a"),
    ],
    ids=["random", "truncated", "header-only"],
)
def test_a_corrupt_database_is_one_line_naming_the_file(tmp_path: Path, damage, words: str) -> None:
    directory = tmp_path / "store"
    build_store(directory).close()
    damage(directory / DB_NAME)
    with pytest.raises(StoreError) as info:
        Store(directory, create=False).conn.execute("SELECT count(*) FROM spectra").fetchone()
    assert str(directory / DB_NAME) in str(info.value)
    done = subprocess.run([RANKBIAS, "list", "--store", str(directory)], capture_output=True, text=True)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(directory / DB_NAME) in lines[0], done.stderr
    assert words in lines[0] or "malformed" in lines[0] or "not a database" in lines[0]


def test_a_new_store_is_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "results" / "store"
    Store(directory).close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / DB_NAME).stat().st_mode) == 0o600


def test_a_store_shared_on_purpose_keeps_its_mode(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o750)
    Store(directory).close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o750
