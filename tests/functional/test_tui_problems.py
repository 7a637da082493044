"""Problem runs brought forward at 80x24 (issue 21, item 2): a key to the next failed, diverged,
interrupted or stalled run, a problems-first order, a notice when a run fails, ``N of M shown``
beside the filter, numeric filters, and compare and mark-all acting on the rows shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from rankbias_tui.measures import Status
from rankbias_tui.store import Store
from rankbias_tui.tui.messages import OpenCompare
from rankbias_tui.tui.screens.compare import CompareScreen
from rankbias_tui.tui.widgets.runs_table import RunsTable
from tests.support.tui_store import make_app, pilot_test


def shown_label(app) -> str:  # noqa: ANN001
    return str(app.screen.query_one("#shown", Static).render())


@pilot_test
async def test_p_jumps_to_each_problem_run_and_shift_p_puts_them_first(tui_store: Path) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        failed = next(v.run_id for v in app.latest.snapshot.runs if v.status == Status.FAILED)
        await pilot.press("p")
        assert table.selected_run_id() == failed
        await pilot.press("P")
        assert table.visible_ids()[0] == failed and "problems first" in shown_label(app)
        await pilot.press("5", "5")  # sort by accuracy, reversed: problems still lead
        assert table.visible_ids()[0] == failed


@pilot_test
async def test_a_run_that_fails_is_announced(tui_store: Path) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        running = next(v.run_id for v in app.latest.snapshot.runs if v.status == Status.RUNNING)
        with Store(tui_store) as store:
            store.set_status(running, "failed", error="RuntimeError: out of memory")
        app.refresh_data()
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert any(running[:8] in m and "failed" in m and "out of memory" in m for m in said), said


@pilot_test
async def test_numeric_filter_shows_n_of_m_and_compare_takes_the_rows_shown(tui_store: Path) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        total = len(app.latest.snapshot.runs)
        assert shown_label(app) == f"{total} runs"
        await pilot.press("slash", *"acc>0.95", "enter")
        await pilot.pause()
        ids = table.visible_ids()
        assert 0 < len(ids) < total
        assert all(app.latest.snapshot.by_id()[i].test_acc > 0.95 for i in ids)
        assert shown_label(app) == f"{len(ids)} of {total} shown"
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen) and list(app.screen.run_ids) == ids
        await pilot.press("escape")
        await pilot.press("a")  # mark every row shown
        assert table.marked == set(ids)
        await pilot.press("escape")  # the filter goes; the marks stay
        await pilot.press("escape")
        await pilot.pause()
        assert len(table.visible_ids()) == total and table.marked == set(ids)


@pilot_test
async def test_compare_says_it_is_reading_until_the_curves_come(tui_store: Path) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.post_message(OpenCompare([v.run_id for v in app.latest.snapshot.runs], "all"))
        app.refresh_data = lambda: None  # type: ignore[method-assign] - no read: the curves never come
        await pilot.pause()
        title = str(app.screen.query_one("#title", Static).render())
        assert isinstance(app.screen, CompareScreen) and title.startswith("reading the curves of 9 runs")


@pilot_test
async def test_on_a_big_store_the_filter_waits_for_a_pause_in_typing(
    tui_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rankbias_tui.tui.screens import dashboard

    monkeypatch.setattr(dashboard, "DEBOUNCE_FROM", 0)  # as if the store held 20,000 runs
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        await pilot.press("slash", *"status=failed")
        assert table.filter_text == ""  # each key echoed, nothing filtered yet
        await pilot.pause(dashboard.DEBOUNCE_S + 0.2)
        assert table.filter_text == "status=failed" and len(table.visible_ids()) == 1
        await pilot.press("backspace", "enter")  # Enter applies at once
        assert table.filter_text == "status=faile" and table.visible_ids() == []
