"""What the terminal UI shows, read from the store: plain data, no Textual, no torch.

``StoreFeed`` owns one ``Store`` connection and is used from one thread (the app's poller). It
re-reads a run's metrics and spectra only when the run changed (status, step, epoch) or, for a
running run, at most every ``live_every_s`` seconds - a store with 500 finished runs costs one
``runs()`` query per refresh. Everything it returns is immutable, so a newer snapshot can replace
an older one anywhere in the app.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import measures
from ..eta import RateTracker, Work, cumulative_rate, seconds_left, store_seconds_left
from ..measures import HPARAMS, STATUSES, Status
from ..scheduler import SchedulerStatus
from ..scheduler import status as scheduler_status
from ..spec import RunConfig
from ..store import RunRow, Segment, SpectrumRow, Store, read_end
from .usage import DeviceUse, UsageProbe, device_usage

SHOWN_METRICS = (measures.TRAIN_LOSS, measures.LOSS, measures.TEST_ACC)  # what a row shows
AVG_RANK = "rank"  # the compare screen's default measure
MAX_POINTS = 400  # per plotted series; a terminal shows fewer columns than that
FULL_READ_S = 5.0  # read the runs at least this often even when the files look unchanged


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

    def by_id(self) -> dict[str, RunView]:
        return {r.run_id: r for r in self.runs}


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


def varied_fields(configs: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The dashboard's hyperparameter columns: the fields that vary, else the paper's three."""
    return measures.varied_fields(configs) or HPARAMS


def downsample(xs: list[float], ys: list[float], limit: int = MAX_POINTS) -> tuple[tuple[float, ...], ...]:
    """At most ``limit`` evenly spaced points, always keeping the last."""
    if len(xs) <= limit:
        return tuple(xs), tuple(ys)
    stride = math.ceil(len(xs) / limit)
    idx = list(range(0, len(xs), stride))
    if idx[-1] != len(xs) - 1:
        idx.append(len(xs) - 1)
    return tuple(xs[i] for i in idx), tuple(ys[i] for i in idx)


def log_lines(path: Path, run_id: str, limit: int = 30, window: int = 256 * 1024) -> tuple[str, ...]:
    """The last ``limit`` lines of a scheduler log (its last ``window`` bytes) that name ``run_id``
    (in full or by its first 8 characters); none if there is no log (or a link in its place)."""
    text = read_end(path, window).decode("utf-8", "replace")
    return tuple([line for line in text.splitlines() if run_id[:8] in line][-limit:])


class StoreFeed:
    """Reads the store into snapshots and run details, re-reading only what changed."""

    def __init__(
        self,
        directory: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        probe: UsageProbe | None = None,
        live_every_s: float = 2.0,
    ):
        self.directory = Path(directory)
        self.store = Store(self.directory, create=False)
        self.clock, self.probe, self.live_every_s = clock, probe, live_every_s
        self._views: dict[str, tuple[tuple[Any, ...], float, RunView]] = {}
        self._detail: RunDetail | None = None
        self._detail_read = 0.0
        self._curves: dict[str, tuple[tuple[Any, ...], tuple[tuple[float, float], ...]]] = {}
        self._last: tuple[tuple[tuple[int, int], ...], float, Snapshot] | None = None
        self._ids: tuple[str, ...] = ()
        self.rates = RateTracker()
        self._works: dict[str, tuple[RunView, Work]] = {}
        self._layers: dict[str, tuple[str, ...]] = {}
        self._varied: tuple[str, ...] = ()

    def close(self) -> None:
        self.store.close()

    # ----- dashboard --------------------------------------------------------------------------
    def poll(self) -> Snapshot:
        """The store now; the last snapshot (re-checked scheduler and devices) if nothing was written."""
        now = self.clock()
        stamp = self._stamp()
        last = self._last
        if last is not None and stamp == last[0] and now - last[1] < FULL_READ_S:
            return replace(last[2], **self._live_parts(last[2].runs, now))
        rows = self.store.runs()
        views = tuple(self._view(row, now) for row in rows)
        counts = dict.fromkeys(STATUSES, 0)
        for v in views:
            counts[v.status] = counts.get(v.status, 0) + 1
        ids = tuple(v.run_id for v in views)
        if ids != self._ids:  # the set of runs changed: the varied columns may have too
            self._ids, self._varied = ids, varied_fields(v.config.stored for v in views)
        snapshot = Snapshot(
            store=str(self.directory),
            runs=views,
            sweeps=self.store.sweeps(),
            counts=counts,
            varied=self._varied,
            **self._live_parts(views, now),
        )
        self._last = (stamp, now, snapshot)
        return snapshot

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        """Size and mtime of the database and its WAL: any commit changes them."""
        out = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(f"{self.store.paths.database}{suffix}")
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((0, 0))
        return tuple(out)

    def _live_parts(self, views: tuple[RunView, ...], now: float) -> dict[str, Any]:
        """What changes without a write to the store: the scheduler, the devices, the ETAs."""
        info = scheduler_status(self.directory)
        works = [self._work(v, now) for v in views]
        live = info.pid is not None  # with no scheduler, nothing is training: no time left to show
        run_eta = {w.run_id: seconds_left(w) for w in works if w.status == Status.RUNNING} if live else {}
        return {
            "scheduler": info,
            "devices": tuple(device_usage(views, info.devices, self.probe, info.pci_bus_ids)),
            "eta_s": store_seconds_left(works, info.capacity) if live else None,
            "run_eta": run_eta,
        }

    def _work(self, v: RunView, now: float) -> Work:
        if v.status != Status.RUNNING:  # nothing moves: the same Work while the view is the same object
            cached = self._works.get(v.run_id)
            if cached is not None and cached[0] is v:
                return cached[1]
            work = Work(v.run_id, v.sweep, v.status, v.step, v.total_steps, v.epochs, v.active_s)
            self._works[v.run_id] = (v, work)
            return work
        active = v.active_at(now)
        rate = self.rates.observe(v.run_id, v.started_at, v.step, now) or cumulative_rate(v.step, active)
        return Work(v.run_id, v.sweep, v.status, v.step, v.total_steps, v.epochs, active, rate)

    def _view(self, row: RunRow, now: float) -> RunView:
        key = (
            row.status,
            row.step,
            row.epoch,
            row.checkpoint_step,
            row.attempts,
            row.error,
            row.warnings,
            row.device,
            row.started_at,
            row.active_s,
        )
        cached = self._views.get(row.run_id)
        fresh = cached is not None and cached[0] == key
        if fresh and (row.status != Status.RUNNING or now - cached[1] < self.live_every_s):
            return cached[2]  # type: ignore[index]
        last = self.store.latest_values(row.run_id, SHOWN_METRICS)  # index seeks, not a scan
        ranks = self.store.latest_ranks(row.run_id)  # no singular values
        view = RunView(
            run_id=row.run_id,
            sweep=row.sweep,
            status=row.status,
            device=row.device,
            config=row.config,
            step=row.step,
            total_steps=row.total_steps,
            epoch=row.epoch,
            train_loss=last.get(measures.shown_loss(last)),
            test_acc=last.get(measures.TEST_ACC),
            avg_rank=measures.mean(ranks),  # the average rank: mean over layers (measures.avg_rank)
            error=row.error,
            warning=row.warnings[-1] if row.warnings else None,
            started_at=row.started_at,
            finished_at=row.finished_at,
            active_s=row.active_s,
        )
        self._views[row.run_id] = (key, now, view)
        return view

    # ----- run detail -------------------------------------------------------------------------
    def detail(self, run_id: str) -> RunDetail | None:
        """The run's curves and spectra; the cached value while nothing changed."""
        row = self.store.run(run_id)
        if row is None:
            return None
        key = (row.run_id, row.status, row.step, row.epoch, row.attempts)
        now = self.clock()
        cached = self._detail
        if cached is not None and cached.key == key:
            if row.status != Status.RUNNING or now - self._detail_read < self.live_every_s:
                return cached
        series: dict[str, tuple[list[float], list[float]]] = {}
        for _step, epoch, name, value in self.store.metrics(row.run_id):
            xs, ys = series.setdefault(name, ([], []))
            xs.append(epoch), ys.append(value)
        self._detail = RunDetail(
            run=row,
            series={name: downsample(xs, ys) for name, (xs, ys) in series.items()},
            measurements=tuple(map(tuple, measures.by_measurement(self.store.spectra(row.run_id)))),
            key=key,
            segments=tuple(self.store.segments(row.run_id)),
            log=log_lines(self.store.paths.log, row.run_id),
        )
        self._detail_read = now
        return self._detail

    # ----- compare ----------------------------------------------------------------------------
    def rank_curves(
        self, runs: Iterable[RunView], measure: str = AVG_RANK
    ) -> dict[str, tuple[tuple[float, float], ...]]:
        """One curve of (epoch, value) pairs per run: the average rank (``AVG_RANK``), one layer's
        rank (``rank:fc2``) or a metric (``test_acc``); a finished run's is read once."""
        out = {}
        for view in runs:
            key = (view.status, view.step, view.epoch, measure)
            cached = self._curves.get(view.run_id)
            if cached is None or cached[0] != key:
                cached = self._curves[view.run_id] = (key, self._curve(view.run_id, measure))
            out[view.run_id] = cached[1]
        return out

    def _curve(self, run_id: str, measure: str) -> tuple[tuple[float, float], ...]:
        if measure == AVG_RANK or measure.startswith("rank:"):
            layer = measure.partition(":")[2] or None
            return tuple(zip(*measures.rank_curve(self.store.spectra(run_id), layer=layer), strict=True))
        rows = self.store.metrics(run_id, measure)
        xs, ys = downsample([r[1] for r in rows], [r[3] for r in rows])
        return tuple(zip(xs, ys, strict=True))

    def layers(self, run_id: str) -> tuple[str, ...]:
        """The measured layers of a run, in order (for the compare screen's choice of measure)."""
        if run_id not in self._layers:
            steps = self.store.spectrum_steps(run_id)
            if not steps:
                return ()
            self._layers[run_id] = tuple(s.layer for s in self.store.spectra(run_id, steps[0]))
        return self._layers[run_id]


def group_curves(
    runs: Iterable[RunView], curves: Mapping[str, tuple[tuple[float, float], ...]], by: str | None
) -> list[tuple[str, int, tuple[tuple[float, float], ...]]]:
    """(label, run count, curve) per run (``by`` None) or per value of ``by`` (mean over runs)."""
    runs = list(runs)
    if by is None:
        varied = varied_fields(r.config.stored for r in runs)
        return [(r.label(varied), 1, curves.get(r.run_id, ())) for r in runs]
    groups: dict[Any, list[RunView]] = {}
    for r in runs:
        groups.setdefault(measures.hashable(r.config.value(by)), []).append(r)
    out = []
    for value in sorted(groups, key=lambda v: (v is None, v)):
        members = groups[value]
        points: dict[float, list[float]] = {}
        for r in members:
            for epoch, rank in curves.get(r.run_id, ()):
                points.setdefault(epoch, []).append(rank)
        curve = tuple((e, measures.mean(v) or 0.0) for e, v in sorted(points.items()))  # v never empty
        out.append((f"{measures.SHORT_NAMES.get(by, by)}={value}", len(members), curve))
    return out
