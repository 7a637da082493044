"""The dashboard: header with counts, ETA and devices; the live, filterable, sortable runs table.

It opens other screens and asks for actions by posting messages to the app (``messages``)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from ...measures import Status
from .. import view_state
from ..messages import (
    AppState,
    ExportRequested,
    OpenCompare,
    OpenLaunch,
    OpenRun,
    ResumeRequested,
    StoreRefreshed,
)
from ..model import RunView
from ..widgets.overview import SweepOverview
from ..widgets.runs_table import RunsTable
from ..widgets.status import StatusHeader
from .confirm import ConfirmScreen
from .run_actions import ask_to_cancel, cannot_resume
from .sort import SortScreen

DEBOUNCE_FROM = 2_000  # runs: from here on the filter waits for a pause in typing
DEBOUNCE_S = 0.2


class DashboardScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "open", "Detail", key_display="⏎"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse sort", show=False),
        *(Binding(str(n % 10), f"sort_number({n})", f"Sort by column {n}", show=False) for n in range(1, 11)),
        Binding("space", "mark", "Mark", key_display="␣", show=False),
        Binding("a", "mark_all", "Mark all shown", show=False),
        Binding("p", "next_problem", "Problem"),
        Binding("P", "problems_first", "Problems first", show=False),
        Binding("v", "compare", "Compare"),
        Binding("x", "cancel", "Cancel", show=False),  # 80 columns: in the help
        Binding("r", "resume", "Resume", show=False),  # 80 columns: in the help
        Binding("l", "launch", "Launch"),
        Binding("e", "export", "Export"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("o", "overview", "Sweep overview", show=False),
    ]

    def __init__(self, state: AppState, view_file: Path | None = None):
        super().__init__()
        self.state = state
        self.view_file = view_file  # where the filter and sort are remembered (None: nowhere)
        self._saved: view_state.ViewState | None = None
        self._filter_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        with Horizontal(id="filter-row"):
            yield Input(placeholder="/ filter: id, sweep, status, reason; B=8 wd=0.01; acc>0.9", id="filter")
            yield Static("", id="shown")
        yield SweepOverview(id="overview")
        yield RunsTable(id="runs")
        yield Footer(compact=True)

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    def on_mount(self) -> None:
        self.table.focus()
        self._restore()

    # ----- remembered across attach -----------------------------------------------------------
    def _restore(self) -> None:
        if self.view_file is None:
            return
        view = view_state.load(self.view_file)
        if view.filter_text:
            box = self.query_one("#filter", Input)
            with box.prevent(Input.Changed):
                box.value = view.filter_text
        self.table.restore_view(view.filter_text, view.sort_column, view.sort_reverse, view.problems_first)
        self._saved = view

    def on_runs_table_view_changed(self, event: RunsTable.ViewChanged) -> None:
        if self.view_file is None:
            return
        table = self.table
        view = view_state.ViewState(
            table.filter_text, table.sort_column, table.sort_reverse, table.problems_first
        )
        if view != self._saved:
            self._saved = view
            view_state.save(self.view_file, view)

    def on_screen_resume(self) -> None:
        if self.state.latest is not None:
            self.apply(self.state.latest)

    def apply(self, message: StoreRefreshed) -> None:
        self.query_one(StatusHeader).show(message.snapshot)
        self.table.show(message.snapshot, self.state.pending)
        self.query_one(SweepOverview).show(message.snapshot.overview)
        self._show_count()

    def _show_count(self) -> None:
        """``N of M shown`` beside the filter (only the number of runs when all are)."""
        shown, total = self.table.shown_count()
        snap = self.table.snapshot
        if snap is not None and snap.total is not None:  # the first picture of a big store
            text = f"reading {snap.total:,} runs…"
        else:
            text = f"{total} runs" if shown == total else f"{shown} of {total} shown"
        if self.table.problems_first:
            text += " · problems first"
        label = self.query_one("#shown", Static)
        if str(label.render()) != text:
            label.update(text)

    # ----- filter -----------------------------------------------------------------------------
    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the words are typed; on a big store only once typing pauses, so that each key
        shows at once (every row is matched again)."""
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        if len(self.table.rows.runs) < DEBOUNCE_FROM:
            self._apply_filter(event.value)
        else:
            self._filter_timer = self.set_timer(DEBOUNCE_S, lambda: self._apply_filter(event.value))

    def _apply_filter(self, text: str) -> None:
        self._filter_timer = None
        if text != self.table.filter_text:
            self.table.set_filter(text)
            self._show_count()

    def on_sweep_overview_chosen(self, event: SweepOverview.Chosen) -> None:
        """Narrow the table to that sweep (a filter word, so esc undoes it)."""
        box = self.query_one("#filter", Input)
        with box.prevent(Input.Changed):
            box.value = f"sweep={event.sweep}"
        self._apply_filter(box.value)
        self.table.focus()

    def action_overview(self) -> None:
        overview = self.query_one(SweepOverview)
        overview.display = not overview.display

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._apply_filter(event.value)
        self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus:
            self.table.focus()
        elif box.value:
            box.value = ""

    # ----- sort -------------------------------------------------------------------------------
    def action_sort(self) -> None:
        """Show the columns with their numbers; a digit sorts (here or straight from the table)."""
        table = self.table

        def chosen(number: int | None) -> None:
            if number is not None:
                self.action_sort_number(number)

        self.app.push_screen(SortScreen(table.columns, table.sort_column, table.sort_reverse), chosen)

    def action_sort_number(self, number: int) -> None:
        self.table.sort_by_number(number)  # the sorted column's title shows ^ or v

    def action_reverse(self) -> None:
        self.table.reverse_sort()

    # ----- runs -------------------------------------------------------------------------------
    def on_runs_table_row_selected(self, event: RunsTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        run_id = self.table.selected_run_id()
        if run_id is not None:
            self.post_message(OpenRun(run_id))

    def action_mark(self) -> None:
        self.table.toggle_mark()

    def action_mark_all(self) -> None:
        count = self.table.mark_all_shown()
        self.notify(f"{count} runs marked" if count else "marks cleared", timeout=2)

    def action_next_problem(self) -> None:
        if self.table.next_problem() is None:
            self.notify("no failed, diverged, interrupted or stalled run in view", timeout=2)

    def action_problems_first(self) -> None:
        self.table.set_problems_first(not self.table.problems_first)
        self._show_count()

    def action_compare(self) -> None:
        """Compare the marked runs; else the rows shown when filtered; else the cursor's sweep."""
        table, snap = self.table, self.table.snapshot
        if snap is None or not snap.runs:
            return
        shown, total = table.shown_count()
        if table.marked:
            ids = [v.run_id for v in snap.runs if v.run_id in table.marked]
            title = f"{len(ids)} marked runs"
        elif shown < total:
            ids = table.visible_ids()
            if not ids:
                self.notify("no runs in view to compare", severity="warning")
                return
            title = f"{len(ids)} runs shown ({table.filter_text.strip() or 'filtered'})"
        else:
            selected = snap.by_id().get(table.selected_run_id() or "")
            sweep = selected.sweep if selected else next(iter(snap.sweeps), "")
            ids = [v.run_id for v in snap.runs if v.sweep == sweep]
            title = f"all runs of {sweep}"
        self.post_message(OpenCompare(ids, title))

    def _selected_view(self) -> RunView | None:
        snap = self.table.snapshot
        return snap.by_id().get(self.table.selected_run_id() or "") if snap else None

    def action_cancel(self) -> None:
        view = self._selected_view()
        if view is not None:
            label = view.label(self.table.snapshot.varied)  # type: ignore[union-attr]
            ask_to_cancel(self, view.run_id, view.status, label)

    def action_resume(self) -> None:
        view = self._selected_view()
        if view is None:
            return
        refused = cannot_resume(view.run_id, view.status)
        if refused is not None:
            self.notify(refused, severity="warning")
            return
        shown = self.table.snapshot.runs  # type: ignore[union-attr]
        stopped = [v.run_id for v in shown if v.status == Status.STOPPED]
        if view.status != Status.STOPPED or len(stopped) < 2:
            self.post_message(ResumeRequested(view.run_id))
            return

        def answer(choice: bool | None) -> None:  # stopped together, resumed together
            chosen = {True: stopped, False: [view.run_id], None: []}[choice]
            for run_id in chosen:
                self.post_message(ResumeRequested(run_id))

        question = f"Resume all {len(stopped)} stopped runs? (n: only {view.run_id[:8]}, esc: none)"
        self.app.push_screen(ConfirmScreen(question, cancel=True), answer)

    def action_launch(self) -> None:
        self.post_message(OpenLaunch())

    def action_export(self) -> None:
        ids = self.table.visible_ids()
        if not ids:
            self.notify("no runs in view to export", severity="warning")
            return
        self.post_message(ExportRequested("summary", ids, "summary", f"{len(ids)} runs"))
