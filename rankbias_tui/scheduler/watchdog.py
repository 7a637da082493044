"""Workers that stop talking: a frozen or hung worker is found, killed and its runs requeued; a
cancel it does not answer is enforced; and no worker can hold the scheduler at exit.

A live worker is heard from at least every ``protocol.HEARTBEAT_S`` (its heartbeat thread, besides
its events). One silent for ``SchedulerOptions.stall_s`` - more for runs whose steps are slow:
``STALL_STEPS`` of them at their measured pace - is stalled: a warning goes on each of its runs
(``rankbias show``, ``list`` and the app show it), it gets SIGTERM, then SIGKILL ``KILL_GRACE_S``
later (a stopped process acts on SIGKILL only), and once it is gone its unfinished runs go back to
the front of the queue and resume from their last checkpoint (``endings``, as for a node a remote
backend lost). A host with a cancel pending that stays silent ``CANCEL_SILENCE_S`` is killed at
once. A process that survives SIGKILL for ``REAP_GRACE_S`` (stuck in the kernel) is settled without
it and forgotten, so that neither the loop nor interpreter exit waits on it; ``end_hosts`` stops
every worker at shutdown within a bounded time the same way.

Silence is only counted while the scheduler watches: a turn of its own loop longer than
``BLIND_S`` (the scheduler itself was stopped, or a write took that long) does not count against
the workers. A mixin of ``service.Scheduler``, which owns the loop and calls ``_watch`` every turn.
"""

from __future__ import annotations

import logging
import multiprocessing.process
import time
from collections.abc import Callable

from ..measures import LOSS
from ..protocol import HEARTBEAT_S, Event, Metrics
from ..store import Store
from .hosts import Host, WorkerProcess
from .options import SchedulerOptions

STALL_STEPS = 10  # a worker may be silent for this many of its steps (measured) before it is stalled
KILL_GRACE_S = 5.0  # from SIGTERM to SIGKILL
CANCEL_SILENCE_S = 5.0 * HEARTBEAT_S  # a host with a cancel pending, silent this long: killed at once
REAP_GRACE_S = 10.0  # after SIGKILL, the longest a process is waited for
SHUTDOWN_GRACE_S = 10.0  # at shutdown, from SIGTERM to SIGKILL
BLIND_S = 5.0  # a turn of the scheduler's loop longer than this does not count as silence
log = logging.getLogger("rankbias_tui.scheduler.service")


def stall_limit(stall_s: float, step_s: float | None) -> float | None:
    """Seconds of silence after which a worker is stalled (None: never, ``stall_s`` 0): ``stall_s``,
    or ``STALL_STEPS`` steps at the measured pace ``step_s`` if that is longer."""
    if stall_s <= 0:
        return None
    return max(stall_s, STALL_STEPS * step_s) if step_s else stall_s


def forget(proc: WorkerProcess) -> None:
    """Stop ``multiprocessing`` from joining a process at interpreter exit (it joins every child it
    started, without a timeout): for a process that outlived SIGKILL."""
    children = getattr(multiprocessing.process, "_children", None)
    if isinstance(children, set):
        children.discard(proc)


def end_hosts(hosts: list[Host], grace: float = SHUTDOWN_GRACE_S) -> list[Host]:
    """End every host's process within about ``grace`` + ``REAP_GRACE_S`` seconds, whatever state it
    is in: SIGTERM (SIGKILL at once for one already silent for ``CANCEL_SILENCE_S``: frozen), SIGKILL
    for those still there after ``grace``. Returns the hosts that outlived even that (forgotten)."""
    now = time.monotonic()
    for host in hosts:
        heard = host.watch.heard
        if heard is not None and now - heard > CANCEL_SILENCE_S:
            host.proc.kill()  # a stopped process would keep SIGTERM pending for ever
        else:
            host.proc.terminate()
    _join_all(hosts, now + grace)
    alive = [h for h in hosts if h.proc.is_alive()]
    for host in alive:
        host.proc.kill()
    _join_all(alive, time.monotonic() + REAP_GRACE_S)
    left = [h for h in alive if h.proc.is_alive()]
    for host in left:
        log.error("worker pid %s outlived SIGKILL (stuck in the kernel?): not waiting for it", host.proc.pid)
        forget(host.proc)
    return left


def _join_all(hosts: list[Host], deadline: float) -> None:
    for host in hosts:
        host.proc.join(max(0.0, deadline - time.monotonic()))


class Watchdog:
    """Judging the hosts' silence (mixed into ``Scheduler``)."""

    store: Store
    options: SchedulerOptions
    hosts: list[Host]
    _watched: float | None
    _reap: Callable[..., None]

    def _hear(self, host: Host, event: Event) -> None:
        """Every message counts as a sign of life; a run's running metrics also give its pace."""
        step = event.step if isinstance(event, Metrics) and LOSS in event.values else None
        host.watch.hear(time.monotonic(), step)

    def _watch(self, now: float | None = None) -> None:
        """Judge every host once (called every turn of the loop, inside its transaction)."""
        now = time.monotonic() if now is None else now
        last, self._watched = self._watched, now
        if last is not None and now - last > BLIND_S:  # the scheduler was not looking
            for host in self.hosts:
                if host.watch.heard is not None:
                    host.watch.heard = min(now, host.watch.heard + (now - last))
        for host in list(self.hosts):
            self._judge(host, now)

    def _judge(self, host: Host, now: float) -> None:
        watch = host.watch
        if watch.kill_at is not None:  # being ended: escalate, or give up waiting
            if watch.killed_at is None and now >= watch.kill_at:
                host.proc.kill()
                watch.killed_at = now
            elif watch.killed_at is not None and now - watch.killed_at > REAP_GRACE_S:
                log.error(
                    "worker pid %s outlived SIGKILL (stuck in the kernel?): going on without it",
                    host.proc.pid,
                )
                forget(host.proc)
                self._reap(host)
            return
        if watch.cancel_at is not None and not any(w.cancelled for w in host.members.values()):
            watch.cancel_at = None  # answered: the cancelled members have ended
        if watch.heard is None:
            return
        silent = now - watch.heard
        if watch.cancel_at is not None and now - max(watch.heard, watch.cancel_at) > CANCEL_SILENCE_S:
            self._stall(host, f"no word from it for {silent:.0f} s after a cancel", now, at_once=True)
        elif (limit := stall_limit(self.options.stall_s, watch.step_s)) is not None and silent > limit:
            self._stall(host, f"no word from it for {silent:.0f} s (frozen or hung)", now)

    def _stall(self, host: Host, why: str, now: float, at_once: bool = False) -> None:
        """Report ``host`` stalled on each of its runs still training, and start ending it (quietly
        for a worker that said its last word and only fails to exit)."""
        host.stalled = f"worker stalled: {why}"
        training = [w for w in host.members.values() if w.finished is None and not w.cancelled]
        for worker in training:
            self.store.add_warning(
                worker.run.run_id,
                f"worker stalled at step {worker.live.step}: {why}; it was killed and the run "
                "resumes from its last checkpoint",
            )
        action = "SIGKILL" if at_once else f"SIGTERM, then SIGKILL in {KILL_GRACE_S:g} s"
        runs = " ".join(w.run.run_id for w in training) or "none still training"
        level = logging.WARNING if training else logging.INFO
        log.log(
            level,
            "worker pid %s on %s (runs %s) stalled: %s; %s",
            host.proc.pid,
            host.device,
            runs,
            why,
            action,
        )
        if at_once:
            host.proc.kill()
            host.watch.kill_at = host.watch.killed_at = now
        else:
            host.proc.terminate()
            host.watch.kill_at = now + KILL_GRACE_S
