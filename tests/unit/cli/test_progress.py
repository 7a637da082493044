"""cli.progress.Bars: a rich bar on stderr for a long loop, only in a terminal and after a second."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from rankbias_tui import export
from rankbias_tui.cli.progress import Bars
from rankbias_tui.store import Store
from tests.support.tui_store import make_store


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=80), out


def test_a_bar_shows_in_a_terminal_once_the_loop_is_slow() -> None:
    term, shown = console(True)
    with Bars(term, delay_s=0.0) as bars:
        assert list(bars(range(5), "export spectra")) == [0, 1, 2, 3, 4]
    assert "export spectra" in shown.getvalue()


def test_no_bar_when_piped_or_quick() -> None:
    piped, said = console(False)
    with Bars(piped, delay_s=0.0) as bars:
        assert list(bars(range(5), "export spectra")) == [0, 1, 2, 3, 4]
    quick_term, quick = console(True)
    with Bars(quick_term, delay_s=60.0) as bars:
        assert list(bars(range(5), "report")) == [0, 1, 2, 3, 4]
    assert said.getvalue() == "" and quick.getvalue() == ""


def test_an_export_goes_through_the_bars_and_writes_the_same_rows(tmp_path: Path) -> None:
    make_store(tmp_path / "s").close()
    seen: list[str] = []

    def track(runs, description):  # noqa: ANN001, ANN202
        seen.append(description)
        yield from runs

    with Store(tmp_path / "s", create=False) as store:
        for what in export.KINDS:
            plain, tracked = tmp_path / f"{what}.csv", tmp_path / f"{what}-tracked.csv"
            assert export.export(store, what, plain) == export.export(store, what, tracked, track=track)
            assert plain.read_bytes() == tracked.read_bytes()
    assert seen == ["export summary", "export metrics", "export spectra"]
