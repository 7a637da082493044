"""The app at 80x24 (issue 21, items 4 and 5): dialogs wrap, sideways scrolling by whole columns
with nothing glued to the run id, the header drops parts rather than cutting them, any column
sorts from a list, the help is complete and scrolls, footers list the keys that act, the layer
table shows every layer; the cursor starts on the first row and the filter and sort come back on
the next attach."""

from __future__ import annotations

import re
from pathlib import Path

from textual.widgets import DataTable, Footer

from rankbias_tui.tui.screens.confirm import ConfirmScreen
from rankbias_tui.tui.screens.help import HELP, HelpScreen
from rankbias_tui.tui.screens.sort import SortScreen
from rankbias_tui.tui.widgets.runs_table import RunsTable
from rankbias_tui.tui.widgets.status import StatusHeader
from tests.support.tui_store import make_app, make_store, pilot_test

SIZE = (80, 24)


def line(table: RunsTable, y: int) -> str:
    return "".join(segment.text for segment in table.render_line(y))


def footer_text(app) -> str:  # noqa: ANN001
    return " ".join(str(w.render()) for w in app.screen.query_one(Footer).query("FooterKey"))


def screen_text(app) -> list[str]:  # noqa: ANN001
    svg = app.export_screenshot()
    rows: dict[str, list[tuple[float, str]]] = {}
    for x, y, text in re.findall(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(y, []).append((float(x), text.replace("&#160;", " ")))
    return [
        "".join(t for _, t in sorted(parts)) for _, parts in sorted(rows.items(), key=lambda r: float(r[0]))
    ]


@pilot_test
async def test_a_long_question_wraps_inside_its_dialog(tui_store: Path) -> None:
    app = make_app(tui_store)
    question = "Cancel " + " ".join(f"word{i}" for i in range(40)) + " end?"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.push_screen(ConfirmScreen(question))
        await pilot.pause()
        text = " ".join(screen_text(app))
        assert "Cancel word0" in text and "end?" in text and "word39" in text


@pilot_test
async def test_sideways_by_whole_columns_never_glued_to_the_id(tmp_path: Path) -> None:
    make_store(tmp_path / "runs", big=True).close()
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        starts = table._starts()
        await pilot.press("right")
        assert table.scroll_x in starts and table.scroll_x > 0
        for y in range(0, 6):
            text = line(table, y)
            assert re.match(r"^[> ][● ] (\S{3,8})\s{2}", text), text  # two spaces after the id
        await pilot.press("left")
        assert table.scroll_x == 0
        table.scroll_to(x=starts[2] + 4, animate=False)  # a mouse can stop mid-value
        await pilot.pause()
        for y in range(1, 6):
            assert re.match(r"^[> ][● ] \w{8}\s{2}", line(table, y)), line(table, y)


@pilot_test
async def test_header_drops_parts_instead_of_cutting_them(tui_store: Path) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        header = app.screen.query_one(StatusHeader)
        assert all(len(t) <= 78 and not t.endswith("…") for t in header.text.splitlines())
        assert "ETA" in header.text.splitlines()[1]


@pilot_test
async def test_any_column_sorts_from_the_list(tmp_path: Path) -> None:
    make_store(tmp_path / "runs", big=True).close()
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        assert len(table.columns) > 10
        await pilot.press("s")
        assert isinstance(app.screen, SortScreen)
        await pilot.press("end", "enter")  # the last column, past the digits
        await pilot.pause()
        assert table.sort_column == table.columns[-1]


@pilot_test
async def test_help_names_every_key_and_scrolls(tui_store: Path) -> None:
    for key in ("  p  ", "  P  ", "  a  ", "  m  ", "acc>0.9", "tab", "  s  ", "  o "):
        assert key.strip() in HELP
    assert max(len(t) for t in HELP.splitlines()) <= 76
    app = make_app(tui_store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        dialog = app.screen.query_one("#dialog")
        await pilot.press("pagedown")
        await pilot.pause()
        assert dialog.scroll_y > 0


@pilot_test
async def test_footers_list_the_keys_that_act(tui_store: Path) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dashboard = footer_text(app)
        assert "Detail" in dashboard and "Help" in dashboard
        await pilot.press("enter")
        await pilot.pause()
        detail = footer_text(app)
        assert "Export" in detail and "Help" in detail and "Earlier" not in detail
        await pilot.press("2")
        await pilot.pause()
        assert "Earlier" in footer_text(app)
        await pilot.press("escape", "l")
        await pilot.pause()
        assert "Queue sweep" in footer_text(app)


@pilot_test
async def test_the_layer_table_shows_ten_layers(tui_store: Path) -> None:
    from rankbias_tui.tui.screens.detail import RunDetailScreen

    app = make_app(tui_store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter", "2")
        await pilot.pause()
        assert isinstance(app.screen, RunDetailScreen)
        layers = app.screen.query_one("#layers", DataTable)
        for i in range(4, 11):
            layers.add_row(f"fc{i}", "32x32", "1", "32", "", "", "")
        await pilot.pause()
        assert layers.region.height >= 11  # a header and ten layers, none hidden


@pilot_test
async def test_cursor_starts_on_row_one_and_the_view_comes_back(tui_store: Path) -> None:
    app = make_app(tui_store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        assert table.cursor_row == 0 and line(table, 1).startswith(">")
        app.refresh_data()
        await pilot.pause()
        assert table.cursor_row == 0
        await pilot.press("slash", *"quick", "enter", "5", "P")
        await pilot.pause()
        saved = (table.filter_text, table.sort_column, table.sort_reverse, table.problems_first)
    again = make_app(tui_store)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = again.screen.query_one(RunsTable)
        assert (table.filter_text, table.sort_column, table.sort_reverse, table.problems_first) == saved
        assert saved == ("quick", "loss", False, True)
        assert again.screen.query_one("#filter").value == "quick" and table.cursor_row == 0
