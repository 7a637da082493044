"""Drawing figures with matplotlib, and saving them (the only module here that imports it).

Owns: ``curves_figure`` (rank curves, spectrum histograms, accuracy-vs-rank points),
``contour_figure`` (the paper's Figure 1 as heat maps with contour lines), ``DRAWINGS`` (the two,
by the names ``kinds.KINDS`` gives them), ``make_figure`` (a kind's data, drawn) and ``save`` (PNG
and/or SVG). Figures are
built without pyplot, on the headless Agg backend. Does not own: choosing runs (``selection.py``)
what a figure shows (``data.py``) or the list of kinds (``kinds.py``).

Line labels: every data line has a visible label; decorations (maximal rank, eps threshold) have
labels starting with "_", which matplotlib leaves out of legends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..store import Store
from .data import CurveData, GridData, GridPanel
from .kinds import KINDS
from .selection import FigureError, fmt

matplotlib.use("Agg")  # headless: never open a window, whatever MPLBACKEND says


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
        shown = [s for s in panel.series if not s.label.startswith("_")]
        for s in panel.series:
            if s.label == "_bound":
                ax.plot(s.x, s.y, ls="--", color="tab:red", label="_bound")
        for color, s in zip(_colors(len(shown)), shown, strict=True):
            if data.kind == "scaling":
                ax.plot(s.x, s.y, ls="none", marker="o", ms=4, color=color, label=s.label)
            elif data.kind == "accuracy-vs-rank":
                ax.plot(s.x, s.y, ls="none", marker="o", color=color, label=s.label)
                if s.lo is not None and s.hi is not None and s.xlo is not None and s.xhi is not None:
                    ax.errorbar(
                        s.x,
                        s.y,
                        yerr=_spread(s.y, s.lo, s.hi),
                        xerr=_spread(s.x, s.xlo, s.xhi),
                        ls="none",
                        color=color,
                        alpha=0.6,
                        label="_interval",
                    )
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
        if data.kind in ("spectrum", "scaling"):
            ax.set_xscale("log")
        if data.kind == "scaling" and panel.ceiling is not None:
            ax.set_ylim(0, panel.ceiling * 1.08)  # the bound's line leaves the plot where it is vacuous
        ax.set(title=panel.title, xlabel=data.xlabel, ylabel=data.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(title=data.legend or None, fontsize="small")
    fig.suptitle(data.title)
    return fig


def _spread(mid: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """matplotlib's (2, n) error bar lengths below and above each point."""
    m = np.asarray(mid, dtype=float)
    return np.vstack([m - np.asarray(lo, dtype=float), np.asarray(hi, dtype=float) - m])


def _cell_text(panel: GridPanel, i: int, j: int) -> str:
    """A cell's mean; with several seeds, +- half its interval over seeds on a second line."""
    text = f"{panel.z[i, j]:.1f}"
    if panel.seeds is not None and panel.lo is not None and panel.hi is not None and panel.seeds[i, j] > 1:
        text += f"\n\u00b1{(panel.hi[i, j] - panel.lo[i, j]) / 2:.1f}"
    return text


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
        _hatch_diverged(ax, panel, px, py)
        for (i, j), value in np.ndenumerate(panel.z):
            if np.isfinite(value):
                dark = value < vmin + 0.5 * (vmax - vmin)
                ax.text(
                    px[j],
                    py[i],
                    _cell_text(panel, i, j),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
        ax.set_xticks(px, [fmt(v) for v in data.xs])
        ax.set_yticks(py, [fmt(v) for v in data.ys])
        ax.set(title=panel.title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(mesh, ax=axes, label=data.zlabel)
    fig.suptitle(data.title)
    return fig


def _hatch_diverged(ax: Any, panel: GridPanel, px: np.ndarray, py: np.ndarray) -> None:
    """Cells whose runs all diverged: hatched, with their last rank ("div. 23.5"), not blank."""
    if panel.diverged is None:
        return
    ex, ey = _edges(px), _edges(py)
    for (i, j), value in np.ndenumerate(panel.diverged):
        if np.isfinite(value) and not np.isfinite(panel.z[i, j]):
            ax.fill_between(
                [ex[j], ex[j + 1]], ey[i], ey[i + 1], facecolor="none", edgecolor="grey", hatch="///", lw=0
            )
            ax.text(px[j], py[i], f"div.\n{value:.1f}", ha="center", va="center", fontsize=7, color="black")


# The drawings a figure kind may name (``kinds.FigureKind.drawing``).
DRAWINGS: dict[str, Callable[[Any], Figure]] = {"curves": curves_figure, "grid": contour_figure}


def make_figure(kind: str, store: Store, **options: Any) -> Figure:
    """The figure of one kind (``kinds.KINDS``); ``options`` are the keyword arguments of its
    ``*_data`` function."""
    row = KINDS.get(kind)
    if row is None:
        raise FigureError(f"unknown figure kind {kind!r}; choose from {', '.join(KINDS)}")
    return DRAWINGS[row.drawing](row.gather(store, **options))


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
