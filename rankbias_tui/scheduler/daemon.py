"""The service half of the background scheduler: one detached process per store that runs what it
is asked to run.

``client.spawn`` starts it as ``python -m rankbias_tui.scheduler.daemon --store DIR [options]`` (the
arguments of ``SchedulerOptions.argv``) in a session of its own, so closing the terminal or losing
the SSH connection does not stop it; its output goes to the store's log (``StorePaths.log``). It
holds ``SchedulerLock`` (one scheduler per store), writes the state file (``StorePaths.state``: pid,
devices and their PCI bus ids, owner-only, never through a symbolic link) while it runs, and takes
its orders from the store's requests - nothing listens on a network port:

- ``launch``: one request per run, which the client added to the store (``client.launch``: the
  client read the spec, so what is queued is what it counted); each is queued unless it is
  finished or queued or running here already (this process never reads a spec file);
- ``cancel`` / ``resume``: one run by id (resume requeues a cancelled, failed or interrupted run);
- ``stop``: end cleanly, as SIGTERM, SIGHUP or SIGINT do: runs in progress go back to ``queued`` and
  resume from their last checkpoint later (a stop request made before it took the store - an id
  not above the store's latest request id then, whatever the clocks said - has expired).

When it starts, it adopts the runs a killed scheduler left running (``scheduler.recovery``), and
exits at once (status 2) if a live scheduler trains runs of the store without the lock. It
exits on its own after ``idle_exit_s`` seconds with nothing to do (status 0, as after a stop
request); a signal, a deleted store or a full disk end it with a non-zero status and one log line. Asking
(the client half) is
``scheduler.client``, which the CLI and the terminal UI use; this module is for this process only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..measures import FINISHED
from ..store import Request, Store, StoreError, StorePaths, remove_own, write_private
from ..sweep import PlannedRun
from . import faults, recovery
from .backends import prepare
from .client import mark_cancelled
from .devices import BackendError, DeviceError, Slots, pci_bus_ids
from .launcher import Launcher
from .lock import SchedulerLock, StoreBusy
from .options import SchedulerOptions, add_arguments
from .service import POLL_S, Scheduler

log = logging.getLogger("rankbias.daemon")


class Daemon(Scheduler):
    """A ``Scheduler`` that keeps serving while idle and takes launch/cancel/resume/stop requests."""

    def __init__(
        self, store: Store, slots: Slots, options: SchedulerOptions, launcher: Launcher | None = None
    ):
        super().__init__(store, [], slots, options, launcher=launcher)
        self.idle_exit_s = options.idle_exit_s
        self.stopping: str | None = None
        self.exit_code = 0  # 128 + the signal's number when a signal stopped it
        self.hard_exit = False  # the stop says the process must end at once (``faults.Stopped``)
        self.publish: Callable[[Slots], object] | None = None  # rewrites the state file
        self._idle_since = time.monotonic()
        self._reported: set[str] = set()

    def serve(self) -> int:
        """Adopt interrupted runs, then loop until asked to stop (request, signal) or idle for
        ``idle_exit_s``; return the exit status (2 at once if another live scheduler trains runs
        of this store: ``recovery.adopt``)."""
        try:
            adopted = recovery.adopt(self.store)
        except StoreBusy as err:
            log.error("%s", err)
            return 2
        try:
            self.queue.extend(adopted)
            while self.stopping is None:
                self.check_store()
                self._handle_requests()
                self._fill_slots()
                if self.workers:
                    self._pump(POLL_S)
                else:
                    time.sleep(POLL_S)
                if self.disk_full is not None:
                    raise faults.DiskFull(self.disk_full.path or "a file", self.disk_full.error)
                self._log_outcomes()
                self._check_idle()
        except BaseException as err:  # noqa: BLE001 - whatever ends the loop, the runs are requeued
            stop = self.stop_for(err)
            if isinstance(stop, faults.Stopped):
                log.error("%s", stop)
                self.hard_exit = stop.hard_exit
                return stop.exit_code
            log.error("scheduler loop failed (%s); runs in progress were marked stopped", stop, exc_info=stop)
            return 1
        count, recorded = self.shutdown(
            f"stopped ({self.stopping}); resumable: resume it or run its sweep again"
        )
        log.info("stopping (%s): %s", self.stopping, faults.stopped_outcome(count, recorded))
        return self.exit_code

    def resized(self) -> None:
        """The app reads the slots from the state file: 0 with runs queued reads "waiting for nodes"."""
        if self.publish is not None:
            self.publish(self.slots)

    def _check_idle(self) -> None:
        if self.queue or self.workers:
            self._idle_since = time.monotonic()
        elif self.idle_exit_s > 0 and time.monotonic() - self._idle_since > self.idle_exit_s:
            self.stopping = f"idle for {self.idle_exit_s:g} s"

    def _log_outcomes(self) -> None:
        for run_id, status in self.outcomes.items():
            if run_id not in self._reported:
                self._reported.add(run_id)
                log.info("run %s: %s", run_id, status)

    def _handle_requests(self) -> None:
        """Answer the requests in the order they were made; the launches of a sweep (one request
        per run) are answered together, with one read of the store and one transaction."""
        launches: list[Request] = []
        for request in self.store.take_requests():
            if request.kind == "launch" and request.run_id:
                launches.append(request)
                continue
            self._guarded(self._launch, launches)
            launches = []
            self._guarded(self._answer, request)
        self._guarded(self._launch, launches)

    def _guarded(self, answer: Callable[[Any], None], request: Any) -> None:
        try:
            answer(request)
        except Exception:  # noqa: BLE001 - a bad request must not end the scheduler
            log.exception("request %s failed", request)

    def _launch(self, requests: list[Request]) -> None:
        """Queue the runs these launch requests name, in order, unless finished, unknown to the store
        or queued or running here already (``client.launch`` added them to the store)."""
        if not requests:
            return
        rows = {row.run_id: row for row in self.store.runs()}
        known = self._known()
        todo: list[tuple[str | None, PlannedRun]] = []  # (the sweep launched, the run)
        for request in requests:
            row = rows.get(request.run_id or "")
            if row is None or row.status in FINISHED or row.run_id in known:
                continue
            planned = recovery.admit(self.store, row)
            if planned is not None:
                todo.append((request.sweep, planned))
                known.add(planned.run_id)
        requeued = set(self.store.requeue([run.run_id for _, run in todo]))
        self.queue.extend(run for _, run in todo if run.run_id in requeued)
        for sweep in dict.fromkeys(r.sweep for r in requests):
            asked = sum(r.sweep == sweep for r in requests)
            queued = sum(s == sweep and run.run_id in requeued for s, run in todo)
            log.info("launch %s: %d runs, %d queued", sweep, asked, queued)
        superseded = set(recovery.stop_superseded(self.store, self.store.orphaned()))
        if superseded:  # queued here with an earlier version of the spec
            self.queue = deque(run for run in self.queue if run.run_id not in superseded)

    def _answer(self, request: Request) -> None:
        if request.kind == "stop":
            if not faults.expired(request, self.requests_after):
                self.stopping = "stop requested"
        elif request.kind == "cancel" and request.run_id:
            self._cancel(request.run_id)
        elif request.kind == "resume" and request.run_id:
            self._resume(request.run_id)
        else:
            log.warning("ignoring request %s", request)

    def _cancel(self, run_id: str) -> None:
        if self.cancel(run_id):
            log.info("cancel %s", run_id)
        elif mark_cancelled(self.store, run_id, "cancelled before it started"):
            log.info("cancel %s (not queued here)", run_id)

    def _known(self) -> set[str]:
        return {r.run_id for r in self.queue} | set(self.workers)

    def _resume(self, run_id: str) -> None:
        row = self.store.run(run_id)
        if row is None or row.status in FINISHED or row.run_id in self._known():
            log.info("resume %s: nothing to do", run_id)
            return
        planned = recovery.admit(self.store, row)
        if planned is None:
            return  # admit said why
        self.store.requeue([row.run_id])
        self.queue.append(planned)
        log.info("resume %s", row.run_id)


def _acquire(directory: Path, attempts: int = 20) -> SchedulerLock:
    """Take the lock, retrying briefly: a client probing it holds it for microseconds."""
    for attempt in range(attempts):
        lock = SchedulerLock(directory)
        try:
            return lock.__enter__()
        except StoreBusy:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def _parse(argv: list[str] | None) -> tuple[Path, SchedulerOptions]:
    parser = argparse.ArgumentParser(prog="python -m rankbias_tui.scheduler.daemon", description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="results directory")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.store.resolve(), SchedulerOptions.parse(args)


def main(argv: list[str] | None = None) -> int:
    directory, options = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [pid %(process)d] %(message)s")
    try:
        backend = prepare(options)
        lock = _acquire(directory)
    except (DeviceError, BackendError, StoreBusy, StoreError) as err:
        log.error("%s", err)
        return 2
    slots = backend.slots
    state_path, written, daemon = StorePaths.of(directory).state, None, None
    try:
        with Store(directory) as store:
            daemon = Daemon(store, slots, options, backend.launcher)  # reads the latest request id
            written = _write_state(state_path, options, slots)
            daemon.publish = lambda now: _write_state(state_path, options, now)
            _install_signals(daemon)
            log.info("scheduler started on %s", backend.where)
            code = daemon.serve()
    except StoreError as err:
        log.error("%s", err)
        code = 1
    finally:
        remove_own(state_path, written)  # only the file written here: never a link put in its place
        lock.__exit__(None, None, None)
    log.info("scheduler stopped (exit status %d)", code)
    if daemon is not None and daemon.hard_exit:  # the store is closed and the log said why
        logging.shutdown()
        os._exit(code)
    return code


def _write_state(path: Path, options: SchedulerOptions, slots: Slots) -> tuple[int, int]:
    """The state file: who holds the lock (a background scheduler), on which devices, and each
    GPU's PCI bus id (the TUI, which has no torch, finds the card's NVML handle by it). Owner-only,
    never written through a symbolic link (``store.UnsafeStore``); returns its identity."""
    state = {"pid": os.getpid(), "started_at": time.time(), **asdict(options)}
    state |= {"slots": list(slots.devices), "capacity": slots.capacity}
    state |= {"pci_bus_ids": pci_bus_ids(slots.devices)}
    return write_private(path, json.dumps(state, default=str))


def _install_signals(daemon: Daemon) -> None:
    def on_signal(signum: int, frame: object) -> None:
        if daemon.stopping is None:
            daemon.stopping = signal.Signals(signum).name
            daemon.exit_code = 128 + signum

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)


if __name__ == "__main__":
    sys.exit(main())
