"""How long until a run, and a store's queue, is done: from the time trained and the steps done.

Owns the rules: a run's speed is the steps per second observed during its current attempt (between
two reads of the store) once there are two, else its steps over its active seconds summed over
every attempt (``store.RunRow.active_s``: a resumed run is not counted from its last restart). Its
time left is its steps left at that speed. The store's time left is the work left divided among the
runs that train at once - every member of a fused pack counts, and free scheduler slots take queued
runs - and never less than the longest running run's. A queued run is estimated from the finished
runs of its own sweep (active seconds per epoch times its epochs), else from the running ones of
its sweep; when one cannot be estimated, neither can the store. Does not own: reading the store
(``tui.model``) nor printing durations (``tui.format``). Pure Python: no torch, no textual.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
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

    @property
    def steps_left(self) -> int | None:
        return max(0, self.total_steps - self.step) if self.total_steps else None


def seconds_left(work: Work) -> float | None:
    """A running run's time left at its speed; None when it has no measured speed yet."""
    if work.steps_left is None or not work.rate:
        return None
    return work.steps_left / work.rate


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


def _per_epoch(works: Iterable[Work]) -> dict[str, float]:
    """Per sweep: the median active seconds per epoch of its finished runs, else of its running
    runs' projected totals."""
    done: dict[str, list[float]] = {}
    projected: dict[str, list[float]] = {}
    for w in works:
        if w.epochs <= 0:
            continue
        if w.status == Status.DONE and w.active_s > 0:
            done.setdefault(w.sweep, []).append(w.active_s / w.epochs)
        elif w.status == Status.RUNNING and (left := seconds_left(w)) is not None:
            projected.setdefault(w.sweep, []).append((w.active_s + left) / w.epochs)
    return {sweep: statistics.median(v) for sweep, v in (projected | done).items()}


def store_seconds_left(works: Iterable[Work], capacity: int | None = None) -> float | None:
    """Time until every running and queued run is done; 0 when none is left, None when unknown."""
    works = list(works)
    running = [w for w in works if w.status == Status.RUNNING]
    queued = [w for w in works if w.status == Status.QUEUED]
    if not running and not queued:
        return 0.0
    per_epoch = _per_epoch(works)
    left = [seconds_left(w) for w in running]
    for w in queued:
        fraction = 1.0 - (w.step / w.total_steps if w.total_steps else 0.0)
        left.append(per_epoch[w.sweep] * w.epochs * fraction if w.sweep in per_epoch else None)
    if any(x is None for x in left):
        return None
    known = [x for x in left if x is not None]
    longest = max((seconds_left(w) or 0.0 for w in running), default=0.0)
    at_once = max(len(running), capacity or 1)
    return max(longest, sum(known) / at_once)
