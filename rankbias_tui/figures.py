"""Matplotlib figures from the store, shared by the CLI and the terminal UI.

Owns: gathering what each figure shows (``*_data`` functions returning plain dataclasses, so
tests can count lines and cells without drawing), drawing it (``*_figure``: a
``matplotlib.figure.Figure`` built without pyplot, on the headless Agg backend) and ``save``
(PNG and/or SVG by suffix). Any kind can use another ``eps`` than the one a run was measured at:
ranks are recounted from the stored singular values of W/||W||_F (``measures``), with no
retraining. Does not own: the database (``store.py``), the analysis of claims (``claims.py``) or
option parsing (``cli_analysis.py``). Imports no torch.

Line labels: every data line has a visible label; decorations (maximal rank, eps threshold) have
labels starting with "_", which matplotlib leaves out of legends.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from . import claims, measures
from .spec import RUN_FIELDS, suggest
from .store import RunRow, Store

matplotlib.use("Agg")  # headless: never open a window, whatever MPLBACKEND says

KINDS = ("rank-curves", "contour", "spectrum", "accuracy-vs-rank")
SIGMA_FLOOR = 1e-8  # spectrum histograms: smaller singular values land in the first bin


class FigureError(ValueError):
    """A figure was asked for with options that do not fit the store (bad field, layer, run...)."""


class NoData(FigureError):
    """The selection holds no run with the data the figure needs."""


# ----- data -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One line: its label, x and y; ``lo``/``hi`` the spread over seeds (None for one seed)."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    lo: tuple[float, ...] | None = None
    hi: tuple[float, ...] | None = None


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


@dataclass(frozen=True)
class GridData:
    panels: tuple[GridPanel, ...]
    x: str
    y: str
    xs: tuple[Any, ...]
    ys: tuple[Any, ...]
    zlabel: str
    title: str


# ----- selecting runs ----------------------------------------------------------------------------
def check_field(name: str) -> str:
    if name not in RUN_FIELDS:
        hint = suggest(name, RUN_FIELDS)
        raise FigureError(f"unknown run field {name!r}" + (f"; {hint}" if hint else ""))
    return name


def parse_fixed(items: Sequence[str]) -> dict[str, Any]:
    """``["lr=0.1", "model=mlp-bn"]`` -> {"lr": 0.1, "model": "mlp-bn"} (values read as JSON if they can)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not text:
            raise FigureError(f"--fix expects FIELD=VALUE, got {item!r}")
        try:
            out[check_field(name.strip())] = json.loads(text)
        except json.JSONDecodeError:
            out[name.strip()] = text
    return out


def matches(value: Any, wanted: Any) -> bool:
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(wanted, numbers) and not isinstance(value, bool):
        return math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-15)
    if isinstance(value, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return list(value) == list(wanted)
    return value == wanted or str(value) == str(wanted)


def _key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def select_runs(
    store: Store, sweep: str | None, fixed: dict[str, Any] | None, statuses: Sequence[str] | None = None
) -> list[RunRow]:
    """Runs of ``sweep`` whose config matches every ``fixed`` value (and has one of ``statuses``)."""
    fixed = fixed or {}
    for name in fixed:
        check_field(name)
    runs = [r for r in store.runs(sweep) if statuses is None or r.status in statuses]
    picked = [r for r in runs if all(matches(r.config.get(k), v) for k, v in fixed.items())]
    if not picked:
        what = f"sweep {sweep!r}" if sweep else "the store"
        detail = f" matching {', '.join(f'{k}={_fmt(v)}' for k, v in fixed.items())}" if fixed else ""
        state = f" with status {'/'.join(statuses)}" if statuses else ""
        raise NoData(f"no runs{state} in {what}{detail}")
    return picked


def _require_varies(configs: Sequence[dict[str, Any]], name: str, option: str) -> None:
    varying = [f for f in measures.varied_fields(configs) if f != "seed"]
    if varying and name not in varying:
        values = sorted({_fmt(c.get(name)) for c in configs})
        raise FigureError(
            f"{option} {name}: it does not vary among the selected runs ({', '.join(values)}); "
            f"fields that vary: {', '.join(varying)}"
        )


def _facets(configs: Sequence[dict[str, Any]], exclude: Sequence[str]) -> list[str]:
    return [f for f in measures.varied_fields(configs) if f not in {*exclude, "seed"}]


def _facet_title(config: dict[str, Any], facets: Sequence[str]) -> str:
    return ", ".join(f"{f}={_fmt(config.get(f))}" for f in facets)


def _check_layer(store: Store, runs: Sequence[RunRow], layer: str | None) -> None:
    if layer is None:
        return
    names: list[str] = []
    for r in runs:
        steps = store.spectrum_steps(r.run_id)
        names += [s.layer for s in store.spectra(r.run_id, steps[0])] if steps else []
    if layer not in names:
        hint = suggest(layer, set(names))
        raise FigureError(
            f"no measured layer {layer!r}"
            + (f"; {hint}" if hint else "")
            + f" (layers: {', '.join(dict.fromkeys(names))})"
        )


def _rank_label(eps: float | None, layer: str | None, configs: Sequence[dict[str, Any]]) -> str:
    stored = sorted({c.get("rank_eps") for c in configs}, key=_key)
    shown = _fmt(eps) if eps is not None else "/".join(_fmt(e) for e in stored)
    return f"rank of {layer} (eps={shown})" if layer else f"average rank (eps={shown})"


def _aggregate(curves: Sequence[tuple[Sequence[float], Sequence[float]]], label: str) -> Series:
    """Mean over seeds at each x; the min/max spread when there are several."""
    at: dict[float, list[float]] = defaultdict(list)
    for xs, ys in curves:
        for x, y in zip(xs, ys, strict=True):
            at[x].append(y)
    xs = tuple(sorted(at))
    y = tuple(float(np.mean(at[x])) for x in xs)
    if len(curves) < 2:
        return Series(label, xs, y)
    return Series(label, xs, y, tuple(min(at[x]) for x in xs), tuple(max(at[x]) for x in xs))


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
    configs = [r.config for r in runs]
    _require_varies(configs, by, "--by")
    _check_layer(store, runs, layer)
    facets = _facets(configs, [by])
    groups: dict[str, dict[Any, list[RunRow]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(runs, key=lambda r: [_key(r.config.get(f)) for f in facets]):
        groups[_facet_title(r.config, facets)][r.config.get(by)].append(r)
    panels = []
    for title, by_value in groups.items():
        series = [
            _aggregate([measures.rank_curve(store.spectra(r.run_id), eps, layer) for r in group], _fmt(v))
            for v, group in sorted(by_value.items(), key=lambda kv: _key(kv[0]))
        ]
        first = next(iter(by_value.values()))[0].run_id
        ceiling = measures.max_avg_rank(store.spectra(first, store.spectrum_steps(first)[0]), layer)
        panels.append(Panel(title, tuple(series), ceiling=ceiling))
    return CurveData("rank-curves", tuple(panels), "epoch", _rank_label(eps, layer, configs),
                     f"{sweep or 'all runs'}: rank against epoch by {by}", legend=by)  # fmt: skip


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
    runs = select_runs(store, sweep, fixed, statuses=("done",))
    configs = [r.config for r in runs]
    if x is None or y is None:
        varying = measures.varied_fields(configs)
        auto = [h for h in ("lr", "weight_decay", "batch_size") if h in varying and h not in (x, y)]
        auto += [h for h in ("lr", "weight_decay", "batch_size") if h not in auto and h not in (x, y)]
        x = x or auto.pop(0)
        y = y or auto.pop(0)
    check_field(x), check_field(y)
    if x == y:
        raise FigureError(f"--x and --y are both {x!r}")
    _check_layer(store, runs, layer)
    _require_varies(configs, x, "--x")
    _require_varies(configs, y, "--y")
    ids = {r.run_id for r in runs}
    records = [r for r in claims.records_from_store(store, sweep, eps, layer=layer) if r["run_id"] in ids]
    if not records:
        raise NoData("no finished run has a measurement yet")
    xs = tuple(sorted({r["config"][x] for r in records}, key=_key))
    ys = tuple(sorted({r["config"][y] for r in records}, key=_key))
    facets = _facets([r["config"] for r in records], [x, y])
    cells: dict[str, dict[tuple[int, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(records, key=lambda r: [_key(r["config"].get(f)) for f in facets]):
        c = r["config"]
        cells[_facet_title(c, facets)][(ys.index(c[y]), xs.index(c[x]))].append(r["final_avg_rank"])
    panels = []
    for title, values in cells.items():
        z = np.full((len(ys), len(xs)), np.nan)
        for (i, j), ranks in values.items():
            z[i, j] = float(np.mean(ranks))
        panels.append(GridPanel(title, z))
    label = "final " + _rank_label(eps, layer, [r["config"] for r in records])
    return GridData(tuple(panels), x, y, xs, ys, label, f"{sweep or 'all runs'}: {label}")


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
                raise FigureError(f"run {run.run_id} has no measurement at epoch {e:g} (measured at: "
                                  f"{', '.join(f'{s:g}' for s in stored)})")  # fmt: skip
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
        panels.append(Panel(f"{name} ({shape.d_out}x{shape.d_in})", tuple(series),
                            threshold=eps if eps is not None else shape.rank_eps))  # fmt: skip
    return CurveData("spectrum", tuple(panels), "singular value of W/||W||_F", "count",
                     f"run {run.run_id}: singular values", legend="measurement")  # fmt: skip


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
    runs = select_runs(store, sweep, fixed, statuses=("done",))
    _check_layer(store, runs, layer)
    _require_varies([r.config for r in runs], by, "--by")
    ids = {r.run_id for r in runs}
    records = [
        r
        for r in claims.records_from_store(store, sweep, eps, layer=layer)
        if r["run_id"] in ids and r["final_test_acc"] is not None
    ]
    if not records:
        raise NoData("no finished run has both a measurement and a test accuracy")
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["config"].get(by)].append(r)
    series = [
        Series(_fmt(v), tuple(r["final_avg_rank"] for r in g), tuple(r["final_test_acc"] for r in g))
        for v, g in sorted(groups.items(), key=lambda kv: _key(kv[0]))
    ]
    rho = claims.spearman([r["final_avg_rank"] for r in records], [r["final_test_acc"] for r in records])
    title = f"{sweep or 'all runs'}: {len(records)} runs, Spearman rho = {rho:+.2f}"
    label = "final " + _rank_label(eps, layer, [r["config"] for r in records])
    return CurveData("accuracy-vs-rank", (Panel("", tuple(series)),), label, "final test accuracy", title, by)


# ----- drawing ----------------------------------------------------------------------------------
def _panels(
    n: int, width: float = 4.4, height: float = 3.4, sharey: bool = False
) -> tuple[Figure, list[Any]]:
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False, sharey=sharey).ravel())
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]


def _colors(n: int) -> list[Any]:
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.85 * i / max(1, n - 1)) for i in range(n)]


def curves_figure(data: CurveData) -> Figure:
    """Draw rank curves, spectrum histograms or accuracy-vs-rank points."""
    fig, axes = _panels(len(data.panels), sharey=data.kind == "rank-curves")
    for ax, panel in zip(axes, data.panels, strict=True):
        for color, s in zip(_colors(len(panel.series)), panel.series, strict=True):
            if data.kind == "accuracy-vs-rank":
                ax.plot(s.x, s.y, ls="none", marker="o", color=color, label=s.label)
            elif data.kind == "spectrum":
                ax.plot(s.x, s.y, drawstyle="steps-post", color=color, label=s.label)
            else:
                ax.plot(s.x, s.y, marker="o", ms=3, color=color, label=s.label)
                if s.lo is not None and s.hi is not None:
                    ax.fill_between(s.x, s.lo, s.hi, color=color, alpha=0.2, lw=0)
        if panel.ceiling is not None:
            ax.axhline(panel.ceiling, ls=":", color="grey", label="_maximal rank")
        if panel.threshold is not None:
            ax.axvline(panel.threshold, ls="--", color="tab:red", label="_eps")
        if data.kind == "spectrum":
            ax.set_xscale("log")
        ax.set(title=panel.title, xlabel=data.xlabel, ylabel=data.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(title=data.legend or None, fontsize="small")
    fig.suptitle(data.title)
    return fig


def _axis(name: str, values: Sequence[Any]) -> tuple[np.ndarray, str]:
    """Positions for grid values: log2 for batch size, log10 for positive numbers spanning a decade
    or more, evenly spaced (categorical) otherwise, e.g. when a weight decay of 0 is present."""
    numeric = all(isinstance(v, (int, float)) for v in values)
    if numeric and all(v > 0 for v in values):
        if name == "batch_size":
            return np.log2(np.asarray(values, dtype=float)), f"{name} (log2 axis)"
        if max(values) / min(values) >= 10:
            return np.log10(np.asarray(values, dtype=float)), f"{name} (log axis)"
        return np.asarray(values, dtype=float), name
    return np.arange(len(values), dtype=float), f"{name} (categorical axis)"


def _edges(pos: np.ndarray) -> np.ndarray:
    if len(pos) == 1:
        return np.array([pos[0] - 0.5, pos[0] + 0.5])
    mid = (pos[1:] + pos[:-1]) / 2
    return np.concatenate([[2 * pos[0] - mid[0]], mid, [2 * pos[-1] - mid[-1]]])


def contour_figure(data: GridData) -> Figure:
    """One heat map per panel (a cell per grid point, value written in it) with contour lines."""
    fig, axes = _panels(len(data.panels))
    px, xlabel = _axis(data.x, data.xs)
    py, ylabel = _axis(data.y, data.ys)
    finite = np.concatenate([p.z[np.isfinite(p.z)] for p in data.panels])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    mesh = None
    for ax, panel in zip(axes, data.panels, strict=True):
        z = np.ma.masked_invalid(panel.z)
        mesh = ax.pcolormesh(_edges(px), _edges(py), z, cmap="viridis", vmin=vmin, vmax=vmax)
        if min(z.shape) >= 3 and np.isfinite(panel.z).all() and np.ptp(panel.z) > 0:
            ax.contour(px, py, panel.z, colors="white", linewidths=0.7, alpha=0.8)
        for (i, j), value in np.ndenumerate(panel.z):
            if np.isfinite(value):
                dark = value < vmin + 0.5 * (vmax - vmin)
                ax.text(px[j], py[i], f"{value:.1f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")  # fmt: skip
        ax.set_xticks(px, [_fmt(v) for v in data.xs])
        ax.set_yticks(py, [_fmt(v) for v in data.ys])
        ax.set(title=panel.title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(mesh, ax=axes, label=data.zlabel)
    fig.suptitle(data.title)
    return fig


def make_figure(kind: str, store: Store, **options: Any) -> Figure:
    """The figure of one kind; ``options`` are the keyword arguments of its ``*_data`` function."""
    if kind == "rank-curves":
        return curves_figure(rank_curve_data(store, **options))
    if kind == "contour":
        return contour_figure(contour_data(store, **options))
    if kind == "spectrum":
        return curves_figure(spectrum_data(store, **options))
    if kind == "accuracy-vs-rank":
        return curves_figure(accuracy_data(store, **options))
    raise FigureError(f"unknown figure kind {kind!r}; choose from {', '.join(KINDS)}")


def save(fig: Figure, path: str | Path) -> list[Path]:
    """Write ``fig`` as PNG or SVG by the suffix of ``path``; both (``path``.png and .svg) when the
    suffix is neither. Return the files written."""
    path = Path(path)
    if path.suffix.lower() in (".png", ".svg"):
        targets = [path]
    else:
        targets = [path.with_name(path.name + ".png"), path.with_name(path.name + ".svg")]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        svg = target.suffix.lower() == ".svg"
        fig.savefig(target, dpi=150, metadata={"Date": None} if svg else None)
    return targets
