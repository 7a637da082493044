"""A CPU pack too large for the machine's memory (issue 19, row 9): the kernel's OOM killer ends its
worker with SIGKILL; the pack is retried in smaller packs, saying so and naming --pack-size, and its
runs finish; a single run killed that way fails naming the memory. The OOM kill is simulated: the
test sends the SIGKILL and raises the kernel's OOM-kill count the scheduler reads."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from rankbias_tui.scheduler import Scheduler, memory, plan_slots
from rankbias_tui.store import Store
from rankbias_tui.sweep import PlannedRun
from tests.support.runs import planned, wait_for

pytestmark = pytest.mark.slow  # trains real (tiny) runs


@pytest.fixture
def oom_killer(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The kernel's OOM-kill count as the scheduler reads it: ``[0]`` is raised by the test."""
    count = [41]
    monkeypatch.setattr(memory, "oom_kills", lambda: count[0])
    return count


def start(store_dir: Path, runs: list[PlannedRun]) -> tuple[threading.Thread, dict]:
    outcomes: dict = {}

    def target() -> None:
        with Store(store_dir) as store:
            outcomes.update(Scheduler(store, store.queue(runs, {}), plan_slots("cpu", 1)).run())

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcomes


@pytest.mark.soak
def test_a_pack_the_oom_killer_ends_is_retried_smaller_and_finishes(
    tmp_path: Path, oom_killer: list[int]
) -> None:
    pack = [planned(batch_size=4, epochs=2, seed=s, measure_every=1) for s in (1, 2)]
    thread, outcomes = start(tmp_path, pack)
    with Store(tmp_path) as store:
        wait_for(
            lambda: all((r := store.run(p.run_id)) is not None and (r.checkpoint_step or 0) > 0 for p in pack)
        )
        (pid,) = {store.run(p.run_id).pid for p in pack}  # type: ignore[union-attr]  # one worker: a pack
        oom_killer[0] += 1
        os.kill(pid, signal.SIGKILL)
        thread.join(240)
        assert outcomes == {p.run_id: "done" for p in pack}
        for p in pack:
            run = store.run(p.run_id)
            assert run is not None and run.attempts == 2
            said = next(w for w in run.warnings if "SIGKILL" in w)
            assert "the system ran out of memory" in said and "available when it started" in said
            assert "in a pack of 2; retrying in packs of 1 (--pack-size sets the most runs per pack)" in said
            modes = [s.mode for s in store.segments(p.run_id)]
            assert (
                modes[0] == "pack of 2, eager" and modes[1] == "eager"
            )  # resumed alone, from its checkpoint
            assert store.segments(p.run_id)[1].from_step > 0


def test_a_single_run_the_oom_killer_ends_fails_naming_the_memory(
    tmp_path: Path, oom_killer: list[int]
) -> None:
    alone = planned(batch_size=4, epochs=2, seed=3)
    thread, outcomes = start(tmp_path, [alone])
    with Store(tmp_path) as store:
        wait_for(lambda: (r := store.run(alone.run_id)) is not None and r.step > 0)
        oom_killer[0] += 1
        os.kill(store.run(alone.run_id).pid, signal.SIGKILL)  # type: ignore[arg-type, union-attr]
        thread.join(120)
        assert outcomes == {alone.run_id: "failed"}
        error = store.run(alone.run_id).error or ""  # type: ignore[union-attr]
        assert error.startswith("worker killed by SIGKILL: the system ran out of memory (")
        assert "available when it started); it needs about" in error
