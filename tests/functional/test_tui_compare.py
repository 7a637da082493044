"""Compare (issue 10, item 12): a key for any number of runs, the highlighted row's curve on top,
and loss, accuracy and per-layer rank as well as the average rank."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankbias_tui.tui.screens.compare import CompareScreen
from rankbias_tui.tui.widgets.charts import CompareChart
from tests.support.tui_store import make_app, make_store, pilot_test


@pilot_test
async def test_compare_keys_every_run_highlights_and_switches_measure(tmp_path: Path) -> None:
    make_store(tmp_path / "runs", big=True).close()
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(120, 34)) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"sweep=deep", "enter", "escape")  # the filter stays; compare the sweep
        await pilot.press("v")
        await pilot.pause()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen) and len(screen.run_ids) == 36
        legend = screen.query_one("#legend")
        assert legend.row_count == 36  # a key row for every run, beyond any legend's 8
        keys = [str(legend.get_row_at(i)[0]) for i in range(legend.row_count)]
        assert len(set(keys[:12])) == 12  # distinct markers
        await pilot.press("down", "down")
        await pilot.pause()
        assert screen.highlight == 2
        assert screen.query_one(CompareChart).key[-1] == 2  # drawn with the highlight
        measures = []
        for _ in range(4):
            await pilot.press("m")
            await pilot.pause()
            await pilot.pause()
            measures.append(screen.measure)
        assert measures[:3] == ["test_acc", "train_loss", "rank:fc1"]
        assert "rank of fc2" in str(screen.query_one("#title").render())
        assert screen.curves and sum(bool(c) for c in screen.curves.values()) > 20  # read for the new measure


@pilot_test
async def test_a_big_comparison_opens_grouped_and_draws_the_first_runs_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More runs than a chart can tell apart (a whole sweep of 20,000: a minute to draw a curve and
    a key row each) open as means by the first hyperparameter that differs; each run draws the first."""
    from rankbias_tui.tui.screens import compare

    monkeypatch.setattr(compare, "EACH_RUN_MOST", 4)
    make_store(tmp_path / "runs").close()
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"sweep=quick", "enter", "v")  # 6 runs: batch size x weight decay
        await pilot.pause()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen) and len(screen.run_ids) == 6
        assert screen.group_by == "batch_size" and screen.query_one("#legend").row_count == 3
        while screen.group_by is not None:
            await pilot.press("g")
        await pilot.pause()
        assert screen.query_one("#legend").row_count == 4
        assert "the first 4 of 6 runs" in str(screen.query_one("#title").render())
