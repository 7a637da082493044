"""``rankbias run`` in a terminal: the app opens on a background scheduler that survives a hang-up
(the SSH connection dropping), and ``rankbias stop`` then ends it with the runs resumable."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from rankbias_tui import scheduler
from rankbias_tui.store import Store, StorePaths
from tests.support.tui_store import TINY_SPEC as SPEC

pytestmark = pytest.mark.slow


def read_until(fd: int, done, timeout: float = 60.0) -> bytes:  # noqa: ANN001
    """Drain the terminal (so the app never blocks writing) until ``done(output)``."""
    out, deadline = b"", time.monotonic() + timeout
    while not done(out):
        assert time.monotonic() < deadline, out[-2000:].decode(errors="replace")
        if select.select([fd], [], [], 0.1)[0]:
            out += os.read(fd, 65536)
    return out


def test_run_opens_the_app_and_the_scheduler_survives_a_hangup(tmp_path: Path) -> None:
    spec, store_dir = tmp_path / "spec.toml", tmp_path / "runs"
    spec.write_text(SPEC)
    argv = [sys.executable, "-c", "from rankbias_tui.cli import main; main()", "run", str(spec)]
    argv += ["--store", str(store_dir), "--devices", "cpu", "--per-device", "1", "--pack-size", "1"]
    pid, fd = pty.fork()  # the child leads a session whose terminal is this pty, like an SSH login
    if pid == 0:  # pragma: no cover - the child
        os.execv(sys.executable, argv)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        read_until(fd, lambda out: b"Launch" in out and StorePaths.of(store_dir).state.exists())
    finally:
        os.close(fd)  # hang up: the kernel sends SIGHUP to the app
    os.waitpid(pid, 0)  # the app has ended (a hung app would hang the test, not pass it)
    background = scheduler.status(store_dir)
    assert background.pid is not None and background.background  # it kept running
    assert scheduler.stop(store_dir, timeout_s=30) == background.pid
    with Store(store_dir) as store:
        statuses = {r.status for r in store.runs()}
    assert statuses <= {"stopped", "done"}  # nothing left marked running or queued: resumable later


def test_sighup_restores_the_terminal(tmp_path: Path) -> None:
    """Issue 10, item 9: a hang-up signal used to leave the alternate screen, mouse tracking and a
    hidden cursor behind (``reset`` needed); now the app leaves as on ``q``."""
    from tests.support.tui_store import make_store

    make_store(tmp_path / "runs").close()
    argv = [sys.executable, "-c", "from rankbias_tui.cli import main; main()", "attach", "--store",
            str(tmp_path / "runs"), "--spec", str(tmp_path / "runs" / "experiments.toml")]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(sys.executable, argv)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        read_until(fd, lambda out: b"Launch" in out)
        os.kill(pid, signal.SIGHUP)
        out, reaped = b"", False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif os.waitpid(pid, os.WNOHANG)[0]:
                reaped = True
                break
    finally:
        os.close(fd)
    if not reaped:
        os.waitpid(pid, 0)
    assert b"\x1b[?1049l" in out, out[-500:]  # back from the alternate screen
    assert b"\x1b[?25h" in out  # the cursor shown again
    assert b"\x1b[?1000l" in out or b"\x1b[?1003l" in out  # mouse tracking off
