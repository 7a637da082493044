"""The dashboard on a store of several sweeps at 80x24 and 120x34 (issue 10, items 1, 10, 11): the
run id frozen at the left, the live columns always on screen, hyperparameter columns only for what
varies among the rows shown, one key to sort, running runs first, the last row visible."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankbias_tui.tui.widgets.runs_table import RunsTable
from tests.support.tui_store import make_app, make_store, pilot_test


@pytest.fixture
def big_store(tmp_path: Path) -> Path:
    make_store(tmp_path / "runs", big=True).close()
    return tmp_path / "runs"


def line(table: RunsTable, y: int) -> str:
    return "".join(segment.text for segment in table.render_line(y))


@pilot_test
async def test_at_80_columns_the_id_and_live_columns_stay_in_view(big_store: Path) -> None:
    app = make_app(big_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        header = line(table, 0)
        assert len(header) <= 80
        for title in ("run", "status", "epoch", "prog", "loss", "acc", "rank"):
            assert f" {title}" in header, header
        first = table.visible_ids()[0]
        assert first[:8] in line(table, 1)
        for _ in range(40):
            await pilot.press("right")  # scroll the other columns sideways
        await pilot.pause()
        assert table.scroll_x > 0
        assert line(table, 0).startswith("   run") and first[:8] in line(table, 1)  # frozen
        assert "seed" in line(table, 0) and "status" not in line(table, 0)  # the rest is reachable


@pilot_test
async def test_hyperparameter_columns_follow_the_filter(big_store: Path) -> None:
    app = make_app(big_store)
    async with app.run_test(size=(120, 34)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        assert {"sweep", "depth", "width", "batch_size", "epochs", "seed"} <= set(table.columns)
        await pilot.press("slash", *"sweep=quick", "enter")
        await pilot.pause()
        assert table.columns[7:9] == ("batch_size", "weight_decay")
        assert "depth" not in table.columns and "sweep" not in table.columns


@pytest.mark.parametrize("size", [(80, 24), (120, 34)])
@pilot_test
async def test_the_last_row_is_visible_after_end(big_store: Path, size: tuple[int, int]) -> None:
    app = make_app(big_store)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        await pilot.press("end")
        await pilot.pause()
        last = table.visible_ids()[-1]
        rows = table.region.height - (
            table.scrollbar_size_horizontal if table.show_horizontal_scrollbar else 0
        )
        visible = [line(table, y) for y in range(1, rows)]
        assert any(last[:8] in text and text.startswith(">") for text in visible)
        assert table.region.bottom <= app.screen.query_one("Footer").region.y  # nothing hides it


@pilot_test
async def test_one_key_sorts_by_any_column_and_again_reverses(big_store: Path) -> None:
    app = make_app(big_store)
    async with app.run_test(size=(120, 34)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        snap = app.latest.snapshot.by_id()
        assert snap[table.visible_ids()[0]].status == "running"
        await pilot.press("7")  # avg rank
        assert table.sort_column == "rank"
        ranks = [snap[r].avg_rank for r in table.visible_ids() if snap[r].avg_rank is not None]
        assert ranks == sorted(ranks)
        await pilot.press("7")
        ranks = [snap[r].avg_rank for r in table.visible_ids() if snap[r].avg_rank is not None]
        assert ranks == sorted(ranks, reverse=True)
        await pilot.press("s")  # the picker lists the numbers; a digit chooses
        await pilot.pause()
        assert type(app.screen).__name__ == "SortScreen"
        await pilot.press("2")
        await pilot.pause()
        assert type(app.screen).__name__ == "DashboardScreen" and table.sort_column == "status"


@pilot_test
async def test_a_big_store_sorted_by_accuracy_is_in_order_once_every_run_is_read(
    big_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first picture of a big store shows its first runs with their values and says it is
    reading; the next has every run with its values, so a sort by accuracy is the store's order
    (it was provisional for about 12 s at 20,000 runs, values coming 1,000 a refresh)."""
    from rankbias_tui.tui import model

    monkeypatch.setattr(model, "FIRST_RUNS", 5)
    app = make_app(big_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        await pilot.press("6")  # sort by test accuracy
        assert table.sort_column == "acc"
        assert app.latest.snapshot.total == 45 and len(table.visible_ids()) < 45
        assert "reading 45 runs…" in str(app.screen.query_one("#shown").render())
        app.refresh_data()
        await pilot.pause()
        views = app.latest.snapshot.by_id()
        ids = table.visible_ids()
        assert len(ids) == 45 and "…" not in "".join(table.column("acc"))
        known = [views[i].test_acc for i in ids if views[i].test_acc is not None]
        assert known == sorted(known) and len(known) >= 20
        assert ids[: len(known)] == [i for i in ids if views[i].test_acc is not None]  # missing last
