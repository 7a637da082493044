"""A yes/no question (y / n, Enter / Escape); with ``cancel``, Escape is a third answer (None)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label


class ConfirmScreen(ModalScreen[bool | None]):
    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "escape", "Cancel"),
    ]

    def __init__(self, question: str, cancel: bool = False):
        super().__init__()
        self.question, self.cancel = question, cancel

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, markup=False)  # it quotes run labels: values, not markup
            yield Label("y: yes   n: no" + ("   esc: cancel" if self.cancel else ""), classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def action_escape(self) -> None:
        self.dismiss(None if self.cancel else False)
