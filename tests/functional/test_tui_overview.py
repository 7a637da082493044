"""The sweep overview on the dashboard (issue 21, item 3): one line per sweep with its runs by
status, progress, best and median rank and accuracy and a sparkline of its ranks; Enter on a line
narrows the runs table to that sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankbias_tui.tui.overview import SweepTally, sparkline
from rankbias_tui.tui.widgets.overview import SweepOverview
from rankbias_tui.tui.widgets.runs_table import RunsTable
from tests.support.tui_store import make_app, make_store, pilot_test


@pytest.fixture
def big_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - RankbiasApp
    monkeypatch.chdir(tmp_path)
    make_store(Path("runs"), big=True).close()
    return make_app(Path("runs"))


async def on_overview(pilot) -> None:  # noqa: ANN001
    await pilot.pause()
    pilot.app.screen.query_one(SweepOverview).focus()
    await pilot.press("down")
    await pilot.pause()


def test_sweep_overview_80x24(big_app, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(big_app, terminal_size=(80, 24), run_before=on_overview)


@pilot_test
async def test_enter_on_a_sweep_narrows_the_table_to_it(tmp_path: Path) -> None:
    make_store(tmp_path / "runs", big=True).close()
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        overview = app.screen.query_one(SweepOverview)
        assert [s.name for s in overview.summaries] == ["quick", "lr-wd", "deep"]
        deep = overview.summaries[2]
        assert deep.runs == 36 and sum(deep.counts.values()) == 36
        overview.focus()
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        assert table.has_focus and len(table.visible_ids()) == 36
        assert {app.latest.snapshot.by_id()[i].sweep for i in table.visible_ids()} == {"deep"}
        await pilot.press("escape")  # the filter it set clears like any other
        await pilot.pause()
        assert len(table.visible_ids()) == 45


def test_tally_kept_by_change_equals_a_fresh_one(tui_store: Path) -> None:
    from dataclasses import replace

    from rankbias_tui.tui.model import StoreFeed
    from tests.support.tui_store import NOW

    feed = StoreFeed(tui_store, clock=lambda: NOW)
    runs = list(feed.poll().runs)
    feed.close()
    tally = SweepTally(runs)
    for i in range(0, len(runs), 2):
        new = replace(runs[i], status="failed", test_acc=0.5, avg_rank=3.0)
        tally.replace(runs[i], new)
        runs[i] = new
    assert tally.summaries() == SweepTally(runs).summaries()
    assert sparkline([0, 1, 4]) == " ▂█"
