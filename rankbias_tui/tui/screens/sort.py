"""Which column sorts the runs table: each column with its number; one key chooses (the same
digits sort straight from the dashboard, and a click on a header does too)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

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
            yield Label("Sort by (press its number; again reverses):")
            for n, column in enumerate(self.columns[:10], start=1):
                mark = (" (now, descending)" if self.reverse else " (now)") if column == self.current else ""
                yield Label(f" {n % 10}  {TITLES.get(column, column)}{mark}")
            if self.current is None:
                yield Label("now: running runs first, then store order", classes="hint")
            yield Label("esc: close", classes="hint")

    def action_choose(self, number: int | None) -> None:
        self.dismiss(number)
