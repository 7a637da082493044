"""eta: time left per run and per store (issue 10, item 2: wrong both ways before)."""

from __future__ import annotations

import pytest

from rankbias_tui.eta import RateTracker, Work, cumulative_rate, seconds_left, store_seconds_left


def work(run_id: str, status: str, step: int = 0, active_s: float = 0.0, rate: float | None = None,
         sweep: str = "s", epochs: int = 10, total: int | None = 100) -> Work:  # fmt: skip
    return Work(run_id, sweep, status, step, total, epochs, active_s, rate)


def test_a_fresh_pack_counts_every_member_as_training_at_once() -> None:
    # 11 runs in one pack (one scheduler slot), each 10 steps of 100 in 10 s: about 90 s left, not 11x
    pack = [work(f"r{i}", "running", step=10, active_s=10.0, rate=1.0) for i in range(11)]
    assert store_seconds_left(pack, capacity=1) == pytest.approx(90.0)


def test_a_resumed_run_counts_its_earlier_attempts() -> None:
    # 50 of 100 steps after 40 s in an earlier attempt and 2 s in this one: ~1.19 steps/s, ~42 s left
    rate = cumulative_rate(50, 42.0)
    assert rate == pytest.approx(50 / 42)
    assert seconds_left(work("r", "running", step=50, active_s=42.0, rate=rate)) == pytest.approx(42.0)


def test_queued_runs_are_estimated_from_their_own_sweep_and_free_slots_share_them() -> None:
    runs = [
        work("a", "done", step=100, active_s=100.0),  # sweep s: 10 s per epoch
        work("b", "done", step=100, active_s=1000.0, sweep="slow"),  # another sweep: not mixed in
        work("c", "running", step=50, active_s=50.0, rate=1.0),  # 50 s left
        work("d", "queued"), work("e", "queued"), work("f", "queued"),  # 100 s each
    ]  # fmt: skip
    assert store_seconds_left(runs, capacity=1) == pytest.approx(350.0)
    assert store_seconds_left(runs, capacity=4) == pytest.approx(350.0 / 4)  # free slots start them
    assert store_seconds_left([work("q", "queued", sweep="new")], capacity=2) is None  # nothing to go by
    assert store_seconds_left([work("a", "done", step=100, active_s=1.0)]) == 0.0


def test_a_half_done_queued_run_needs_only_its_rest() -> None:
    runs = [work("a", "done", step=100, active_s=100.0), work("b", "queued", step=60)]
    assert store_seconds_left(runs) == pytest.approx(40.0)


def test_the_observed_rate_belongs_to_the_current_attempt() -> None:
    rates = RateTracker()
    assert rates.observe("r", 100.0, 10, now=110.0) is None  # first sight
    assert rates.observe("r", 100.0, 10, now=111.0) is None  # no step moved yet
    assert rates.observe("r", 100.0, 30, now=120.0) == pytest.approx(2.0)
    assert rates.observe("r", 100.0, 30, now=125.0) == pytest.approx(2.0)  # kept between epoch ends
    assert rates.observe("r", 200.0, 30, now=201.0) is None  # resumed: a new attempt starts over
