"""The client half of the scheduler: what the CLI and the terminal UI ask of a store's scheduler.

It imports neither torch nor Textual and trains nothing. It tells who holds a store's scheduler
lock (``status``, ``scheduler_pid``), starts a background scheduler (``spawn``, ``ensure``) and
asks for actions by adding ``store.Request`` rows (``launch``, ``resume``, ``cancel``, ``stop``),
which the running scheduler takes within a second. The one action done here at once is cancelling
a run that no scheduler runs (``cancel``, ``mark_cancelled``). The service half - the background
loop that answers the requests - is ``scheduler.daemon``; the training loop is ``scheduler.service``.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..measures import ACTIVE, INTERRUPTED, Status
from ..provenance import provenance
from ..store import (
    Request,
    Store,
    StorePaths,
    check_directory,
    make_private_directory,
    open_private,
    read_end,
)
from ..sweep import PlannedRun
from .lock import SchedulerLock, StoreBusy, held, holder_pid
from .options import SchedulerOptions


@dataclass(frozen=True)
class SchedulerStatus:
    """Who holds a store's scheduler lock, and on which devices it trains."""

    pid: int | None  # lock holder, -1 if unknown, None if no scheduler runs
    background: bool = False  # a background scheduler (answers launch/resume), not `rankbias run`
    devices: tuple[str, ...] = ()
    capacity: int | None = None  # runs at once
    pci_bus_ids: tuple[tuple[str, str], ...] = ()  # (device, PCI bus id): how NVML finds a GPU

    @property
    def foreground(self) -> bool:
        """A foreground ``rankbias run`` holds the store: it answers cancel and stop only."""
        return self.pid is not None and not self.background


def scheduler_pid(directory: str | Path) -> int | None:
    """The pid of the process holding the store's scheduler lock (-1: unknown, its lock file was
    removed while it ran), None if free."""
    if held(directory):
        pid = holder_pid(directory)
        return -1 if pid is None else pid
    try:  # an older rankbias locks the file only; a symbolic link is nobody's lock
        fd = os.open(StorePaths.of(directory).lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def status(directory: str | Path) -> SchedulerStatus:
    """The store's scheduler now: a background one has written its state file with its pid."""
    pid = scheduler_pid(directory)
    if pid is None:
        return SchedulerStatus(None)
    try:  # never through a symbolic link (``store.read_end``)
        state = json.loads(read_end(StorePaths.of(directory).state, 1 << 16) or b"null")
    except ValueError:
        state = None
    if not isinstance(state, dict) or state.get("pid") != pid:
        return SchedulerStatus(pid)
    bus_ids = state.get("pci_bus_ids")
    bus_ids = tuple(sorted(bus_ids.items())) if isinstance(bus_ids, dict) else ()
    return SchedulerStatus(pid, True, tuple(state.get("slots", ())), state.get("capacity"), bus_ids)


def spawn(directory: str | Path, options: SchedulerOptions) -> subprocess.Popen[bytes]:
    """Start a background scheduler detached from this terminal; its output goes to the log (never
    through a symbolic link, in a directory that is this user's alone: ``store.UnsafeStore``)."""
    paths = StorePaths.of(Path(directory).resolve())
    make_private_directory(paths.directory)
    check_directory(paths.directory)
    fd = open_private(paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rankbias_tui.scheduler.daemon",
                "--store",
                str(paths.directory),
                *options.argv(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no controlling terminal: a hang-up does not reach it
            close_fds=True,
        )
    finally:
        os.close(fd)


Spawner = Callable[[Path, SchedulerOptions], Any]  # ``spawn``, or a stand-in for it (tests)


def ensure(
    directory: str | Path,
    options: SchedulerOptions,
    spawner: Spawner | None = None,
    starting: Any = None,
) -> tuple[int | None, Any]:
    """Make sure a scheduler runs on the store (the one rule, for the CLI and the app).

    (pid, None): one holds the store's lock. (None, ``starting``): ``starting``, a scheduler this
    caller started before, has not exited yet - it takes the lock in a moment, so no second one is
    started. Else (None, the process ``spawner`` starts now; default ``spawn``)."""
    pid = scheduler_pid(directory)
    if pid is not None:
        return pid, None
    if starting is not None and getattr(starting, "poll", lambda: 0)() is None:
        return None, starting
    return None, (spawner or spawn)(Path(directory), options)


def launch(store: Store, runs: Sequence[PlannedRun]) -> None:
    """Ask the background scheduler to queue ``runs`` (the sweeps the caller expanded, and counted
    for the user), in this order: they are added to the store now (a run it holds keeps its state)
    and the scheduler queues each that is neither finished nor queued or running there already.

    The spec is read once, by the caller: the scheduler never reads the file, so what it queues is
    what the caller showed, even if the file changes in between. One transaction: a scheduler
    takes all of the requests or none. ``runs`` are the whole grids of their sweeps: a sweep's other
    runs, queued with an earlier version of the spec, are superseded (``Store.supersede``)."""
    with store.transaction():
        store.add_runs(runs, provenance())
        store.supersede(runs)  # the scheduler does not train what the spec no longer holds
        for run in runs:
            store.request(Request("launch", run.run_id, sweep=run.sweep))


def resume(store: Store, run_id: str) -> None:
    """Ask the background scheduler to requeue a cancelled, failed or interrupted run."""
    store.request(Request("resume", run_id))


def cancel(store: Store, run_id: str) -> bool:
    """Cancel a run: True if it was marked at once, False if the running scheduler was asked to.

    With no scheduler on the store, this process takes the lock for a moment, so nobody else can
    be running the run, and marks it; a running scheduler stops it within seconds (a worker that
    does not answer is killed).
    """
    try:
        with SchedulerLock(store.directory):
            mark_cancelled(store, run_id, "cancelled by request")
            return True
    except StoreBusy:
        store.request(Request("cancel", run_id))
        return False


def mark_cancelled(store: Store, run_id: str, error: str) -> bool:
    """Mark a queued, running or interrupted run cancelled; the caller holds the store's scheduler
    lock and does not run it itself, so a 'running' row is stale. False if it is not cancellable."""
    row = store.run(run_id)
    if row is None or row.status not in (*ACTIVE, INTERRUPTED):
        return False
    store.set_status(row.run_id, Status.CANCELLED, error=error)
    return True


def stop(directory: str | Path, timeout_s: float = 60.0) -> int | None:
    """Ask the store's scheduler to stop and wait for it; return its pid (None: none was running).

    Background and foreground (``rankbias run --headless``) schedulers both answer the ``stop``
    request within a second; a foreground one that has not after a few seconds (an older rankbias)
    gets SIGINT (Ctrl-C), which requeues its runs the same way.
    Raises TimeoutError if the scheduler still runs after ``timeout_s``.
    """
    now = status(directory)
    pid = now.pid
    if pid is None:
        return None
    with Store(directory) as store:
        store.request(Request("stop"))
    nudge = pid > 0 and now.foreground
    start = time.monotonic()
    while scheduler_pid(directory) is not None:
        waited = time.monotonic() - start
        if waited > timeout_s:
            who = f"pid {pid}" if pid > 0 else "pid unknown"
            raise TimeoutError(f"the scheduler ({who}) did not stop within {timeout_s:g} s")
        if nudge and waited > 5:
            nudge = False  # once
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return pid
