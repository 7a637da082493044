"""The spec's sweeps with their run counts and how many are done; Enter queues one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ...spec import SpecError, load_spec
from ...store import FINISHED
from ...sweep import expand_sweep
from ..messages import StoreRefreshed

if TYPE_CHECKING:
    from ..app import RankbiasApp


class LaunchScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("enter", "launch", "Queue sweep", key_display="⏎"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sweeps: dict[str, tuple[str, list[str]]] = {}  # name -> (description, run ids)
        self.problem = ""

    @property
    def rapp(self) -> RankbiasApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield DataTable(id="sweeps", cursor_type="row")
        yield Static(id="description")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        spec_path = self.rapp.spec_path
        title = f"launch a sweep of {spec_path}: Enter queues it (finished runs are skipped)"
        if spec_path is None:
            self.problem = "no spec file: start with `rankbias attach --spec experiments.toml`"
        else:
            try:
                spec = load_spec(spec_path)
                self.sweeps = {
                    name: (s.description, [p.run_id for p in expand_sweep(spec, name)])
                    for name, s in spec.sweeps.items()
                }
            except SpecError as err:
                self.problem = err.report()
        self.query_one("#title", Static).update(Text(self.problem or title, overflow="ellipsis"))
        table = self.query_one("#sweeps", DataTable)
        for column in ("sweep", "runs", "done", "running", "queued", "other"):
            table.add_column(column, key=column)
        self._fill()
        table.focus()

    def apply(self, message: StoreRefreshed) -> None:
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#sweeps", DataTable)
        status = {v.run_id: v.status for v in self.rapp.latest.snapshot.runs} if self.rapp.latest else {}
        rows = []
        for name, (_, ids) in self.sweeps.items():
            states = [status.get(i) for i in ids]
            done = sum(s in FINISHED for s in states)
            running = states.count("running")
            queued = states.count("queued")
            other = sum(s is not None for s in states) - done - running - queued
            rows.append((name, str(len(ids)), str(done), str(running), str(queued), str(other)))
        if rows == getattr(self, "_rows", None):
            return
        self._rows = rows
        cursor = table.cursor_row
        table.clear()
        for row in rows:
            table.add_row(*row, key=row[0])
        table.move_cursor(row=min(cursor, max(0, len(rows) - 1)), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = str(event.row_key.value)
        description = self.sweeps.get(name, ("", []))[0]
        self.query_one("#description", Static).update(Text(description or ""))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        table = self.query_one("#sweeps", DataTable)
        if not self.sweeps or not 0 <= table.cursor_row < len(self.sweeps):
            return
        name = list(self.sweeps)[table.cursor_row]
        self.rapp.launch(name)
        self.app.pop_screen()

    def action_back(self) -> None:
        self.app.pop_screen()
