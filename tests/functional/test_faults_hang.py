"""Hung workers (issue 19, row 6): a worker frozen with SIGSTOP - alive, silent - is found stalled,
killed, and its run resumes from its checkpoint with the numbers of an uninterrupted run; a cancel
of a frozen worker takes effect within seconds; a scheduler with a frozen worker stops within
bounded time, even one frozen half-way through a message.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rankbias_tui.scheduler import Scheduler, SchedulerOptions, StopRequested, plan_slots
from rankbias_tui.store import Request, Store
from rankbias_tui.sweep import PlannedRun
from tests.support import faults
from tests.support.hang import FreezingLauncher, freeze, release, state
from tests.support.runs import planned, wait_for

pytestmark = pytest.mark.slow  # trains real (tiny) runs

EVAL = ("train_loss", "train_acc", "test_loss", "test_acc")


@pytest.fixture
def frozen() -> Iterator[list[int]]:
    """The pids a test froze: killed at its end whatever happened."""
    pids: list[int] = []
    yield pids
    release(pids)


def start(
    store_dir: Path, runs: list[PlannedRun], options: SchedulerOptions, **kw: object
) -> tuple[threading.Thread, dict]:
    """A scheduler on one CPU slot in a thread; returns (thread, outcomes: run_id -> status, or
    "raised" -> the exception that ended it)."""
    result: dict = {}

    def target() -> None:
        with Store(store_dir) as store:
            try:
                sched = Scheduler(store, store.queue(runs, {}), plan_slots("cpu", 1), options, **kw)  # type: ignore[arg-type]
                result.update(sched.run())
            except BaseException as err:  # noqa: BLE001 - the test reads it
                result["raised"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def row(store: Store, run_id: str):  # noqa: ANN201
    return store.run(run_id)


@pytest.mark.soak  # long (about 20 s); run with pytest -m soak (README)
def test_a_frozen_worker_is_stalled_killed_and_its_run_resumes_from_its_checkpoint(
    tmp_path: Path, frozen: list[int]
) -> None:
    run = planned(batch_size=4, epochs=3, seed=1, measure_every=1)  # ~360 steps and a checkpoint an epoch
    thread, outcomes = start(tmp_path / "a", [run], SchedulerOptions(stall_s=3))
    with Store(tmp_path / "a") as store:
        wait_for(lambda: (r := row(store, run.run_id)) is not None and (r.checkpoint_step or 0) > 0)
        pid = row(store, run.run_id).pid
        freeze(pid, frozen)
        wait_for(lambda: row(store, run.run_id).attempts == 2, timeout=60, what="the run to start again")
        assert state(pid) in ("", "Z")  # the frozen worker was killed (SIGTERM alone would wait for ever)
        (warning,) = row(store, run.run_id).warnings
        assert warning.startswith("worker stalled at step ") and "(frozen or hung)" in warning
        thread.join(180)
        assert outcomes == {run.run_id: "done"}
        segments = store.segments(run.run_id)
        assert [s.mode for s in segments] == ["eager", "eager"] and segments[1].from_step > 0
    thread, reference = start(tmp_path / "b", [run], SchedulerOptions())  # never interrupted
    thread.join(180)
    assert reference == {run.run_id: "done"}
    with Store(tmp_path / "a") as resumed, Store(tmp_path / "b") as clean:
        evals = [[m for m in s.metrics(run.run_id) if m[2] in EVAL] for s in (resumed, clean)]
        assert evals[0] == evals[1] and len(evals[0]) == 4 * (3 + 1)
        a, b = resumed.spectra(run.run_id), clean.spectra(run.run_id)
        assert [(s.step, s.layer) for s in a] == [(s.step, s.layer) for s in b]
        assert all((x.svals == y.svals).all() for x, y in zip(a, b, strict=True))


@pytest.mark.soak
@pytest.mark.parametrize("shape", ["single run", "pack member"])
def test_a_cancel_of_a_frozen_worker_takes_effect_within_seconds(
    tmp_path: Path, frozen: list[int], shape: str
) -> None:
    victim = planned(batch_size=4, epochs=3, seed=2, measure_every=1)
    other = planned(batch_size=4, epochs=3, seed=3, measure_every=1)  # its pack mate
    todo = [victim] if shape == "single run" else [victim, other]
    thread, outcomes = start(tmp_path, todo, SchedulerOptions(stall_s=600))  # the cancel acts, not the stall
    with Store(tmp_path) as store:
        wait_for(lambda: all((r := row(store, x.run_id)) is not None and r.step > 0 for x in todo))
        pid = row(store, victim.run_id).pid
        freeze(pid, frozen)
        time.sleep(1.5)  # frozen for a while, as a hung worker would be
        store.request(Request("cancel", victim.run_id))
        asked = time.monotonic()
        wait_for(lambda: row(store, victim.run_id).status == "cancelled", timeout=30, what="the cancel")
        assert time.monotonic() - asked < 30
        assert state(pid) in ("", "Z")
        thread.join(180)
        if shape == "single run":
            assert outcomes == {victim.run_id: "cancelled"}
        else:  # the mate was frozen with it: it resumes from its checkpoint, and finishes
            assert outcomes == {victim.run_id: "cancelled", other.run_id: "done"}
            mate = row(store, other.run_id)
            assert mate.attempts == 2 and any("after a cancel" in w for w in mate.warnings)


@pytest.mark.soak
def test_a_scheduler_with_a_frozen_worker_stops_within_bounded_time(
    tmp_path: Path, frozen: list[int]
) -> None:
    store = tmp_path / "store"
    proc = faults.start(store)  # rankbias run --headless, default stall time (minutes)
    try:
        faults.wait_for(lambda: faults.checkpointed(store, proc), what="a checkpoint")
        with Store(store) as s:
            (pid,) = {r.pid for r in s.runs() if r.pid}
        freeze(pid, frozen)
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "nothing recorded was lost: 2 runs in progress stopped" in err
    assert state(pid) in ("", "Z")
    with Store(store) as s:
        assert {r.status for r in s.runs()} == {"stopped"}


@pytest.mark.soak
def test_a_worker_frozen_half_way_through_a_message_holds_nothing(tmp_path: Path) -> None:
    """``Connection.recv`` would wait for the rest of the message for ever: no stop, no cancel."""
    launcher = FreezingLauncher()
    run = planned(epochs=1)
    thread, result = start(tmp_path, [run], SchedulerOptions(pack_size=1, stall_s=600), launcher=launcher)
    try:
        with Store(tmp_path) as store:
            wait_for(lambda: (r := row(store, run.run_id)) is not None and r.status == "running")
            (pid,) = launcher.pids
            wait_for(lambda: state(pid) == "T", what="the worker to freeze")
            store.request(Request("stop"))
            thread.join(60)
            assert not thread.is_alive(), "the scheduler is stuck reading the frozen worker's message"
            assert isinstance(result.get("raised"), StopRequested)
            assert state(pid) in ("", "Z")
            assert row(store, run.run_id).status == "stopped"
    finally:
        release(launcher.pids)
