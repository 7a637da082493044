"""Which column sorts the runs table: every column in a list (up/down and Enter pick any of them;
the digits pick the first ten, as they do straight from the dashboard, and a click on a header does
too). The same column again reverses the order."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ..rows import TITLES


class SortScreen(ModalScreen[int | None]):
    BINDINGS = [
        *(Binding(str(n % 10), f"choose({n})", show=False) for n in range(1, 11)),
        Binding("escape,s,q", "choose(None)", "Close"),
    ]

    def __init__(self, columns: tuple[str, ...], current: str | None, reverse: bool):
        super().__init__()
        self.columns, self.current, self.reverse = columns, current, reverse

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Sort by (enter or its number; the same again reverses):")
            options = []
            for n, column in enumerate(self.columns, start=1):
                key = str(n % 10) if n <= 10 else " "
                mark = (" (now, descending)" if self.reverse else " (now)") if column == self.current else ""
                options.append(Option(f"{key}  {TITLES.get(column, column)}{mark}", id=column))
            yield OptionList(*options, id="columns")
            if self.current is None:
                yield Label("now: running runs first, then store order", classes="hint")
            yield Label("esc: close", classes="hint")

    def on_mount(self) -> None:
        columns = self.query_one(OptionList)
        columns.focus()
        if self.current in self.columns:
            columns.highlighted = self.columns.index(self.current)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option_index + 1)

    def action_choose(self, number: int | None) -> None:
        self.dismiss(number)
