"""The run detail at 80x24 (issue 10, items 5, 6, 13): a spectrum title that fits, init and latest
overlaid, whole epochs on a shared axis, markers as well as colours, cancel confirmed, and a word
when x or r can do nothing."""

from __future__ import annotations

from pathlib import Path

from rankbias_tui.store import Request, Store
from rankbias_tui.tui.screens.confirm import ConfirmScreen
from rankbias_tui.tui.screens.detail import RunDetailScreen
from rankbias_tui.tui.widgets.charts import SpectrumChart, epoch_ticks
from rankbias_tui.tui.widgets.runs_table import RunsTable
from tests.support.tui_store import make_app, pilot_test


def first_with(store_dir: Path, status: str) -> str:
    with Store(store_dir) as store:
        return next(r.run_id for r in store.runs() if r.status == status)


async def open_run(pilot, run_id: str) -> RunDetailScreen:  # noqa: ANN001
    table = pilot.app.screen.query_one(RunsTable)
    table.move_cursor(row=table.visible_ids().index(run_id))
    await pilot.press("enter")
    await pilot.pause()
    assert isinstance(pilot.app.screen, RunDetailScreen)
    return pilot.app.screen


def test_epoch_ticks_are_whole_and_few() -> None:
    assert epoch_ticks(20) == [0, 5, 10, 15, 20]
    assert epoch_ticks(8.2) == [0, 2, 4, 6, 8]  # the axis still ends at 9
    assert epoch_ticks(3) == [0, 1, 2, 3] and epoch_ticks(0) == [0, 1]
    assert all(isinstance(t, int) for t in epoch_ticks(163)) and len(epoch_ticks(163)) <= 9


@pilot_test
async def test_the_spectrum_title_fits_80_columns_and_init_is_overlaid(tui_store: Path) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = await open_run(pilot, first_with(tui_store, "done"))
        await pilot.press("2", "down")
        await pilot.pause()
        text = str(screen.query_one(SpectrumChart).render())
        title = text.splitlines()[0].strip()
        assert title.startswith("fc2 32x32 · epoch 20 (5/5) · rank") and len(title) <= 78
        assert "░ init █ epoch 20" in text and "count" in text and "eps=0.001" in text


@pilot_test
async def test_cancel_in_the_detail_asks_first(tui_store: Path) -> None:
    running = first_with(tui_store, "running")
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await open_run(pilot, running)
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, RunDetailScreen)
        with Store(tui_store) as store:
            assert store.run(running).status == "running" and store.take_requests() == []  # type: ignore[union-attr]
        await pilot.press("x", "y")
        await pilot.pause()
    with Store(tui_store) as store:
        assert store.run(running).status == "cancelled" or store.take_requests() == [
            Request("cancel", running)
        ]  # type: ignore[union-attr]


@pilot_test
async def test_x_and_r_on_a_finished_run_say_why_nothing_happens(tui_store: Path) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await open_run(pilot, first_with(tui_store, "done"))
        await pilot.press("x", "r")
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert any("nothing to cancel" in m for m in said) and any("nothing to resume" in m for m in said)


@pilot_test
async def test_launch_confirms_with_numbers_and_a_finished_sweep_has_nothing_to_do(tui_store: Path) -> None:
    from rankbias_tui.tui.screens.launch import LaunchScreen

    with Store(tui_store) as store:  # finish every run of lr-wd
        store.conn.execute("UPDATE runs SET status='done' WHERE sweep='lr-wd'")
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        await pilot.press("enter")  # quick: 1 queued, 1 running, 1 failed, 3 done
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "1 to resume; 3 already finished (skipped), 2 queued or running" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, LaunchScreen)
        await pilot.press("down", "enter")  # lr-wd: all done
        await pilot.pause()
        assert isinstance(app.screen, LaunchScreen)
        assert any("lr-wd: nothing to do" in n.message for n in app._notifications)
    with Store(tui_store) as store:
        assert store.take_requests() == []  # nothing was queued
    assert app.spawn.calls == []  # and no scheduler started for nothing


@pilot_test
async def test_a_broken_spec_lists_its_problems(tui_store: Path) -> None:
    spec = tui_store / "experiments.toml"
    spec.write_text('[sweeps.a]\ndataset = "nope"\nlr = -1\n[sweeps.b]\nwidht = 3\n')
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        text = str(app.screen.query_one("#description").render())
        assert "dataset" in text and "lr" in text and "widht" in text  # each problem, not only a count


@pilot_test
async def test_stopped_runs_resume_together(tui_store: Path) -> None:
    from rankbias_tui.scheduler import SchedulerLock

    with Store(tui_store) as store:
        stopped = [r.run_id for r in store.runs() if r.status in ("running", "queued")]
        store.conn.execute("UPDATE runs SET status='stopped' WHERE status IN ('running', 'queued')")
    app = make_app(tui_store)
    with SchedulerLock(tui_store):
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            table = app.screen.query_one(RunsTable)
            assert table.cell(stopped[0], "status") == "stopped"
            table.move_cursor(row=table.visible_ids().index(stopped[0]))
            await pilot.press("r")
            await pilot.pause()
            assert (
                isinstance(app.screen, ConfirmScreen) and f"all {len(stopped)} stopped" in app.screen.question
            )
            await pilot.press("y")
            await pilot.pause()
    with Store(tui_store) as store:
        assert sorted(r.run_id for r in store.take_requests()) == sorted(stopped)


@pilot_test
async def test_the_log_tab_shows_warnings_segments_and_the_scheduler_lines(tui_store: Path) -> None:
    run_id = first_with(tui_store, "done")
    with Store(tui_store) as store:
        store.add_warning(run_id, "checkpoint step-40.pt is unreadable; resumed from an earlier checkpoint")
        store.add_segment(run_id, -1, "cpu", "eager", [run_id])
        log = store.paths.log
    log.write_text(
        f"10:00 run {run_id} on cpu: eager\n10:01 run 0123456789ab on cpu: eager\n10:02 run {run_id}: done\n"
    )
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = await open_run(pilot, run_id)
        await pilot.press("4")
        await pilot.pause()
        text = str(screen.query_one("#log-text").render())
        assert "checkpoint step-40.pt is unreadable" in text and "from the start on cpu: eager" in text
        assert "by provenance not recorded" in text  # a segment its worker said nothing about
        assert f"10:00 run {run_id} on cpu: eager" in text and f"10:02 run {run_id}: done" in text
        assert "0123456789ab" not in text  # another run's line


def test_the_dashboard_and_the_detail_screen_share_one_resume_rule() -> None:
    from rankbias_tui.tui.screens.run_actions import cannot_resume

    assert cannot_resume("0123456789ab", "done") == "01234567 is done, finished: nothing to resume"
    assert cannot_resume("0123456789ab", "diverged") == "01234567 is diverged, finished: nothing to resume"
    assert cannot_resume("0123456789ab", "running") == "01234567 is running, already running"
    assert all(
        cannot_resume("0123456789ab", s) is None for s in ("failed", "cancelled", "stopped", "interrupted")
    )
