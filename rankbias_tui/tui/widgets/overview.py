"""The dashboard's sweep overview: one line per sweep (``tui.overview``), a cursor when focused
(tab), Enter to narrow the runs table to that sweep. Each line is redrawn only when its text changes.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..overview import SweepSummary

MAX_LINES = 4  # at 80x24 the runs table keeps the rest
GAP = 2


class SweepOverview(ScrollView, can_focus=True):
    """``show`` the snapshot's summaries; posts ``Chosen`` on Enter."""

    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("enter", "choose", "Its runs", key_display="⏎"),
    ]
    COMPONENT_CLASSES = {"sweep-overview--cursor", "sweep-overview--problem"}
    DEFAULT_CSS = """
    SweepOverview { height: auto; max-height: 4; background: $panel; overflow-x: hidden; }
    SweepOverview > .sweep-overview--cursor { text-style: bold reverse; }
    SweepOverview > .sweep-overview--problem { color: $error; }
    """
    cursor: reactive[int] = reactive(0, init=False)

    class Chosen(Message):
        """Enter on a sweep's line."""

        def __init__(self, sweep: str):
            super().__init__()
            self.sweep = sweep

    def __init__(self, *, id: str | None = None):  # noqa: A002
        super().__init__(id=id)
        self.summaries: tuple[SweepSummary, ...] = ()
        self._lines: list[str] = []

    def show(self, summaries: tuple[SweepSummary, ...]) -> None:
        if summaries == self.summaries:
            return
        self.summaries = summaries
        cells = [s.cells() for s in summaries]
        widths = [max((len(c[i]) for c in cells), default=0) for i in range(6)]
        lines = ["  ".join(c[i].ljust(widths[i]) for i in range(6)).rstrip() for c in cells]
        if len(lines) != len(self._lines):
            self._lines = lines
            self.virtual_size = Size(max(map(len, lines), default=0), len(lines))
            self.styles.height = min(MAX_LINES, len(lines))
            self.cursor = min(self.cursor, max(0, len(lines) - 1))
            self.refresh()
            return
        for y, line in enumerate(lines):
            if line != self._lines[y]:
                self._lines[y] = line
                self.refresh(Region(0, y - int(self.scroll_y), self.size.width, 1))

    def render_line(self, y: int) -> Strip:
        index = y + int(self.scroll_y)
        width = self.size.width
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        style = self.rich_style
        summary = self.summaries[index]
        if any(summary.counts.get(s, 0) for s in ("failed", "diverged", "interrupted")):
            style += self.get_component_rich_style("sweep-overview--problem")
        if self.has_focus and index == self.cursor:
            style += self.get_component_rich_style("sweep-overview--cursor")
        text = " " + self._lines[index]
        return Strip([Segment(text, style or Style())]).crop_extend(0, width, style)

    def watch_cursor(self, row: int) -> None:
        top = int(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + self.size.height:
            self.scroll_to(y=row - self.size.height + 1, animate=False)
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_move(self, delta: int) -> None:
        self.cursor = max(0, min(self.cursor + delta, len(self._lines) - 1))

    def action_choose(self) -> None:
        if 0 <= self.cursor < len(self.summaries):
            self.post_message(self.Chosen(self.summaries[self.cursor].name))
