"""Contrast computed from the colours the app renders (issue 10, item 4: the cursor row was about
1.3:1, green ``done`` on the cursor about 1:1): at least 4.5:1 for the cursor row and every status
in the default theme, in truecolor, 256 colours and the 16 of ``TERM=xterm``; with ``NO_COLOR``
the cursor is reversed text and a ``>``."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.segment import Segment

from rankbias_tui.tui.theme import MIN_CONTRAST, STATUS_STYLE, SYSTEMS, contrast
from rankbias_tui.tui.widgets.runs_table import RunsTable
from tests.support.tui_store import make_app, pilot_test


def colours(segment: Segment) -> tuple[object, object]:
    """(foreground, background) as shown: a reversed style swaps them."""
    style = segment.style
    assert style is not None and style.color is not None and style.bgcolor is not None
    return (style.bgcolor, style.color) if style.reverse else (style.color, style.bgcolor)


@pilot_test
async def test_cursor_row_and_statuses_keep_a_contrast_of_4_5(tui_store: Path) -> None:
    from rich.style import Style

    app = make_app(tui_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        lines = {y: list(table.render_line(y)) for y in (1, 2, 3)}  # the cursor row, then both stripes
        checked = []
        for name, system in SYSTEMS.items():
            for segment in lines[1]:  # every cell of the cursor row, the status included
                fg, bg = colours(segment)
                assert contrast(fg, bg, system) >= MIN_CONTRAST, (name, segment)
            assert all(s.style.reverse and s.style.bold for s in lines[1] if s.text.strip())
            for y in (2, 3):
                _, background = colours(lines[y][0])
                for status, style in STATUS_STYLE.items():
                    colour = Style.parse(style).color or colours(lines[y][0])[0]
                    ratio = contrast(colour, background, system)
                    assert ratio >= MIN_CONTRAST, (status, name, round(ratio, 2))
                    checked.append(ratio)
        assert len(checked) == 2 * len(STATUS_STYLE) * len(SYSTEMS)


def test_the_old_colours_would_fail() -> None:
    """The test above can fail: the colours before (ANSI green on the rows) measured under 4.5."""
    assert contrast("green", "#1e1e1e") < MIN_CONTRAST and contrast("red", "#262626") < MIN_CONTRAST


@pilot_test
async def test_no_color_keeps_the_cursor_visible(tui_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(tui_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color
        table = app.screen.query_one(RunsTable)
        cursor = list(table.render_line(1))
        assert "".join(s.text for s in cursor).startswith(">")
        assert all(s.style.reverse for s in cursor if s.text.strip())  # reversed: no colour needed
