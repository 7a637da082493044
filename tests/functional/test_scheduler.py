"""The scheduler with real worker processes on tiny digits runs (seconds each).

A worker killed mid-run must leave the other runs finishing and its own run marked with the
reason; running the sweep again resumes it from its last checkpoint with no metric or spectrum
row lost or duplicated compared with an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from rankbias_tui.scheduler import Scheduler, StopRequested, plan_slots
from rankbias_tui.store import Request, Store
from rankbias_tui.sweep import PlannedRun
from tests.support.runs import planned, wait_for

pytestmark = pytest.mark.slow  # trains real (tiny) runs

EVAL = ("train_loss", "train_acc", "test_loss", "test_acc")


def start(store_dir: Path, runs: list[PlannedRun], per_device: int = 2) -> tuple[threading.Thread, dict]:
    """Run a scheduler in a thread with its own store connection; returns (thread, outcomes)."""
    result: dict = {}

    def target() -> None:
        with Store(store_dir) as store:
            todo = store.queue(runs, {})
            result.update(Scheduler(store, todo, plan_slots("cpu", per_device)).run())

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def field(store: Store, rid: str, name: str) -> object:
    """A column of a run, or None while the scheduler has not registered it yet."""
    row = store.run(rid)
    return getattr(row, name) if row else None


def eval_rows(store: Store, rid: str) -> list[tuple]:
    return [m for m in store.metrics(rid) if m[2] in EVAL]


@pytest.mark.soak  # long (about 20 s); run with pytest -m soak (README)
def test_killed_worker_is_recorded_and_resumes_without_lost_rows(tmp_path: Path) -> None:
    slow = planned(batch_size=4, epochs=8, seed=1)  # ~360 steps per epoch
    quick = planned(batch_size=32, epochs=3)
    thread, outcomes = start(tmp_path / "a", [slow, quick])
    with Store(tmp_path / "a") as store:
        wait_for(lambda: (field(store, slow.run_id, "checkpoint_step") or 0) > 0)
        os.kill(field(store, slow.run_id, "pid"), signal.SIGKILL)  # type: ignore[arg-type]
        thread.join(120)
        assert outcomes == {slow.run_id: "failed", quick.run_id: "done"}
        killed = store.run(slow.run_id)
        assert killed is not None and "SIGKILL" in (killed.error or "")
        checkpoint = killed.checkpoint_step

    thread, outcomes = start(tmp_path / "a", [slow, quick])  # the same sweep again
    thread.join(120)
    assert outcomes == {slow.run_id: "done"}  # quick was finished, so skipped
    thread, reference = start(tmp_path / "b", [slow])  # the same run, never interrupted
    thread.join(120)
    with Store(tmp_path / "a") as resumed, Store(tmp_path / "b") as clean:
        run = resumed.run(slow.run_id)
        assert run is not None and run.attempts == 2 and run.status == "done" and checkpoint
        assert eval_rows(resumed, slow.run_id) == eval_rows(clean, slow.run_id)
        assert len(eval_rows(clean, slow.run_id)) == 4 * (8 + 1)  # init + every epoch end
        a, b = resumed.spectra(slow.run_id), clean.spectra(slow.run_id)
        assert [(s.step, s.layer, s.rank) for s in a] == [(s.step, s.layer, s.rank) for s in b]
        assert all((x.svals == y.svals).all() for x, y in zip(a, b, strict=True))
        steps = [m[0] for m in resumed.metrics(slow.run_id, "loss")]
        assert steps == sorted(set(steps))  # no duplicated running-loss rows either


def test_cancel_request_stops_one_run(tmp_path: Path) -> None:
    victim = planned(batch_size=4, epochs=20, seed=3)
    other = planned(batch_size=64, epochs=2, seed=3)
    thread, outcomes = start(tmp_path, [victim, other])
    with Store(tmp_path) as store:
        wait_for(lambda: (field(store, victim.run_id, "step") or 0) > 0)
        store.request(Request("cancel", victim.run_id))
        thread.join(120)
        assert outcomes == {victim.run_id: "cancelled", other.run_id: "done"}
        assert store.run(victim.run_id).status == "cancelled"  # type: ignore[union-attr]


def test_failure_in_a_run_is_recorded(tmp_path: Path) -> None:
    bad = planned(dataset="cifar10", epochs=1)  # no files and no network in tests
    os.environ["RANKBIAS_DATA_DIR"] = str(tmp_path / "empty")
    try:
        with Store(tmp_path) as store:
            store.add_runs([bad], {})
            outcomes = Scheduler(store, [bad], plan_slots("cpu", 1)).run()
            assert outcomes == {bad.run_id: "failed"}
            error = store.run(bad.run_id).error  # type: ignore[union-attr]
            assert "cifar10" in error and "--data-dir" in error  # type: ignore[operator]
    finally:
        del os.environ["RANKBIAS_DATA_DIR"]


def test_stop_request_requeues_and_leaves_other_requests(tmp_path: Path) -> None:
    long = planned(batch_size=4, epochs=30, seed=4)
    raised: list[BaseException] = []

    def target() -> None:
        with Store(tmp_path) as own:
            try:
                Scheduler(own, own.queue([long], {}), plan_slots("cpu", 1)).run()
            except StopRequested as stop:
                raised.append(stop)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    with Store(tmp_path) as store:
        wait_for(lambda: (field(store, long.run_id, "step") or 0) > 0)
        launch = Request("launch", spec_path="/spec.toml", sweep="other")
        store.request(launch)  # for a background scheduler: must survive
        store.request(Request("stop"))
        thread.join(60)
        assert raised, "the scheduler did not answer the stop request"
        run = store.run(long.run_id)
        assert run is not None and run.status == "stopped" and "stop requested" in (run.error or "")
        assert store.take_requests() == [launch]
