"""The runs table: varied hyperparameters, status, progress, loss, accuracy and average rank.

Filtered by text (every word must appear in the run's id, sweep, status, device or ``key=value``
settings) and sorted by any column. A Line API widget rather than a ``DataTable``: each row is one
cached strip keyed by its texts, so a live update re-renders only the rows whose text changed
(a ``DataTable`` re-renders every visible cell on any update - 40-80 ms for 40 rows on a slow
CPU, several times a second with a busy scheduler). The cursor row is marked with ``>`` and bold
as well as colour, so it shows without colours (NO_COLOR).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...measures import MAIN_FIELDS
from ..format import bar, num
from ..model import SHORT, RunView, Snapshot

STATUS_ORDER = {s: i for i, s in enumerate(("running", "queued", "failed", "diverged", "cancelled", "done"))}
STATUS_STYLE = {
    "running": "bold",
    "failed": "bold red",
    "diverged": "yellow",
    "done": "green",
    "cancelled": "dim",
}
NUMERIC = {"epoch", "prog", "loss", "acc", "rank"}
PENDING = {"cancel": "cancelling", "resume": "resuming"}
MARK = "●"
GAP = 2  # spaces between columns


def search_text(view: RunView) -> str:
    settings = [f"{SHORT.get(k, k)}={view.config.get(k)}" for k in MAIN_FIELDS]
    settings += [f"{k}={view.config.get(k)}" for k in MAIN_FIELDS if k in SHORT]
    return " ".join([view.run_id, view.sweep, view.status, view.device or "", *settings]).lower()


class RunsTable(ScrollView, can_focus=True):
    """Rows keyed by run id; ``show`` a snapshot, ``set_filter``, ``cycle_sort``, ``toggle_mark``."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "select", "Detail", show=False),
    ]
    COMPONENT_CLASSES = {"runs-table--header", "runs-table--cursor", "runs-table--odd"}
    DEFAULT_CSS = """
    RunsTable { background: $surface; }
    RunsTable > .runs-table--header { text-style: bold; background: $panel; }
    RunsTable > .runs-table--cursor { background: $accent 40%; text-style: bold; }
    RunsTable:focus > .runs-table--cursor { background: $accent; }
    RunsTable > .runs-table--odd { background: $boost; }
    """
    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)

    class RowSelected(Message):
        """Enter or a double click on a row."""

        def __init__(self, run_id: str):
            super().__init__()
            self.run_id = run_id

    def __init__(self, *, id: str | None = None):  # noqa: A002
        super().__init__(id=id)
        self.snapshot: Snapshot | None = None
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.marked: set[str] = set()
        self.pending: Mapping[str, str] = {}
        self.columns: tuple[str, ...] = ()
        self._widths: dict[str, int] = {}
        self._order: list[str] = []
        self._cells: dict[str, tuple[str, ...]] = {}
        self._searches: dict[str, tuple[RunView, str]] = {}
        self._memo: dict[str, tuple[RunView, bool, str, tuple[str, ...], tuple[str, ...]]] = {}
        self._strips: LRUCache[tuple[Any, ...], Strip] = LRUCache(1024)

    # ----- what the dashboard calls -----------------------------------------------------------
    def show(self, snapshot: Snapshot, pending: Mapping[str, str]) -> None:
        self.snapshot, self.pending = snapshot, pending
        self._render_rows()

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._render_rows()

    def cycle_sort(self) -> str | None:
        """Sort by the next column (store order after the last); return its title."""
        columns = list(self.columns)
        position = columns.index(self.sort_column) + 1 if self.sort_column in columns else 0
        self.sort_by(columns[position] if position < len(columns) else None)
        return self.sort_column

    def sort_by(self, column: str | None, reverse: bool = False) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        self._render_rows()

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_column, not self.sort_reverse)

    def toggle_mark(self) -> str | None:
        run_id = self.selected_run_id()
        if run_id is not None:
            self.marked ^= {run_id}
            self._render_rows()
        return run_id

    def selected_run_id(self) -> str | None:
        return self._order[self.cursor_row] if 0 <= self.cursor_row < len(self._order) else None

    def visible_ids(self) -> list[str]:
        return list(self._order)

    def move_cursor(self, row: int) -> None:
        self.cursor_row = max(0, min(row, len(self._order) - 1))

    def cell(self, run_id: str, column: str) -> str:
        return self._cells[run_id][1 + self.columns.index(column)]  # [0] is the mark

    def column(self, column: str) -> list[str]:
        index = 1 + self.columns.index(column)
        return [self._cells[r][index] for r in self._order]

    # ----- rows and cells ---------------------------------------------------------------------
    def _column_keys(self, snap: Snapshot) -> tuple[str, ...]:
        sweep = ("sweep",) if len(snap.sweeps) > 1 else ()
        return ("run", *sweep, *snap.varied, "status", "epoch", "prog", "loss", "acc", "rank")

    def _cells_of(self, v: RunView, columns: tuple[str, ...]) -> tuple[str, ...]:
        """The row's texts; recomputed only when the run's view (a new object), mark or request changed."""
        marked, pending = v.run_id in self.marked, self.pending.get(v.run_id, "")
        memo = self._memo.get(v.run_id)
        if memo is not None and memo[0] is v and memo[1:4] == (marked, pending, columns):
            return memo[4]
        values = {
            "run": v.run_id[:8],
            "sweep": v.sweep,
            "status": PENDING.get(pending, v.status),
            "epoch": f"{v.epoch:.1f}/{v.epochs}" if v.epoch % 1 else f"{v.epoch:.0f}/{v.epochs}",
            "prog": bar(v.progress, 5),
            "loss": num(v.train_loss, ".3f"),
            "acc": num(v.test_acc, ".3f"),
            "rank": num(v.avg_rank, ".1f"),
        }
        cells = (MARK if marked else "",) + tuple(values.get(c, str(v.config.get(c, ""))) for c in columns)
        self._memo[v.run_id] = (v, marked, pending, columns, cells)
        return cells

    def _search(self, v: RunView) -> str:
        hit = self._searches.get(v.run_id)
        if hit is None or hit[0] is not v:
            hit = self._searches[v.run_id] = (v, search_text(v))
        return hit[1]

    def _sort_key(self, v: RunView) -> Any:
        c = self.sort_column
        if c == "status":
            return STATUS_ORDER.get(v.status, 99)
        if c in ("epoch", "prog"):
            return v.progress
        if c in ("loss", "acc", "rank"):
            value = {"loss": v.train_loss, "acc": v.test_acc, "rank": v.avg_rank}[c]
            return (value is None) != self.sort_reverse, value or 0.0  # missing values last
        if c in ("run", "sweep"):
            return v.run_id if c == "run" else v.sweep
        value = v.config.get(c or "")
        return (value is None, value if isinstance(value, (int, float)) else str(value))

    def _render_rows(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        keep = self.selected_run_id()
        columns = self._column_keys(snap)
        words = self.filter_text.lower().split()
        rows = [v for v in snap.runs if not words or all(w in self._search(v) for w in words)]
        if self.sort_column in columns:
            rows.sort(key=self._sort_key, reverse=self.sort_reverse)
        self.columns, self._order = columns, [v.run_id for v in rows]
        self._cells = {v.run_id: self._cells_of(v, columns) for v in rows}
        self._widths = {c: len(self._title(c)) for c in columns}
        for cells in self._cells.values():
            for c, text in zip(columns, cells[1:], strict=True):
                self._widths[c] = max(self._widths[c], len(text))
        width = 3 + sum(self._widths.values()) + GAP * (len(columns) - 1)
        self.virtual_size = Size(width, len(self._order) + 1)
        index = self._order.index(keep) if keep in self._order else self.cursor_row
        self.cursor_row = max(0, min(index, len(self._order) - 1))
        self.refresh()  # unchanged rows come from the strip cache

    # ----- drawing ----------------------------------------------------------------------------
    def _title(self, column: str) -> str:
        title = SHORT.get(column, column)
        if column == self.sort_column:
            title += " v" if self.sort_reverse else " ^"
        return title

    def _texts(self, cells: tuple[str, ...], cursor: bool) -> list[tuple[str, str]]:
        """(text, column) pieces of one line, padded to the column widths."""
        out = [((">" if cursor else " ") + (cells[0] or " "), "")]
        for i, (c, text) in enumerate(zip(self.columns, cells[1:], strict=True)):
            width = self._widths[c]
            gap = " " * (GAP if i else 1)
            out.append((gap + (text.rjust(width) if c in NUMERIC else text.ljust(width)), c))
        return out

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            key: tuple[Any, ...] = ("header", self.columns, tuple(self._widths.values()), self.sort_column)
            key += (self.sort_reverse, scroll_x, width)
            row = None
        else:
            index = scroll_y + y - 1
            if index >= len(self._order):
                return Strip.blank(width, self.rich_style)
            row = self._order[index]
            cursor = index == self.cursor_row
            key = ("row", self._cells[row], tuple(self._widths.values()), cursor, index % 2, scroll_x, width)
            key += (self.has_focus,)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strip(row, key, scroll_x, width)
            self._strips[key] = strip
        return strip

    def _strip(self, row: str | None, key: tuple[Any, ...], scroll_x: int, width: int) -> Strip:
        base = self.rich_style
        if row is None:
            style = base + self.get_component_rich_style("runs-table--header")
            header = (" ", *(self._title(c) for c in self.columns))
            texts = self._texts(header, cursor=False)
            segments = [Segment(text, style) for text, _ in texts]
        else:
            cursor, odd = key[3], key[4]
            style = base
            if odd:
                style += self.get_component_rich_style("runs-table--odd")
            if cursor:
                style += self.get_component_rich_style("runs-table--cursor")
            segments = []
            for text, column in self._texts(self._cells[row], cursor):
                extra = STATUS_STYLE.get(text.strip()) if column == "status" else None
                segments.append(Segment(text, style + Style.parse(extra) if extra else style))
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, style)

    # ----- keys and mouse ---------------------------------------------------------------------
    def watch_cursor_row(self, row: int) -> None:
        top, rows = int(self.scroll_y), max(1, self.size.height - 1)  # line 0 is the header
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + rows:
            self.scroll_to(y=row - rows + 1, animate=False)
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()  # theme or CSS changed: cached strips have old colours

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta * max(1, self.size.height - 2))

    def action_cursor_to(self, row: int) -> None:
        self.move_cursor(row if row >= 0 else len(self._order) - 1)

    def action_select(self) -> None:
        run_id = self.selected_run_id()
        if run_id is not None:
            self.post_message(self.RowSelected(run_id))

    def on_click(self, event: events.Click) -> None:
        scroll_x, scroll_y = self.scroll_offset
        if event.y == 0:
            column = self._column_at(event.x + scroll_x)
            if column is not None:
                same = column == self.sort_column
                self.sort_by(column, reverse=same and not self.sort_reverse)
            return
        self.move_cursor(scroll_y + event.y - 1)
        if event.chain >= 2:
            self.action_select()

    def _column_at(self, x: int) -> str | None:
        edge = 3 - GAP
        for c in self.columns:
            edge += GAP + self._widths[c]
            if x < edge:
                return c
        return None
