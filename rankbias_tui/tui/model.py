"""What the terminal UI shows, read from the store: plain data, no Textual, no torch.

``StoreFeed`` owns one ``Store`` connection and is used from one thread (the app's poller). It
reads the runs written since its last read (the store's change number), keeps the others, and
re-reads a run's metrics and spectra only when the run changed (status, step, epoch) or, for a
running run, at most every ``live_every_s`` seconds - a store of 20,000 runs with 16 running costs
a read of about 16 rows per refresh. Everything it returns is immutable, so a newer snapshot can replace
an older one anywhere in the app.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import measures
from ..eta import RateTracker, Work, cumulative_rate, seconds_left, store_seconds_left
from ..measures import STATUSES, Status
from ..scheduler import status as scheduler_status
from ..store import RunRow, Store, read_end
from .overview import SweepTally
from .usage import UsageProbe, device_usage
from .views import RunDetail, RunView, Snapshot, varied_fields

__all__ = ["RunDetail", "RunView", "Snapshot", "StoreFeed", "group_curves", "varied_fields"]

SHOWN_METRICS = (measures.TRAIN_LOSS, measures.LOSS, measures.TEST_ACC)  # what a row shows
AVG_RANK = "rank"  # the compare screen's default measure
MAX_POINTS = 400  # per plotted series; a terminal shows fewer columns than that
FULL_READ_S = 5.0  # read the runs at least this often even when the files look unchanged
FIRST_RUNS = 1_000  # a store with more shows these (and the running runs) first, the rest a moment later


def _key(row: RunRow) -> tuple[Any, ...]:
    """What makes a run's view new: its row changed (a running run's values also move without it)."""
    return (
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
        self._views_cache: dict[str, tuple[tuple[Any, ...], float, RunView]] = {}  # (key, read at, view)
        self._detail: RunDetail | None = None
        self._detail_read = 0.0
        self._curves: dict[str, tuple[tuple[Any, ...], tuple[tuple[float, float], ...]]] = {}
        self._compared: tuple[tuple[str, tuple[RunView, ...]], dict[str, Any]] | None = (
            None  # the last answer
        )
        self._last: tuple[tuple[tuple[int, int], ...], float, Snapshot] | None = None
        self._seq = 0  # the store's change number read up to (``Store.runs_changed``)
        self._index: dict[str, RunView] = {}  # every run, in store order
        self._running: dict[str, RunView] = {}
        self._counts: Counter[str] = Counter()
        self._sweeps: Mapping[str, int] = {}
        self._idle_works: list[Work] | None = None  # the ETA's view of the runs not running
        self._tally = SweepTally()
        self._first = True  # no poll yet: a big store shows its first runs first (``_head``)
        self.rates = RateTracker()
        self._works: dict[str, tuple[RunView, Work]] = {}
        self._layers: dict[str, tuple[str, ...]] = {}
        self._varied: tuple[str, ...] = ()
        self._packs: dict[str, tuple[str, ...]] = {}  # run -> its latest pack (``Store.packs``; the ETA)

    def close(self) -> None:
        self.store.close()

    # ----- dashboard --------------------------------------------------------------------------
    def poll(self) -> Snapshot:
        """The store now: the runs written since the last poll read again (``Store.runs_changed``),
        the others kept; the last snapshot (re-checked scheduler and devices) if nothing was written."""
        now = self.clock()
        stamp = self._stamp()
        last = self._last
        if last is not None and stamp == last[0] and now - last[1] < FULL_READ_S and last[2].total is None:
            return replace(last[2], **self._live_parts(last[2], now))
        if self._first:
            self._first = False
            first = self._head(now)
            if first is not None:
                return first
        rows, latest, count = self.store.runs_changed(self._seq)
        full = self._seq == 0 or count != len(self._index) or any(r.run_id not in self._index for r in rows)
        if full and self._seq != 0:
            rows = self.store.runs()  # runs were added or removed: read them all, in store order
        changed = self._views(rows, now)
        if full or any(v.status == Status.RUNNING and v.run_id not in self._running for v in changed):
            self._packs = self.store.packs()  # a pack started: the ETA counts its members per slot
        if full:
            self._index = {v.run_id: v for v in changed}
            self._counts = Counter(v.status for v in changed)
            self._varied = varied_fields(v.config.stored for v in changed)
            self._sweeps = self.store.sweeps()
            self._tally = SweepTally(changed)
            self._idle_works = None
        else:
            self._take(changed)
        self._seq = latest
        self._running = {v.run_id: v for v in changed if v.status == Status.RUNNING}  # all were read
        snapshot = Snapshot(
            store=str(self.directory),
            runs=tuple(self._index.values()),
            sweeps=self._sweeps,
            counts={s: self._counts.get(s, 0) for s in STATUSES},
            varied=self._varied,
            index=dict(self._index),
            overview=self._tally.summaries(self._sweeps),
            **self._live_parts(None, now),
        )
        self._last = (stamp, now, snapshot)
        return snapshot

    def _head(self, now: float) -> Snapshot | None:
        """The first picture of a big store: its first runs in store order and the running ones,
        with the store's true counts (one grouped read); the next poll reads every run. None for
        a store small enough to read at once."""
        rows, count = self.store.runs_head(FIRST_RUNS)
        if count <= len(rows):
            return None
        views = self._views(rows, now)
        self._running = {v.run_id: v for v in views if v.status == Status.RUNNING}
        counts = self.store.status_counts()
        snapshot = Snapshot(
            store=str(self.directory),
            runs=tuple(views),
            sweeps=self.store.sweeps(),
            counts={s: counts.get(s, 0) for s in STATUSES},
            varied=varied_fields(v.config.stored for v in views),
            index={v.run_id: v for v in views},
            overview=(),
            total=count,
            **self._live_parts(None, now),
        )
        self._last = (self._stamp(), now, snapshot)
        return snapshot

    def _views(self, rows: list[RunRow], now: float) -> list[RunView]:
        """The rows as views: a run's cached view while it did not change (a running run's for
        ``live_every_s``), else a new one with its latest values, read for all of them at once."""
        keys = [_key(row) for row in rows]
        kept = [self._kept(row, key, now) for row, key in zip(rows, keys, strict=True)]
        todo = [  # a run never started has no values yet
            row.run_id
            for row, view in zip(rows, kept, strict=True)
            if view is None and (row.attempts or row.step)
        ]
        latest = self.store.latest_many(todo, SHOWN_METRICS) if todo else {}
        return [
            view or self._view(row, key, now, latest.get(row.run_id, ({}, [])))
            for row, key, view in zip(rows, keys, kept, strict=True)
        ]

    def _kept(self, row: RunRow, key: tuple[Any, ...], now: float) -> RunView | None:
        cached = self._views_cache.get(row.run_id)
        if cached is None or cached[0] != key:
            return None
        if row.status == Status.RUNNING and now - cached[1] >= self.live_every_s:
            return None
        return cached[2]

    def _view(
        self, row: RunRow, key: tuple[Any, ...], now: float, latest: tuple[dict[str, float], list[int]]
    ) -> RunView:
        last, ranks = latest
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
        cached = self._views_cache.get(row.run_id)
        if cached is not None and cached[2] == view:
            view = cached[2]  # nothing new: the same object, so nobody redraws the row
        self._views_cache[row.run_id] = (key, now, view)
        return view

    def _take(self, changed: Iterable[RunView]) -> None:
        for v in changed:
            old = self._index[v.run_id]
            if old is not v:
                self._counts[old.status] -= 1
                self._counts[v.status] += 1
                self._index[v.run_id] = v
                self._tally.replace(old, v)
                if old.status != Status.RUNNING or v.status != Status.RUNNING:
                    self._idle_works = None  # a run started or ended: the ETA's other runs changed

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

    def _live_parts(self, last: Snapshot | None, now: float) -> dict[str, Any]:
        """What changes without a write to the store: the scheduler, the devices, the ETAs (kept
        from ``last`` while nothing was written: no run moved, so no rate did)."""
        info = scheduler_status(self.directory)
        running = tuple(self._running.values())
        devices = tuple(device_usage(running, info.devices, self.probe, info.pci_bus_ids))
        if last is not None and (last.scheduler.pid is not None) == (info.pid is not None):
            return {"scheduler": info, "devices": devices, "eta_s": last.eta_s, "run_eta": last.run_eta}
        if info.pid is None:  # with no scheduler, nothing is training: no time left to show
            return {"scheduler": info, "devices": devices, "eta_s": None, "run_eta": {}}
        if self._idle_works is None:
            self._idle_works = [
                self._work(v, now) for v in self._index.values() if v.status != Status.RUNNING
            ]
        moving = [self._work(v, now) for v in running]
        return {
            "scheduler": info,
            "devices": devices,
            "eta_s": store_seconds_left(self._idle_works + moving, info.capacity),
            "run_eta": {w.run_id: seconds_left(w) for w in moving},
        }

    def _work(self, v: RunView, now: float) -> Work:
        if v.status != Status.RUNNING:  # nothing moves: the same Work while the view is the same object
            cached = self._works.get(v.run_id)
            if cached is not None and cached[0] is v:
                return cached[1]
            pack = self._packs.get(v.run_id, ())
            work = Work(v.run_id, v.sweep, v.status, v.step, v.total_steps, v.epochs, v.active_s, pack=pack)
            self._works[v.run_id] = (v, work)
            return work
        active = v.active_at(now)
        rate = self.rates.observe(v.run_id, v.started_at, v.step, now) or cumulative_rate(v.step, active)
        pack = self._packs.get(v.run_id, ())
        return Work(v.run_id, v.sweep, v.status, v.step, v.total_steps, v.epochs, active, rate, pack=pack)

    # ----- run detail -------------------------------------------------------------------------
    def detail(self, run_id: str) -> RunDetail | None:
        """The run's curves and spectra; the cached value while nothing changed."""
        row = self.store.run_exact(run_id) or self.store.run(run_id)  # a scan only for a prefix
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
        rank (``rank:fc2``) or a metric (``test_acc``); a finished run's is read once, and the runs
        to read are read together (a sweep of 20,000 runs in a few queries, not one per run)."""
        runs = tuple(runs)
        if self._compared is not None and self._compared[0] == (measure, runs):
            return self._compared[1]  # the same views: nothing moved (the poller asks twice a second)
        keys = {view.run_id: (view.status, view.step, view.epoch, measure) for view in runs}
        todo = [run_id for run_id, key in keys.items() if self._curves.get(run_id, ((),))[0] != key]
        for run_id, curve in self._read_curves(todo, measure).items():
            self._curves[run_id] = (keys[run_id], curve)
        out = {run_id: self._curves[run_id][1] for run_id in keys}
        self._compared = ((measure, runs), out)
        return out

    def _read_curves(self, run_ids: list[str], measure: str) -> dict[str, tuple[tuple[float, float], ...]]:
        if not run_ids:
            return {}
        if measure == AVG_RANK or measure.startswith("rank:"):
            layer = measure.partition(":")[2] or None
            ranks = self.store.ranks_many(run_ids)
            curves = {i: measures.rank_curve(ranks.get(i, ()), layer=layer) for i in run_ids}  # type: ignore[arg-type]
            return {i: tuple(zip(*curve, strict=True)) for i, curve in curves.items()}
        series = self.store.series_many(run_ids, measure)
        out = {}
        for run_id in run_ids:
            points = series.get(run_id, [])
            xs, ys = downsample([p[0] for p in points], [p[1] for p in points])
            out[run_id] = tuple(zip(xs, ys, strict=True))
        return out

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
