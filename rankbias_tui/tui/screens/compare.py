"""Average-rank curves of several runs overlaid, or of a sweep grouped by one hyperparameter."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ...measures import HPARAMS
from ..format import num
from ..messages import AppState, ExportRequested, StoreRefreshed, WatchCompare
from ..model import SHORT, group_curves
from ..widgets.charts import CompareChart

GROUPINGS: tuple[str | None, ...] = (None, *HPARAMS)


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("g", "group", "Group by"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self, run_ids: list[str], title: str, state: AppState, group_by: str | None = None):
        super().__init__()
        self.run_ids, self.title_text, self.group_by = list(run_ids), title, group_by
        self.state = state
        self.curves: Mapping[str, tuple[tuple[float, float], ...]] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield CompareChart(id="compare-chart")
        yield DataTable(id="legend", cursor_type="row")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#legend", DataTable)
        for column in ("curve", "runs", "first", "last", "measurements"):
            table.add_column(column, key=column)
        self.post_message(WatchCompare(tuple(self.run_ids)))
        self._draw()

    def on_unmount(self) -> None:
        self.app.post_message(WatchCompare(None))  # this screen takes no more messages

    def apply(self, message: StoreRefreshed) -> None:
        if message.curves is not None and message.curves != self.curves:
            self.curves = message.curves
            self._draw()

    def _draw(self) -> None:
        grouping = (
            "each run" if self.group_by is None else f"mean by {SHORT.get(self.group_by, self.group_by)}"
        )
        title = f"average rank: {self.title_text} ({len(self.run_ids)} runs), {grouping}"
        self.query_one("#title", Static).update(
            Text(title + "   g: group by", no_wrap=True, overflow="ellipsis")
        )
        latest = self.state.latest
        if self.curves is None or latest is None:
            return
        views = latest.snapshot.by_id()
        runs = [views[i] for i in self.run_ids if i in views]
        lines = group_curves(runs, self.curves, self.group_by)
        self.query_one(CompareChart).show(lines, "average rank over epochs")
        table = self.query_one("#legend", DataTable)
        table.clear()
        for label, count, curve in lines:
            first = num(curve[0][1], ".1f") if curve else "-"
            last = num(curve[-1][1], ".1f") if curve else "-"
            table.add_row(label, str(count), first, last, str(len(curve)))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_group(self) -> None:
        self.group_by = GROUPINGS[(GROUPINGS.index(self.group_by) + 1) % len(GROUPINGS)]
        self._draw()

    def action_export(self) -> None:
        self.post_message(ExportRequested("summary", self.run_ids, "compare", f"{len(self.run_ids)} runs"))
