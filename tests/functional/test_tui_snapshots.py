"""Snapshot tests (pytest-textual-snapshot) of the dashboard, run detail, compare and launch screens.

The recorded store has fixed numbers and timestamps and the app a fixed clock and device probe,
so the SVGs are the same on every machine; paths are relative to a temporary working directory.
Update them after an intended change with ``pytest tests/functional/test_tui_snapshots.py
--snapshot-update`` and look at the report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rankbias_tui.tui.widgets.runs_table import RunsTable
from tests.support.tui_store import make_app, make_store


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - RankbiasApp
    monkeypatch.chdir(tmp_path)
    make_store(Path("runs")).close()
    return make_app(Path("runs"))


async def settle(pilot) -> None:  # noqa: ANN001
    await pilot.pause()
    await pilot.pause()


async def on_running_run(pilot) -> None:  # noqa: ANN001
    await settle(pilot)
    table = pilot.app.screen.query_one(RunsTable)
    running = next(v.run_id for v in pilot.app.latest.snapshot.runs if v.status == "running")
    table.move_cursor(row=table.visible_ids().index(running))
    await settle(pilot)


def test_dashboard_80x24(app, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


def test_dashboard_120x34_sorted_by_rank(app, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app, press=["7"], terminal_size=(120, 34), run_before=settle)


@pytest.fixture
def big_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - RankbiasApp
    monkeypatch.chdir(tmp_path)
    make_store(Path("runs"), big=True).close()
    return make_app(Path("runs"))


def test_dashboard_three_sweeps_80x24(big_app, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(big_app, terminal_size=(80, 24), run_before=settle)


def test_dashboard_three_sweeps_120x34_at_the_end(big_app, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(big_app, press=["end"], terminal_size=(120, 34), run_before=settle)


def test_run_detail_curves(app, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app, press=["enter", "_"], terminal_size=(80, 24), run_before=on_running_run)


def test_run_detail_spectrum_earlier_measurement(app, snap_compare) -> None:  # noqa: ANN001
    press = ["down", "enter", "_", "2", "left", "left", "down"]  # a finished wd=0.01 run, fc2, epoch 10
    assert snap_compare(app, press=press, terminal_size=(80, 24), run_before=settle)


def test_run_detail_config_and_error(app, snap_compare) -> None:  # noqa: ANN001
    press = ["slash", *"failed", "enter", "enter", "_", "3"]
    assert snap_compare(app, press=press, terminal_size=(80, 24), run_before=settle)


def test_compare_grouped_by_batch_size(app, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app, press=["v", "_", "g"], terminal_size=(80, 24), run_before=settle)


def test_launch(app, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app, press=["l", "_"], terminal_size=(80, 24), run_before=settle)
