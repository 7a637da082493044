"""One run: loss and accuracy, rank per layer, singular-value histograms through time with the
paper's bound next to the measured rank, the run's config and error, and its log (warnings, how
each stretch was trained, the scheduler's lines about it)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from ...display import MISSING, shown
from ...measures import Status, reason, shown_config
from ...store import Segment, SpectrumRow
from ..format import bound, duration, num
from ..messages import AppState, ExportRequested, ResumeRequested, StoreRefreshed, WatchRun
from ..model import RunDetail
from ..widgets.charts import CurvesChart, RankChart, SpectrumChart
from .run_actions import ask_to_cancel, cannot_resume


class RunDetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("1", "tab('curves')", "Tabs", key_display="1-4"),  # one footer entry for four keys
        Binding("2", "tab('spectrum')", "Spectrum", show=False),
        Binding("3", "tab('config')", "Config", show=False),
        Binding("4", "tab('log')", "Log", show=False),
        Binding("left", "step(-1)", "Earlier", key_display="←", priority=True),
        Binding("right", "step(1)", "Later", key_display="→", priority=True),
        Binding("home", "step_to(0)", "First", show=False, priority=True),
        Binding("end", "step_to(-1)", "Last", show=False, priority=True),
        Binding("x", "cancel", "Cancel"),
        Binding("r", "resume", "Resume"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self, run_id: str, state: AppState):
        super().__init__()
        self.run_id, self.state = run_id, state
        self.detail: RunDetail | None = None
        self.measurement: int | None = None  # measurement shown; None follows the latest
        self.layer_index = 0

    def compose(self) -> ComposeResult:
        yield Static(self.run_id, id="title")
        with TabbedContent(
            initial="config" if self._status() == Status.FAILED else "curves"
        ):  # opens on the error
            with TabPane("1 Curves", id="curves"):
                yield Static(id="reason")
                yield CurvesChart(id="curves-chart")
                yield RankChart(id="rank-chart")
            with TabPane("2 Spectrum", id="spectrum"):
                yield SpectrumChart(id="hist")
                yield DataTable(id="layers", cursor_type="row")
            with TabPane("3 Config, error", id="config"):
                with VerticalScroll(id="config-scroll"):
                    yield Static(id="config-text")
            with TabPane("4 Log", id="log"):
                with VerticalScroll(id="log-scroll"):
                    yield Static(id="log-text")
        yield Footer(compact=True)

    def _status(self) -> str | None:
        latest = self.state.latest
        view = latest.snapshot.by_id().get(self.run_id) if latest is not None else None
        return view.status if view is not None else None

    def on_mount(self) -> None:
        table = self.query_one("#layers", DataTable)
        for column in ("layer", "shape", "m", "rank", "bound", "stable", "eff."):
            table.add_column(column, key=column)
        latest = self.state.latest
        if latest is not None and latest.detail is not None:
            self.apply(latest)
        self.post_message(WatchRun(self.run_id, on=True))

    def on_unmount(self) -> None:
        self.app.post_message(WatchRun(self.run_id, on=False))  # this screen takes no more messages

    def apply(self, message: StoreRefreshed) -> None:
        detail = message.detail
        if detail is None or detail.run.run_id != self.run_id or detail is self.detail:
            return
        self.detail = detail
        self._title()
        self.query_one(CurvesChart).show(detail)
        self.query_one(RankChart).show(detail)
        self._spectrum()
        self._config()
        self._log()

    # ----- parts ------------------------------------------------------------------------------
    def _title(self) -> None:
        assert self.detail is not None
        run, cfg = self.detail.run, self.detail.run.config
        latest = self.state.latest
        eta = latest.snapshot.run_eta.get(run.run_id) if latest is not None else None
        speed = f" · {duration(eta)} left" if eta is not None else ""
        text = (
            f"{run.run_id} {run.status} · epoch {run.epoch:g}/{cfg.epochs}{speed} · B={cfg.batch_size} "
            f"lr={cfg.lr} wd={cfg.weight_decay} · {cfg.model} on {cfg.dataset} · "
            f"{run.sweep} · {run.device or MISSING}"
        )
        self.query_one("#title", Static).update(Text(text, no_wrap=True, overflow="ellipsis"))
        why = reason(run.status, run.error)
        note = self.query_one("#reason", Static)
        note.display = why is not None
        note.update(Text(f"{run.status}: {why}" if why else "", no_wrap=True, overflow="ellipsis"))

    def _measurement(self) -> tuple[int, tuple[SpectrumRow, ...]] | None:
        rows = self.detail.measurements if self.detail else ()
        if not rows:
            return None
        index = len(rows) - 1 if self.measurement is None else max(0, min(self.measurement, len(rows) - 1))
        return index, rows[index]

    def _spectrum(self) -> None:
        found = self._measurement()
        chart = self.query_one(SpectrumChart)
        table = self.query_one("#layers", DataTable)
        if found is None:
            chart.empty("singular values: no measurements yet")
            return
        index, layers = found
        self.layer_index = max(0, min(self.layer_index, len(layers) - 1))
        shown = layers[self.layer_index]
        initial = self.detail.measurements[0]  # type: ignore[union-attr]
        first = next((f for f in initial if f.layer == shown.layer), None)
        chart.show(shown, index, len(self.detail.measurements), first)  # type: ignore[union-attr]
        rows = [
            (
                s.layer,
                f"{s.d_out}x{s.d_in}",
                str(s.m),
                str(s.rank),
                bound(s.bound, s.d_out, s.d_in),
                f"{s.stable_rank:.2f}",
                f"{s.effective_rank:.1f}",
            )
            for s in layers
        ]
        if rows != getattr(self, "_layer_rows", None):
            self._layer_rows = rows
            table.clear()
            for i, row in enumerate(rows):
                table.add_row(*row, key=str(i))
        if table.cursor_row != self.layer_index:
            table.move_cursor(row=self.layer_index, animate=False)

    def _config(self) -> None:
        assert self.detail is not None
        run = self.detail.run
        lines = [f"status          {run.status} (attempt {run.attempts}) on {run.device or MISSING}"]
        lines += [
            f"step            {run.step}/{run.total_steps or '?'}, checkpoint {shown(run.checkpoint_step)}"
        ]
        for name, stamp in (("started", run.started_at), ("finished", run.finished_at)):
            if stamp:
                lines.append(
                    f"{name:<15} {datetime.fromtimestamp(stamp, timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
                )
        if run.active_s or run.status == Status.RUNNING:
            trained = run.active_seconds(self.app_clock())
            lines.append(f"trained for     {duration(trained)} over {run.attempts} attempt(s)")
            if run.step and trained > 0:
                lines.append(f"speed           {run.step / trained:.1f} steps/s (average over the attempts)")
        if run.error:
            lines += ["", "error:" if run.status == Status.FAILED else "reason:", run.error]
        elif reason(run.status, run.error):
            lines += ["", f"reason: {reason(run.status, run.error)}"]
        last = {name: ys[-1] for name, (_, ys) in self.detail.series.items() if ys}
        lines += ["", "last values:", *(f"  {k:<13} {num(v, '.4g')}" for k, v in sorted(last.items()))]
        config = shown_config(run.config.stored)
        lines += ["", "config:", *(f"  {k:<15} {json.dumps(v)}" for k, v in config.items())]
        lines += ["", "provenance:", *(f"  {k:<15} {v}" for k, v in sorted(run.provenance.items()))]
        self.query_one("#config-text", Static).update(Text("\n".join(lines)))

    def _log(self) -> None:
        """The run's warnings, how each stretch of it was trained, and the scheduler's lines about it."""
        assert self.detail is not None
        run, detail = self.detail.run, self.detail
        lines = ["warnings:", *(f"  {w}" for w in run.warnings)] if run.warnings else ["warnings: none"]
        trained = [line for segment in detail.segments for line in _segment_lines(segment)]
        lines += ["", "trained:", *trained] if trained else []
        lines += ["", f"scheduler.log, the lines about {run.run_id[:8]} (latest last):"]
        lines += [f"  {line}" for line in detail.log] or ["  none"]
        self.query_one("#log-text", Static).update(Text("\n".join(lines)))

    def app_clock(self) -> float:
        return getattr(self.app, "clock", time.time)()

    # ----- keys -------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The measurement keys act (and show in the footer) on the spectrum tab only; elsewhere
        left and right go to the focused widget."""
        if action in ("step", "step_to"):
            return self.query_one(TabbedContent).active == "spectrum"
        return True

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()
        # up/down then move through the layers (spectrum) or scroll the text (config)
        target = {"spectrum": "#layers", "config": "#config-scroll", "log": "#log-scroll"}.get(
            event.pane.id or ""
        )
        if target:
            self.query_one(target).focus()

    def action_step(self, delta: int) -> None:
        found = self._measurement()
        if found is None:
            return
        count = len(self.detail.measurements)  # type: ignore[union-attr]
        index = max(0, min(found[0] + delta, count - 1))
        self.measurement = None if index == count - 1 else index
        self._spectrum()

    def action_step_to(self, index: int) -> None:
        self.measurement = None if index < 0 else index
        self._spectrum()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "layers" and event.cursor_row != self.layer_index:
            self.layer_index = event.cursor_row
            self._spectrum()

    def action_cancel(self) -> None:
        """Cancel after a yes, as on the dashboard; say why not on a run that is not active."""
        if self.detail is not None:
            run = self.detail.run
            ask_to_cancel(self, run.run_id, run.status, run.run_id[:8])

    def action_resume(self) -> None:
        if self.detail is None:
            return
        refused = cannot_resume(self.run_id, self.detail.run.status)
        if refused is not None:
            self.notify(refused, severity="warning")
            return
        self.post_message(ResumeRequested(self.run_id))

    def action_export(self) -> None:
        label, what = f"metrics-{self.run_id[:8]}", f"metrics of {self.run_id[:8]}"
        self.post_message(ExportRequested("metrics", [self.run_id], label, what))


def _segment_lines(segment: Segment) -> list[str]:
    """How one stretch of a run was trained, by what, and (a user's model) from which file."""
    code = [f"    code {segment.code()}"] if segment.code() else []
    return [f"  {segment.describe()}", f"    by {segment.software()}", *code]
