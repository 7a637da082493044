"""Pilot tests: drive the terminal UI on a recorded store (no torch, no scheduler, no threads)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rankbias_tui import export
from rankbias_tui.scheduler import SchedulerLock
from rankbias_tui.spec import load_spec
from rankbias_tui.store import Request, Store
from rankbias_tui.sweep import expand_sweep
from rankbias_tui.tui.screens.compare import CompareScreen
from rankbias_tui.tui.screens.detail import RunDetailScreen
from rankbias_tui.tui.screens.launch import LaunchScreen
from rankbias_tui.tui.widgets.charts import CurvesChart, RankChart, SpectrumChart
from rankbias_tui.tui.widgets.runs_table import RunsTable
from tests.support.tui_store import make_app, pilot_test

SIZE = (100, 30)


@pytest.fixture
def store_dir(tui_store: Path) -> Path:
    return tui_store


def runs_of(store_dir: Path) -> dict[str, str]:
    with Store(store_dir) as store:
        return {r.run_id: r.status for r in store.runs()}


async def select(pilot, run_id: str) -> None:  # noqa: ANN001
    table = pilot.app.screen.query_one(RunsTable)
    table.move_cursor(row=table.visible_ids().index(run_id))
    await pilot.pause()


def first_with(store_dir: Path, status: str) -> str:
    return next(r for r, s in runs_of(store_dir).items() if s == status)


@pilot_test
async def test_dashboard_lists_runs_with_live_columns(store_dir: Path) -> None:
    app = make_app(store_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        assert sorted(table.visible_ids()) == sorted(runs_of(store_dir))
        assert list(table.columns) == [
            "run", "status", "epoch", "prog", "loss", "acc", "rank", "sweep", "batch_size", "lr", "weight_decay",
            "why",
        ]  # fmt: skip
        assert table.visible_ids()[0] == first_with(store_dir, "running")  # running runs first
        running = first_with(store_dir, "running")
        assert table.cell(running, "status") == "running"
        assert table.cell(running, "epoch") == "10/20"


@pilot_test
async def test_selecting_a_run_shows_its_charts(store_dir: Path) -> None:
    app = make_app(store_dir)
    running = first_with(store_dir, "running")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, running)
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.run_id == running
        assert screen.detail is not None and len(screen.detail.measurements) == 3  # epochs 0, 5, 10
        assert set(screen.detail.series) >= {"train_loss", "test_acc"}
        assert "average" in screen.detail.rank_series()
        curves = str(screen.query_one(CurvesChart).render())
        assert "● train loss (left)" in curves and "+ test acc (right)" in curves  # a key with markers
        rank_chart = str(screen.query_one(RankChart).render())
        assert "rank at eps=0.001" in rank_chart and "█ avg" in rank_chart
        await pilot.press("escape")
        assert app.focus_run is None


@pilot_test
async def test_histogram_steps_through_measurements(store_dir: Path) -> None:
    app = make_app(store_dir)
    done = first_with(store_dir, "done")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, done)
        await pilot.press("enter", "2")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunDetailScreen)
        hist = screen.query_one(SpectrumChart)
        assert "(5/5)" in str(hist.render())
        await pilot.press("left", "left")
        assert screen.measurement == 2
        assert "epoch 10 (3/5)" in str(hist.render())
        await pilot.press("home")
        assert "epoch 0 (1/5)" in str(hist.render())
        await pilot.press("down")  # the next layer
        assert screen.layer_index == 1 and "fc2 32x32" in str(hist.render())
        await pilot.press("end")
        assert screen.measurement is None and "(5/5)" in str(hist.render())


@pilot_test
async def test_filter_by_typing_and_sort(store_dir: Path) -> None:
    app = make_app(store_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        await pilot.press("slash", *"wd=0.01 done", "enter")
        snap = app.latest.snapshot.by_id()
        shown = table.visible_ids()
        assert shown and all(snap[r].config.weight_decay == 0.01 and snap[r].status == "done" for r in shown)
        await pilot.press("escape")  # clears the filter
        assert len(table.visible_ids()) == len(snap)
        await pilot.press(str(table.columns.index("rank") + 1))  # one key
        assert table.sort_column == "rank"
        ranks = [snap[r].avg_rank for r in table.visible_ids()]
        known = [r for r in ranks if r is not None]
        assert known == sorted(known) and ranks[-1] is None  # runs without a rank last
        await pilot.press("S")
        known = [snap[r].avg_rank for r in table.visible_ids() if snap[r].avg_rank is not None]
        assert known == sorted(known, reverse=True)


@pilot_test
async def test_launch_queues_a_sweep(store_dir: Path) -> None:
    spec = store_dir / "experiments.toml"
    runs = expand_sweep(load_spec(spec), "lr-wd")
    app = make_app(store_dir)
    spec.write_text(
        spec.read_text().replace("grid.lr = [0.1, 0.2]", "grid.lr = [0.3]")
    )  # after the app read it
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LaunchScreen)
        assert list(app.screen.sweeps) == ["quick", "lr-wd"]
        await pilot.press("down", "enter")
        await pilot.pause()
        question = str(app.screen.query_one("Label").render())
        assert (
            "Queue sweep lr-wd: 0 new run(s), 1 to resume; 3 already finished (skipped), 0 queued" in question
        )
        await pilot.press("y")
        await pilot.pause()
        assert not isinstance(app.screen, LaunchScreen)
    with Store(store_dir) as store:
        requests = store.take_requests()
    # the runs the screen counted, not those the file holds by now
    assert requests == [Request("launch", run.run_id, sweep="lr-wd") for run in runs] and len(runs) == 4
    assert [call[0] for call in app.spawn.calls] == [store_dir]  # no scheduler ran: one was started


@pilot_test
async def test_cancel_marks_a_run(store_dir: Path) -> None:
    app = make_app(store_dir)
    running = first_with(store_dir, "running")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        await select(pilot, running)
        await pilot.press("x", "y")  # no scheduler: marked at once
        await pilot.pause()
        assert table.cell(running, "status") == "cancelled"
    assert runs_of(store_dir)[running] == "cancelled"


@pilot_test
async def test_cancel_and_resume_go_to_a_running_scheduler(store_dir: Path) -> None:
    app = make_app(store_dir)
    running, failed = first_with(store_dir, "running"), first_with(store_dir, "failed")
    with SchedulerLock(store_dir):  # stands in for a scheduler holding the store
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            table = app.screen.query_one(RunsTable)
            await select(pilot, running)
            await pilot.press("x", "y")
            await pilot.pause()
            assert table.cell(running, "status") == "cancelling"
            await select(pilot, failed)
            await pilot.press("r")
            await pilot.pause()
            assert table.cell(failed, "status") == "resuming"
    with Store(store_dir) as store:
        assert store.take_requests() == [Request("cancel", running), Request("resume", failed)]
    assert runs_of(store_dir)[running] == "running"  # the scheduler decides, not the app


@pilot_test
async def test_export_writes_the_csv_of_the_view(store_dir: Path) -> None:
    app = make_app(store_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"quick", "enter", "e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = app.screen.query_one(RunsTable).visible_ids()
    [path] = (store_dir / "exports").glob("summary-*.csv")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run_id"] for r in rows] == shown and len(shown) == 6
    with Store(store_dir) as store:
        expected = export.summary_columns([export.summary_row(store, store.run(shown[0]))])
    assert list(rows[0]) == expected  # the same writer and columns as `rankbias export`


@pilot_test
async def test_compare_overlays_and_groups(store_dir: Path) -> None:
    app = make_app(store_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        ids = app.screen.query_one(RunsTable).visible_ids()
        await select(pilot, ids[0])
        await pilot.press("space", "down", "space", "v")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen) and sorted(screen.run_ids) == sorted(ids[:2])
        assert screen.curves is not None and set(screen.curves) == set(ids[:2])
        await pilot.press("escape", "space", "up", "space")  # unmark both: the whole sweep
        await pilot.press("v")
        await pilot.pause()
        assert len(app.screen.run_ids) == 6
        await pilot.press("g")  # group by batch size
        await pilot.pause()
        legend = app.screen.query_one("#legend")
        assert [str(legend.get_row_at(i)[1]) for i in range(legend.row_count)] == ["B=8", "B=16", "B=32"]


@pilot_test
async def test_help_opens_and_closes(store_dir: Path) -> None:
    app = make_app(store_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert type(app.screen).__name__ == "DashboardScreen"


@pilot_test
async def test_mouse_sorts_by_a_header_and_opens_a_row(store_dir: Path) -> None:
    app = make_app(store_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        x = table._frozen_width() + 3  # the first column after the frozen run id
        await pilot.click(RunsTable, offset=(x, 0))
        assert table.sort_column == "status" and table.column("status")[0] == "running"
        await pilot.click(RunsTable, offset=(x, 0))
        assert table.sort_reverse and table.column("status")[-1] == "running"
        await pilot.click(RunsTable, offset=(5, 2), times=2)  # double click the second row
        await pilot.pause()
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == table.visible_ids()[1]


@pilot_test
async def test_no_color_keeps_the_cursor_and_statuses_readable(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(store_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color
        table = app.screen.query_one(RunsTable)
        first = "".join(segment.text for segment in table.render_line(1))
        assert first.startswith(">") and "running" in first  # the cursor is a character, not a colour


@pilot_test
async def test_launch_screen_offers_the_spec_read_once(store_dir: Path) -> None:
    spec_file = store_dir / "experiments.toml"
    app = make_app(store_dir, spec=load_spec(spec_file))  # as `rankbias run` and `attach` hand it over
    spec_file.unlink()  # opening the launch screen must not read the file again
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LaunchScreen) and list(app.screen.sweeps) == ["quick", "lr-wd"]


@pilot_test
async def test_markup_in_user_text_is_shown_literally(store_dir: Path) -> None:
    """Issue 9: an error, a log line or a path holding markup is shown as text: every notification
    either asks for no markup or is valid markup, and the run detail shows the error."""
    from textual.content import Content

    from rankbias_tui.tui.messages import PollFailed

    failed = first_with(store_dir, "failed")
    with Store(store_dir) as store:
        store.set_status(failed, "failed", error="[/red]oops [bold]")
    app = make_app(store_dir)
    shown: list[str] = []
    notify = app.notify

    def rendered(message: str, **kw: object) -> None:
        shown.append(message if kw.get("markup") is False else Content.from_markup(message).plain)
        notify(message, **kw)  # type: ignore[arg-type]

    app.notify = rendered  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.post_message(PollFailed("[/red]oops"))
        await pilot.pause()
        assert shown == ["[/red]oops"]
        await select(pilot, failed)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunDetailScreen)
        assert app.is_running  # no MarkupError ended the app
