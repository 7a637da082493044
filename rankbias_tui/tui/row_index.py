"""The runs table's rows as plain data, kept up to date by change (no Textual): which runs the
filter shows, in which order, with which texts and column widths.

A refresh touches only the runs whose view (a new object when the run changed: ``model.StoreFeed``),
ETA or pending request changed: each is matched against the filter again and moved to its new
place in the sorted order by a binary search, so a store of 20,000 runs with 16 running costs about
16 rows of work per refresh. Every row is filtered and sorted again only when the filter, the sort
or the set of runs changes, or when a column appears or goes (the first reason, the last ETA).
What the table's columns are and what a row says stays in ``tui.rows``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from ..measures import FIELDS, HPARAMS
from . import rows as R
from .model import RunView, varied_fields

MARK = "●"


@dataclass
class Changes:
    """What an update changed: ``layout`` (columns, widths, order, number of rows: redraw every
    line), else the ``rows`` whose text changed in place."""

    layout: bool = False
    rows: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.layout or bool(self.rows)


class RowIndex:
    """The shown runs in display order: ``update`` with each snapshot; ``set_filter``, ``sort_by``."""

    def __init__(self) -> None:
        self.runs: tuple[RunView, ...] = ()
        self.views: dict[str, RunView] = {}
        self.position: dict[str, int] = {}  # store order
        self.etas: Mapping[str, float | None] = {}
        self.pending: Mapping[str, str] = {}
        self.marked: set[str] = set()
        self.varied_all: tuple[str, ...] | None = None  # the varied fields of every run, if known
        self.words: tuple[R.Word, ...] = ()
        self.sort_column: str | None = None  # None: running runs first, then store order
        self.sort_reverse = False
        self.problems_first = False
        self.columns: tuple[str, ...] = ()
        self.widths: dict[str, int] = {}
        self.cells: dict[str, tuple[str, ...]] = {}  # of the shown runs; [0] is the mark
        self._keys: list[Any] = []  # the shown runs' sort keys, ascending
        self._ids: list[str] = []  # and their ids, in the same order
        self._key_of: dict[str, Any] = {}
        self._searches: dict[str, tuple[RunView, str]] = {}
        self._sweeps: Counter[str] = Counter()  # among the shown runs
        self._with_eta = 0
        self._with_why = 0
        self._flags: dict[str, tuple[str, bool, bool]] = {}
        # Every column a row may show whatever the filter (the varied fields of all runs), and each
        # run's texts for all of them: a new filter or sort picks its columns from these.
        self._universe: tuple[str, ...] = ()
        self._texts: dict[str, tuple[RunView, str, float | None, bool, tuple[str, ...]]] = {}
        self._pick: Any = itemgetter(0, 0)  # a run's texts -> the shown columns' (mark first)
        self._at_eta = self._at_why = 0  # where a run's texts have its ETA and its reason
        self._sort_keys: dict[str, tuple[RunView, float | None, int, Any]] = {}  # of the current sort

    # ----- reading ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def id_at(self, row: int) -> str:
        return self._ids[-1 - row] if self.sort_reverse else self._ids[row]

    def row_of(self, run_id: str | None) -> int | None:
        key = self._key_of.get(run_id or "")
        if key is None:
            return None
        i = bisect_left(self._keys, key)
        return len(self._ids) - 1 - i if self.sort_reverse else i

    def ids(self) -> list[str]:
        return self._ids[::-1] if self.sort_reverse else list(self._ids)

    def shown_views(self) -> list[RunView]:
        return [self.views[i] for i in self.ids()]

    # ----- changing ---------------------------------------------------------------------------
    def update(
        self,
        runs: tuple[RunView, ...],
        etas: Mapping[str, float | None],
        pending: Mapping[str, str],
        varied: tuple[str, ...] | None = None,
    ) -> Changes:
        """Take a newer picture of the store; only what changed since the last one is redone."""
        if runs is self.runs and etas is self.etas and pending == self.pending:
            return Changes()
        views = self.views
        new = {v.run_id: v for v in runs if views.get(v.run_id) is not v}
        same_runs = len(runs) == len(self.runs) and all(i in views for i in new)
        old_etas, old_pending = self.etas, self.pending
        self.runs, self.etas, self.pending, self.varied_all = runs, etas, dict(pending), varied
        if not same_runs:
            return self.rebuild()
        touched = {i for i in etas.keys() | old_etas.keys() if etas.get(i) != old_etas.get(i)}
        touched |= {i for i in pending.keys() | old_pending.keys() if pending.get(i) != old_pending.get(i)}
        return self._apply([*new.values(), *(views[i] for i in touched - new.keys() if i in views)])

    def _apply(self, changed: Iterable[RunView]) -> Changes:
        out = Changes()
        entered_or_left = False
        for v in changed:
            run_id = v.run_id
            self.views[run_id] = v
            old_key = self._key_of.get(run_id)
            old_cells = self.cells.get(run_id)
            if old_key is not None and self._matches(v) and self._key(v) == old_key:
                self._recount(v)  # same place: only its texts (most changes, in the default order)
                if self.cells[run_id] != old_cells:
                    out.rows.add(run_id)
                continue
            if old_key is not None:
                self._remove(run_id, old_key)
            if self._matches(v):
                key = self._add(v)
                if key != old_key:
                    out.layout = True
                if self.cells[run_id] != old_cells:
                    out.rows.add(run_id)
            if (old_key is None) != (run_id not in self._key_of):
                entered_or_left = out.layout = True
        if entered_or_left or self._column_flags_changed():
            columns = R.columns_for(self.shown_views(), self.etas, self._varied_shown())
            if columns != self.columns:
                return self.rebuild()
            out.layout = True
        for run_id in out.rows:
            out.layout |= self._widen(self.cells[run_id])
        return out

    def rebuild(self) -> Changes:
        """Filter and sort every run again (the filter, the sort or the set of runs changed); the
        texts and sort keys of the runs that did not change are kept from before."""
        self.views = {v.run_id: v for v in self.runs}
        self.position = {v.run_id: i for i, v in enumerate(self.runs)}
        self._set_universe()
        shown = [v for v in self.runs if self._matches(v)]
        texts = [self._full(v) for v in shown]
        sweeps = [v.sweep for v in shown]
        etas = list(map(bool, map(itemgetter(self._at_eta), texts)))  # a time left is never ""
        whys = list(map(bool, map(itemgetter(self._at_why), texts)))
        self._flags = dict(zip([v.run_id for v in shown], zip(sweeps, etas, whys, strict=True), strict=True))
        self._sweeps, self._with_eta, self._with_why = Counter(sweeps), sum(etas), sum(whys)
        varied = self._varied_shown(shown)
        self.columns = R.columns_of(len(self._sweeps) > 1, self._with_eta > 0, self._with_why > 0, varied)
        if self.runs and self.sort_column is not None and self.sort_column not in self.columns:
            self.sort_column = None
            self._sort_keys = {}
        self._pick = itemgetter(0, *(1 + self._universe.index(c) for c in self.columns))
        self.cells = dict(zip(self._flags, map(self._pick, texts), strict=True))
        self._key_of = {v.run_id: self._key(v) for v in shown}
        pairs = sorted(zip(self._key_of.values(), self._key_of, strict=True))
        self._keys, self._ids = [k for k, _ in pairs], [i for _, i in pairs]
        self.widths = {c: len(R.title(c, self.sort_column, self.sort_reverse)) for c in self.columns}
        for j, c in enumerate(self.columns, start=1):
            texts = map(len, map(itemgetter(j), self.cells.values()))
            self.widths[c] = max(self.widths[c], max(texts, default=0))
        return Changes(layout=True)

    def _set_universe(self) -> None:
        """The columns any filter may show: those of every run (all varied fields, the paper's
        three) and the optional ones; a change of them drops every run's kept texts."""
        varied = self.varied_all
        if varied is None:
            varied = varied_fields(v.config.stored for v in self.runs)
        fields = tuple(f for f in FIELDS if f in set(varied) | set(HPARAMS))
        universe = (R.FROZEN, *R.LIVE, "sweep", *fields, "eta", "why")
        if universe != self._universe:
            self._universe, self._texts = universe, {}
            self._at_eta, self._at_why = 1 + universe.index("eta"), 1 + universe.index("why")

    def set_filter(self, text: str) -> Changes:
        self.words = R.parse_filter(text)
        return self.rebuild()

    def sort_by(self, column: str | None, reverse: bool = False) -> Changes:
        self.sort_column, self.sort_reverse, self._sort_keys = column, reverse, {}
        return self.rebuild()

    def set_problems_first(self, on: bool) -> Changes:
        self.problems_first, self._sort_keys = on, {}
        return self.rebuild()

    def toggle_mark(self, run_id: str) -> Changes:
        self.marked ^= {run_id}
        return self._apply([self.views[run_id]])

    def mark_all_shown(self) -> Changes:
        ids = self.ids()
        self.marked = set() if self.marked >= set(ids) else self.marked | set(ids)
        return self.rebuild()

    # ----- one row ----------------------------------------------------------------------------
    def _matches(self, v: RunView) -> bool:
        if not self.words:
            return True
        hit = self._searches.get(v.run_id)
        if hit is None or hit[0] is not v:
            hit = self._searches[v.run_id] = (v, R.search_text(v))
        return R.matches(v, self.words, hit[1], self.etas.get(v.run_id))

    def _key(self, v: RunView) -> Any:
        eta, position = self.etas.get(v.run_id), self.position[v.run_id]
        kept = self._sort_keys.get(v.run_id)
        if kept is not None and kept[0] is v and kept[1] == eta and kept[2] == position:
            return kept[3]
        key = R.sort_key(v, self.sort_column, self.sort_reverse, position, eta)
        if self.problems_first:  # problems lead whichever way the rest is sorted
            key = (R.is_problem(v) == self.sort_reverse, key)
        self._sort_keys[v.run_id] = (v, eta, position, key)
        return key

    def _cells_of(self, v: RunView) -> tuple[str, ...]:
        """The mark and the shown columns' texts, picked from the run's texts for every column."""
        return self._pick(self._full(v))

    def _full(self, v: RunView) -> tuple[str, ...]:
        """The mark and the run's texts for every column any filter may show, made again only when
        the run, its ETA, its request or its mark changed."""
        run_id = v.run_id
        pending, eta, mark = self.pending.get(run_id, ""), self.etas.get(run_id), run_id in self.marked
        kept = self._texts.get(run_id)
        if kept is None or kept[0] is not v or kept[1] != pending or kept[2] != eta or kept[3] != mark:
            texts = (MARK if mark else "", *R.cells(v, self._universe, pending, eta))
            kept = self._texts[run_id] = (v, pending, eta, mark, texts)
        return kept[4]

    def _add(self, v: RunView) -> Any:
        key = self._key(v)
        i = bisect_left(self._keys, key)
        self._keys.insert(i, key)
        self._ids.insert(i, v.run_id)
        self._key_of[v.run_id] = key
        self.cells[v.run_id] = self._cells_of(v)
        self._flags[v.run_id] = self._count(v)
        return key

    def _remove(self, run_id: str, key: Any) -> None:
        i = bisect_left(self._keys, key)
        del self._keys[i], self._ids[i]
        del self._key_of[run_id], self.cells[run_id]
        self._tally(self._flags.pop(run_id), -1)

    def _recount(self, v: RunView) -> None:
        """A shown run changed in place: its texts and what it counts for the optional columns."""
        self._tally(self._flags[v.run_id], -1)
        self._flags[v.run_id] = self._count(v)
        self.cells[v.run_id] = self._cells_of(v)

    def _count(self, v: RunView) -> tuple[str, bool, bool]:
        """Count a shown run's sweep, ETA and reason (what decides the optional columns)."""
        texts = self._full(v)
        flags = (v.sweep, bool(texts[self._at_eta]), bool(texts[self._at_why]))
        self._tally(flags, 1)
        return flags

    def _tally(self, flags: tuple[str, bool, bool], sign: int) -> None:
        sweep, eta, why = flags
        self._sweeps[sweep] += sign
        self._with_eta += sign * eta
        self._with_why += sign * why

    def _column_flags_changed(self) -> bool:
        has = set(self.columns)
        return (
            (self._with_eta > 0) != ("eta" in has)
            or (self._with_why > 0) != ("why" in has)
            or (len(+self._sweeps) > 1) != ("sweep" in has)
        )

    def _varied_shown(self, shown: list[RunView] | None = None) -> tuple[str, ...]:
        """The varied fields of the rows shown: every run's when all are (the feed knows them),
        else looked for among those only."""
        count = len(shown) if shown is not None else len(self._ids)
        if count == len(self.runs) and self.varied_all is not None:
            return self.varied_all
        views = shown if shown is not None else self.shown_views()
        return varied_fields((v.config.stored for v in views), among=self._universe)

    def _widen(self, row: tuple[str, ...]) -> bool:
        wider = False
        for c, text in zip(self.columns, row[1:], strict=True):
            if len(text) > self.widths[c]:
                self.widths[c], wider = len(text), True
        return wider
