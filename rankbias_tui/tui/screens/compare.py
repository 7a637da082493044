"""Curves of several runs overlaid, or of a sweep grouped by one hyperparameter: the average rank,
one layer's rank, test accuracy or the training loss (``m`` cycles), with a key table that names
every curve by its marker (any number of runs) and the highlighted row's curve drawn on top."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ...display import MISSING
from ...measures import HPARAMS, TEST_ACC, TRAIN_LOSS
from ...measures import SHORT_NAMES as SHORT
from ..format import num
from ..messages import AppState, ExportRequested, StoreRefreshed, WatchCompare
from ..model import AVG_RANK, group_curves
from ..widgets.charts import CompareChart, marked

GROUPINGS: tuple[str | None, ...] = (None, *HPARAMS)
EACH_RUN_MOST = 200  # curves drawn one per run at most: more opens grouped, or draws the first ones
NAMES = {AVG_RANK: "average rank", TEST_ACC: "test accuracy", TRAIN_LOSS: "train loss"}


def measure_name(measure: str) -> str:
    return (
        f"rank of {measure.partition(':')[2]}" if measure.startswith("rank:") else NAMES.get(measure, measure)
    )


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("g", "group", "Group by"),
        Binding("m", "measure", "Measure"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self, run_ids: list[str], title: str, state: AppState, group_by: str | None = None):
        super().__init__()
        self.run_ids, self.title_text = list(run_ids), title
        self.state = state
        self.group_by = group_by if group_by is not None else self._default_grouping()
        self.measure = AVG_RANK
        self.curves: Mapping[str, tuple[tuple[float, float], ...]] | None = None
        self.highlight: int | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield CompareChart(id="compare-chart")
        yield DataTable(id="legend", cursor_type="row")
        yield Footer(compact=True)

    def _default_grouping(self) -> str | None:
        """Each run, unless there are more than ``EACH_RUN_MOST`` of them (a whole sweep: a chart of
        20,000 curves says nothing and takes a minute to draw): then the mean by the first of the
        paper's hyperparameters that differs among them."""
        latest = self.state.latest
        if len(self.run_ids) <= EACH_RUN_MOST or latest is None:
            return None
        views = latest.snapshot.by_id()
        configs = [views[i].config for i in self.run_ids if i in views]
        return next((h for h in HPARAMS if len({c.value(h) for c in configs}) > 1), None)

    def on_mount(self) -> None:
        table = self.query_one("#legend", DataTable)
        for column in ("key", "curve", "runs", "first", "last", "points"):
            table.add_column(column, key=column)
        self.post_message(WatchCompare(tuple(self.run_ids), self.measure))
        self._draw()
        table.focus()

    def on_unmount(self) -> None:
        self.app.post_message(WatchCompare(None))  # this screen takes no more messages

    def apply(self, message: StoreRefreshed) -> None:
        if message.curves is not None and message.curves != self.curves:
            self.curves = message.curves
            self._draw()

    def _measures(self) -> list[str]:
        latest = self.state.latest
        layers = latest.layers if latest is not None else ()
        return [AVG_RANK, TEST_ACC, TRAIN_LOSS, *(f"rank:{layer}" for layer in layers)]

    def _draw(self) -> None:
        grouping = (
            "each run" if self.group_by is None else f"mean by {SHORT.get(self.group_by, self.group_by)}"
        )
        what = measure_name(self.measure)
        title = (
            f"{what}: {self.title_text} ({len(self.run_ids)} runs), {grouping}; █ the row under the cursor"
        )
        if self.curves is None:  # the poller reads every run's curve: many runs take seconds
            title = f"reading the curves of {len(self.run_ids)} runs… {title}"
        self.query_one("#title", Static).update(Text(title, no_wrap=True, overflow="ellipsis"))
        latest = self.state.latest
        if self.curves is None or latest is None:
            return
        views = latest.snapshot.by_id()
        runs = [views[i] for i in self.run_ids if i in views]
        lines = group_curves(runs, self.curves, self.group_by)
        if len(lines) > EACH_RUN_MOST:  # each run of a big comparison: the first ones
            lines = lines[:EACH_RUN_MOST]
            title = f"the first {EACH_RUN_MOST} of {len(runs)} runs (g: mean by a hyperparameter) · {title}"
            self.query_one("#title", Static).update(Text(title, no_wrap=True, overflow="ellipsis"))
        self.query_one(CompareChart).show(lines, f"{what} over epochs", what, self.highlight)
        table = self.query_one("#legend", DataTable)
        rows = []
        for i, (label, count, curve) in enumerate(lines):
            key = marked(i)[0]  # the highlighted row's curve is drawn █ (the rows do not change with it)
            first, last = (num(curve[0][1], ".3g"), num(curve[-1][1], ".3g")) if curve else (MISSING, MISSING)
            rows.append((key, label, str(count), first, last, str(len(curve))))
        if rows != getattr(self, "_rows", None):
            self._rows, cursor = rows, table.cursor_row
            table.clear()
            for row in rows:
                table.add_row(*row)
            table.move_cursor(row=min(cursor, max(0, len(rows) - 1)), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != self.highlight:
            self.highlight = event.cursor_row  # that curve drawn on top, as a solid line
            self._draw()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_group(self) -> None:
        self.group_by = GROUPINGS[(GROUPINGS.index(self.group_by) + 1) % len(GROUPINGS)]
        self._draw()

    def action_measure(self) -> None:
        options = self._measures()
        self.measure = (
            options[(options.index(self.measure) + 1) % len(options)] if self.measure in options else AVG_RANK
        )
        self.curves = None
        self.post_message(WatchCompare(tuple(self.run_ids), self.measure))
        self._draw()

    def action_export(self) -> None:
        self.post_message(ExportRequested("summary", self.run_ids, "compare", f"{len(self.run_ids)} runs"))
