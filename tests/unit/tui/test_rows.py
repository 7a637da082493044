"""tui.rows: the runs table's columns, filter and order, without Textual (issue 10, items 1, 10, 11)."""

from __future__ import annotations

from dataclasses import replace

from rankbias_tui.scheduler import SchedulerStatus  # noqa: F401 - the model imports it too
from rankbias_tui.spec import RunConfig
from rankbias_tui.tui import rows
from rankbias_tui.tui.model import RunView


def view(run_id: str, status: str = "done", error: str | None = None, **config: object) -> RunView:
    cfg = {"model": "mlp", "dataset": "digits", "batch_size": 8, "lr": 0.1, "weight_decay": 0.0, "epochs": 10}
    return RunView(run_id=run_id, sweep=str(config.pop("sweep", "s")), status=status, device=None,
                   config=RunConfig(**(cfg | config)), step=0, total_steps=None, epoch=0.0, error=error)  # fmt: skip


def test_live_columns_come_right_after_the_id_and_only_varied_hyperparameters_follow() -> None:
    runs = [view("a", weight_decay=0.0), view("b", weight_decay=0.01)]
    assert rows.columns_for(runs) == ("run", "status", "epoch", "prog", "loss", "acc", "rank", "weight_decay")
    two_sweeps = [view("a", sweep="x", lr=0.1), view("b", sweep="y", lr=0.2, status="failed", error="boom")]
    assert rows.columns_for(two_sweeps)[7:] == ("sweep", "lr", "why")
    assert rows.columns_for(runs, {"a": 12.0})[-1] == "eta"


def test_key_value_words_match_values_exactly() -> None:
    runs = [view("a", weight_decay=0.0), view("b", weight_decay=0.01), view("c", weight_decay=0.005)]

    def shown(text: str) -> list[str]:
        words = text.lower().split()
        return [v.run_id for v in runs if rows.matches(v, words, rows.search_text(v))]

    assert shown("wd=0.0") == ["a"] and shown("wd=0") == ["a"] and shown("weight_decay=0.01") == ["b"]
    assert shown("wd=5e-3") == ["c"] and shown("B=8") == ["a", "b", "c"] and shown("B=16") == []
    assert shown("status=done") == ["a", "b", "c"] and shown("status=don") == []
    assert shown("nosuch=1") == []


def test_plain_words_match_a_part_of_the_reason_too() -> None:
    failed = view("a", status="failed", error="RuntimeError: CUDA out of memory\n  trace")
    assert rows.matches(failed, ["memory"], rows.search_text(failed))
    assert rows.cells(failed, ["why"]) == ("RuntimeError: CUDA out of memory",)
    long = view("b", status="diverged", error="x" * 80)
    assert len(rows.cells(long, ["why"])[0]) == rows.REASON_WIDTH


def test_default_order_puts_running_runs_first_then_store_order() -> None:
    runs = [view("a"), view("b", status="running"), view("c", status="queued"), view("d", status="running")]
    order = sorted(runs, key=lambda v: rows.sort_key(v, None, False, runs.index(v)))
    assert [v.run_id for v in order] == ["b", "d", "a", "c"]


def test_a_running_run_s_latest_warning_shows_as_its_reason() -> None:
    """A worker that stalled was killed and its run resumed: the table says so while it runs."""
    stalled = "worker stalled at step 359: no word from it for 300 s (frozen or hung); it was killed"
    quiet, warned = view("a", status="running"), replace(view("b", status="running"), warning=stalled)
    assert rows.columns_for([quiet, warned])[-1] == "why" and rows.columns_for([quiet])[-1] != "why"
    assert rows.cells(warned, ("why",)) == ("warning: worker stalled at step…",)  # cut at 32
    assert rows.matches(warned, ["stalled"], rows.search_text(warned))
    done = replace(view("c", status="done"), warning=stalled)  # finished: its warnings are in its detail
    assert rows.cells(done, ("why",)) == ("",)
