"""What a starting scheduler does about the past (scheduler.recovery): adopt, admit, same_pack."""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path

import pytest

from rankbias_tui import checkpoints
from rankbias_tui.scheduler.recovery import admit, adopt, same_pack
from rankbias_tui.store import Store
from rankbias_tui.sweep import PlannedRun
from tests.support import runs


def planned(**fields: object) -> PlannedRun:
    return runs.planned("s", base=runs.DIGITS, **fields)


def insert_raw(store: Store, rid: str, status: str, config: str = "{}") -> None:
    store.conn.execute(
        "INSERT INTO runs (run_id, sweep, config, created_at, status) VALUES (?, 's', ?, 0, ?)",
        (rid, config, status),
    )


def test_adopt_requeues_every_running_run_and_cleans_partial_files(tmp_path: Path) -> None:
    orphan, live, queued = planned(lr=0.1), planned(lr=0.2), planned(lr=0.3)
    with Store(tmp_path) as store:
        store.add_runs([orphan, live, queued], {})
        store.start_attempt(orphan.run_id, "cpu", 5, owner="999999999:1")
        store.set_checkpoint(orphan.run_id, 40)
        store.start_attempt(live.run_id, "cpu", 6)  # "alive", but the caller holds the lock: stale too
        victim = tmp_path / "victim"
        victim.mkdir()
        insert_raw(store, str(victim), "running")  # a row naming a path: never used
        run_dir = checkpoints.run_directory(store.paths.checkpoints, orphan.run_id)
        run_dir.mkdir(parents=True)
        tmp = checkpoints.partial(checkpoints.path(run_dir, 80))
        tmp.write_bytes(b"half")
        adopted = adopt(store)
        assert adopted == [orphan, live, queued]  # the queued one had no scheduler either
        row = store.run(orphan.run_id)
        assert row is not None and row.status == "queued" and "interrupted" in (row.error or "")
        assert "pid 999999999" in (row.error or "") and "step 40" in (row.error or "")
        assert not tmp.exists() and victim.exists()
        assert store.run(queued.run_id).status == "queued"  # type: ignore[union-attr]


def test_admit_refuses_ids_that_are_not_run_ids_and_invalid_configs(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        insert_raw(store, "/etc", "cancelled")
        insert_raw(store, "0123456789ab", "cancelled", '{"lr": "fast"}')
        assert admit(store, store.run("/etc")) is None  # type: ignore[arg-type]
        assert store.run("/etc").status == "cancelled"  # type: ignore[union-attr]  # not even marked
        assert admit(store, store.run("0123456789ab")) is None  # type: ignore[arg-type]
        assert store.run("0123456789ab").status == "failed"  # type: ignore[union-attr]


def test_same_pack_reassembles_the_members_in_their_order(tmp_path: Path) -> None:
    a, b, c, other = (planned(seed=s) for s in (1, 2, 3, 4))
    steps = {a.run_id: 80, b.run_id: 40, c.run_id: 40, other.run_id: 40}  # a stop between a's and b's
    resume = lambda run: steps.get(run.run_id)  # noqa: E731
    with Store(tmp_path) as store:
        store.add_runs([a, b, c, other], {})
        for run in (a, b):
            store.add_segment(run.run_id, -1, "cpu", "pack of 2, eager", [a.run_id, b.run_id])
        store.add_segment(c.run_id, -1, "cpu", "eager", [c.run_id])
        queue = deque([other, a])
        assert same_pack(store, b, queue, resume) == [a, b] and list(queue) == [other]
        assert same_pack(store, c, deque([other]), resume) == [c]  # trained alone: stays alone
        assert same_pack(store, b, deque([other]), resume) is None  # a is not queued (finished)
        assert same_pack(store, b, deque([a]), lambda r: None) is None  # a fresh start: any mode
        assert same_pack(store, b, deque([a]), resume, limit=1) is None  # --pack-size 1
        assert same_pack(store, other, deque([a]), resume) is None  # never trained: no segment


def test_an_adopted_run_counts_its_time_up_to_its_last_checkpoint_not_the_adoption(tmp_path: Path) -> None:
    orphan, fresh = planned(lr=0.1), planned(lr=0.2)
    with Store(tmp_path) as store:
        store.add_runs([orphan, fresh], {})
        for run in (orphan, fresh):
            store.start_attempt(run.run_id, "cpu", 5, owner="999999999:1")
        began = time.time() - 3 * 86400  # its scheduler died three days ago
        store.conn.execute("UPDATE runs SET started_at=?", (began,))
        store.set_checkpoint(orphan.run_id, 40)
        run_dir = checkpoints.run_directory(store.paths.checkpoints, orphan.run_id)
        run_dir.mkdir(parents=True)
        written = checkpoints.path(run_dir, 40)
        written.write_bytes(b"checkpoint")
        os.utime(written, (began + 600, began + 600))  # acknowledged 10 minutes in
        adopt(store)
        assert store.run(orphan.run_id).active_s == pytest.approx(600, abs=1)  # type: ignore[union-attr]
        assert store.run(fresh.run_id).active_s == 0  # type: ignore[union-attr]  # no checkpoint: nothing counts
