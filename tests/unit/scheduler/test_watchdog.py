"""The watchdog (scheduler.watchdog) on stand-in worker processes: a silent worker is stalled, told
to end, then killed, and its run requeued; an unanswered cancel is enforced; the scheduler's own
absence is not counted; shutdown ends even a process that outlives SIGKILL."""

from __future__ import annotations

import logging
import multiprocessing
import time
from multiprocessing import Pipe
from pathlib import Path

import pytest

from rankbias_tui.scheduler import Scheduler, SchedulerOptions, plan_slots, watchdog
from rankbias_tui.scheduler.hosts import Host, Live, Watch, Worker
from rankbias_tui.store import Store
from tests.support.runs import planned


class Proc:
    """A worker process that ends on the signals in ``dies_on`` (a stopped one: SIGKILL only)."""

    pid = 4242

    def __init__(self, dies_on: tuple[str, ...] = ("KILL",)):
        self.dies_on, self.signals, self.exitcode = dies_on, [], None
        self.sentinel = -1

    def is_alive(self) -> bool:
        return self.exitcode is None

    def join(self, timeout: float | None = None) -> None:
        pass

    def terminate(self) -> None:
        self._signal("TERM", -15)

    def kill(self) -> None:
        self._signal("KILL", -9)

    def _signal(self, name: str, code: int) -> None:
        self.signals.append(name)
        if name in self.dies_on and self.exitcode is None:
            self.exitcode = code


def host_of(sched: Scheduler, store: Store, run_seed: int, proc: Proc, heard: float) -> Host:
    """A host training one run, registered with ``sched`` as a launcher's would be."""
    run = planned(seed=run_seed)
    store.add_runs([run], {})
    reader, _writer = Pipe(duplex=False)
    host = Host(proc, reader, "cpu", watch=Watch(heard=heard))  # type: ignore[arg-type]
    host._writer = _writer  # type: ignore[attr-defined]  # kept open: the worker has not ended
    worker = Worker(run, proc, reader, Live(run.run_id, "cpu", step=40), host=host)  # type: ignore[arg-type]
    host.members[run.run_id] = sched.workers[run.run_id] = worker
    sched.hosts.append(host)
    store.start_attempt(run.run_id, "cpu", proc.pid)
    return host


def watch_at(sched: Scheduler, now: float) -> None:
    """One turn of the watchdog at ``now``, the previous one a loop turn earlier."""
    sched._watched = now - 0.25
    sched._watch(now)


def test_stall_limit_follows_the_option_and_the_measured_pace() -> None:
    assert watchdog.stall_limit(300, None) == 300
    assert watchdog.stall_limit(300, 0.01) == 300
    assert watchdog.stall_limit(300, 60.0) == watchdog.STALL_STEPS * 60.0  # slow steps: more time
    assert watchdog.stall_limit(0, 60.0) is None  # 0: never
    watch = Watch()
    watch.hear(10.0, step=100)
    watch.hear(10.5)  # a heartbeat: no pace
    watch.hear(12.0, step=100)  # another member of the pack at the same step
    watch.hear(14.0, step=120)
    assert watch.heard == 14.0 and watch.step_s == pytest.approx(0.2)


def test_a_silent_worker_is_stalled_killed_and_its_run_requeued(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        sched = Scheduler(store, [], plan_slots("cpu", 1), SchedulerOptions(stall_s=10))
        proc = Proc(dies_on=("KILL",))  # stopped: SIGTERM stays pending
        host = host_of(sched, store, 1, proc, heard=100.0)
        (run_id,) = host.members
        watch_at(sched, 109.0)
        assert proc.signals == [] and host.stalled is None
        watch_at(sched, 110.5)
        assert proc.signals == ["TERM"] and host.stalled is not None
        (warning,) = store.run(run_id).warnings  # type: ignore[union-attr]
        assert warning.startswith("worker stalled at step 40: no word from it for 10 s")
        assert "resumes from its last checkpoint" in warning
        watch_at(sched, 110.5 + watchdog.KILL_GRACE_S - 0.5)
        assert proc.signals == ["TERM"]
        watch_at(sched, 110.5 + watchdog.KILL_GRACE_S + 0.1)
        assert proc.signals == ["TERM", "KILL"] and not proc.is_alive()
        sched._reap(host)
        row = store.run(run_id)
        assert row is not None and row.status == "queued" and "worker stalled" in (row.error or "")
        assert [r.run_id for r in sched.queue] == [run_id] and not sched.workers and not sched.hosts
        assert sched.outcomes == {}


def test_slow_steps_earn_more_silence_and_the_scheduler_s_own_absence_does_not_count(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        sched = Scheduler(store, [], plan_slots("cpu", 1), SchedulerOptions(stall_s=10))
        slow = host_of(sched, store, 1, Proc(), heard=100.0)
        slow.watch.step_s = 4.0  # 40 s for ten steps
        quiet = host_of(sched, store, 2, Proc(), heard=100.0)
        sched._watched = 100.0
        sched._watch(300.0)  # the scheduler itself was stopped for 200 s: nobody is judged on it
        assert slow.proc.signals == quiet.proc.signals == []  # type: ignore[attr-defined]
        watch_at(sched, 309.0)
        assert quiet.proc.signals == []  # type: ignore[attr-defined]
        watch_at(sched, 311.0)
        assert quiet.proc.signals == ["TERM"] and slow.proc.signals == []  # type: ignore[attr-defined]
        watch_at(sched, 341.0)
        assert slow.proc.signals == ["TERM"]  # type: ignore[attr-defined]


def test_a_cancel_a_silent_worker_does_not_answer_kills_it(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        sched = Scheduler(store, [], plan_slots("cpu", 1), SchedulerOptions(stall_s=600))
        now = time.monotonic()
        frozen = host_of(sched, store, 1, Proc(dies_on=("KILL",)), heard=now - 30)
        busy = host_of(sched, store, 2, Proc(dies_on=("KILL",)), heard=now)  # still heard from
        for host in (frozen, busy):
            assert sched.cancel(next(iter(host.members)))
            assert host.proc.signals == ["TERM"]  # type: ignore[attr-defined]
        watch_at(sched, now + watchdog.CANCEL_SILENCE_S - 1)
        assert frozen.proc.signals == ["TERM"]  # type: ignore[attr-defined]
        busy.watch.hear(now + watchdog.CANCEL_SILENCE_S - 0.5)  # a heartbeat: busy, not frozen
        watch_at(sched, now + watchdog.CANCEL_SILENCE_S + 0.5)
        assert frozen.proc.signals == ["TERM", "KILL"]  # type: ignore[attr-defined]  # at once
        assert busy.proc.signals == ["TERM"]  # type: ignore[attr-defined]  # it talks: it will answer
        (run_id,) = frozen.members
        sched._reap(frozen)
        assert sched.outcomes == {run_id: "cancelled"}
        assert store.run(run_id).status == "cancelled" and not store.run(run_id).warnings  # type: ignore[union-attr]


def test_shutdown_ends_every_worker_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchdog, "REAP_GRACE_S", 0.2)
    now = time.monotonic()
    polite = Host(Proc(dies_on=("TERM", "KILL")), None, "cpu", watch=Watch(heard=now))  # type: ignore[arg-type]
    frozen = Host(Proc(dies_on=("KILL",)), None, "cpu", watch=Watch(heard=now - 60))  # type: ignore[arg-type]
    stuck = Host(Proc(dies_on=()), None, "cpu", watch=Watch(heard=now))  # type: ignore[arg-type]
    started = time.monotonic()
    left = watchdog.end_hosts([polite, frozen, stuck], grace=0.2)
    assert time.monotonic() - started < 5
    assert left == [stuck]
    assert polite.proc.signals == ["TERM"]  # type: ignore[attr-defined]
    assert frozen.proc.signals == ["KILL"]  # type: ignore[attr-defined]  # SIGTERM would wait for SIGCONT
    assert stuck.proc.signals == ["TERM", "KILL"]  # type: ignore[attr-defined]


def test_a_forgotten_process_is_not_joined_at_interpreter_exit() -> None:
    proc = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,), daemon=True)
    proc.start()
    try:
        assert proc in multiprocessing.active_children()
        watchdog.forget(proc)
        assert proc not in multiprocessing.active_children()
    finally:
        proc.kill()
        proc.join(10)


def test_a_worker_that_said_its_last_word_but_does_not_exit_is_ended_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(tmp_path) as store:
        sched = Scheduler(store, [], plan_slots("cpu", 1), SchedulerOptions(stall_s=10))
        host = host_of(sched, store, 1, Proc(dies_on=("TERM", "KILL")), heard=100.0)
        (worker,) = host.members.values()
        worker.finished = ("done", None)  # its Finished and WorkerEnded came; the process lingers
        with caplog.at_level(logging.INFO):
            watch_at(sched, 111.0)
        assert host.proc.signals == ["TERM"]  # type: ignore[attr-defined]
        assert [r.levelno for r in caplog.records] == [logging.INFO]
        sched._reap(host)
        assert sched.outcomes == {worker.run.run_id: "done"}
        assert store.run(worker.run.run_id).warnings == ()  # type: ignore[union-attr]
