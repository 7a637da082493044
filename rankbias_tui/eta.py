"""How long until a run, and a store's queue, is done: from the time trained and the steps done.

Owns the rules. A run's speed is the steps per second observed during its current attempt (between
two reads of the store) once there are two, else its steps over its active seconds summed over
every attempt (``store.RunRow.active_s``: a resumed run is not counted from its last restart). Its
time left is its steps left at that speed, less the time it has trained since its step last moved
(steps move at epoch ends). A run without a measured speed - queued, or running but not yet past
its first epoch - is estimated from the active seconds per epoch of its sweep's finished runs, else
of its sweep's running ones, else of every sweep's. The store's time left replays the scheduler:
each slot trains one pack (every member counts), the packs running now free their slots when their
last member ends, and the queued runs, in order, fill the slot that frees first in packs of their
sweep's pack size. Unknown only when no run of the store has a measured speed. Does not own:
reading the store (``tui.model``, ``Store.packs``) nor printing durations (``tui.format``). Pure
Python: no torch, no textual.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .measures import Status


@dataclass(frozen=True)
class Work:
    """What the rules read of one run."""

    run_id: str
    sweep: str
    status: str
    step: int
    total_steps: int | None
    epochs: int
    active_s: float  # over every attempt, the running one included
    rate: float | None = None  # steps per second, None when unknown
    pack: tuple[
        str, ...
    ] = ()  # the ids trained together in its latest attempt (``Store.packs``); (): unknown

    @property
    def steps_left(self) -> int | None:
        return max(0, self.total_steps - self.step) if self.total_steps else None

    @property
    def done_fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


def seconds_left(work: Work) -> float | None:
    """A running run's time left at its speed; None when it has no measured speed yet.

    Less the seconds it trained since its step last moved (its active time past the time its steps
    took at that speed), at most one epoch's worth: the step moves at epoch ends only."""
    if work.steps_left is None or not work.rate:
        return None
    left = work.steps_left / work.rate
    epoch_s = work.total_steps / max(1, work.epochs) / work.rate  # type: ignore[operator]
    since_step = min(max(0.0, work.active_s - work.step / work.rate), epoch_s)
    return max(0.0, left - since_step)


def cumulative_rate(step: int, active_s: float) -> float | None:
    """Steps per second over every attempt (None before the first epoch end)."""
    return step / active_s if step > 0 and active_s > 0 else None


class RateTracker:
    """Steps per second of each running run, observed across reads of the store: from the first
    read of its current attempt (``started_at``) to the latest one at which its step moved."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[float | None, float, int]] = {}  # run -> (attempt, time, step)
        self._rate: dict[str, tuple[int, float]] = {}  # run -> (step it was measured at, steps/s)

    def observe(self, run_id: str, started_at: float | None, step: int, now: float) -> float | None:
        first = self._first.get(run_id)
        if first is None or first[0] != started_at:
            self._first[run_id] = (started_at, now, step)
            self._rate.pop(run_id, None)
            return None
        _, t0, s0 = first
        last = self._rate.get(run_id)
        if step > s0 and now > t0 and (last is None or step != last[0]):  # measured when the step moves
            self._rate[run_id] = (step, (step - s0) / (now - t0))
        return self._rate[run_id][1] if run_id in self._rate else None


def _per_epoch(works: Sequence[Work]) -> dict[str | None, float]:
    """Per sweep: the median active seconds per epoch of its finished runs, else of its running
    runs' projected totals; under None, the median over every sweep's."""
    done: dict[str, list[float]] = {}
    projected: dict[str, list[float]] = {}
    for w in works:
        if w.epochs <= 0:
            continue
        if w.status == Status.DONE and w.active_s > 0:
            done.setdefault(w.sweep, []).append(w.active_s / w.epochs)
        elif w.status == Status.RUNNING and (left := seconds_left(w)) is not None:
            projected.setdefault(w.sweep, []).append((w.active_s + left) / w.epochs)
    samples = projected | done
    out: dict[str | None, float] = {sweep: statistics.median(v) for sweep, v in samples.items()}
    if samples:
        out[None] = statistics.median(x for v in samples.values() for x in v)
    return out


def _estimate(w: Work, per_epoch: dict[str | None, float]) -> float | None:
    """A run's time left from its sweep's seconds per epoch (a queued run, or a running one with
    no measured speed yet: its active seconds count as done)."""
    each = per_epoch.get(w.sweep, per_epoch.get(None))
    if each is None:
        return None
    left = each * w.epochs * (1.0 - w.done_fraction)
    return max(0.0, left - w.active_s) if w.status == Status.RUNNING and w.step == 0 else left


def _queued_packs(works: Sequence[Work], queued: Sequence[Work], fallback: int) -> list[list[Work]]:
    """The queued runs as the scheduler will pack them, in queue order: with runs of their own
    sweep, as many as the median members of the sweep's latest packs (``fallback`` where no run of
    the sweep has a pack record)."""
    sizes: dict[str, list[int]] = {}
    for w in works:
        if w.pack:
            sizes.setdefault(w.sweep, []).append(len(w.pack))
    size = {sweep: max(1, round(statistics.median(v))) for sweep, v in sizes.items()}
    packs: list[list[Work]] = []
    open_: dict[str, list[Work]] = {}
    for w in queued:
        pack = open_.get(w.sweep)
        if pack is None or len(pack) >= size.get(w.sweep, fallback):
            pack = open_[w.sweep] = []
            packs.append(pack)
        pack.append(w)
    return packs


def _chunks(items: Sequence[Work], size: int) -> list[Sequence[Work]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def store_seconds_left(works: Iterable[Work], capacity: int | None = None) -> float | None:
    """Time until every running and queued run is done; 0 when none is left, None when unknown.

    ``capacity``: the packs the scheduler trains at once (its slots). Runs whose ``pack`` is
    unknown count as packs of the running runs per slot."""
    works = list(works)
    running = [w for w in works if w.status == Status.RUNNING]
    queued = [w for w in works if w.status == Status.QUEUED]
    if not running and not queued:
        return 0.0
    per_epoch = _per_epoch(works)
    left: dict[str, float] = {}
    for w in [*running, *queued]:
        estimate = seconds_left(w) if w.status == Status.RUNNING else None
        estimate = estimate if estimate is not None else _estimate(w, per_epoch)
        if estimate is None:
            return None
        left[w.run_id] = estimate
    slots = max(1, capacity or 1)
    fallback = max(1, math.ceil(len(running) / slots))  # without pack records: the runs per slot now
    free = _running_slots(running, left, fallback)
    free += [0.0] * max(0, slots - len(free))  # idle slots take queued packs at once
    heapq.heapify(free)
    end = max(free)
    for pack in _queued_packs(works, queued, fallback):
        finish = free[0] + max(left[w.run_id] for w in pack)  # the slot that frees first takes it
        heapq.heapreplace(free, finish)
        end = max(end, finish)
    return end


def _running_slots(running: Sequence[Work], left: dict[str, float], size: int) -> list[float]:
    """When each slot training now frees: the latest end among its pack's members. Members of an
    unknown pack are grouped ``size`` at a time, the longest first."""
    packs: dict[tuple[str, ...], float] = {}
    unknown = sorted((w for w in running if not w.pack), key=lambda w: -left[w.run_id])
    for w in running:
        if w.pack:
            packs[w.pack] = max(packs.get(w.pack, 0.0), left[w.run_id])
    return [*packs.values(), *(left[c[0].run_id] for c in _chunks(unknown, size))]
