"""How the scheduler settles a worker process that ended: what it sent last is recorded, a pack that
ran out of memory - it said so, or the kernel's OOM killer ended it with SIGKILL - is retried in
packs of half the size (a single run the OOM killer took fails, saying how much memory it had),
the runs of a node a remote backend lost and of a worker the watchdog killed (stalled) go back to
the queue (a run lost or stalled more than ``MAX_LOST`` times fails), and every other run is
recorded with its final status (its checkpoints removed once finished, unless kept).

A mixin of ``service.Scheduler``, which owns the loop and the state these methods change.
"""

from __future__ import annotations

import logging
import shutil
import signal
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..measures import FINISHED, Status
from ..store import Store
from ..sweep import PlannedRun
from . import checkpoint_dir, memory, packing
from .hosts import Host, Worker, death_reason
from .options import SchedulerOptions

MAX_LOST = 3  # a run lost with its node (or stalled) more often than this fails: it may be the cause
JOIN_S = 1.0  # a process found ended is joined at once; one given up on is not waited for
PACK_SIZE_HINT = "--pack-size sets the most runs per pack"
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
        elif self._killed_for_memory(host):
            workers = self._memory_killed(host, workers)
        if host.oom and host.size > 1:
            workers = self._retry_smaller(host, workers, "out of memory")
        if host.lost:
            workers = self._requeue_lost(host, workers, host.lost, "lost")
        for worker in workers:
            self._settle(worker)

    def _killed_for_memory(self, host: Host) -> bool:
        """Its process ended by SIGKILL (not ours) while the kernel's OOM killer was at work (its
        count went up since the worker started; where it cannot be read, any SIGKILL counts)."""
        if host.proc.exitcode != -signal.SIGKILL:
            return False
        before, after = host.oom_kills, memory.oom_kills()
        return before is None or after is None or after > before

    def _memory_killed(self, host: Host, workers: list[Worker]) -> list[Worker]:
        """The OOM killer took ``host``: a pack is retried in smaller packs, a single run fails
        with how much memory it had (and needs, where the catalog can say)."""
        had = memory.describe(host.available)
        why = f"worker killed by SIGKILL: the system ran out of memory ({had} available when it started)"
        unfinished = [w for w in workers if w.finished is None and not w.cancelled]
        if host.size > 1:
            return self._retry_smaller(host, workers, why)
        beside = sum(h.device == host.device for h in self.hosts)  # still running: they shared it
        advice = f"; {beside} other worker(s) shared it: fewer at a time with --per-device" if beside else ""
        for worker in unfinished:
            cfg, need = worker.run.config, ""
            if packing.pack_key(cfg) is not None:  # the catalog's estimate holds for these models
                need = f"; it needs about {memory.describe(packing.member_bytes(cfg))} by rankbias's estimate"
            worker.finished = (
                Status.FAILED,
                f"{why}{need}{advice}. Free some memory or use a larger machine",
            )
        log.warning("%s: %s", why, " ".join(w.run.run_id for w in unfinished))
        return workers

    def _retry_smaller(self, host: Host, workers: list[Worker], why: str) -> list[Worker]:
        """Requeue (at the front) the members of a pack that ran out of memory, for packs of half
        its size; return the members that are settled as usual instead (cancelled or ended)."""
        retry = [
            w for w in workers if not w.cancelled and (w.finished is None or w.finished[0] == Status.FAILED)
        ]
        cap = max(1, host.size // 2)
        said = f"{why} in a pack of {host.size}; retrying in packs of {cap} ({PACK_SIZE_HINT})"
        for worker in reversed(retry):
            run_id = worker.run.run_id
            self.pack_caps[packing.pack_key(worker.run.config)] = cap
            del self.workers[run_id]
            self.store.set_status(run_id, Status.QUEUED, error=said)
            self.store.add_warning(run_id, said)
            self.queue.appendleft(worker.run)
        log.warning("pack on %s: %s", host.device, said)
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
            # and those a Ray sweep's nodes wrote elsewhere (--checkpoint-dir), wherever the store says
            for elsewhere in {
                loc.rpartition("/")[0] for loc in self.store.checkpoint_locations(run_id).values()
            }:
                self._defer(lambda where=elsewhere: checkpoint_dir.discard(where, run_id))
