"""The scheduler: runs queued runs in worker processes and is the one writer of their results.

Each worker gets its own pipe, so a worker killed in the middle of a message can corrupt nothing
but its own channel. The loop waits on every pipe and every process sentinel at once, writes what
arrived in one transaction, notices dead workers (recording the signal or exit code on that run),
answers cancel requests found in the store, and fills free device slots from the queue.

Compatible small-MLP runs are started together as a fused pack (scheduler.packing, engine.pack):
one worker process trains them all, and every event carries its run's id (``rankbias_tui.protocol``);
every member is still an ordinary run in the store. A member that ends early (diverged, cancelled)
is recorded at once while the rest of its pack goes on; a pack that runs out of memory goes back to
the front of the queue to be retried in packs of half the size. Starting workers is the backend's
launcher's (``scheduler.launcher``), reading their pipes without ever blocking
``scheduler.inbox``'s, writing each event to the store ``scheduler.hosts``'s, ending a worker that
stopped talking ``scheduler.watchdog``'s, settling a worker that ended ``scheduler.endings``'s;
this module owns the loop.

Faults end the loop with a ``faults.Stopped``; ``shutdown`` marks the runs stopped in one small
transaction (if that fails they read as interrupted and the next scheduler adopts them: ``recovery``).
A run resuming from a checkpoint resumes in the pack it was trained in.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from .. import checkpoints
from ..measures import FINISHED, Status
from ..protocol import Cancel, DiskFull, Event, Heartbeat, OutOfMemory, Placed, WorkerEnded, WorkerLost
from ..store import Store
from ..sweep import PlannedRun
from . import faults, memory, packing, recovery
from .devices import Slots
from .endings import Endings
from .faults import StopRequested
from .hosts import Host, Live, Worker, record
from .inbox import Inbox
from .launcher import Elastic, Launch, Launcher, RemoteGpus, Scalable
from .local import ProcessLauncher
from .options import SchedulerOptions
from .watchdog import Watchdog, end_hosts

POLL_S = 0.25
log = logging.getLogger(__name__)
RESIZE_S = 2.0  # how often an elastic launcher is asked how many tasks its cluster holds


class Scheduler(Endings, Watchdog):
    """Run ``runs`` on ``slots``; ``on_tick`` is called every loop turn (headless progress)."""

    def __init__(
        self,
        store: Store,
        runs: list[PlannedRun],
        slots: Slots,
        options: SchedulerOptions = SchedulerOptions(),
        launcher: Launcher | None = None,
        requests_after: int | None = None,
    ):
        """``options.pack_size`` overrides every run's ``pack_size`` (1: no packs); ``graphs`` False
        trains with the eager loop on GPUs too (the CPU always does). ``launcher`` starts the
        workers (``backends.prepare``'s; None: processes on this machine, ``local.ProcessLauncher``).
        ``requests_after``: the store's latest request id when this scheduler took the store's lock
        (default: now); stop requests up to it were meant for another scheduler and expire
        unanswered. Ids, not clocks: a client whose clock is off still stops the right scheduler."""
        self.store, self.slots, self.options = store, slots, options
        self.requests_after = store.last_request_id() if requests_after is None else requests_after
        self.queue: deque[PlannedRun] = deque(runs)
        self.workers: dict[str, Worker] = {}  # every active run, pack members included
        self.hosts: list[Host] = []  # every worker process
        self.pack_caps: dict[Any, int] = {}  # pack_key -> size limit after an out-of-memory error
        self.outcomes: dict[str, str] = {}
        self.disk_full: DiskFull | None = None  # a worker's write failed for lack of space
        self._after_commit: list[Callable[[], None]] = []
        self.launcher: Launcher = launcher or ProcessLauncher()
        self.lost: dict[str, int] = {}  # run_id -> times a remote backend lost it (or it stalled)
        self._watched: float | None = None  # when the watchdog last looked (watchdog.BLIND_S)
        self._resized = float("-inf")  # when an elastic launcher's capacity was last asked
        self._wanted = 0  # the tasks a scalable launcher was last asked to make room for
        self._demanded = float("-inf")  # when that was last worked out

    # ----- public ------------------------------------------------------------------------------
    def run(self, on_tick: Callable[[Scheduler], None] | None = None) -> dict[str, str]:
        """Run until the queue is empty and every worker has ended; return run_id -> status. Ends
        early with a ``faults.Stopped`` (or KeyboardInterrupt) after stopping the runs in progress;
        the exception's ``outcome`` says what became of them."""
        try:
            while self.queue or self.workers:
                self.turn()
                if on_tick:
                    on_tick(self)
        except BaseException as err:
            raise self.stop_for(err) from None
        self.want(0)
        return self.outcomes

    def turn(self) -> None:
        """One turn of the loop: notice a vanished store, answer requests, start runs, record events."""
        self.check_store()
        self._handle_requests()
        self._fill_slots()
        self._pump(POLL_S)
        if self.disk_full is not None:
            raise faults.DiskFull(self.disk_full.path or "a file", self.disk_full.error)

    def check_store(self) -> None:
        """``faults.StoreGone`` once the database file was deleted or replaced: nothing written from
        then on could be read by anyone, and no new store may be made in its place."""
        if not self.store.still_there():
            raise faults.StoreGone(self.store.path, replaced=self.store.path.exists())

    def stop_for(self, err: BaseException) -> BaseException:
        """Shut down after ``err`` ended the loop; return what to raise (``err``, or the
        ``faults.Stopped`` it amounts to, with the fate of the runs in progress as its outcome)."""
        err = faults.as_stopped(err, self.store.path)
        if isinstance(err, faults.StoreGone):
            count, _ = self.shutdown("", write=False)
            self.store.abandon()  # nothing of ours may be replayed into a file that took its place
            err.outcome = f"{count} run(s) in progress were stopped; nothing was written elsewhere"
            return err
        label = err.cause if isinstance(err, faults.Stopped) else "interrupted"
        count, recorded = self.shutdown(f"{label}: the scheduler stopped; run again to resume")
        if isinstance(err, faults.Stopped):
            err.outcome = faults.stopped_outcome(count, recorded)
        return err

    def live(self) -> list[Live]:
        return [w.live for w in self.workers.values()]

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued or running run of this scheduler; False if it is not ours."""
        for run in list(self.queue):
            if run.run_id == run_id:
                self.queue.remove(run)
                self.store.set_status(run_id, Status.CANCELLED, error="cancelled before it started")
                self.outcomes[run_id] = Status.CANCELLED
                return True
        worker = self.workers.get(run_id)
        if worker is None:
            return False
        worker.cancelled = True
        host = worker.host
        if host is not None and host.watch.cancel_at is None:
            host.watch.cancel_at = time.monotonic()  # unanswered by a silent worker: killed (watchdog)
        if host is not None and host.control is not None and len(host.members) > 1:
            try:
                host.control.send(Cancel(run_id))  # the pack freezes it; the others go on
                return True
            except OSError:
                pass
        worker.proc.terminate()
        return True

    def shutdown(self, reason: str, write: bool = True) -> tuple[int, bool]:
        """Stop every worker; their runs, and the queued ones nobody will start now, are marked
        ``stopped`` in one transaction (if it fails, they read as interrupted and the next scheduler
        adopts them), resumable from the last checkpoint, together (resume or a launch). ``write``
        False (the store is gone): write nothing. Every worker is ended within bounded time, a frozen
        one too (``watchdog.end_hosts``). Return (runs in progress, marked stopped?)."""
        end_hosts(self.hosts)
        self.want(0)
        stopped = sum(1 for w in self.workers.values() if w.finished is None or w.finished[0] not in FINISHED)
        recorded = write and self._stop_all(reason)
        self.workers.clear()
        self.hosts.clear()
        return stopped, recorded

    def _stop_all(self, reason: str) -> bool:
        self._after_commit = []
        try:
            with self.store.transaction():
                for host in list(self.hosts):
                    self._drain(host)
                    for run_id, worker in list(host.members.items()):
                        if worker.finished is not None and worker.finished[0] in FINISHED:
                            self._settle(worker)  # it ended before the stop: keep its real outcome
                        else:
                            self.store.set_status(run_id, Status.STOPPED, error=reason)
                for run in self.queue:
                    self.store.set_status(run.run_id, Status.STOPPED, error=reason)
        except sqlite3.Error as err:
            log.info("could not mark the runs in progress stopped (%s): they show as interrupted", err)
            return False
        self.queue.clear()
        for action in self._after_commit:
            action()
        self._after_commit = []
        return True

    # ----- the loop ----------------------------------------------------------------------------
    def _handle_requests(self) -> None:
        """A foreground scheduler answers cancel and stop; other kinds wait for a background one."""
        for request in self.store.take_requests(("cancel", "stop")):
            if request.kind == "cancel" and request.run_id:
                self.cancel(request.run_id)
            elif request.kind == "stop" and not faults.expired(request, self.requests_after):
                raise StopRequested("stop requested")

    def _fill_slots(self) -> None:
        room = bool(self.queue) and any(self._busy(d) < self.slots.per_device for d in self.slots.devices)
        self._follow_capacity(now=room)
        for device in self.slots.devices:
            while self.queue and self._busy(device) < self.slots.per_device:
                first = self.queue.popleft()
                runs = recovery.same_pack(
                    self.store, first, self.queue, self._resume_step, self._pack_limit(first)
                )
                if runs is None:
                    runs = [first, *self._take_mates(first, device)]
                if len(runs) > 1:
                    self._start_pack(runs, device)
                else:
                    self._start(first, device)

    def _follow_capacity(self, now: bool = False) -> None:
        """With an elastic launcher (a Ray cluster), the slots follow the live nodes: asked at most
        every ``RESIZE_S`` seconds, and ``now`` (before runs start in a free slot: the cluster may
        have lost nodes, or its head, since), and logged when they change. Runs already started
        keep going."""
        if not isinstance(self.launcher, Elastic):
            return
        if not now and time.monotonic() - self._resized < RESIZE_S:
            return
        self._resized = time.monotonic()
        capacity = self.launcher.capacity()
        self._ask_for_room()
        if capacity != self.slots.per_device:
            was, self.slots = self.slots.per_device, replace(self.slots, per_device=capacity)
            waiting = ": waiting for nodes" if capacity == 0 else ""
            log.info("the cluster holds %d task(s) at once now (was %d)%s", capacity, was, waiting)
            self.resized()

    def resized(self) -> None:
        """The slots followed the cluster (``Daemon`` tells its clients)."""

    def _ask_for_room(self) -> None:
        """A scalable launcher's demand, worked out at most every ``RESIZE_S`` seconds (not before
        each start: reading a long queue's pack keys takes a while)."""
        if isinstance(self.launcher, Scalable) and time.monotonic() - self._demanded >= RESIZE_S:
            self._demanded = time.monotonic()
            self.want(len(self.hosts) + packing.tasks_needed(self.queue, self.options.pack_size))

    def want(self, tasks: int) -> None:
        """Tell a scalable launcher how many tasks there is work for, when that changed."""
        if isinstance(self.launcher, Scalable) and tasks != self._wanted:
            self._wanted = tasks
            self.launcher.want(tasks)

    @property
    def waiting_for_nodes(self) -> bool:
        """Runs are queued but no node of the cluster can take one now (an elastic launcher)."""
        return bool(self.queue) and self.slots.per_device == 0

    def _pack_limit(self, run: PlannedRun) -> int | None:
        """The most members a reassembled pack may have: ``--pack-size`` and any out-of-memory cap."""
        limits = [n for n in (self.options.pack_size, self.pack_caps.get(packing.pack_key(run.config))) if n]
        return min(limits) if limits else None

    def _busy(self, device: str) -> int:
        return sum(h.device == device for h in self.hosts)

    def _resume_step(self, run: PlannedRun) -> int | None:
        row = self.store.run(run.run_id)
        return row.checkpoint_step if row else None

    def _take_mates(self, first: PlannedRun, device: str) -> list[PlannedRun]:
        """Queued runs to train in one pack with ``first`` (removed from the queue)."""
        key = packing.pack_key(first.config)
        if key is None:
            return []
        auto = lambda: self._auto_pack_size(first, device)  # noqa: E731 - read only if needed
        limit = packing.pack_limit(first.config, self.options.pack_size, auto, self.pack_caps.get(key))
        free = sum(self.slots.per_device - self._busy(d) for d in self.slots.devices)
        size = packing.share(limit, len(self.queue) + 1, free)
        return packing.take_mates(self.queue, first, size, self._resume_step)

    def _auto_pack_size(self, run: PlannedRun, device: str) -> int:
        """Sized from the memory free on ``device`` now (other tenants and our own workers hold the
        rest; the machine's available memory for the CPU), asked afresh for every pack, and shared
        with the packs that start beside it: the slots still free on the device and the packs
        started there whose memory is not in use yet. A GPU of another machine (``RemoteGpus``): the
        memory a task of ours measured free on the GPU the next one goes to, shared by that GPU's
        slots (the CPU's cap until one has)."""
        free = None
        idle = self.slots.per_device - self._busy(device)
        sharers = idle + sum(h.device == device and h.starting for h in self.hosts)
        if isinstance(self.launcher, RemoteGpus):
            free, sharers = self.launcher.next_gpu_memory()
        elif device.startswith("cuda"):
            from ..engine.devices import free_memory  # noqa: PLC0415 - torch only for GPUs

            free = free_memory(device)
        elif device == "cpu":
            free = memory.available_bytes()
        return packing.auto_pack_size(run.config, free, sharers, cpu=device == "cpu")

    def _start(self, run: PlannedRun, device: str) -> None:
        self._register(
            self.launcher.start_run(run, self._resume_step(run), device, self._worker_launch()), [run]
        )

    def _start_pack(self, runs: list[PlannedRun], device: str) -> None:
        """One worker process training ``runs`` as a fused pack."""
        resumes = [self._resume_step(r) for r in runs]
        self._register(self.launcher.start_pack(runs, resumes, device, self._worker_launch()), runs)
        log.info("pack of %d on %s: %s", len(runs), device, " ".join(r.run_id for r in runs))

    def _register(self, host: Host, runs: list[PlannedRun]) -> None:
        host.available, host.oom_kills = memory.available_bytes(), memory.oom_kills()  # endings reads them
        self.hosts.append(host)
        host.pack = tuple(run.run_id for run in runs)  # what a resume must reassemble (recovery.same_pack)
        for run in runs:
            worker = Worker(run, host.proc, host.conn, Live(run.run_id, host.device), host=host)
            host.members[run.run_id] = worker
            self.workers[run.run_id] = worker
            self.store.start_attempt(run.run_id, host.device, host.proc.pid)

    def _ckpt_dir(self, run_id: str) -> Path:
        return checkpoints.run_directory(self.store.paths.checkpoints, run_id)

    def _worker_launch(self) -> Launch:
        o = self.options
        root = self.store.paths.checkpoints
        store = self.store
        digests, locations = store.checkpoint_digests, store.checkpoint_locations
        return Launch(o.data_dir, root, self.slots.threads, o.graphs, digests, locations, o.checkpoint_dir)

    def _pump(self, timeout: float) -> None:
        """Wait for messages or exits, then write everything that arrived in one transaction."""
        if not self.hosts:
            return
        handles: list[Any] = [h.conn for h in self.hosts]
        handles += [h.proc.sentinel for h in self.hosts]
        wait(handles, timeout)
        self._after_commit = []
        with self.store.transaction():
            for host in list(self.hosts):
                self._drain(host)
                if not host.proc.is_alive():
                    self._reap(host)
            self._watch()
        for action in self._after_commit:  # only once the rows that allow it are committed
            action()
        self._after_commit = []

    def _defer(self, action: Callable[[], None]) -> None:
        """Delete files only after the store commits what makes them unnecessary: a rolled-back
        checkpoint acknowledgement must not leave the store pointing at a deleted file."""
        if self.store.conn.in_transaction:
            self._after_commit.append(action)
        else:
            action()

    def _drain(self, host: Host) -> None:
        """Record every whole message that has arrived; never waits for the rest of one."""
        try:
            if host.inbox is None:
                host.inbox = Inbox(host.conn)
            for event in host.inbox.messages():
                self._hear(host, event)
                self._dispatch(host, event)
        except (EOFError, OSError):
            pass  # the worker is gone; _reap decides what that means

    def _dispatch(self, host: Host, event: Event) -> None:
        """Route one event of a worker process to the run it concerns (or to all of its runs)."""
        match event:
            case Heartbeat():
                pass  # heard (the watchdog's)
            case OutOfMemory():
                host.oom = True
            case WorkerLost(reason=reason):
                host.lost = reason
            case Placed():
                for worker in host.members.values():
                    worker.live.device = event.where
                    self.store.set_placement(worker.run.run_id, event.where, event.pid)
            case DiskFull():
                host.disk_full = True
                self.disk_full = event  # the loop stops after this turn's events are written
            case WorkerEnded(status=status, error=error):  # for every run without its own Finished
                for worker in host.members.values():
                    worker.finished = worker.finished or (status, error)
            case _:
                worker = host.members.get(event.run_id)
                if worker is None:
                    return  # a pack member settled already
                record(self.store, worker, event, self._defer)
                if worker.finished is not None and len(host.members) > 1:
                    self._settle(worker)  # ended early; the rest of the pack goes on
