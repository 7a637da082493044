"""The scheduler's client half: who holds the store, and asking for actions (nothing trains here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rankbias_tui import scheduler
from rankbias_tui.scheduler import SchedulerLock, SchedulerStatus
from rankbias_tui.scheduler.client import mark_cancelled
from rankbias_tui.spec import RunConfig
from rankbias_tui.store import Request, Store, StorePaths
from rankbias_tui.sweep import PlannedRun, run_id


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201
    with Store(tmp_path) as store:
        yield store


def add_run(store: Store, status: str, lr: float = 0.1) -> str:
    cfg = RunConfig(dataset="digits", lr=lr)
    planned = PlannedRun(run_id(cfg), "s", cfg)
    store.add_runs([planned], {})
    store.set_status(planned.run_id, status)
    return planned.run_id


def test_status_tells_a_background_scheduler_from_a_foreground_run(tmp_path: Path) -> None:
    assert scheduler.scheduler_pid(tmp_path) is None
    assert scheduler.status(tmp_path) == SchedulerStatus(None)
    with SchedulerLock(tmp_path):
        assert scheduler.scheduler_pid(tmp_path) == os.getpid()
        now = scheduler.status(tmp_path)  # a foreground run writes no state file
        assert now == SchedulerStatus(os.getpid()) and now.foreground
        state = {"pid": os.getpid(), "slots": ["cpu"], "capacity": 2}
        StorePaths.of(tmp_path).state.write_text(json.dumps(state))
        now = scheduler.status(tmp_path)
        assert now == SchedulerStatus(os.getpid(), True, ("cpu",), 2) and not now.foreground
    assert scheduler.status(tmp_path).pid is None  # a stale state file does not make a scheduler


def test_cancel_without_a_scheduler_marks_the_run_at_once(store: Store) -> None:
    running = add_run(store, "running")
    assert scheduler.cancel(store, running)
    row = store.run(running)
    assert row is not None and row.status == "cancelled" and row.error == "cancelled by request"
    assert store.take_requests() == []


def test_cancel_with_a_scheduler_asks_it(store: Store) -> None:
    queued = add_run(store, "queued")
    with SchedulerLock(store.directory):
        assert not scheduler.cancel(store, queued)
    assert store.run(queued).status == "queued"  # type: ignore[union-attr]
    assert store.take_requests() == [Request("cancel", queued)]


def test_only_queued_or_running_runs_are_marked_cancelled(store: Store) -> None:
    done, failed = add_run(store, "done", 0.1), add_run(store, "failed", 0.2)
    assert not mark_cancelled(store, done, "x") and not mark_cancelled(store, failed, "x")
    assert not mark_cancelled(store, "no-such-run", "x")
    assert {r.status for r in store.runs()} == {"done", "failed"}


def test_launch_and_resume_are_structured_requests(store: Store) -> None:
    done = add_run(store, "done")
    runs = [
        PlannedRun(run_id(cfg), "quick", cfg)
        for cfg in (RunConfig(dataset="digits", lr=lr) for lr in (0.1, 0.2))
    ]
    scheduler.launch(store, runs)
    scheduler.resume(store, "abc")
    assert runs[0].run_id == done
    assert store.take_requests() == [
        Request("launch", runs[0].run_id, sweep="quick"),
        Request("launch", runs[1].run_id, sweep="quick"),
        Request("resume", "abc"),
    ]
    # the runs are in the store with their config, so the scheduler needs no spec file; a run the
    # store had keeps its state (the scheduler decides what to queue)
    assert {r.run_id: r.status for r in store.runs()} == {done: "done", runs[1].run_id: "queued"}
    assert RunConfig.model_validate(store.run(runs[1].run_id).config) == runs[1].config  # type: ignore[union-attr]


def test_stop_without_a_scheduler_returns_none(tmp_path: Path) -> None:
    assert scheduler.stop(tmp_path, timeout_s=1) is None
    assert not StorePaths.of(tmp_path).database.exists()  # asking created no store


class Proc:
    """A spawned scheduler's process as ``ensure`` sees it: ``poll`` None while it runs."""

    def __init__(self, code: int | None) -> None:
        self.code = code

    def poll(self) -> int | None:
        return self.code


def test_ensure_starts_a_scheduler_only_when_none_runs_or_is_starting(tmp_path: Path) -> None:
    spawned: list[Path] = []

    def spawner(directory: Path, options: object) -> Proc:
        spawned.append(directory)
        return Proc(None)

    options = scheduler.SchedulerOptions()
    pid, first = scheduler.ensure(tmp_path, options, spawner)
    assert pid is None and isinstance(first, Proc) and spawned == [tmp_path]
    # it has not taken the lock yet: no second scheduler, the first is handed back
    assert scheduler.ensure(tmp_path, options, spawner, starting=first) == (None, first)
    first.code = 2  # it exited (bad devices, say): a new one is started
    pid, second = scheduler.ensure(tmp_path, options, spawner, starting=first)
    assert second is not first and spawned == [tmp_path, tmp_path]
    with SchedulerLock(tmp_path):  # one holds the lock: nothing is started
        assert scheduler.ensure(tmp_path, options, spawner, starting=None) == (os.getpid(), None)
    assert len(spawned) == 2
