"""The runs table's rows kept by change (issue 21, item 1): after any run changes, the rows shown,
their order and their texts are what filtering and sorting every run again gives, and a picture
with nothing new changes nothing (so nothing is redrawn)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from rankbias_tui import measures
from rankbias_tui.measures import Status
from rankbias_tui.tui.model import StoreFeed
from rankbias_tui.tui.row_index import RowIndex
from tests.support.tui_store import NOW, make_store


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    directory = tmp_path_factory.mktemp("rows") / "runs"
    make_store(directory, big=True).close()
    feed = StoreFeed(directory, clock=lambda: NOW)
    snapshot = feed.poll()
    feed.close()
    return snapshot.runs


def fresh(runs: tuple, etas: dict, like: RowIndex) -> RowIndex:
    index = RowIndex()
    index.words, index.sort_column, index.sort_reverse = like.words, like.sort_column, like.sort_reverse
    index.problems_first = like.problems_first
    index.update(runs, etas, {})
    return index


@pytest.mark.parametrize(
    "text,column,reverse,problems",
    [("", None, False, False), ("acc>0.9", "acc", True, False), ("quick", "status", False, True),
     ("", "rank", True, True), ("rank<20", "prog", False, False)],
)  # fmt: skip
def test_changes_applied_one_by_one_equal_a_full_rebuild(
    runs: tuple, text: str, column: str | None, reverse: bool, problems: bool
) -> None:
    index = RowIndex()
    index.update(runs, {}, {})
    index.set_filter(text)
    index.sort_by(column, reverse)
    index.set_problems_first(problems)
    rng = random.Random(7)
    current, etas = list(runs), {}
    for _ in range(30):
        i = rng.randrange(len(current))
        v = current[i]
        current[i] = replace(
            v,
            status=rng.choice(list(Status)),
            test_acc=rng.choice([None, rng.random()]),
            avg_rank=rng.choice([None, rng.uniform(1, 40)]),
            epoch=float(rng.randrange(v.epochs + 1)),
        )
        etas = {current[i].run_id: 30.0} if rng.random() < 0.3 else etas
        index.update(tuple(current), etas, {})
        expected = fresh(tuple(current), etas, index)
        assert index.ids() == expected.ids()
        assert index.columns == expected.columns
        assert {r: index.cells[r] for r in index.ids()} == {r: expected.cells[r] for r in expected.ids()}


def test_the_same_picture_again_changes_nothing(runs: tuple) -> None:
    index = RowIndex()
    assert index.update(runs, {}, {}).layout
    assert not index.update(runs, {}, {})
    again = tuple(replace(v) if v.status != Status.RUNNING else v for v in runs)  # equal, new objects
    assert not index.update(again, {}, {})


def test_one_run_moving_redraws_its_row_only(runs: tuple) -> None:
    index = RowIndex()
    index.update(runs, {}, {})
    running = next(i for i, v in enumerate(runs) if v.status == Status.RUNNING)
    moved = list(runs)
    moved[running] = replace(runs[running], test_acc=0.5)
    changes = index.update(tuple(moved), {}, {})
    assert not changes.layout and changes.rows == {runs[running].run_id}


def test_problems_first_in_either_direction(runs: tuple) -> None:
    index = RowIndex()
    index.update(runs, {}, {})
    index.set_problems_first(True)
    problems = sum(v.status in (Status.FAILED, Status.DIVERGED, Status.INTERRUPTED) for v in runs)
    assert problems
    for reverse in (False, True):
        index.sort_by("acc", reverse)
        first = [index.views[i].status for i in index.ids()[:problems]]
        assert set(first) <= {Status.FAILED, Status.DIVERGED, Status.INTERRUPTED}


def test_the_feed_reads_only_the_runs_written_since(tmp_path: Path) -> None:
    store = make_store(tmp_path / "runs")
    feed = StoreFeed(tmp_path / "runs", clock=lambda: NOW)
    first = feed.poll()
    done = next(v for v in first.runs if v.status == Status.DONE)
    store.set_status(done.run_id, "failed", error="boom")
    store.close()
    seen = []
    read = feed.store.runs_changed
    feed.store.runs_changed = lambda since: seen.append(r := read(since)) or r  # type: ignore[method-assign]
    feed._last = None  # as if the files' stamp moved
    second = feed.poll()
    assert {r.run_id for r in seen[0][0]} == {done.run_id} | {
        v.run_id for v in first.runs if v.status == Status.RUNNING
    }
    assert second.by_id()[done.run_id].status == Status.FAILED
    assert second.counts[Status.FAILED] == first.counts[Status.FAILED] + 1
    unchanged = [v for v in first.runs if v.run_id != done.run_id and v.status != Status.RUNNING]
    assert all(second.by_id()[v.run_id] is v for v in unchanged)
    feed.close()


def test_a_big_store_shows_its_first_runs_then_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first picture: the first runs and the running ones, with their values and the store's
    true counts; the next one every run, each with its values (no run waits for a later poll)."""
    from rankbias_tui.tui import model
    from rankbias_tui.tui.widgets.status import header_lines

    make_store(tmp_path / "runs").close()
    monkeypatch.setattr(model, "FIRST_RUNS", 3)
    feed = StoreFeed(tmp_path / "runs", clock=lambda: NOW)
    first, full = feed.poll(), feed.poll()
    assert first.total == 9 and 3 <= len(first.runs) < 9
    assert any(v.status == Status.RUNNING for v in first.runs)  # the running runs come first
    assert full.total is None and len(full.runs) == 9
    assert first.counts == full.counts and header_lines(first)[1] == header_lines(full)[1]
    assert all(full.by_id()[v.run_id] == v for v in first.runs)
    store = feed.store
    for v in full.runs:  # every value as one run's own seeks read it
        last = store.latest_values(v.run_id, model.SHOWN_METRICS)
        assert (v.train_loss, v.test_acc) == (
            last.get(measures.shown_loss(last)),
            last.get(measures.TEST_ACC),
        )
        assert v.avg_rank == measures.mean(store.latest_ranks(v.run_id))
    assert sum(v.avg_rank is not None for v in full.runs) >= 5
    feed.close()


def test_a_new_filter_or_sort_reuses_every_runs_texts(runs: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter or a sort at 20,000 runs formats no row again (0.3-0.7 s each before): the texts of
    every column are kept per run; what it shows equals an index built afresh with that view."""
    from rankbias_tui.tui import rows

    index = RowIndex()
    index.update(runs, {}, {}, None)
    made: list[str] = []
    cells = rows.cells
    monkeypatch.setattr(rows, "cells", lambda v, *a, **k: made.append(v.run_id) or cells(v, *a, **k))
    views = [("quick", None, False), ("wd=0.01", "acc", True), ("", "rank", False), ("acc>0.5", "lr", True)]
    for text, column, reverse in views:
        index.set_filter(text)
        index.sort_by(column, reverse)
        assert made == []
        expected = fresh(runs, {}, index)
        made.clear()
        assert index.ids() == expected.ids() and index.columns == expected.columns
        assert index.cells == expected.cells and index.widths == expected.widths
    index.set_filter("")
    index.toggle_mark(runs[0].run_id)  # a mark changes that row's texts only
    assert made == [runs[0].run_id]
