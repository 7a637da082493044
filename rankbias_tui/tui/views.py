"""What the terminal UI shows of a store, as immutable values (no Textual, no torch): a run as the
dashboard shows it (``RunView``), the dashboard's whole picture (``Snapshot``), a run's detail
(``RunDetail``), and which hyperparameters the table shows (``varied_fields``). ``model.StoreFeed``
makes them from the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import measures
from ..measures import HPARAMS, Status
from ..scheduler import SchedulerStatus
from ..spec import RunConfig
from ..store import RunRow, Segment, SpectrumRow
from .overview import SweepSummary
from .usage import DeviceUse


@dataclass(frozen=True)
class RunView:
    """One run as the dashboard shows it."""

    run_id: str
    sweep: str
    status: str
    device: str | None
    config: RunConfig
    step: int
    total_steps: int | None
    epoch: float
    train_loss: float | None = None
    test_acc: float | None = None
    avg_rank: float | None = None
    error: str | None = None
    warning: str | None = None  # the latest of the run's warnings
    started_at: float | None = None
    finished_at: float | None = None
    active_s: float = 0.0  # seconds trained in the attempts that ended

    def active_at(self, now: float) -> float:
        """Seconds trained over every attempt, the running one up to ``now`` included."""
        running = now - self.started_at if self.status == Status.RUNNING and self.started_at else 0.0
        return self.active_s + max(0.0, running)

    @property
    def epochs(self) -> int:
        return int(self.config.epochs)

    @property
    def progress(self) -> float:
        if self.status == Status.DONE:
            return 1.0  # a diverged run shows how far it got
        if self.total_steps:
            return min(1.0, self.step / self.total_steps)
        return min(1.0, self.epoch / self.epochs) if self.epochs else 0.0

    def label(self, varied: Iterable[str]) -> str:
        """``a1b2c3d4 B=8 wd=0.01``: the id and what distinguishes the run in its sweep."""
        return measures.run_label(self.run_id, self.config.stored, varied)


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard needs at one moment."""

    store: str
    runs: tuple[RunView, ...]
    sweeps: Mapping[str, int]
    counts: Mapping[str, int]
    eta_s: float | None
    devices: tuple[DeviceUse, ...]
    scheduler: SchedulerStatus
    varied: tuple[str, ...]
    run_eta: Mapping[str, float | None] = field(default_factory=dict)  # run_id -> seconds left
    index: Mapping[str, RunView] = field(default_factory=dict, compare=False, repr=False)  # of runs
    overview: tuple[SweepSummary, ...] = ()  # one per sweep, in sweep order
    total: int | None = None  # runs in the store when ``runs`` holds only the first of them

    def by_id(self) -> Mapping[str, RunView]:
        return self.index or {r.run_id: r for r in self.runs}


@dataclass(frozen=True)
class RunDetail:
    """The selected run: its metric curves, every spectral measurement, config and error."""

    run: RunRow
    series: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]]  # name -> (epochs, values)
    measurements: tuple[tuple[SpectrumRow, ...], ...]  # by step, then layer
    key: tuple[Any, ...] = field(compare=False, default=())
    segments: tuple[Segment, ...] = ()  # how each stretch of the run was trained
    log: tuple[str, ...] = ()  # the lines of scheduler.log about this run, latest last

    def rank_series(self) -> dict[str, tuple[list[float], list[float]]]:
        """Rank over epochs for each layer, plus ``average``."""
        out: dict[str, tuple[list[float], list[float]]] = {}
        for rows in self.measurements:
            for s in rows:
                xs, ys = out.setdefault(s.layer, ([], []))
                xs.append(s.epoch), ys.append(float(s.rank))
        if self.measurements:  # added last: drawn on top
            out["average"] = measures.rank_curve(s for rows in self.measurements for s in rows)
        return out


def varied_fields(
    configs: Iterable[Mapping[str, Any]], among: Iterable[str] | None = None
) -> tuple[str, ...]:
    """The dashboard's hyperparameter columns: the fields that vary, else the paper's three.

    ``measures.varied_fields``'s answer (values compared by ``repr``), found faster for 20,000
    runs: by value sets first, ``repr`` only for the fields whose values differ; ``among``: only
    these fields can differ (a subset of runs varies in no field the whole set does not)."""
    configs = list(configs)
    fields = measures.FIELDS if among is None else [f for f in measures.FIELDS if f in set(among)]
    out = []
    for name in fields:
        values = [c.get(name) for c in configs]
        try:
            differ = len(set(values)) > 1
        except TypeError:  # a list (lr_milestones)
            differ = True
        if differ and len({repr(v) for v in values}) > 1:
            out.append(name)
    return tuple(out) or HPARAMS
