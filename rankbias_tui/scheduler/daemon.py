"""The background scheduler: one detached process per store that runs what it is asked to run.

``rankbias run`` (with a terminal) and the terminal UI start it as
``python -m rankbias_tui.scheduler.daemon --store DIR [--devices ...]`` in a session of its own, so
closing the terminal or losing the SSH connection does not stop it; its output goes to
``DIR/scheduler.log``. It holds ``SchedulerLock(DIR)`` (one scheduler per store), writes
``DIR/scheduler.json`` (pid and devices, owner-only) while it runs, and takes its orders from the
store's ``requests`` table - nothing listens on a network port:

- ``launch``: the ``run_id`` column holds ``<spec path>::<sweep>``; the sweep's runs are added to the
  store and its unfinished runs queued;
- ``cancel`` / ``resume``: one run by id (resume requeues a cancelled, failed or interrupted run);
- ``stop``: end cleanly, as SIGTERM or SIGINT do: runs in progress go back to ``queued`` and resume
  from their last checkpoint later.

It exits on its own after ``--idle-exit`` seconds with nothing to do. The client half of this
module (``scheduler_pid``, ``spawn``, ``ensure``, ``request_launch``, ``stop``) imports neither
torch nor Textual: the terminal UI and the CLI use it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..measures import ACTIVE, FINISHED
from ..provenance import provenance
from ..spec import RunConfig, SpecError, load_spec
from ..store import Store
from ..sweep import PlannedRun, UnknownSweep, expand_sweep
from .devices import DeviceError, Slots, plan_slots
from .lock import SchedulerLock, StoreBusy
from .service import POLL_S, Scheduler

LOG_NAME = "scheduler.log"
STATE_NAME = "scheduler.json"
LAUNCH_SEP = "::"
IDLE_EXIT_S = 300.0
log = logging.getLogger("rankbias.daemon")


@dataclass(frozen=True)
class DaemonOptions:
    """How a background scheduler is started (the ``rankbias run`` options that concern it)."""

    devices: str = "auto"
    """auto, cpu, cuda (all GPUs) or cuda:0,1."""
    per_device: int | None = None
    """Concurrent runs per device (default: CPU cores for cpu, 1 per GPU)."""
    data_dir: Path | None = None
    """Where data sets are cached (default ~/.cache/rankbias/data)."""
    keep_checkpoints: bool = False
    """Keep the last checkpoint of finished runs."""
    idle_exit_s: float = IDLE_EXIT_S
    """Exit after this many seconds with nothing queued or running (0: never)."""
    pack_size: int | None = None
    """Most mlp/mlp-bn runs trained as one fused pack (None: the spec's, else automatic)."""
    graphs: bool = True
    """Replay CUDA graphs on GPUs (False: the eager loop)."""

    def argv(self) -> list[str]:
        args = ["--devices", self.devices, "--idle-exit", str(self.idle_exit_s)]
        if self.per_device is not None:
            args += ["--per-device", str(self.per_device)]
        if self.pack_size is not None:
            args += ["--pack-size", str(self.pack_size)]
        if not self.graphs:
            args.append("--no-graphs")
        if self.data_dir is not None:
            args += ["--data-dir", str(Path(self.data_dir).resolve())]
        if self.keep_checkpoints:
            args.append("--keep-checkpoints")
        return args


# ----- client side: no torch, no Textual --------------------------------------------------------
def scheduler_pid(directory: str | Path) -> int | None:
    """The pid of the process holding the store's scheduler lock (-1: unknown), None if free."""
    path = Path(directory) / "scheduler.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
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


def daemon_state(directory: str | Path) -> dict[str, Any] | None:
    """What the running background scheduler wrote about itself (pid, devices), if any."""
    try:
        return json.loads((Path(directory) / STATE_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_daemon(directory: str | Path, pid: int | None) -> bool:
    """True when ``pid`` (the lock holder) is a background scheduler, not a foreground ``run``."""
    state = daemon_state(directory)
    return pid is not None and state is not None and state.get("pid") == pid


def spawn(directory: str | Path, options: DaemonOptions) -> subprocess.Popen[bytes]:
    """Start a background scheduler detached from this terminal; its output goes to the log."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rankbias_tui.scheduler.daemon",
                "--store",
                str(directory),
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


def ensure(
    directory: str | Path, options: DaemonOptions
) -> tuple[int | None, subprocess.Popen[bytes] | None]:
    """The running scheduler's pid, or a freshly spawned one's process."""
    pid = scheduler_pid(directory)
    return (pid, None) if pid is not None else (None, spawn(directory, options))


def request_launch(store: Store, spec_path: str | Path, sweep: str) -> None:
    store.request("launch", f"{Path(spec_path).resolve()}{LAUNCH_SEP}{sweep}")


def stop(directory: str | Path, timeout_s: float = 60.0) -> int | None:
    """Ask the store's scheduler to stop and wait for it; return its pid (None: none was running).

    Background and foreground (``rankbias run --headless``) schedulers both answer the ``stop``
    request within a second; a foreground one that has not after a few seconds (an older rankbias)
    gets SIGINT (Ctrl-C), which requeues its runs the same way.
    Raises TimeoutError if the scheduler still runs after ``timeout_s``.
    """
    pid = scheduler_pid(directory)
    if pid is None:
        return None
    with Store(directory) as store:
        store.request("stop")
    foreground = pid > 0 and not is_daemon(directory, pid)
    start = time.monotonic()
    while scheduler_pid(directory) is not None:
        waited = time.monotonic() - start
        if waited > timeout_s:
            raise TimeoutError(f"the scheduler (pid {pid}) did not stop within {timeout_s:g} s")
        if foreground and waited > 5:
            foreground = False  # nudge once
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return pid


# ----- server side ------------------------------------------------------------------------------
class Daemon(Scheduler):
    """A ``Scheduler`` that keeps serving while idle and takes launch/cancel/resume/stop requests."""

    def __init__(self, store: Store, slots: Slots, *, idle_exit_s: float = IDLE_EXIT_S, **kwargs: Any):
        super().__init__(store, [], slots, **kwargs)
        self.idle_exit_s = idle_exit_s
        self.stopping: str | None = None
        self._idle_since = time.monotonic()
        self._reported: set[str] = set()

    def serve(self) -> None:
        """Loop until asked to stop (request, signal) or idle for ``idle_exit_s``."""
        try:
            while self.stopping is None:
                self._handle_requests()
                self._fill_slots()
                if self.workers:
                    self._pump(POLL_S)
                else:
                    time.sleep(POLL_S)
                self._log_outcomes()
                self._check_idle()
        except BaseException:
            log.exception("scheduler loop failed; requeueing runs in progress")
            self.shutdown("interrupted: the background scheduler failed; resume the run to continue")
            raise
        log.info(
            "stopping (%s); %d run(s) in progress go back to the queue", self.stopping, len(self.workers)
        )
        self.shutdown(f"stopped ({self.stopping}); resumable: resume it or run its sweep again")

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
        for kind, arg in self.store.take_requests():
            try:
                handler = {"cancel": self._cancel, "resume": self._resume, "launch": self._launch}.get(kind)
                if kind == "stop":
                    self.stopping = "stop requested"
                elif handler is not None and arg:
                    handler(arg)
                else:
                    log.warning("ignoring request %s %r", kind, arg)
            except Exception:  # noqa: BLE001 - a bad request must not end the scheduler
                log.exception("request %s %r failed", kind, arg)

    def _cancel(self, run_id: str) -> None:
        if self.cancel(run_id):
            log.info("cancel %s", run_id)
            return
        row = self.store.run(run_id)
        # Holding the lock, no other scheduler can be running it: a 'running' row is stale.
        if row is not None and row.status in ACTIVE:
            self.store.set_status(row.run_id, "cancelled", error="cancelled before it started")
            log.info("cancel %s (not queued here)", row.run_id)

    def _known(self) -> set[str]:
        return {r.run_id for r in self.queue} | set(self.workers)

    def _resume(self, run_id: str) -> None:
        row = self.store.run(run_id)
        if row is None or row.status in FINISHED or row.run_id in self._known():
            log.info("resume %s: nothing to do", run_id)
            return
        self.store.requeue([row.run_id])
        self.queue.append(PlannedRun(row.run_id, row.sweep, RunConfig.model_validate(row.config)))
        log.info("resume %s", row.run_id)

    def _launch(self, arg: str) -> None:
        spec_path, _, sweep = arg.rpartition(LAUNCH_SEP)
        try:
            spec = load_spec(spec_path)
        except SpecError as err:
            log.error("launch %s: %s", arg, err.report())
            return
        if sweep not in spec.sweeps:
            log.error("launch %s: %s", arg, UnknownSweep(sweep, spec.sweeps))
            return
        planned = expand_sweep(spec, sweep)
        known = self._known()
        todo = [p for p in self.store.queue(planned, provenance(), active=known) if p.run_id not in known]
        self.queue.extend(todo)
        log.info("launch %s: %d runs, %d queued", sweep, len(planned), len(todo))


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


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rankbias_tui.scheduler.daemon", description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="results directory")
    parser.add_argument("--devices", default="auto", help="auto, cpu, cuda or cuda:0,1")
    parser.add_argument("--per-device", type=int, default=None, help="concurrent runs per device")
    parser.add_argument("--data-dir", type=Path, default=None, help="data set cache")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep finished runs' checkpoints")
    parser.add_argument("--pack-size", type=int, default=None, help="most runs per fused pack")
    parser.add_argument("--no-graphs", action="store_true", help="eager loop on GPUs")
    parser.add_argument("--idle-exit", type=float, default=IDLE_EXIT_S, help="seconds idle before exiting")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [pid %(process)d] %(message)s")
    directory = args.store.resolve()
    options = DaemonOptions(
        args.devices, args.per_device, args.data_dir, args.keep_checkpoints, args.idle_exit, args.pack_size,
        not args.no_graphs,
    )  # fmt: skip
    try:
        slots = plan_slots(options.devices, options.per_device)
        lock = _acquire(directory)
    except (DeviceError, StoreBusy) as err:
        log.error("%s", err)
        return 2
    state_path = directory / STATE_NAME
    try:
        _write_state(state_path, options, slots)
        with Store(directory) as store:
            daemon = Daemon(
                store, slots, idle_exit_s=options.idle_exit_s, data_dir=options.data_dir,
                keep_checkpoints=options.keep_checkpoints, pack_size=options.pack_size, graphs=options.graphs,
            )  # fmt: skip
            _install_signals(daemon)
            log.info(
                "scheduler started on %s (%d at a time per device)",
                ", ".join(slots.devices),
                slots.per_device,
            )
            daemon.serve()
    finally:
        state_path.unlink(missing_ok=True)
        lock.__exit__(None, None, None)
    log.info("scheduler stopped")
    return 0


def _write_state(path: Path, options: DaemonOptions, slots: Slots) -> None:
    """``scheduler.json``: who holds the lock (a background scheduler) and on which devices."""
    state = {"pid": os.getpid(), "started_at": time.time(), **asdict(options)}
    state |= {"slots": list(slots.devices), "capacity": slots.capacity}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, default=str)


def _install_signals(daemon: Daemon) -> None:
    def on_signal(signum: int, frame: object) -> None:
        daemon.stopping = signal.Signals(signum).name

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
