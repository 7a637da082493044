"""Headless progress: one rich progress line per active run, plus the total and an ETA."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .. import measures
from ..measures import Status
from ..scheduler import Scheduler
from ..sweep import PlannedRun


def run_label(run: PlannedRun, varied: tuple[str, ...]) -> str:
    """Short label naming what distinguishes this run inside its sweep."""
    # shown as rich markup: values stay literal
    return escape(measures.run_label(run.run_id, run.config.stored, varied))


def varied_fields(runs: list[PlannedRun]) -> tuple[str, ...]:
    """The config fields whose values differ between runs (model and dataset if none do)."""
    return measures.varied_fields(r.config.stored for r in runs) or ("model", "dataset")


class HeadlessView:
    """Drives a rich Progress from the scheduler's tick callback."""

    def __init__(self, runs: list[PlannedRun], console: Console | None = None):
        self.runs = {r.run_id: r for r in runs}
        self.varied = varied_fields(runs)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self.total = self.progress.add_task(f"[bold]total ({len(runs)} runs)", total=len(runs), info="")
        self.tasks: dict[str, TaskID] = {}
        self.fraction: dict[str, float] = {}

    def __enter__(self) -> HeadlessView:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.progress.__exit__(*exc)  # type: ignore[arg-type]
        except OSError:
            pass  # the terminal hung up (SIGHUP): nothing left to draw on, and the runs are marked stopped

    def tick(self, scheduler: Scheduler) -> None:
        active = {live.run_id: live for live in scheduler.live()}
        for run_id, live in active.items():
            if run_id not in self.tasks:
                label = run_label(self.runs[run_id], self.varied)
                self.tasks[run_id] = self.progress.add_task(label, total=1.0, info="starting")
            frac = live.step / live.total_steps if live.total_steps else 0.0
            self.fraction[run_id] = frac
            # the loss the app shows too: the eval-mode training loss once there is one
            loss = live.values.get(measures.shown_loss(live.values))
            acc = live.values.get(measures.TEST_ACC)
            info = f"ep {live.epoch:5.1f} {live.device} {live.mode}"
            info += f" loss {loss:.3f}" if loss is not None else ""
            info += f" test {acc:.3f}" if acc is not None else ""
            info += f" rank {live.avg_rank:.1f}" if live.avg_rank is not None else ""
            self.progress.update(self.tasks[run_id], completed=frac, info=info)
        for run_id in [r for r in self.tasks if r not in active]:
            status = scheduler.outcomes.get(run_id) or self._requeued(scheduler, run_id) or Status.STOPPED
            self.progress.console.print(f"  {run_label(self.runs[run_id], self.varied)}: {status}")
            self.progress.remove_task(self.tasks.pop(run_id))
            self.fraction[run_id] = 1.0
        for run_id in scheduler.outcomes:
            self.fraction[run_id] = 1.0
        ended = sum(1 for r in scheduler.outcomes.values() if r != Status.RUNNING)
        info = f"{ended} ended, {len(active)} running"
        info += ", waiting for nodes" if scheduler.waiting_for_nodes else ""
        self.progress.update(self.total, completed=sum(self.fraction.values()), info=info)

    @staticmethod
    def _requeued(scheduler: Scheduler, run_id: str) -> str | None:
        """A run sent back to the queue (its worker stalled, its pack ran out of memory): it starts again."""
        return "requeued" if any(run.run_id == run_id for run in scheduler.queue) else None
