"""The runs table widget: a frozen run id, then status, progress, loss, accuracy, rank, then the
hyperparameters that vary among the rows shown (what goes in which column: ``tui.rows``).

A Line API widget rather than a ``DataTable``: each row is one cached strip keyed by its texts, so
a live update re-renders only the rows whose text changed (a ``DataTable`` re-renders every visible
cell on any update - 40-80 ms for 40 rows on a slow CPU, several times a second with a busy
scheduler). The run id stays at the left when the other columns scroll sideways. The cursor row is
marked with ``>`` and bold as well as colour, so it shows without colours (NO_COLOR). Digits sort
by the column of that number (again: reversed), as does a click on a header.
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

from .. import rows as R
from ..model import RunView, Snapshot
from ..theme import STATUS_STYLE

MARK = "●"
GAP = 2  # spaces between columns
LEAD = 3  # cursor, mark, space: before the run id


class RunsTable(ScrollView, can_focus=True):
    """Rows keyed by run id; ``show`` a snapshot, ``set_filter``, ``sort_by``, ``toggle_mark``."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "select", "Detail", show=False),
        Binding("left", "scroll_left", "Scroll left", show=False),
        Binding("right", "scroll_right", "Scroll right", show=False),
    ]
    COMPONENT_CLASSES = {"runs-table--header", "runs-table--cursor", "runs-table--odd"}
    DEFAULT_CSS = """
    RunsTable { background: $surface; }
    RunsTable > .runs-table--header { text-style: bold; background: $panel; }
    RunsTable > .runs-table--cursor { text-style: bold reverse; }
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
        self.sort_column: str | None = None  # None: running runs first, then store order
        self.sort_reverse = False
        self.marked: set[str] = set()
        self.pending: Mapping[str, str] = {}
        self.columns: tuple[str, ...] = ()
        self._widths: dict[str, int] = {}
        self._order: list[str] = []
        self._cells: dict[str, tuple[str, ...]] = {}
        self._searches: dict[str, tuple[RunView, str]] = {}
        self._memo: dict[str, tuple[RunView, bool, str, tuple[str, ...], Any, tuple[str, ...]]] = {}
        self._columns_memo: tuple[tuple[Any, ...], tuple[str, ...]] | None = None
        self._strips: LRUCache[tuple[Any, ...], Strip] = LRUCache(1024)

    # ----- what the dashboard calls -----------------------------------------------------------
    def show(self, snapshot: Snapshot, pending: Mapping[str, str]) -> None:
        self.snapshot, self.pending = snapshot, pending
        self._render_rows()

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._render_rows()

    def sort_by(self, column: str | None, reverse: bool = False) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        self._render_rows()

    def sort_by_number(self, number: int) -> str | None:
        """Sort by the ``number``-th column (1 is the run id); the same one again reverses it."""
        if not 1 <= number <= len(self.columns):
            return None
        column = self.columns[number - 1]
        self.sort_by(column, reverse=column == self.sort_column and not self.sort_reverse)
        return column

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
    def _eta(self, run_id: str) -> float | None:
        return self.snapshot.run_eta.get(run_id) if self.snapshot is not None else None

    def _cells_of(self, v: RunView, columns: tuple[str, ...]) -> tuple[str, ...]:
        """The row's texts; recomputed only when the run's view (a new object), mark, request or
        ETA changed."""
        marked, pending, eta = v.run_id in self.marked, self.pending.get(v.run_id, ""), self._eta(v.run_id)
        memo = self._memo.get(v.run_id)
        if memo is not None and memo[0] is v and memo[1:5] == (marked, pending, columns, eta):
            return memo[5]
        row = (MARK if marked else "",) + R.cells(v, columns, pending, eta)
        self._memo[v.run_id] = (v, marked, pending, columns, eta, row)
        return row

    def _search(self, v: RunView) -> str:
        hit = self._searches.get(v.run_id)
        if hit is None or hit[0] is not v:
            hit = self._searches[v.run_id] = (v, R.search_text(v))
        return hit[1]

    def _columns(self, shown: list[RunView]) -> tuple[str, ...]:
        """The columns for the rows shown; recomputed when those rows (or their reasons, ETAs) change."""
        snap = self.snapshot
        etas = snap.run_eta if snap is not None else {}
        key = tuple((v.run_id, v.status, v.error, etas.get(v.run_id) is None) for v in shown)
        if self._columns_memo is None or self._columns_memo[0] != key:
            self._columns_memo = (key, R.columns_for(shown, etas))
        return self._columns_memo[1]

    def _render_rows(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        keep = self.selected_run_id()
        words = self.filter_text.lower().split()
        shown = [v for v in snap.runs if not words or R.matches(v, words, self._search(v))]
        columns = self._columns(shown)
        if self.sort_column is not None and self.sort_column not in columns:
            self.sort_column = None
        position = {v.run_id: i for i, v in enumerate(shown)}
        shown.sort(
            key=lambda v: R.sort_key(
                v, self.sort_column, self.sort_reverse, position[v.run_id], self._eta(v.run_id)
            ),
            reverse=self.sort_reverse,
        )
        self.columns, self._order = columns, [v.run_id for v in shown]
        self._cells = {v.run_id: self._cells_of(v, columns) for v in shown}
        self._widths = {c: len(self._title(c)) for c in columns}
        for row in self._cells.values():
            for c, text in zip(columns, row[1:], strict=True):
                self._widths[c] = max(self._widths[c], len(text))
        self.virtual_size = Size(self._frozen_width() + self._rest_width(), len(self._order) + 1)
        index = self._order.index(keep) if keep in self._order else self.cursor_row
        self.cursor_row = max(0, min(index, len(self._order) - 1))
        self.refresh()  # unchanged rows come from the strip cache

    # ----- drawing ----------------------------------------------------------------------------
    def _title(self, column: str) -> str:
        title = R.HEADER.get(column, R.TITLES.get(column, column))
        if column == self.sort_column:
            title += " v" if self.sort_reverse else " ^"
        return title

    def _frozen_width(self) -> int:
        return LEAD + self._widths.get(R.FROZEN, 0)

    def _rest_width(self) -> int:
        return sum(GAP + self._widths[c] for c in self.columns[1:])

    def _texts(self, row: tuple[str, ...], cursor: bool) -> list[tuple[str, str]]:
        """(text, column) pieces of one line, padded to the column widths; the first is frozen."""
        lead = (">" if cursor else " ") + (row[0] or " ") + " "
        out = [(lead + row[1].ljust(self._widths[R.FROZEN]), R.FROZEN)]
        for c, text in zip(self.columns[1:], row[2:], strict=True):
            width = self._widths[c]
            out.append((" " * GAP + (text.rjust(width) if c in R.NUMERIC else text.ljust(width)), c))
        return out

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        widths = tuple(self._widths.values())
        if not self.columns:
            return Strip.blank(width, self.rich_style)
        if y == 0:
            key: tuple[Any, ...] = ("header", self.columns, widths, self.sort_column, self.sort_reverse)
            row = None
        else:
            index = scroll_y + y - 1
            if index >= len(self._order):
                return Strip.blank(width, self.rich_style)
            row = self._order[index]
            key = ("row", self._cells[row], widths, index == self.cursor_row, index % 2, self.has_focus)
        key += (scroll_x, width)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strip(row, key, scroll_x, width)
            self._strips[key] = strip
        return strip

    def _strip(self, row: str | None, key: tuple[Any, ...], scroll_x: int, width: int) -> Strip:
        base = self.rich_style
        if row is None:
            style = base + self.get_component_rich_style("runs-table--header")
            texts = self._texts(("", *(self._title(c) for c in self.columns)), cursor=False)
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
                extra = STATUS_STYLE.get(text.strip()) if column == "status" and not cursor else None
                segments.append(Segment(text, style + Style.parse(extra) if extra else style))
        frozen = self._frozen_width()
        left = Strip(segments[:1]).crop_extend(0, min(frozen, width), style)
        rest = Strip(segments[1:]).crop_extend(scroll_x, scroll_x + max(0, width - frozen), style)
        return Strip.join([left, rest])

    # ----- keys and mouse ---------------------------------------------------------------------
    def watch_cursor_row(self, row: int) -> None:
        top, rows = int(self.scroll_y), max(1, self.scrollable_content_region.height - 1)  # line 0: header
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
        self.move_cursor(self.cursor_row + delta * max(1, self.scrollable_content_region.height - 2))

    def action_cursor_to(self, row: int) -> None:
        self.move_cursor(row if row >= 0 else len(self._order) - 1)

    def action_select(self) -> None:
        run_id = self.selected_run_id()
        if run_id is not None:
            self.post_message(self.RowSelected(run_id))

    def on_click(self, event: events.Click) -> None:
        scroll_x, scroll_y = self.scroll_offset
        if event.y == 0:
            column = self._column_at(event.x, scroll_x)
            if column is not None:
                same = column == self.sort_column
                self.sort_by(column, reverse=same and not self.sort_reverse)
            return
        self.move_cursor(scroll_y + event.y - 1)
        if event.chain >= 2:
            self.action_select()

    def _column_at(self, x: int, scroll_x: int) -> str | None:
        if x < self._frozen_width():
            return R.FROZEN if self.columns else None
        edge = self._frozen_width()  # the scrolled columns start here, shifted left by scroll_x
        for c in self.columns[1:]:
            edge += GAP + self._widths[c]
            if x + scroll_x < edge:
                return c
        return None
