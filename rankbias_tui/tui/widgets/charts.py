"""Charts drawn with textual-plotext; each one replots only when its data changed.

Every series has a marker of its own as well as a colour (``theme.MARKERS``), so the curves differ
without colour (``NO_COLOR``) too; epoch axes show whole epochs from 0 to the run's last, the same
range on every chart of a run; keys are in the titles rather than legends over the first epochs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
from textual_plotext import PlotextPlot

from ...measures import ACC, LOSS, TEST_ACC, TRAIN_LOSS, shown_acc, shown_loss
from ...store import SpectrumRow
from ..format import bound
from ..model import RunDetail
from ..theme import MARKERS

LOG_FLOOR = 1e-12  # log10 of a zero singular value is drawn here
COLORS = ("cyan+", "orange+", "green+", "magenta+", "yellow+", "red+", "blue+", "white")
NAMES = {TEST_ACC: "test acc", ACC: "batch acc (running)", TRAIN_LOSS: "train loss", LOSS: "batch loss"}


def epoch_ticks(last: float, most: int = 8) -> list[int]:
    """Whole epochs from 0 to ``last`` at a round stride (1, 2, 5, 10, 20, 25, 50, ...), at most
    ``most`` + 1 ticks."""
    end = max(1, math.ceil(last))
    stride = next((s for s in STRIDES if end / s <= most), math.ceil(end / most))
    return list(range(0, end + 1, stride))


STRIDES = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000)


def marked(index: int) -> tuple[str, str]:
    """The marker and colour of the ``index``-th series."""
    return MARKERS[index % len(MARKERS)], COLORS[index % len(COLORS)]


class Chart(PlotextPlot):
    """A PlotextPlot that redraws only when ``key`` differs from the last one drawn."""

    def __init__(self, *, id: str | None = None, classes: str | None = None):  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.key: Hashable = object()

    def changed(self, key: Hashable) -> bool:
        if key == self.key:
            return False
        self.key = key
        self.plt.clear_figure()
        return True

    def empty(self, title: str) -> None:
        self.plt.title(title)
        self.refresh()

    def epoch_axis(self, last: float) -> None:
        """x from epoch 0 to ``last`` with whole-number ticks, labelled."""
        ticks = epoch_ticks(last)
        self.plt.xlim(0, max(1, math.ceil(last)))
        self.plt.xticks(ticks, [str(t) for t in ticks])
        self.plt.xlabel("epoch")


class CurvesChart(Chart):
    """The loss (left axis) and test accuracy (right axis) over epochs."""

    def show(self, detail: RunDetail) -> None:
        if not self.changed(("curves", detail.key, detail.series.keys())):
            return
        plt, series = self.plt, detail.series
        loss_name, acc_name = shown_loss(series), shown_acc(series)
        if loss_name not in series and acc_name not in series:
            return self.empty("loss / accuracy: no metrics yet")
        key = []
        for index, (name, side) in enumerate(((loss_name, "left"), (acc_name, "right"))):
            if name in series:
                xs, ys = series[name]
                marker, color = marked(index)
                plt.plot(list(xs), [_finite(y) for y in ys], marker=marker, color=color, yside=side)
                key.append(f"{marker} {NAMES.get(name, name)} ({side})")
        plt.ylabel("loss", yside="left")
        plt.ylabel("accuracy", yside="right")
        plt.title("  ".join(key))
        self.epoch_axis(float(detail.run.config.epochs))
        self.refresh()


class RankChart(Chart):
    """Rank at eps of each measured layer over epochs, and their average."""

    def show(self, detail: RunDetail) -> None:
        if not self.changed(("ranks", detail.key, len(detail.measurements), self.size.width)):
            return
        series = detail.rank_series()
        if not series:
            return self.empty("rank: no measurements yet")
        plt, key = self.plt, []
        for index, (name, (xs, ys)) in enumerate(series.items()):
            marker, color = ("█", "white") if name == "average" else marked(index)
            plt.plot(xs, ys, marker=marker, color=color)
            key.append(f"{marker} {'avg' if name == 'average' else name}")
        eps = detail.measurements[-1][0].rank_eps
        title = f"rank at eps={eps:g}: " + " ".join(key)
        if len(title) > max(20, self.size.width - 2):  # many layers: the key would not fit
            title = f"rank at eps={eps:g} per layer (markers), █ average"
        plt.title(title)
        plt.ylabel("rank")
        self.epoch_axis(float(detail.run.config.epochs))
        self.refresh()


class SpectrumChart(Chart):
    """Histograms of log10(sigma/||W||_F) of one layer at initialisation and at the measurement
    shown, overlaid, with a marker at eps."""

    def show(self, s: SpectrumRow, index: int, count: int, first: SpectrumRow | None = None) -> None:
        if not self.changed(("hist", s.run_id, s.step, s.layer_index, index, count, first is not None)):
            return
        plt = self.plt
        logs = _logs(s)
        eps = math.log10(s.rank_eps)
        low, high = min(float(logs.min()), eps), max(float(logs.max()), eps)
        overlay = first is not None and first.step != s.step
        if overlay:
            init = _logs(first)  # type: ignore[arg-type]
            low, high = min(low, float(init.min())), max(high, float(init.max()))
            plt.hist(init.tolist(), bins=_bins(init), marker="░", color="blue+")
        plt.hist(logs.tolist(), bins=_bins(logs), marker="█", color="orange+")
        plt.vline(eps, color="red+")
        plt.xlim(low - 0.25, high + 0.25)
        cap = min(s.d_out, s.d_in)
        plt.title(
            f"{s.layer} {s.d_out}x{s.d_in} · epoch {s.epoch:g} ({index + 1}/{count}) · "
            f"rank {s.rank}/{cap} · "
            f"bound {bound(s.bound, s.d_out, s.d_in)}"
        )
        key = (
            f"░ init █ epoch {s.epoch:g}" if overlay else f"█ epoch {s.epoch:g}"
        )  # a key, not a legend on the bars
        plt.xlabel(f"log10 sigma/||W||_F · | eps={s.rank_eps:g} · {key}")
        plt.ylabel("count")
        self.refresh()


class CompareChart(Chart):
    """Curves of several runs or groups overlaid, the highlighted one drawn last and bold."""

    def show(
        self,
        lines: Sequence[tuple[str, int, tuple[tuple[float, float], ...]]],
        title: str,
        ylabel: str = "",
        highlight: int | None = None,
    ) -> None:
        if not self.changed(("compare", tuple(lines), title, ylabel, highlight)):
            return
        plt = self.plt
        drawn = [(i, line) for i, line in enumerate(lines) if line[2]]
        if not drawn:
            return self.empty(title + ": no measurements yet")
        drawn.sort(key=lambda item: item[0] == highlight)  # the highlighted curve on top
        last = 0.0
        for i, (_, _, curve) in drawn:
            marker, color = ("█", "white") if i == highlight else marked(i)
            plt.plot([e for e, _ in curve], [r for _, r in curve], marker=marker, color=color)
            last = max(last, max(e for e, _ in curve))
        plt.title(title)
        plt.ylabel(ylabel)
        self.epoch_axis(last)
        self.refresh()


def _logs(s: SpectrumRow) -> np.ndarray:
    return np.log10(np.maximum(np.asarray(s.svals, dtype=float), LOG_FLOOR))


def _bins(logs: np.ndarray) -> int:
    return min(40, max(10, len(logs) // 3))


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("nan")
