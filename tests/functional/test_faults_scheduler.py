"""Fault injection on the scheduler itself (issue 9) where nothing is to be recovered: a stale stop
request (made on a clock an hour ahead, issue 19), the store deleted (or replaced) while a sweep runs, a run id in the database that names
a path. Each fault is injected and the test shows what the user sees and that nothing else moved.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from rankbias_tui.scheduler import Scheduler, SchedulerOptions, plan_slots
from rankbias_tui.scheduler.daemon import Daemon
from rankbias_tui.store import DB_NAME, Request, Store
from rankbias_tui.sweep import PlannedRun
from tests.support import runs
from tests.support.faults import start, wait_for


def planned(**fields: object) -> PlannedRun:
    """TINY at the default measurement cadence."""
    return runs.planned(base={k: v for k, v in runs.TINY.items() if k != "measure_every"}, **fields)


@pytest.mark.slow
def test_a_stop_request_left_by_an_earlier_stop_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the clocks say (issue 19): here its client's was an hour ahead of this scheduler's."""
    quick = planned(batch_size=64, epochs=1)
    real = time.time
    with Store(tmp_path) as store:
        monkeypatch.setattr(time, "time", lambda: real() + 3600)
        store.request(Request("stop"))  # `rankbias stop` timed out, or its scheduler died first
        monkeypatch.setattr(time, "time", real)
        outcomes = Scheduler(store, store.queue([quick], {}), plan_slots("cpu", 1)).run()
        assert outcomes == {quick.run_id: "done"}  # not stopped by a request meant for another
        assert store.take_requests() == []  # taken, and not answered


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_store_deleted_or_replaced_mid_run_stops_the_scheduler(tmp_path: Path, how: str) -> None:
    store = tmp_path / "store"
    proc = start(store)
    wait_for(
        lambda: (store / DB_NAME).exists() and any(store.glob("checkpoints/*/step-*.pt")), what="training"
    )
    if how == "deleted":
        for _ in range(50):  # as `rm -rf` may, retry when the worker adds a file meanwhile
            try:
                shutil.rmtree(store)
                break
            except OSError:
                time.sleep(0.05)
    else:
        other = tmp_path / "other"
        Store(other).close()
        os.replace(other / DB_NAME, store / DB_NAME)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"the store's database {store / DB_NAME} was {how}" in lines[0], err
    assert "Finished" not in out
    if how == "deleted":
        assert not store.exists()  # nothing made a new store in its place
    else:
        with Store(store) as replaced:
            assert replaced.runs() == []  # nothing written into the file that took its place


def test_a_run_id_naming_a_path_is_never_used_on_the_file_system(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    cfg = planned(epochs=1).config.model_dump_json()
    with Store(tmp_path / "store") as store:
        for rid, status in ((str(victim), "cancelled"), (str(victim / "x"), "running")):
            store.conn.execute(
                "INSERT INTO runs (run_id, sweep, config, created_at, status, checkpoint_step) VALUES (?,?,?,?,?,0)",
                (rid, "t", cfg, time.time(), status),
            )
        store.request(Request("resume", str(victim)))
        daemon = Daemon(store, plan_slots("cpu", 1), SchedulerOptions(devices="cpu", idle_exit_s=0.5))
        with caplog.at_level(logging.WARNING):
            assert daemon.serve() == 0
        assert daemon.outcomes == {} and daemon.hosts == []  # nothing was trained
        assert "refusing run id" in caplog.text and str(victim) in caplog.text
        statuses = dict(store.conn.execute("SELECT run_id, status FROM runs"))
        assert statuses == {str(victim): "cancelled", str(victim / "x"): "running"}
    assert (victim / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]
