"""Charts drawn with textual-plotext; each one replots only when its data changed."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
from textual_plotext import PlotextPlot

from ...measures import shown_acc, shown_loss
from ...store import SpectrumRow
from ..format import bound
from ..model import RunDetail

MAX_LABELLED = 8  # more lines than this get no legend entries (a legend would hide the plot)
LOG_FLOOR = 1e-12  # log10 of a zero singular value is drawn here


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


class CurvesChart(Chart):
    """Train loss (left axis) and test accuracy (right axis) over epochs."""

    def show(self, detail: RunDetail) -> None:
        if not self.changed(("curves", detail.key, detail.series.keys())):
            return
        plt, series = self.plt, detail.series
        loss_name, acc_name = shown_loss(series), shown_acc(series)
        if loss_name not in series and acc_name not in series:
            return self.empty("loss / accuracy: no metrics yet")
        if loss_name in series:
            xs, ys = series[loss_name]
            plt.plot(list(xs), [_finite(y) for y in ys], label=loss_name.replace("_", " "), yside="left")
        if acc_name in series:
            xs, ys = series[acc_name]
            plt.plot(list(xs), list(ys), label=acc_name.replace("_", " ") + " (right)", yside="right")
        plt.title("loss and accuracy")
        plt.xlabel("epoch")
        self.refresh()


class RankChart(Chart):
    """Rank at eps of each measured layer over epochs, and their average."""

    def show(self, detail: RunDetail) -> None:
        if not self.changed(("ranks", detail.key, len(detail.measurements))):
            return
        series = detail.rank_series()
        if not series:
            return self.empty("rank: no measurements yet")
        plt = self.plt
        label_layers = len(series) - 1 <= MAX_LABELLED
        for name, (xs, ys) in series.items():
            average = name == "average"
            label = name if (average or label_layers) else None
            plt.plot(xs, ys, label=label, marker="hd" if average else "braille")
        eps = detail.measurements[-1][0].rank_eps
        plt.title(f"rank at eps={eps:g} per layer, and average")
        plt.xlabel("epoch")
        self.refresh()


class SpectrumChart(Chart):
    """Histogram of log10(sigma/||W||_F) of one layer at one measurement, marker at eps."""

    def show(self, s: SpectrumRow, index: int, count: int) -> None:
        if not self.changed(("hist", s.run_id, s.step, s.layer_index, index, count)):
            return
        plt = self.plt
        logs = np.log10(np.maximum(np.asarray(s.svals, dtype=float), LOG_FLOOR))
        plt.hist(logs.tolist(), bins=min(40, max(10, len(logs) // 3)), label="layer " + s.layer)
        eps = math.log10(s.rank_eps)
        plt.vline(eps)
        plt.xlim(min(float(logs.min()), eps) - 0.25, max(float(logs.max()), eps) + 0.25)
        cap = min(s.d_out, s.d_in)
        plt.title(
            f"{s.layer} {s.d_out}x{s.d_in} · measurement {index + 1}/{count} (epoch {s.epoch:g}) · "
            f"rank {s.rank}/{cap} · bound {bound(s.bound, s.d_out, s.d_in)}"
        )
        plt.xlabel(f"log10 sigma/||W||_F  (| at eps={s.rank_eps:g}: {s.rank} values above)")
        self.refresh()


class CompareChart(Chart):
    """Average-rank curves of several runs or groups, overlaid."""

    def show(self, lines: Sequence[tuple[str, int, tuple[tuple[float, float], ...]]], title: str) -> None:
        if not self.changed(("compare", tuple(lines), title)):
            return
        plt = self.plt
        drawn = [line for line in lines if line[2]]
        if not drawn:
            return self.empty(title + ": no measurements yet")
        labelled = len(drawn) <= MAX_LABELLED
        for label, count, curve in drawn:
            name = f"{label} ({count} runs)" if count > 1 else label
            plt.plot([e for e, _ in curve], [r for _, r in curve], label=name if labelled else None)
        plt.title(title)
        plt.xlabel("epoch")
        self.refresh()


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("nan")
