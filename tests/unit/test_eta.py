"""eta: time left per run and per store (issue 10, item 2: wrong both ways before)."""

from __future__ import annotations

import pytest

from rankbias_tui.eta import RateTracker, Work, cumulative_rate, seconds_left, store_seconds_left
from tests.support.sweep_sim import Sweep


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
    # free slots start them at once: done when the last of them is, 100 s on (not 350 s / 4)
    assert store_seconds_left(runs, capacity=4) == pytest.approx(100.0)
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


def test_a_just_started_run_is_estimated_from_its_sweep_not_unknown() -> None:
    runs = [
        work("a", "running", step=50, active_s=50.0, rate=1.0),  # its sweep: 10 s an epoch, 50 s left
        work("b", "running", step=0, active_s=30.0),  # no speed yet: 100 s a run, 30 s of it gone
        work("c", "running", step=0, active_s=5.0, sweep="other"),  # no run of its sweep has a speed
    ]
    assert store_seconds_left(runs, capacity=3) == pytest.approx(95.0)  # c, from every sweep's median


def test_the_queue_goes_in_packs_of_its_sweep_on_the_slot_that_frees_first() -> None:
    # between two waves: both slots' packs of 16 just ended, 48 runs wait; each run takes 100 s
    members = [f"d{i}" for i in range(32)]
    packs = [tuple(members[:16]), tuple(members[16:])]
    done = [Work(r, "s", "done", 100, 100, 10, 100.0, pack=packs[i // 16]) for i, r in enumerate(members)]
    queued = [work(f"q{i}", "queued") for i in range(48)]
    assert store_seconds_left(done + queued, capacity=2) == pytest.approx(200.0)  # 3 packs on 2 slots
    running = [Work(f"p{i}", "s", "running", 50, 100, 10, 50.0, 1.0, ("p0", "p1")) for i in range(2)]
    assert store_seconds_left(done + running + queued[:32], capacity=2) == pytest.approx(150.0)


@pytest.mark.parametrize(
    "sweep", [Sweep(), Sweep(spread=0.0), Sweep(gap=10.0, seed=5)], ids=["packs", "same-speed", "slow-gaps"]
)
def test_a_packed_sweep_in_waves_is_estimated_within_1_5x(sweep: Sweep) -> None:
    """A simulated sweep of 200 runs in packs of 16 on 2 slots, sampled every second: the ETA is
    known as soon as any run has a speed, and after the first 10% it stays within 1.5x of the time
    really left (or within a second of it, in the sweep's last second)."""
    runs = sweep.simulate()
    end = max(r.finished for r in runs)
    rates = RateTracker()
    for now in range(int(end) + 1):
        works = sweep.works(runs, float(now), rates)
        estimate = store_seconds_left(works, sweep.slots)
        if any(w.status == "done" or w.rate for w in works):
            assert estimate is not None, now
        left = end - now
        if now >= 0.1 * end and estimate is not None and abs(estimate - left) > 1.0:
            assert 1 / 1.5 <= estimate / left <= 1.5, (now, estimate, left)
