"""What each figure shows, gathered from the store as plain dataclasses (no matplotlib, no torch).

Owns: ``Series``/``Panel``/``CurveData`` (lines in panels) and ``GridPanel``/``GridData`` (the
contour grid), and one ``*_data`` function per figure kind, so tests can count lines and cells
without drawing. Any kind can use another ``eps`` than the one a run was measured at: ranks are
recounted from the stored singular values of W/||W||_F (``measures``), with no retraining. Does
not own: choosing runs and checking options (``selection.py``) or drawing (``draw.py``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import claims, measures
from ..measures import Status
from ..spec import suggest
from ..store import RunRow, Store
from .selection import (
    FigureError,
    NoData,
    check_field,
    check_layer,
    facet_title,
    facets_of,
    fmt,
    rank_label,
    require_varies,
    select_runs,
    sort_key,
)

SIGMA_FLOOR = 1e-8  # spectrum histograms: smaller singular values land in the first bin


@dataclass(frozen=True)
class Series:
    """One line (or set of points): its label, x and y (means over seeds); ``lo``/``hi`` the
    t interval of y over seeds, ``xlo``/``xhi`` of x (None: one seed, or not a mean)."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    lo: tuple[float, ...] | None = None
    hi: tuple[float, ...] | None = None
    xlo: tuple[float, ...] | None = None
    xhi: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Panel:
    title: str
    series: tuple[Series, ...]
    ceiling: float | None = None  # maximal (average) rank, drawn as a dotted line
    threshold: float | None = None  # eps, drawn as a dashed vertical line (spectrum)


@dataclass(frozen=True)
class CurveData:
    """Lines in panels: rank curves, spectrum histograms or accuracy-vs-rank points."""

    kind: str
    panels: tuple[Panel, ...]
    xlabel: str
    ylabel: str
    title: str
    legend: str = ""


@dataclass(frozen=True)
class GridPanel:
    title: str
    z: np.ndarray = field(repr=False)  # (len(ys), len(xs)) mean final rank, NaN: no finished run
    lo: np.ndarray | None = field(default=None, repr=False)  # (len(ys), len(xs)) interval over seeds
    hi: np.ndarray | None = field(default=None, repr=False)
    seeds: np.ndarray | None = field(default=None, repr=False)  # (len(ys), len(xs)) runs per cell
    # (len(ys), len(xs)) mean last rank of the cell's diverged runs, NaN where none diverged: drawn
    # hatched where no run finished (where Figure 1 is lowest), never left blank
    diverged: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GridData:
    panels: tuple[GridPanel, ...]
    x: str
    y: str
    xs: tuple[Any, ...]
    ys: tuple[Any, ...]
    zlabel: str
    title: str


def _aggregate(curves: Sequence[tuple[Sequence[float], Sequence[float]]], label: str) -> Series:
    """Mean over seeds at each x; with several seeds, the t interval over them."""
    at: dict[float, list[float]] = defaultdict(list)
    for xs, ys in curves:
        for x, y in zip(xs, ys, strict=True):
            at[x].append(y)
    xs = tuple(sorted(at))
    y = tuple(float(np.mean(at[x])) for x in xs)
    if len(curves) < 2:
        return Series(label, xs, y)
    bounds = [measures.mean_interval(at[x]) for x in xs]
    return Series(label, xs, y, tuple(b[0] for b in bounds), tuple(b[1] for b in bounds))


def seeds_note(counts: Sequence[int], per: str) -> str:
    """What stands behind each number of a figure: "3 seeds per line, band: 95% interval"."""
    note = f"{claims.seeds_label(counts)} per {per}"
    if max(counts, default=1) > 1:
        note += f", {measures.INTERVAL_LEVEL:.0%} interval over seeds"
    return note


# ----- rank curves -------------------------------------------------------------------------------
def rank_curve_data(
    store: Store,
    sweep: str | None = None,
    by: str = "batch_size",
    *,
    layer: str | None = None,
    eps: float | None = None,
    fixed: dict[str, Any] | None = None,
) -> CurveData:
    """Average rank (or one layer's) against epoch: one line per value of ``by`` (mean over seeds),
    one panel per combination of the other fields that vary (fix them with ``fixed``)."""
    check_field(by)
    runs = [r for r in select_runs(store, sweep, fixed) if store.spectrum_steps(r.run_id)]
    if not runs:
        raise NoData(f"no measured runs in {sweep or 'the store'} yet")
    configs = [r.config.stored for r in runs]
    require_varies(configs, by, "--by")
    check_layer(store, runs, layer)
    facets = facets_of(configs, [by])
    groups: dict[str, dict[Any, list[RunRow]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(runs, key=lambda r: [sort_key(r.config.value(f)) for f in facets]):
        groups[facet_title(r.config.stored, facets)][measures.hashable(r.config.value(by))].append(r)
    panels, counts = [], []
    for title, by_value in groups.items():
        series = [
            _aggregate([measures.rank_curve(store.spectra(r.run_id), eps, layer) for r in group], fmt(v))
            for v, group in sorted(by_value.items(), key=lambda kv: sort_key(kv[0]))
        ]
        counts += [len(group) for group in by_value.values()]
        first = next(iter(by_value.values()))[0].run_id
        ceiling = measures.max_avg_rank(store.spectra(first, store.spectrum_steps(first)[0]), layer)
        panels.append(Panel(title, tuple(series), ceiling=ceiling))
    return CurveData(
        "rank-curves",
        tuple(panels),
        "epoch",
        rank_label(eps, layer, configs),
        f"{sweep or 'all runs'}: rank against epoch by {by} (mean of {seeds_note(counts, 'line')})",
        legend=by,
    )


# ----- final rank over two hyperparameters (Figure 1 of the paper) -------------------------------
def contour_data(
    store: Store,
    sweep: str | None = None,
    x: str | None = None,
    y: str | None = None,
    *,
    layer: str | None = None,
    eps: float | None = None,
    fixed: dict[str, Any] | None = None,
) -> GridData:
    """Final average rank of finished (done) runs on an x-by-y grid, mean over seeds; one panel per
    combination of the other fields that vary (the paper fixes the third hyperparameter).
    ``x``/``y`` left None: the first two of lr, weight_decay, batch_size that vary (as Figure 1)."""
    runs = select_runs(store, sweep, fixed, statuses=(Status.DONE,))
    configs = [r.config.stored for r in runs]
    if x is None or y is None:
        varying = measures.varied_fields(configs)
        auto = [h for h in ("lr", "weight_decay", "batch_size") if h in varying and h not in (x, y)]
        auto += [h for h in ("lr", "weight_decay", "batch_size") if h not in auto and h not in (x, y)]
        x = x or auto.pop(0)
        y = y or auto.pop(0)
    check_field(x), check_field(y)
    if x == y:
        raise FigureError(f"--x and --y are both {x!r}")
    check_layer(store, runs, layer)
    require_varies(configs, x, "--x")
    require_varies(configs, y, "--y")
    ids = {r.run_id for r in runs}
    records = [r for r in claims.records_from_store(store, sweep, eps, layer=layer) if r["run_id"] in ids]
    if not records:
        raise NoData("no finished run has a measurement yet")
    gone = _diverged(store, sweep, eps, fixed)
    xs = tuple(sorted({measures.hashable(r["config"][x]) for r in records + gone}, key=sort_key))
    ys = tuple(sorted({measures.hashable(r["config"][y]) for r in records + gone}, key=sort_key))
    facets = facets_of([r["config"] for r in records], [x, y])
    cells = _cells(records, x, y, xs, ys, facets)
    lost = _cells(gone, x, y, xs, ys, facets)
    panels = []
    for title, values in cells.items():
        z, lo, hi, n, dead = (np.full((len(ys), len(xs)), np.nan) for _ in range(5))
        for (i, j), ranks in values.items():
            z[i, j], n[i, j] = float(np.mean(ranks)), len(ranks)
            lo[i, j], hi[i, j] = measures.mean_interval(ranks)
        for (i, j), ranks in lost.get(title, {}).items():
            dead[i, j] = float(np.mean(ranks))
        panels.append(GridPanel(title, z, lo, hi, n, dead))
    label = "final " + rank_label(eps, layer, [r["config"] for r in records])
    counts = [len(v) for cell in cells.values() for v in cell.values()]
    note = f"; {len(gone)} diverged run(s) excluded, hatched with their last rank" if gone else ""
    return GridData(
        tuple(panels),
        x,
        y,
        xs,
        ys,
        label,
        f"{sweep or 'all runs'}: {label}, mean of {seeds_note(counts, 'cell')}{note}",
    )


def _diverged(store: Store, sweep: str | None, eps: float | None, fixed: dict[str, Any] | None) -> list[dict]:
    """Records of the diverged runs a figure of finished ones leaves out (none: empty)."""
    try:
        chosen = {r.run_id for r in select_runs(store, sweep, fixed, statuses=(Status.DIVERGED,))}
    except NoData:
        return []
    return [r for r in claims.excluded_from_store(store, sweep, eps) if r["run_id"] in chosen]


def _cells(
    records: Sequence[dict[str, Any]], x: str, y: str, xs: Sequence[Any], ys: Sequence[Any], facets: list[str]
) -> dict[str, dict[tuple[int, int], list[float]]]:
    """Final ranks by panel title and (row, column) of the grid."""
    cells: dict[str, dict[tuple[int, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(records, key=lambda r: [sort_key(r["config"].get(f)) for f in facets]):
        c = r["config"]
        at = (ys.index(measures.hashable(c[y])), xs.index(measures.hashable(c[x])))
        cells[facet_title(c, facets)][at].append(r["final_avg_rank"])
    return cells


# ----- singular-value histograms of one run ------------------------------------------------------
def spectrum_data(
    store: Store,
    run_id: str,
    *,
    epochs: Sequence[float] | None = None,
    layers: Sequence[str] | None = None,
    eps: float | None = None,
    bins: int = 40,
) -> CurveData:
    """Histograms (log-spaced bins) of the singular values of W/||W||_F: one panel per layer, one
    line per chosen measurement (default: the first and the last)."""
    run = store.run(run_id)
    if run is None:
        raise FigureError(f"no single run matches {run_id!r}")
    rows = store.spectra(run.run_id)
    if not rows:
        raise NoData(f"run {run.run_id} has no measurement yet")
    stored = sorted({s.epoch for s in rows})
    if epochs:
        for e in epochs:
            if not any(math.isclose(e, s) for s in stored):
                raise FigureError(
                    f"run {run.run_id} has no measurement at epoch {e:g} (measured at: "
                    f"{', '.join(f'{s:g}' for s in stored)})"
                )
        chosen = [s for s in stored if any(math.isclose(e, s) for e in epochs)]
    else:
        chosen = sorted({stored[0], stored[-1]})
    names = list(dict.fromkeys(s.layer for s in rows))
    for name in layers or []:
        if name not in names:
            hint = suggest(name, names)
            raise FigureError(f"no measured layer {name!r}" + (f"; {hint}" if hint else ""))
    threshold = eps if eps is not None else rows[0].rank_eps
    positive = [float(v) for s in rows for v in s.svals if v > SIGMA_FLOOR]
    low = max(SIGMA_FLOOR, min([threshold, *positive]) / 3)
    edges = np.logspace(math.log10(low), 0.0, bins + 1)  # values below ``low`` land in the first bin
    panels = []
    for name in layers or names:
        series = []
        for epoch in chosen:
            s = next(r for r in rows if r.layer == name and r.epoch == epoch)
            counts, _ = np.histogram(np.clip(s.svals, low, 1.0), bins=edges)
            label = f"epoch {epoch:g}: rank {measures.layer_rank(s, eps)}"
            series.append(Series(label, tuple(edges), (*map(float, counts), float(counts[-1]))))
        shape = next(r for r in rows if r.layer == name)
        panels.append(
            Panel(
                f"{name} ({shape.d_out}x{shape.d_in})",
                tuple(series),
                threshold=eps if eps is not None else shape.rank_eps,
            )
        )
    return CurveData(
        "spectrum",
        tuple(panels),
        "singular value of W/||W||_F",
        "count",
        f"run {run.run_id}: singular values",
        legend="measurement",
    )


# ----- test accuracy against rank ----------------------------------------------------------------
def accuracy_data(
    store: Store,
    sweep: str | None = None,
    by: str = "weight_decay",
    *,
    layer: str | None = None,
    eps: float | None = None,
    fixed: dict[str, Any] | None = None,
) -> CurveData:
    """Final test accuracy against final average rank of finished runs, one marker set per ``by``."""
    check_field(by)
    runs = select_runs(store, sweep, fixed, statuses=(Status.DONE,))
    check_layer(store, runs, layer)
    require_varies([r.config.stored for r in runs], by, "--by")
    ids = {r.run_id for r in runs}
    records = [
        r
        for r in claims.records_from_store(store, sweep, eps, layer=layer)
        if r["run_id"] in ids and r["final_test_acc"] is not None
    ]
    if not records:
        raise NoData("no finished run has both a measurement and a test accuracy")
    groups: dict[Any, list[list[dict[str, Any]]]] = defaultdict(list)
    for setting in claims.settings(records).values():
        groups[measures.hashable(setting[0]["config"].get(by))].append(setting)
    series = [_points(fmt(v), g) for v, g in sorted(groups.items(), key=lambda kv: sort_key(kv[0]))]
    counts = [len(setting) for g in groups.values() for setting in g]
    title = f"{sweep or 'all runs'}: {len(counts)} settings\nmean of {seeds_note(counts, 'point')}"
    label = "final " + rank_label(eps, layer, [r["config"] for r in records])
    return CurveData("accuracy-vs-rank", (Panel("", tuple(series)),), label, "final test accuracy", title, by)


def _points(label: str, settings: Sequence[Sequence[dict[str, Any]]]) -> Series:
    """One point per setting: mean final rank and test accuracy over its seeds, with intervals."""
    ranks = [[r["final_avg_rank"] for r in runs] for runs in settings]
    accs = [[r["final_test_acc"] for r in runs] for runs in settings]
    x = tuple(float(np.mean(v)) for v in ranks)
    y = tuple(float(np.mean(v)) for v in accs)
    if max(len(runs) for runs in settings) < 2:
        return Series(label, x, y)
    xb = [measures.mean_interval(v) for v in ranks]
    yb = [measures.mean_interval(v) for v in accs]
    return Series(
        label,
        x,
        y,
        tuple(b[0] for b in yb),
        tuple(b[1] for b in yb),
        tuple(b[0] for b in xb),
        tuple(b[1] for b in xb),
    )
