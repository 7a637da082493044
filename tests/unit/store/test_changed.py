"""The store's change number (schema v10, issue 21): a reader asks for the runs written since it last
looked, whatever wrote them, and an older store answers with every run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rankbias_tui.store import DB_NAME, Store, database, migrate
from tests.support import runs


def test_runs_changed_names_the_runs_written_since(tmp_path: Path) -> None:
    planned = [runs.planned("s", base=runs.DIGITS, seed=i) for i in range(4)]
    with Store(tmp_path) as store:
        store.add_runs(planned, {})
        first, latest, count = store.runs_changed(0)
        assert [r.run_id for r in first] == [p.run_id for p in planned] and count == 4
        assert store.runs_changed(latest)[0] == []
        store.set_progress(planned[2].run_id, 10, 1.0)
        store.start_attempt(planned[0].run_id, "cpu", 1)  # running: read on every call from now on
        rows, newer, _ = store.runs_changed(latest)
        assert [r.run_id for r in rows] == [planned[0].run_id, planned[2].run_id] and newer > latest
        assert [r.run_id for r in store.runs_changed(newer)[0]] == [planned[0].run_id]
        store.add_runs([runs.planned("s", base=runs.DIGITS, seed=9)], {})
        assert store.runs_changed(newer)[2] == 5


def test_an_older_store_answers_with_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    migrate(conn, target=8)
    conn.execute("INSERT INTO runs (run_id, sweep, config, created_at) VALUES ('r1','s','{}',0)")
    conn.close()
    monkeypatch.setattr(database, "writable", lambda *args: False)  # a reader that cannot migrate it
    store = Store(tmp_path, create=False)
    assert store.version == 8
    rows, latest, count = store.runs_changed(123)
    assert [r.run_id for r in rows] == ["r1"] and (latest, count) == (0, 1)
    store.close()
