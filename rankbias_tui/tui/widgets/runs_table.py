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
from ..model import Snapshot
from ..row_index import Changes, RowIndex
from ..theme import STATUS_STYLE

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
        Binding("enter", "select", "Detail", key_display="⏎"),
        Binding("left", "page_x(-1)", "Columns left", show=False),
        Binding("right", "page_x(1)", "Columns right", show=False),
    ]
    COMPONENT_CLASSES = {"runs-table--header", "runs-table--cursor", "runs-table--odd"}
    DEFAULT_CSS = """
    RunsTable { background: $surface; }
    RunsTable > .runs-table--header { text-style: bold; background: $panel; }
    RunsTable > .runs-table--cursor { text-style: bold reverse; }
    RunsTable > .runs-table--odd { background: $boost; }
    """
    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)

    class ViewChanged(Message):
        """The filter, the sort or the problems-first order changed (the dashboard remembers them)."""

    class RowSelected(Message):
        """Enter or a double click on a row."""

        def __init__(self, run_id: str):
            super().__init__()
            self.run_id = run_id

    def __init__(self, *, id: str | None = None):  # noqa: A002
        super().__init__(id=id)
        self.snapshot: Snapshot | None = None
        self.rows = RowIndex()
        self.filter_text = ""
        self._cursor_id: str | None = None  # the run the cursor is on, kept there when rows move
        self._moved = False  # until the cursor is moved it stays on the first row
        self._strips: LRUCache[tuple[Any, ...], Strip] = LRUCache(1024)

    # ----- what the dashboard reads -------------------------------------------------------------
    @property
    def columns(self) -> tuple[str, ...]:
        return self.rows.columns

    @property
    def sort_column(self) -> str | None:
        return self.rows.sort_column

    @property
    def sort_reverse(self) -> bool:
        return self.rows.sort_reverse

    @property
    def marked(self) -> set[str]:
        return self.rows.marked

    @property
    def problems_first(self) -> bool:
        return self.rows.problems_first

    # ----- what the dashboard calls -----------------------------------------------------------
    def show(self, snapshot: Snapshot, pending: Mapping[str, str]) -> None:
        """Take a newer picture: only the rows that changed are redone and redrawn."""
        self.snapshot = snapshot
        self._redraw(self.rows.update(snapshot.runs, snapshot.run_eta, pending, snapshot.varied))

    def set_filter(self, text: str) -> None:
        self.filter_text, self._moved = text, True  # the cursor follows its run from now on
        self._redraw(self.rows.set_filter(text))
        self.post_message(self.ViewChanged())

    def sort_by(self, column: str | None, reverse: bool = False) -> None:
        self._moved = True
        self._redraw(self.rows.sort_by(column, reverse))
        self.post_message(self.ViewChanged())

    def sort_by_number(self, number: int) -> str | None:
        """Sort by the ``number``-th column (1 is the run id); the same one again reverses it."""
        if not 1 <= number <= len(self.columns):
            return None
        column = self.columns[number - 1]
        self.sort_by(column, reverse=column == self.sort_column and not self.sort_reverse)
        return column

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_column, not self.sort_reverse)

    def restore_view(self, text: str, column: str | None, reverse: bool, problems_first: bool) -> None:
        """The filter and order of an earlier attach (the cursor stays on the first row)."""
        self.filter_text = text
        self.rows.words = R.parse_filter(text)
        self.rows.sort_column, self.rows.sort_reverse = column, reverse
        self._redraw(self.rows.set_problems_first(problems_first))

    def set_problems_first(self, on: bool) -> None:
        self._redraw(self.rows.set_problems_first(on))
        self.post_message(self.ViewChanged())

    def toggle_mark(self) -> str | None:
        run_id = self.selected_run_id()
        if run_id is not None:
            self._redraw(self.rows.toggle_mark(run_id))
        return run_id

    def mark_all_shown(self) -> int:
        """Mark every row shown (all marked already: unmark them); return how many are marked."""
        self._redraw(self.rows.mark_all_shown())
        return len(self.marked)

    def next_problem(self) -> str | None:
        """Move the cursor to the next problem run below it (wrapping); return its id."""
        rows, n = self.rows, len(self.rows)
        for step in range(1, n + 1):
            row = (self.cursor_row + step) % n
            if R.is_problem(rows.views[rows.id_at(row)]):
                self.move_cursor(row)
                return rows.id_at(row)
        return None

    def selected_run_id(self) -> str | None:
        return self.rows.id_at(self.cursor_row) if 0 <= self.cursor_row < len(self.rows) else None

    def visible_ids(self) -> list[str]:
        return self.rows.ids()

    def shown_count(self) -> tuple[int, int]:
        """(rows shown, runs in the store)."""
        return len(self.rows), len(self.rows.runs)

    def move_cursor(self, row: int) -> None:
        self._moved = True
        self.cursor_row = max(0, min(row, len(self.rows) - 1))

    def cell(self, run_id: str, column: str) -> str:
        return self.rows.cells[run_id][1 + self.columns.index(column)]  # [0] is the mark

    def column(self, column: str) -> list[str]:
        index = 1 + self.columns.index(column)
        return [self.rows.cells[r][index] for r in self.rows.ids()]

    def _redraw(self, changes: Changes) -> None:
        """Redraw what ``changes`` says changed: every line, or the lines of the rows that did."""
        if not changes:
            return
        if changes.layout:
            self._size_virtually()
            row = self.rows.row_of(self._cursor_id) if self._moved else 0
            self.cursor_row = max(0, min(row if row is not None else self.cursor_row, len(self.rows) - 1))
            self.refresh()  # unchanged rows come from the strip cache
            return
        top, height = int(self.scroll_y), self.size.height
        for run_id in changes.rows:
            row = self.rows.row_of(run_id)
            if row is not None and top <= row < top + height:
                self.refresh_line(row + 1)  # line 0 is the header

    # ----- drawing ----------------------------------------------------------------------------
    def _title(self, column: str) -> str:
        return R.title(column, self.sort_column, self.sort_reverse)

    @property
    def _widths(self) -> dict[str, int]:
        return self.rows.widths

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
        if not self.columns or self.snapshot is None:  # nothing read yet: no header either
            return Strip.blank(width, self.rich_style)
        if y == 0:
            key: tuple[Any, ...] = ("header", self.columns, widths, self.sort_column, self.sort_reverse)
            row = None
        else:
            index = scroll_y + y - 1
            if index >= len(self.rows):
                return Strip.blank(width, self.rich_style)
            row = self.rows.id_at(index)
            key = ("row", self.rows.cells[row], widths, index == self.cursor_row, index % 2, self.has_focus)
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
            for text, column in self._texts(self.rows.cells[row], cursor):
                extra = STATUS_STYLE.get(text.strip()) if column == "status" and not cursor else None
                segments.append(Segment(text, style + Style.parse(extra) if extra else style))
        cut = self._cut_column(scroll_x)
        if cut is not None:  # its text would start mid-value right after the id: blank it
            old = segments[1 + cut]
            segments[1 + cut] = Segment(" " * len(old.text), old.style)
        frozen = self._frozen_width()
        left = Strip(segments[:1]).crop_extend(0, min(frozen, width), style)
        rest = Strip(segments[1:]).crop_extend(scroll_x, scroll_x + max(0, width - frozen), style)
        return Strip.join([left, rest])

    def _size_virtually(self) -> None:
        """Wide enough that a page of columns can start at any column (the last page ends blank)."""
        frozen, rest, starts = self._frozen_width(), self._rest_width(), self._starts()
        view = self.size.width - frozen
        width = max(rest, starts[-1] + view) if starts and view > 0 else rest
        self.virtual_size = Size(frozen + width, len(self.rows) + 1)

    def on_resize(self) -> None:
        if self.columns:
            self._size_virtually()

    def _starts(self) -> list[int]:
        """Where each scrolled column (its gap first) starts in the scrolled part."""
        out, edge = [], 0
        for c in self.columns[1:]:
            out.append(edge)
            edge += GAP + self._widths[c]
        return out

    def _cut_column(self, scroll_x: int) -> int | None:
        """The scrolled column whose text the left edge cuts, if any."""
        for j, start in enumerate(self._starts()):
            if start + GAP < scroll_x < start + GAP + self._widths[self.columns[1 + j]]:
                return j
        return None

    def action_page_x(self, direction: int) -> None:
        """Scroll sideways by a page of whole columns: the first column not wholly in view comes
        to the left edge (right), or the columns before the left edge that fit (left)."""
        starts, x = self._starts(), int(self.scroll_x)
        view = max(1, self.size.width - self._frozen_width())
        if direction > 0:
            ends = [s + GAP + self._widths[c] for s, c in zip(starts, self.columns[1:], strict=True)]
            target = next((s for s, e in zip(starts, ends, strict=True) if e > x + view and s > x), x)
        else:
            target = min((s for s in starts if x - view <= s < x), default=0)
        self.scroll_to(x=target, animate=False)

    # ----- keys and mouse ---------------------------------------------------------------------
    def watch_cursor_row(self, row: int) -> None:
        self._cursor_id = self.selected_run_id()
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
        self.move_cursor(row if row >= 0 else len(self.rows) - 1)

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
