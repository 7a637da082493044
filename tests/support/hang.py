"""Helpers of the hung-worker tests: freeze a worker (SIGSTOP) and make sure it does not outlive the
test, and a launcher whose worker freezes half-way through a message."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import struct
import time
from contextlib import suppress
from multiprocessing.connection import Connection

from rankbias_tui.protocol import Metrics, Started
from rankbias_tui.scheduler.hosts import Host, Watch
from rankbias_tui.scheduler.launcher import Launch
from rankbias_tui.sweep import PlannedRun


def freeze(pid: int, frozen: list[int]) -> None:
    """SIGSTOP ``pid``; ``frozen`` collects it for ``release``."""
    os.kill(pid, signal.SIGSTOP)
    frozen.append(pid)


def release(frozen: list[int]) -> None:
    """What a test froze is killed, whatever the test did (a stopped process never ends on its own)."""
    for pid in frozen:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def state(pid: int) -> str:
    """The process's state letter from /proc (T: stopped, Z: a zombie), or "" once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def freeze_mid_message(conn: Connection, run_id: str) -> None:
    """Worker target: start a run, then stop (SIGSTOP) half-way through sending a large message."""
    conn.send(Started(run_id, 1000, -1, "frozen mid-message"))
    payload = pickle.dumps(Metrics(run_id, 1, 0.0, {f"m{i}": float(i) for i in range(4000)}))
    os.write(conn.fileno(), struct.pack("!i", len(payload)) + payload[: len(payload) // 2])
    os.kill(os.getpid(), signal.SIGSTOP)
    time.sleep(600)  # if it is ever continued


class FreezingLauncher:
    """A launcher (``launcher.Launcher``) whose single-run worker freezes mid-message."""

    def __init__(self) -> None:
        self.ctx = mp.get_context("spawn")
        self.pids: list[int] = []

    def start_run(self, run: PlannedRun, resume: int | None, device: str, launch: Launch) -> Host:
        parent, child = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=freeze_mid_message, args=(child, run.run_id), daemon=True)
        proc.start()
        child.close()
        self.pids.append(proc.pid)  # type: ignore[arg-type]
        return Host(proc, parent, device, watch=Watch(heard=time.monotonic()))

    def start_pack(
        self, runs: list[PlannedRun], resumes: list[int | None], device: str, launch: Launch
    ) -> Host:
        raise AssertionError("no packs here (--pack-size 1)")
