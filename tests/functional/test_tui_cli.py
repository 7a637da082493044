"""``rankbias run`` in a terminal: the app opens on a background scheduler that survives a hang-up
(the SSH connection dropping), and ``rankbias stop`` then ends it with the runs resumable."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time
from pathlib import Path

import pytest
from test_tui_live import SPEC

from rankbias_tui.scheduler import daemon
from rankbias_tui.store import Store

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
        read_until(fd, lambda out: b"Launch" in out and (store_dir / daemon.STATE_NAME).exists())
    finally:
        os.close(fd)  # hang up: the kernel sends SIGHUP to the app
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) or os.WIFEXITED(status)
    scheduler = daemon.scheduler_pid(store_dir)
    assert scheduler is not None and daemon.is_daemon(store_dir, scheduler)  # it kept running
    assert daemon.stop(store_dir, timeout_s=30) == scheduler
    with Store(store_dir) as store:
        statuses = {r.status for r in store.runs()}
    assert statuses <= {"queued", "done"}  # nothing left marked running: resumable later
