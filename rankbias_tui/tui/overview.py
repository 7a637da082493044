"""The dashboard's sweep overview as plain data (no Textual): per sweep, its runs by status, how far
it got, the best and median average rank and test accuracy, and the spread of its ranks.

``SweepTally`` is kept by change like the runs table (``row_index``): a run that changed leaves its
sweep's counts and sorted value lists and enters them again (binary searches), and only the sweeps
touched are summarised again, so a refresh costs about the runs that changed, not the store.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..measures import Status
from .format import bar


class RunView(Protocol):
    """What the tally reads of a run (``views.RunView``)."""

    sweep: str
    status: str
    avg_rank: float | None
    test_acc: float | None

    @property
    def progress(self) -> float: ...


SPARKS = "▁▂▃▄▅▆▇█"
BINS = 8
PROBLEMS = (Status.FAILED, Status.DIVERGED, Status.INTERRUPTED)
# (symbol, statuses) in the order shown; the help explains them
GROUPS = (
    ("✓", (Status.DONE,)),
    ("▶", (Status.RUNNING,)),
    ("…", (Status.QUEUED,)),
    ("✗", PROBLEMS),
    ("■", (Status.CANCELLED, Status.STOPPED)),
)


@dataclass(frozen=True)
class SweepSummary:
    """One line of the overview."""

    name: str
    runs: int
    counts: Mapping[str, int]
    progress: float  # mean over the runs, 0..1
    best_rank: float | None
    median_rank: float | None
    best_acc: float | None
    median_acc: float | None
    spread: tuple[int, ...] = ()  # runs per rank bin, lowest rank first

    def cells(self) -> tuple[str, ...]:
        """The texts of its line: name, counts, progress, rank, accuracy, sparkline."""
        counts = " ".join(
            f"{symbol}{n}"
            for symbol, statuses in GROUPS
            if (n := sum(self.counts.get(s, 0) for s in statuses))
        )
        return (
            self.name,
            counts,
            f"{bar(self.progress, 5)} {self.progress:4.0%}",
            f"rank {_num(self.best_rank, '.1f')}/{_num(self.median_rank, '.1f')}",
            f"acc {_num(self.best_acc, '.3f')}/{_num(self.median_acc, '.3f')}",
            sparkline(self.spread),
        )


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def sparkline(counts: Iterable[int]) -> str:
    counts = list(counts)
    top = max(counts, default=0)
    if not top:
        return ""
    return "".join(
        " " if not n else SPARKS[min(len(SPARKS) - 1, (n * len(SPARKS) - 1) // top)] for n in counts
    )


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


@dataclass
class _Sweep:
    counts: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    progress: float = 0.0
    ranks: list[float] = field(default_factory=list)  # sorted
    accs: list[float] = field(default_factory=list)  # sorted

    def change(self, v: RunView, sign: int) -> None:
        self.counts[v.status] += sign
        self.runs += sign
        self.progress += sign * v.progress
        for values, value in ((self.ranks, v.avg_rank), (self.accs, v.test_acc)):
            if value is None or value != value:  # NaN never sorts
                continue
            if sign > 0:
                insort(values, value)
            else:
                del values[bisect_left(values, value)]

    def summary(self, name: str) -> SweepSummary:
        ranks, accs = self.ranks, self.accs
        spread: tuple[int, ...] = ()
        if ranks:
            low, high = ranks[0], ranks[-1]
            width = (high - low) / BINS or 1.0
            edges = [low + width * (i + 1) for i in range(BINS - 1)]
            cuts = [0, *(bisect_left(ranks, e) for e in edges), len(ranks)]
            spread = tuple(b - a for a, b in zip(cuts, cuts[1:], strict=False))
        return SweepSummary(
            name=name,
            runs=self.runs,
            counts={status: n for status, n in self.counts.items() if n},
            progress=round(self.progress / self.runs, 9) if self.runs else 0.0,  # sums drift
            best_rank=ranks[0] if ranks else None,
            median_rank=_median(ranks),
            best_acc=accs[-1] if accs else None,
            median_acc=_median(accs),
            spread=spread,
        )


class SweepTally:
    """Per-sweep counts and sorted values, changed run by run; ``summaries`` in sweep order."""

    def __init__(self, views: Iterable[RunView] = ()) -> None:
        self._sweeps: dict[str, _Sweep] = {}
        self._cache: dict[str, SweepSummary] = {}
        for v in views:
            self._sweep(v.sweep).change(v, 1)

    def _sweep(self, name: str) -> _Sweep:
        if name not in self._sweeps:
            self._sweeps[name] = _Sweep()
        return self._sweeps[name]

    def replace(self, old: RunView, new: RunView) -> None:
        self._sweep(old.sweep).change(old, -1)
        self._sweep(new.sweep).change(new, 1)
        self._cache.pop(old.sweep, None)
        self._cache.pop(new.sweep, None)

    def summaries(self, order: Iterable[str] = ()) -> tuple[SweepSummary, ...]:
        names = [n for n in order if n in self._sweeps]
        names += [n for n in self._sweeps if n not in names]
        out = []
        for name in names:
            if self._sweeps[name].runs <= 0:
                continue
            if name not in self._cache:
                self._cache[name] = self._sweeps[name].summary(name)
            out.append(self._cache[name])
        return tuple(out)
