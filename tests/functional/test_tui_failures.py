"""Failures explained and an honest ETA in the app (issue 10, items 2 and 3): the reason of a
diverged or failed run in the table, on the detail's first tab and in its error tab (where a failed
run opens); a resumed run's time left counts its earlier attempts; its epoch is not 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static, TabbedContent

from rankbias_tui.scheduler import SchedulerLock
from rankbias_tui.store import Store
from rankbias_tui.tui.screens.detail import RunDetailScreen
from rankbias_tui.tui.widgets.runs_table import RunsTable
from tests.support.tui_store import NOW, make_app, pilot_test

WHY = "train accuracy <= 0.15 at the last 3 evaluations, after epoch 5 (now epoch 8)"


def first_with(store_dir: Path, status: str) -> str:
    with Store(store_dir) as store:
        return next(r.run_id for r in store.runs() if r.status == status)


@pytest.fixture
def diverged(tui_store: Path) -> str:
    run_id = first_with(tui_store, "done")
    with Store(tui_store) as store:
        store.conn.execute(
            "UPDATE runs SET status='diverged', error=?, epoch=8, step=total_steps*8/20 WHERE run_id=?",
            (WHY, run_id),
        )
    return run_id


async def open_run(pilot, run_id: str) -> RunDetailScreen:  # noqa: ANN001
    table = pilot.app.screen.query_one(RunsTable)
    table.move_cursor(row=table.visible_ids().index(run_id))
    await pilot.press("enter")
    await pilot.pause()
    await pilot.pause()
    assert isinstance(pilot.app.screen, RunDetailScreen)
    return pilot.app.screen


@pilot_test
async def test_a_diverged_run_says_why_in_the_table_and_on_the_first_tab(
    tui_store: Path, diverged: str
) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=(120, 34)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        assert table.cell(diverged, "why").startswith("train accuracy <= 0.15")
        assert table.cell(diverged, "prog").strip() != "█████"  # it did not finish: not a full bar
        screen = await open_run(pilot, diverged)
        assert screen.query_one(TabbedContent).active == "curves"
        note = screen.query_one("#reason", Static)
        assert note.display and WHY in str(note.render())


@pilot_test
async def test_a_failed_run_opens_on_its_error(tui_store: Path) -> None:
    failed = first_with(tui_store, "failed")
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = await open_run(pilot, failed)
        assert screen.query_one(TabbedContent).active == "config"
        text = str(screen.query_one("#config-text", Static).render())
        assert "error:" in text and "illegal memory access" in text


@pilot_test
async def test_a_resumed_run_counts_its_earlier_attempts(tui_store: Path) -> None:
    running = first_with(tui_store, "running")
    with Store(tui_store) as store:
        row = store.run(running)
        assert row is not None and row.total_steps
        half = row.total_steps // 2
        # 40 s trained before a stop, resumed 2 s ago from the checkpoint at half the steps
        store.conn.execute(
            "UPDATE runs SET active_s=40, started_at=?, step=? WHERE run_id=?", (NOW - 2, half, running)
        )
    app = make_app(tui_store)
    with SchedulerLock(tui_store):  # a scheduler holds the store: the app shows time left
        async with app.run_test(size=(120, 34)) as pilot:
            await pilot.pause()
            left = app.latest.snapshot.run_eta[running]
            assert left == pytest.approx((row.total_steps - half) / (half / 42.0))  # ~42 s, not 2 s
            table = app.screen.query_one(RunsTable)
            assert table.cell(running, "eta") == "42s"
            assert app.latest.snapshot.eta_s is not None and app.latest.snapshot.eta_s >= left


@pilot_test
async def test_a_launch_the_scheduler_could_not_run_says_why_and_queues_nothing(tui_store: Path) -> None:
    """Devices `rankbias run` refuses (a bad --devices) are refused on the launch screen as well,
    with run's words, before anything is queued (the scheduler would only say so in its log)."""
    from rankbias_tui.scheduler import SchedulerOptions

    app = make_app(tui_store, options=SchedulerOptions(devices="gpu0"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        said = "unknown device 'gpu0': use auto, cpu, cuda or cuda:0,1"
        assert said in str(app.screen.query_one("#title").render())
        await pilot.press("enter")
        await pilot.pause()
        assert any(said in n.message for n in app._notifications)
    with Store(tui_store) as store:
        assert store.take_requests() == []
    assert app.spawn.calls == []


@pilot_test
async def test_errors_the_scheduler_logs_while_attached_are_shown(tui_store: Path) -> None:
    """An error the background scheduler writes to its log (a request it could not answer, with
    its traceback) comes up as a notice with what was raised; what it logged before, does not."""
    log = tui_store / "scheduler.log"
    log.write_text("2026-12-06 17:00:00,000 ERROR [pid 7] an old error\n")
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        with log.open("a") as f:
            f.write(
                "2026-12-06 17:30:53,027 INFO [pid 9] launch quick: 6 runs, 1 queued\n"
                "2026-12-06 17:30:54,100 ERROR [pid 9] request Request(kind='launch') failed\n"
                "Traceback (most recent call last):\n"
                '  File "service.py", line 3, in _launch\n'
                "ValueError: no slot fits a run of 80 GiB\n"
            )
        app.refresh_data()
        await pilot.pause()
        said = [n.message for n in app._notifications]
    assert "request Request(kind='launch') failed (ValueError: no slot fits a run of 80 GiB)" in said
    assert not any("an old error" in s for s in said)
