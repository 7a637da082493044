"""``rankbias run --headless``'s progress lines (cli.headless), driven without a scheduler."""

from __future__ import annotations

import io

from rich.console import Console

from rankbias_tui.cli.headless import HeadlessView
from rankbias_tui.scheduler import Live
from rankbias_tui.spec import RunConfig
from rankbias_tui.sweep import PlannedRun, run_id


class Ticking:
    """What the view reads of a scheduler: its live runs, the outcomes so far, and whether it waits
    for a cluster's nodes (an elastic launcher with no node that fits)."""

    def __init__(
        self, live: Live | None, queue: tuple[PlannedRun, ...] = (), waiting_for_nodes: bool = False
    ) -> None:
        self.outcomes: dict[str, str] = {}
        self.queue = list(queue)
        self._live = live
        self.waiting_for_nodes = waiting_for_nodes

    def live(self) -> list[Live]:
        return [self._live] if self._live else []


def test_progress_shows_the_loss_the_app_shows() -> None:
    cfg = RunConfig(dataset="digits")
    run = PlannedRun(run_id(cfg), "s", cfg)
    live = Live(run.run_id, "cpu", step=5, total_steps=10, epoch=1.0, values={"loss": 0.9}, mode="eager")
    view = HeadlessView([run], Console(file=io.StringIO(), width=200))
    view.tick(Ticking(live))  # type: ignore[arg-type]
    info = view.progress.tasks[-1].fields["info"]
    assert "loss 0.900" in info and "test" not in info  # before any evaluation: the batch loss
    live.values |= {"train_loss": 0.5, "test_acc": 0.75, "loss": 0.8}
    view.tick(Ticking(live))  # type: ignore[arg-type]
    info = view.progress.tasks[-1].fields["info"]
    assert "loss 0.500" in info and "test 0.750" in info  # then the eval-mode one (measures.shown_loss)


def test_a_run_sent_back_to_the_queue_reads_requeued_not_stopped() -> None:
    cfg = RunConfig(dataset="digits")
    run = PlannedRun(run_id(cfg), "s", cfg)
    out = io.StringIO()
    view = HeadlessView([run], Console(file=out, width=200))
    view.tick(Ticking(Live(run.run_id, "cpu", total_steps=10)))  # type: ignore[arg-type]
    view.tick(Ticking(None, queue=(run,)))  # type: ignore[arg-type]  # its worker stalled: requeued
    assert f"{run.run_id[:8]}" in out.getvalue() and ": requeued" in out.getvalue()
    assert "stopped" not in out.getvalue()


def test_a_cluster_with_no_node_yet_reads_waiting_for_nodes() -> None:
    """Issue 22: all workers lost (or none joined yet) reads "waiting for nodes", not "stopped"."""
    cfg = RunConfig(dataset="digits")
    run = PlannedRun(run_id(cfg), "s", cfg)
    view = HeadlessView([run], Console(file=io.StringIO(), width=200))
    view.tick(Ticking(None, queue=(run,), waiting_for_nodes=True))  # type: ignore[arg-type]
    assert view.progress.tasks[0].fields["info"] == "0 ended, 0 running, waiting for nodes"
