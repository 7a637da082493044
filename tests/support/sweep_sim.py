"""A packed sweep, simulated: what the store would say of each run at any moment, and when the
sweep really ends (for the ETA's tests, ``tests/unit/test_eta.py``). Deterministic for a seed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from rankbias_tui.eta import RateTracker, Work, cumulative_rate


@dataclass(frozen=True)
class SimRun:
    run_id: str
    pack: tuple[str, ...]
    launched: float  # marked running (the worker starts)
    rate: float  # steps per second once it trains
    finished: float


@dataclass(frozen=True)
class Sweep:
    """``runs`` runs in packs of ``pack`` on ``slots`` slots; each run ``epochs`` epochs of
    ``steps`` steps. A slot that frees waits ``gap`` seconds before its next pack starts (the
    scheduler's poll), whose workers load for ``startup`` seconds before the first step. Each pack
    trains at its own speed (``spread``), each member within 5% of it."""

    runs: int = 200
    pack: int = 16
    slots: int = 2
    epochs: int = 10
    steps: int = 50
    speed: float = 5.0  # steps per second
    spread: float = 0.15
    gap: float = 2.0
    startup: float = 3.0
    seed: int = 21

    def simulate(self) -> list[SimRun]:
        rng = random.Random(self.seed)
        ids = [f"r{i:03d}" for i in range(self.runs)]
        free = [0.0] * self.slots
        out = []
        for first in range(0, self.runs, self.pack):
            members = tuple(ids[first : first + self.pack])
            slot = min(range(self.slots), key=free.__getitem__)
            launched = free[slot] + self.gap
            speed = self.speed * math.exp(rng.gauss(0.0, self.spread))
            rates = [speed * rng.uniform(0.95, 1.05) for _ in members]
            total = self.epochs * self.steps
            runs = [
                SimRun(r, members, launched, v, launched + self.startup + total / v)
                for r, v in zip(members, rates, strict=True)
            ]
            free[slot] = max(r.finished for r in runs)
            out += runs
        return out

    def works(self, runs: list[SimRun], now: float, rates: RateTracker) -> list[Work]:
        """The runs as the app reads them at ``now`` (steps move at epoch ends)."""
        total = self.epochs * self.steps
        out = []
        for r in runs:
            if now < r.launched:
                out.append(Work(r.run_id, "s", "queued", 0, None, self.epochs, 0.0))
                continue
            if now >= r.finished:
                out.append(
                    Work(
                        r.run_id, "s", "done", total, total, self.epochs, r.finished - r.launched, pack=r.pack
                    )
                )
                continue
            trained = max(0.0, now - r.launched - self.startup) * r.rate
            step = min(total, int(trained // self.steps) * self.steps)
            active = now - r.launched
            rate = rates.observe(r.run_id, r.launched, step, now) or cumulative_rate(step, active)
            out.append(Work(r.run_id, "s", "running", step, total, self.epochs, active, rate, r.pack))
        return out
