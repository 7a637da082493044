"""How the scheduler settles a worker process that ended: what it sent last is recorded, a pack that
ran out of GPU memory is retried in packs of half the size, the runs of a node a remote backend lost and of a worker the watchdog killed (stalled) go back to
the queue (a run lost or stalled more than ``MAX_LOST`` times fails), and every other run is
recorded with its final status (its checkpoints removed once finished, unless kept).

A mixin of ``service.Scheduler``, which owns the loop and the state these methods change.
"""

from __future__ import annotations

import logging
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..measures import FINISHED, Status
from ..store import Store
from ..sweep import PlannedRun
from . import packing
from .hosts import Host, Worker, death_reason
from .options import SchedulerOptions

MAX_LOST = 3  # a run lost with its node (or stalled) more often than this fails: it may be the cause
JOIN_S = 1.0  # a process found ended is joined at once; one given up on is not waited for
log = logging.getLogger("rankbias_tui.scheduler.service")


class Endings:
    """Settling ended workers (mixed into ``Scheduler``)."""

    store: Store
    options: SchedulerOptions
    queue: deque[PlannedRun]
    workers: dict[str, Worker]
    hosts: list[Host]
    pack_caps: dict[Any, int]
    outcomes: dict[str, str]
    lost: dict[str, int]
    _drain: Callable[[Host], None]
    _defer: Callable[[Callable[[], None]], None]
    _ckpt_dir: Callable[[str], Path]

    def _reap(self, host: Host) -> None:
        host.proc.join(JOIN_S)
        self._drain(host)  # what it sent between the last poll and its exit
        host.conn.close()
        if host.control is not None:
            host.control.close()
        self.hosts.remove(host)
        workers = list(host.members.values())
        if host.disk_full:  # not the run's fault: it goes back to the queue like the others
            for worker in workers:
                if worker.finished is None or worker.finished[0] not in FINISHED:
                    worker.finished = (
                        Status.QUEUED,
                        "stopped: the disk is full; resumes from its last checkpoint",
                    )
        if host.stalled:
            workers = self._requeue_lost(host, workers, host.stalled, "stalled")
        if host.oom and host.size > 1:
            workers = self._retry_smaller(host, workers)
        if host.lost:
            workers = self._requeue_lost(host, workers, host.lost, "lost")
        for worker in workers:
            self._settle(worker)

    def _retry_smaller(self, host: Host, workers: list[Worker]) -> list[Worker]:
        """Requeue (at the front) the members of a pack that ran out of memory, for packs of half
        its size; return the members that are settled as usual instead (cancelled or ended)."""
        retry = [
            w
            for w in workers
            if not w.cancelled and w.finished is not None and w.finished[0] == Status.FAILED
        ]
        cap = max(1, host.size // 2)
        for worker in reversed(retry):
            run_id = worker.run.run_id
            self.pack_caps[packing.pack_key(worker.run.config)] = cap
            del self.workers[run_id]
            self.store.set_status(
                run_id,
                Status.QUEUED,
                error=f"out of memory in a pack of {host.size}; retrying in packs of {cap}",
            )
            self.queue.appendleft(worker.run)
        log.warning(
            "pack of %d on %s ran out of memory; retrying in packs of %d", host.size, host.device, cap
        )
        return [w for w in workers if all(w is not r for r in retry)]

    def _requeue_lost(self, host: Host, workers: list[Worker], reason: str, what: str) -> list[Worker]:
        """Requeue (at the front) the unfinished runs of a host a remote backend lost with its node,
        or that the watchdog killed (``what``: lost, stalled): they resume from their last
        acknowledged checkpoint wherever they start next. A run lost or stalled more than
        ``MAX_LOST`` times fails instead. Returns the members to settle as usual."""
        back = []
        for worker in workers:
            run_id = worker.run.run_id
            if worker.cancelled or worker.finished is not None:
                continue
            self.lost[run_id] = self.lost.get(run_id, 0) + 1
            if self.lost[run_id] > MAX_LOST:
                worker.finished = (Status.FAILED, f"{reason} ({what} {self.lost[run_id]} times: giving up)")
            else:
                back.append(worker)
        for worker in reversed(back):
            del self.workers[worker.run.run_id]
            self.store.set_status(worker.run.run_id, Status.QUEUED, error=reason)
            self.queue.appendleft(worker.run)
        if back:
            log.warning("%s: %d run(s) requeued, to resume from their last checkpoint", reason, len(back))
        return [w for w in workers if all(w is not b for b in back)]

    def _settle(self, worker: Worker) -> None:
        """Record how a run ended and forget it."""
        run_id = worker.run.run_id
        del self.workers[run_id]
        if worker.host is not None:
            worker.host.members.pop(run_id, None)
        if worker.finished is not None and worker.finished[0] in FINISHED:
            status, error = worker.finished  # it ended before a cancel could take effect
        elif worker.cancelled:
            status, error = Status.CANCELLED, "cancelled by request"
        elif worker.finished is not None:
            status, error = worker.finished
        else:
            status, error = Status.FAILED, death_reason(worker.proc.exitcode)
        self.store.set_status(run_id, status, error=error)
        self.outcomes[run_id] = status
        if status in FINISHED and not self.options.keep_checkpoints:
            directory = self._ckpt_dir(run_id)
            self._defer(lambda: shutil.rmtree(directory, ignore_errors=True))
