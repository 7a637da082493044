"""The spec's sweeps with their run counts and how many are done; Enter queues one.

``SweepMenu`` is what the screen offers, built once from the spec the command read (``rankbias
run`` and ``attach`` read the spec file once and hand it to the app). It keeps each sweep's runs as
expanded then: Enter queues those very runs, the ones the screen counted, whatever the file says
by now."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ...measures import ACTIVE, FINISHED, Status
from ...spec import Spec, SpecError, load_spec
from ...sweep import PlannedRun, expand_sweep
from ..messages import AppState, LaunchRequested, StoreRefreshed
from .confirm import ConfirmScreen


@dataclass(frozen=True)
class SweepMenu:
    """The sweeps of a spec file, or why there are none to offer."""

    path: Path | None
    sweeps: Mapping[str, tuple[str, tuple[PlannedRun, ...]]]  # name -> (description, its runs)
    problem: str = ""

    def refusing(self, problem: str) -> SweepMenu:
        """This menu, refusing to launch because of ``problem`` (none: as it is)."""
        return replace(self, problem=problem) if problem else self

    def run_ids(self, name: str) -> list[str]:
        return [run.run_id for run in self.sweeps[name][1]]

    @classmethod
    def of(cls, path: Path | None, spec: Spec | SpecError | None = None) -> SweepMenu:
        """The menu of ``spec`` read from ``path``; without ``spec``, ``path`` is read here."""
        if path is None:
            return cls(None, {}, "no spec file: start with `rankbias attach --spec experiments.toml`")
        if spec is None:
            try:
                spec = load_spec(path)
            except SpecError as err:
                spec = err
        if isinstance(spec, SpecError):
            return cls(path, {}, spec.report())
        sweeps = {name: (s.description, tuple(expand_sweep(spec, name))) for name, s in spec.sweeps.items()}
        return cls(path, sweeps)


class LaunchScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("enter", "launch", "Queue sweep", key_display="⏎", priority=True),  # over the table's
    ]

    def __init__(self, menu: SweepMenu, state: AppState) -> None:
        super().__init__()
        self.menu, self.state = menu, state
        self.sweeps = menu.sweeps
        self.problem = menu.problem

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield DataTable(id="sweeps", cursor_type="row")
        yield Static(id="description")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        title = f"launch a sweep of {self.menu.path}: Enter queues it (finished runs are skipped)"
        if self.problem:  # every problem of a broken spec, one a line (the description area scrolls)
            title = "cannot launch: " + self.problem.splitlines()[0]
            box = self.query_one("#description", Static)
            box.styles.max_height, box.styles.height = None, "1fr"
            box.update(Text(self.problem))
        self.query_one("#title", Static).update(Text(title, no_wrap=True, overflow="ellipsis"))
        table = self.query_one("#sweeps", DataTable)
        for column in ("sweep", "runs", "done", "running", "queued", "other"):
            table.add_column(column, key=column)
        self._fill()
        table.focus()

    def apply(self, message: StoreRefreshed) -> None:
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#sweeps", DataTable)
        latest = self.state.latest
        views = latest.snapshot.by_id() if latest else {}
        status = {i: v.status for i, v in views.items()}
        rows = []
        for name in self.sweeps:
            ids = self.menu.run_ids(name)
            states = [status.get(i) for i in ids]
            done = sum(s in FINISHED for s in states)
            running = states.count(Status.RUNNING)
            queued = states.count(Status.QUEUED)
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
        if self.problem:
            return
        name = str(event.row_key.value)
        description = self.sweeps.get(name, ("", ()))[0]
        self.query_one("#description", Static).update(Text(description or ""))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_launch()

    def counts(self, name: str) -> dict[str, int]:
        """What queueing sweep ``name`` would do: new runs, finished ones (skipped), active ones
        (left as they are) and ones to resume (failed, cancelled, stopped)."""
        latest = self.state.latest
        status = {v.run_id: v.status for v in latest.snapshot.runs} if latest else {}
        states = [status.get(i) for i in self.menu.run_ids(name)]
        out = {
            "new": states.count(None),
            Status.DONE: sum(s in FINISHED for s in states),
            "active": sum(s in ACTIVE for s in states),
        }
        out["resume"] = len(states) - sum(out.values())
        return out

    def action_launch(self) -> None:
        table = self.query_one("#sweeps", DataTable)
        if self.problem:  # as `rankbias run` would: nothing is queued
            self.notify(self.problem, title="cannot launch", severity="error", timeout=10, markup=False)
            return
        if not self.sweeps or not 0 <= table.cursor_row < len(self.sweeps):
            return
        name = list(self.sweeps)[table.cursor_row]
        n = self.counts(name)
        if n["new"] + n["resume"] == 0:
            self.notify(
                f"{name}: nothing to do ({n['done']} finished, {n['active']} queued or running)",
                severity="warning",
            )
            return
        question = (
            f"Queue sweep {name}: {n['new']} new run(s), {n['resume']} to resume; "
            f"{n['done']} already finished (skipped), {n['active']} queued or running?"
        )

        def answer(yes: bool | None) -> None:
            if yes:
                self.post_message(LaunchRequested(name))
                self.app.pop_screen()

        self.app.push_screen(ConfirmScreen(question), answer)

    def action_back(self) -> None:
        self.app.pop_screen()
