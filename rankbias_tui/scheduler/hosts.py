"""Worker processes seen from the scheduler: starting them, and recording what they say.

Owns: ``Host`` (one worker process: a single run, or the members of a fused pack it still trains)
and what the scheduler uses of its process handle and control channel (``WorkerProcess``,
``Control``: what every backend's launcher must hand back), ``Watch`` (when a host was last heard
from and how it is being ended: ``scheduler.watchdog`` judges it), ``Worker`` (one run in progress
on a host) and its ``Live`` view for progress displays; ``record``, which writes one ``protocol`` event
of a run to the store and its live view; and the reason given for a process that died without a
word. Does not own: starting workers (the launchers: ``scheduler.local``, ``scheduler.ray_backend``;
their protocol is ``scheduler.launcher``), the queue, slots, packing or how a run's end is settled
(``scheduler.service``), nor the events' shapes (``rankbias_tui.protocol``). Imports no torch.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from .. import checkpoints
from ..measures import mean
from ..protocol import Checkpoint, Finished, Metrics, Progress, RunEvent, RunWarning, Spectra, Started
from ..store import Segment, Store
from ..sweep import PlannedRun
from .inbox import Inbox

log = logging.getLogger(__name__)


class WorkerProcess(Protocol):
    """What the scheduler uses of a worker's process: a ``multiprocessing.Process`` (the local
    backend), or a remote backend's stand-in for one (``ray_backend.RayTask``)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    @property
    def sentinel(self) -> int:
        """Readable once the worker has ended (waited on with the pipes)."""
        ...

    def is_alive(self) -> bool: ...

    def join(self, timeout: float | None = None) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class Control(Protocol):
    """A pack's control channel: ``protocol.Cancel`` for one member (a pipe, or a Ray mailbox)."""

    def send(self, message: Any) -> None: ...

    def close(self) -> None: ...


@dataclass
class Live:
    """What the scheduler knows about an active run, for progress displays."""

    run_id: str
    device: str
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    values: dict[str, float] = field(default_factory=dict)  # latest of each metric
    avg_rank: float | None = None
    mode: str = ""


@dataclass
class Watch:
    """What the scheduler knows of a host's liveness (times are ``time.monotonic()``)."""

    heard: float | None = None  # its last message; None: not judged until it says something
    step_s: float | None = None  # seconds per training step, measured between running metrics
    last_step: tuple[float, int] | None = None  # (time, step) of the latest running metrics
    cancel_at: float | None = None  # a cancel was sent to it
    kill_at: float | None = None  # it was told to end (SIGTERM): SIGKILL is due then
    killed_at: float | None = None  # SIGKILL was sent

    def hear(self, now: float, step: int | None = None) -> None:
        """A message arrived; ``step``: the step of a run's running metrics (its pace is measured)."""
        self.heard = now
        if step is None:
            return
        if self.last_step is not None and step > self.last_step[1]:
            self.step_s = (now - self.last_step[0]) / (step - self.last_step[1])
        if self.last_step is None or step != self.last_step[1]:
            self.last_step = (now, step)


@dataclass
class Worker:
    """One run in progress, and how it ended once its host said so."""

    run: PlannedRun
    proc: WorkerProcess
    conn: Connection
    live: Live
    finished: tuple[str, str | None] | None = None  # (status, error)
    cancelled: bool = False
    host: Host | None = None  # the process training this run (shared by a pack's members)


@dataclass(eq=False)
class Host:
    """One worker process: a single run, or the members of a fused pack it still trains."""

    proc: WorkerProcess
    conn: Connection
    device: str
    members: dict[str, Worker] = field(default_factory=dict)
    control: Control | None = None  # packs only: protocol.Cancel to the worker
    size: int = 1  # members at start
    oom: bool = False
    lost: str | None = None  # why a remote backend lost it (protocol.WorkerLost): requeue its runs
    pack: tuple[str, ...] = ()  # the run ids it trains, in pack order (set when the scheduler registers it)
    disk_full: bool = False  # it sent DiskFull: its runs are requeued, not failed
    watch: Watch = field(default_factory=Watch)
    stalled: str | None = None  # why the scheduler killed it (silent, a cancel unanswered): requeue its runs
    available: int | None = None  # bytes of memory available when it started (scheduler.memory)
    oom_kills: int | None = None  # the kernel's OOM-kill count when it started
    inbox: Inbox | None = field(default=None, repr=False)  # what arrived of its messages (scheduler.inbox)

    @property
    def starting(self) -> bool:
        """No member has started training yet: the memory it will take is not in use yet."""
        return not any(w.live.total_steps for w in self.members.values())


def record(
    store: Store, worker: Worker, event: RunEvent, defer: Callable[[Callable[[], None]], None]
) -> None:
    """Write one event of ``worker``'s run to the store (in the caller's transaction) and to its live
    view. ``defer`` runs file deletions once the transaction that allows them has committed."""
    run_id, live = worker.run.run_id, worker.live
    match event:
        case Started(total_steps=total, resumed_from=resumed, mode=mode, protocol_version=version, note=note):
            live.total_steps, live.mode = total, mode
            log.info("run %s on %s: %s", run_id, live.device, mode)
            if note:
                log.warning("run %s: %s", run_id, note)
            store.truncate_after(run_id, resumed)  # -1: a fresh start keeps nothing
            # a resumed run is at its checkpoint's epoch, not at 0 (checkpoints are at epoch ends)
            epoch = resumed * worker.run.config.epochs / total if resumed > 0 and total else 0.0
            store.set_progress(run_id, max(0, resumed), epoch, total)
            store.set_protocol(run_id, version, note)
            pack = worker.host.pack if worker.host is not None else (run_id,)
            segment = Segment(run_id, 0.0, resumed, live.device, mode, pack)
            previous = store.add_segment(run_id, resumed, live.device, mode, pack, event.provenance)
            # from step 0 (the checkpoint of the initial weights) nothing was trained in the other mode
            if resumed > 0 and previous is not None and not previous.same_mode(segment):
                store.add_warning(run_id, mode_change(previous, segment))
        case RunWarning(text=text):
            log.warning("run %s: %s", run_id, text)
            store.add_warning(run_id, text)
        case Metrics(step=step, epoch=epoch, values=values):
            store.add_metrics(run_id, [(step, epoch, name, value) for name, value in values.items()])
            live.values.update(values)
        case Spectra(rows=rows):
            store.add_spectra(rows)
            live.avg_rank = mean(r.rank for r in rows)  # the average rank (measures)
        case Checkpoint(step=step, digest=digest, location=location):
            store.set_checkpoint(run_id, step, digest, location)
            directory = checkpoints.run_directory(store.paths.checkpoints, run_id)
            defer(lambda: checkpoints.prune(directory, keep=step))
        case Progress(step=step, epoch=epoch):
            live.step, live.epoch = step, epoch
            store.set_progress(run_id, step, epoch)
        case Finished(status=status, error=error):
            worker.finished = (status, error)


def mode_change(before: Segment, now: Segment) -> str:
    """The warning recorded when a run resumes in another execution mode than it was trained in."""
    return (
        f"continues {now.describe()}, but was trained {before.describe()}: its numbers from step "
        f"{now.from_step} on may differ from an uninterrupted run's "
        "(README: What happens when things go wrong)"
    )


def death_reason(exitcode: int | None) -> str:
    """Why a run failed whose process ended without reporting a result."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the system may have run out of memory)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint} before the run finished"
    return f"worker exited with code {exitcode} without reporting a result"
