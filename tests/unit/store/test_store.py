"""Store: schema and migrations, round trips, resume truncation, requests, CSV export."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from rankbias_tui import export
from rankbias_tui.store import (
    DB_NAME,
    SCHEMA_VERSION,
    Request,
    SpectrumRow,
    Store,
    StoreError,
    StorePaths,
    migrate,
)
from rankbias_tui.store.connection import open_read_only
from rankbias_tui.store.rows import Owners, run_row
from rankbias_tui.store.schema import MIGRATIONS
from rankbias_tui.sweep import PlannedRun
from tests.support import runs


def planned(sweep: str = "s", **fields: object) -> PlannedRun:
    return runs.planned(sweep, base=runs.DIGITS, **fields)


def spectrum(rid: str, step: int, index: int, svals: list[float], eps: float = 1e-3) -> SpectrumRow:
    s = np.array(svals)
    return SpectrumRow(
        run_id=rid, step=step, epoch=step / 10, layer_index=index, layer=f"fc{index + 1}", d_out=4, d_in=4, m=1,
        svals=s, rank=int((s > eps).sum()), rank_eps=eps, stable_rank=float((s**2).sum() / s[0] ** 2),
        effective_rank=2.0, spectral_norm=1.5, fro_norm=2.0, bound=float("inf"),
    )  # fmt: skip


def test_new_store_is_wal_and_current(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_migrates_an_old_database(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    migrate(conn, target=1)
    conn.execute("INSERT INTO runs (run_id, sweep, config, created_at) VALUES ('r1', 's', '{}', 0)")
    conn.close()
    with Store(tmp_path) as store:
        row = store.run("r1")
        assert row is not None and row.attempts == 0 and row.provenance == {}
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_migration_3_splits_a_pending_launch_into_its_fields(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    migrate(conn, target=2)
    rows = [("launch", "/a/spec.toml::quick"), ("cancel", "r1"), ("stop", None)]
    conn.executemany("INSERT INTO requests (kind, run_id, created_at) VALUES (?, ?, 0)", rows)
    conn.close()
    with Store(tmp_path) as store:
        assert store.take_requests() == [
            Request("launch", spec_path="/a/spec.toml", sweep="quick"),
            Request("cancel", "r1"),
            Request("stop"),
        ]


def test_migration_4_says_which_runs_were_trained_under_protocol_1(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    migrate(conn, target=3)
    conn.execute(
        "INSERT INTO runs (run_id, sweep, config, created_at, started_at) VALUES ('old', 's', '{}', 0, 1)"
    )
    conn.execute("INSERT INTO runs (run_id, sweep, config, created_at) VALUES ('queued', 's', '{}', 0)")
    conn.close()
    with Store(tmp_path) as store:
        assert [store.run(r).protocol_version for r in ("old", "queued")] == [1, None]  # type: ignore[union-attr]
        store.set_protocol("queued", 2, None)
        assert store.run("queued").protocol_version == 2  # type: ignore[union-attr]


def test_store_paths_name_every_file_of_the_directory(tmp_path: Path) -> None:
    paths = StorePaths.of(tmp_path)
    assert paths.database == tmp_path / DB_NAME and paths.log.parent == tmp_path
    names = [p.name for p in (paths.database, paths.lock, paths.state, paths.log, paths.checkpoints)]
    assert len(set(names)) == len(names)
    with Store(tmp_path) as store:
        assert store.paths == paths


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    Store(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path)


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no rankbias store"):
        Store(tmp_path / "nothing", create=False)


def test_round_trip_runs_metrics_spectra(tmp_path: Path) -> None:
    a, b = planned(lr=0.1), planned(lr=0.2)
    with Store(tmp_path) as store:
        assert store.add_runs([a, b], {"git_sha": "abc"}) == 2
        assert store.add_runs([a], {}) == 0  # a second registration keeps the first
        store.start_attempt(a.run_id, "cpu", 123)
        store.add_metrics(
            a.run_id, [(0, 0.0, "loss", 2.3), (10, 1.0, "loss", 1.1), (10, 1.0, "test_acc", 0.5)]
        )
        store.add_spectra([spectrum(a.run_id, 0, 0, [0.8, 0.6, 1e-4, 0.0])])
        store.set_status(a.run_id, "done")
    with Store(tmp_path, create=False) as store:
        runs = store.runs("s")
        assert [r.run_id for r in runs] == [a.run_id, b.run_id]
        row = store.run(a.run_id[:6])
        assert row is not None and row.status == "done" and row.device == "cpu" and row.attempts == 1
        assert row.config == a.config and row.config_error is None
        assert row.provenance == {"git_sha": "abc"}
        assert store.metrics(a.run_id, "loss") == [(0, 0.0, "loss", 2.3), (10, 1.0, "loss", 1.1)]
        assert store.last_metrics(a.run_id) == {"loss": 1.1, "test_acc": 0.5}
        (s,) = store.spectra(a.run_id)
        np.testing.assert_array_equal(s.svals, [0.8, 0.6, 1e-4, 0.0])
        assert s.rank == 2 and s.bound == float("inf")
        assert store.runs(status=["queued"])[0].run_id == b.run_id


def test_truncate_after_keeps_rows_up_to_the_checkpoint(tmp_path: Path) -> None:
    a = planned()
    with Store(tmp_path) as store:
        store.add_runs([a], {})
        store.add_metrics(a.run_id, [(step, step / 10, "loss", 1.0) for step in range(0, 50, 10)])
        store.add_spectra([spectrum(a.run_id, step, 0, [1.0]) for step in (0, 20, 40)])
        store.truncate_after(a.run_id, 20)
        assert [m[0] for m in store.metrics(a.run_id)] == [0, 10, 20]
        assert store.spectrum_steps(a.run_id) == [0, 20]
        store.truncate_after(a.run_id, -1)  # a fresh start keeps nothing
        assert store.metrics(a.run_id) == [] and store.spectrum_steps(a.run_id) == []


def test_requeue_skips_finished_runs(tmp_path: Path) -> None:
    runs = [planned(lr=lr) for lr in (0.1, 0.2, 0.3)]
    with Store(tmp_path) as store:
        store.add_runs(runs, {})
        store.set_status(runs[0].run_id, "done")
        store.set_status(runs[1].run_id, "failed", error="boom")
        assert store.requeue([r.run_id for r in runs]) == [runs[1].run_id, runs[2].run_id]


def test_requests_are_taken_once(tmp_path: Path) -> None:
    with Store(tmp_path) as store, Store(tmp_path) as other:
        other.request(Request("cancel", "r1"))
        other.request(Request("launch", spec_path="/a/spec.toml", sweep="quick"))
        assert store.take_requests(["cancel"]) == [Request("cancel", "r1")]
        assert store.take_requests() == [Request("launch", spec_path="/a/spec.toml", sweep="quick")]
        assert store.take_requests() == []


def test_summary_csv_columns(tmp_path: Path) -> None:
    a = planned(lr=0.1, batch_size=8)
    with Store(tmp_path) as store:
        store.add_runs([a], {})
        store.add_metrics(
            a.run_id, [(5, 1.0, "train_loss", 0.4), (5, 1.0, "train_acc", 0.9), (5, 1.0, "test_acc", 0.8)]
        )
        store.add_spectra([spectrum(a.run_id, 0, i, [0.9, 0.4, 0.1, 0.05]) for i in range(2)])
        store.add_spectra(
            [spectrum(a.run_id, 5, 0, [0.99, 0.1, 1e-5, 0.0]), spectrum(a.run_id, 5, 1, [1.0, 0, 0, 0])]
        )
        store.set_progress(a.run_id, 5, 1.0)
        store.set_status(a.run_id, "done")
        out = io.StringIO()
        export.write_csv(*export.summary_table(store, store.runs()), out)
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    required = (
        "run_id sweep status model dataset depth width batch_size lr momentum weight_decay epochs seed rank_eps "
        "final_epoch final_train_loss final_train_acc final_test_acc init_avg_rank final_avg_rank "
        "final_avg_stable_rank"
    ).split()
    assert list(row)[: len(required)] == required
    assert row["batch_size"] == "8" and row["final_test_acc"] == "0.8" and row["final_epoch"] == "1.0"
    assert float(row["init_avg_rank"]) == 4.0 and float(row["final_avg_rank"]) == 1.5
    assert row["rank_fc1"] == "2" and row["rank_fc2"] == "1"


def test_long_exports(tmp_path: Path) -> None:
    a = planned()
    with Store(tmp_path) as store:
        store.add_runs([a], {})
        store.add_metrics(a.run_id, [(1, 0.1, "loss", 2.0)])
        store.add_spectra([spectrum(a.run_id, 0, 0, [0.9, 0.4, 0.1])])
        assert export.export(store, "metrics", tmp_path / "m.csv") == 1
        assert export.export(store, "spectra", tmp_path / "s.csv") == 3
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["sigma"] for r in rows] == ["0.9", "0.4", "0.1"] and rows[2]["index"] == "2"
    assert list(rows[0]) == list(export.SPECTRA_COLUMNS)


def test_export_of_chosen_runs_keeps_their_order(tmp_path: Path) -> None:
    # What the terminal UI exports: the runs it shows, in its order, with the same writer.
    a, b = planned(seed=0), planned(seed=1)
    with Store(tmp_path) as store:
        store.add_runs([a, b], {})
        for rid in (a.run_id, b.run_id):
            store.add_metrics(rid, [(1, 0.1, "loss", 2.0)])
        out = tmp_path / "view" / "summary.csv"
        assert export.export(store, "summary", out, run_ids=[b.run_id, "nosuchrun", a.run_id]) == 2
        assert export.export(store, "metrics", tmp_path / "m.csv", run_ids=[b.run_id]) == 1
        with pytest.raises(ValueError, match="unknown export kind"):
            export.export(store, "everything", tmp_path / "x.csv")
    assert [r["run_id"] for r in csv.DictReader(out.open())] == [b.run_id, a.run_id]
    assert [r["run_id"] for r in csv.DictReader((tmp_path / "m.csv").open())] == [b.run_id]
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "x.csv").exists()


def test_cli_cancel_without_a_scheduler_marks_the_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rankbias_tui.cli import app

    a = planned()
    with Store(tmp_path) as store:
        store.add_runs([a], {})
    result = CliRunner().invoke(app, ["cancel", a.run_id[:5], "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    with Store(tmp_path) as store:
        assert store.run(a.run_id).status == "cancelled"  # type: ignore[union-attr]
        assert store.take_requests() == []
    again = CliRunner().invoke(app, ["cancel", a.run_id, "--store", str(tmp_path)])
    assert again.exit_code == 1 and "already ended" in again.output


def _open_close(directory: Path, barrier: object, errors: list[Exception]) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    try:
        Store(directory).close()
    except Exception as err:  # noqa: BLE001 - collected and asserted by the caller
        errors.append(err)


def test_many_connections_open_a_new_store_at_once(tmp_path: Path) -> None:
    """A scheduler and a client opening a brand-new store together once raised 'database is
    locked' from the WAL pragma (about 1 trial in 20 before the retry)."""
    import threading

    for trial in range(40):
        barrier, errors = threading.Barrier(6), []
        args = (tmp_path / str(trial), barrier, errors)
        threads = [threading.Thread(target=_open_close, args=args) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_cli_errors_are_literal_and_unwritable_outputs_are_clean(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rankbias_tui.cli import app

    Store(tmp_path).close()
    result = CliRunner().invoke(app, ["export", "--store", str(tmp_path), "-o", "/proc/nope/x.csv"])
    assert result.exit_code == 1 and "cannot write /proc/nope/x.csv" in result.output
    assert "Traceback" not in result.output
    spec = tmp_path / "s.toml"
    spec.write_text('[sweeps.a]\ndataset = "digits"\n')
    result = CliRunner().invoke(
        app, ["run", str(spec), "--headless", "--devices", "weird:x:", "--store", str(tmp_path)]
    )
    assert result.exit_code == 2 and "'weird:x:'" in result.output  # ":x:" is not made an emoji


def test_queue_leaves_runs_a_live_scheduler_is_training(tmp_path: Path) -> None:
    runs = [planned(lr=lr) for lr in (0.1, 0.2)]
    with Store(tmp_path) as store:
        store.queue(runs, {})
        store.start_attempt(runs[0].run_id, "cpu", 1)
        todo = store.queue(runs, {}, active=[runs[0].run_id])  # the same sweep launched again
        assert [r.run_id for r in todo] == [runs[1].run_id]
        assert store.run(runs[0].run_id).status == "running"  # type: ignore[union-attr]


def test_a_running_run_whose_scheduler_is_gone_reads_as_interrupted(tmp_path: Path) -> None:
    mine, orphan, legacy = planned(lr=0.1), planned(lr=0.2), planned(lr=0.3)
    with Store(tmp_path) as store:
        store.add_runs([mine, orphan, legacy], {})
        store.start_attempt(mine.run_id, "cpu", 1)  # owned by this process
        store.start_attempt(orphan.run_id, "cpu", 2, owner="999999999:12345")  # no such process
        store.set_status(legacy.run_id, "running")  # written before owners were recorded: unknown
        statuses = {r.run_id: r.status for r in store.runs()}
        assert statuses == {mine.run_id: "running", orphan.run_id: "interrupted", legacy.run_id: "running"}
        assert [r.run_id for r in store.runs(status=["interrupted"])] == [orphan.run_id]
        assert store.run(orphan.run_id).owner == "999999999:12345"  # type: ignore[union-attr]
        stored = store.conn.execute("SELECT status FROM runs WHERE run_id=?", (orphan.run_id,)).fetchone()[0]
        assert stored == "running"  # derived when read, never written


def test_warnings_and_segments_are_kept_per_run(tmp_path: Path) -> None:
    run = planned()
    with Store(tmp_path) as store:
        store.add_runs([run], {})
        store.add_warning(run.run_id, "checkpoint a.pt is unreadable")
        store.add_warning(run.run_id, "resumed from\nstep 10")
        assert (
            store.add_segment(run.run_id, -1, "cpu", "pack of 2, eager", [run.run_id, "0123456789ab"]) is None
        )
        first = store.add_segment(run.run_id, 40, "cpu", "eager", [run.run_id])
        assert first is not None and first.pack == (run.run_id, "0123456789ab") and first.from_step == -1
        assert [s.describe() for s in store.segments(run.run_id)] == [
            "from the start on cpu: pack of 2, eager (pack of 2: " + run.run_id[:8] + " 01234567)",
            "from step 40 on cpu: eager",
        ]
        assert store.run(run.run_id).warnings == ("checkpoint a.pt is unreadable", "resumed from step 10")  # type: ignore[union-attr]


def test_acknowledged_checkpoints_keep_their_digests_as_long_as_their_files(tmp_path: Path) -> None:
    run = planned()
    with Store(tmp_path) as store:
        store.add_runs([run], {})
        assert store.checkpoint_digests(run.run_id) == {}
        for step in (0, 10, 20):
            store.set_checkpoint(run.run_id, step, f"{step:064x}")
        # the acknowledged one and the one before it (kept on disk to fall back to), as prune keeps
        assert store.checkpoint_digests(run.run_id) == {10: f"{10:064x}", 20: f"{20:064x}"}
        assert store.run(run.run_id).checkpoint_step == 20  # type: ignore[union-attr]
        store.set_checkpoint(run.run_id, 20, "f" * 64)  # written again after a fallback: the new file's
        assert store.checkpoint_digests(run.run_id)[20] == "f" * 64
        store.set_checkpoint(run.run_id, 30)  # a worker that sent no digest: no stale one for its file
        assert store.checkpoint_digests(run.run_id) == {20: "f" * 64}


def test_a_deleted_or_replaced_database_is_noticed(tmp_path: Path) -> None:
    with Store(tmp_path / "a") as store:
        assert store.still_there()
        other = tmp_path / "b"
        Store(other).close()
        os.replace(other / DB_NAME, store.path)  # replaced: another inode
        assert not store.still_there()
        store.path.unlink()
        assert not store.still_there()


def test_stop_requests_carry_when_they_were_made(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        before = time.time()
        store.request(Request("stop"))
        (taken,) = store.take_requests()
        assert taken == Request("stop") and before <= taken.created_at <= time.time()


def test_a_read_only_reader_accepts_an_older_schema(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    migrate(conn, target=2)
    conn.execute(
        "INSERT INTO runs (run_id, sweep, config, created_at, status, pid) VALUES ('r1','s','{}',0,'running',7)"
    )
    conn.close()
    ro, version = open_read_only(tmp_path / DB_NAME)
    assert version == 2
    row = run_row(ro.execute("SELECT * FROM runs").fetchone(), Owners())
    assert (row.run_id, row.status, row.owner, row.warnings) == ("r1", "running", None, ())
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(StoreError, match="older"):
        open_read_only(tmp_path / DB_NAME)


def test_active_time_adds_up_over_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """duration_s and the ETA use the time trained over every attempt, not since the last resume."""
    import rankbias_tui.store.database as store_mod

    run = planned()
    with Store(tmp_path) as store:
        monkeypatch.setattr(store_mod.time, "time", lambda: 0.0)
        store.add_runs([run], {})
        # start, stopped after 30 s, resumed later, done after 10 s more
        for when, action in ((100.0, "start"), (130.0, "queued"), (200.0, "start"), (210.0, "done")):
            monkeypatch.setattr(store_mod.time, "time", lambda when=when: when)
            if action == "start":
                store.start_attempt(run.run_id, "cpu", 1)
            else:
                store.set_status(run.run_id, action)
            row = store.run(run.run_id)
        assert row is not None and row.active_s == pytest.approx(40.0)
        assert row.active_seconds(now=1e9) == pytest.approx(40.0)  # finished: no running attempt


def test_latest_values_and_ranks_read_only_the_latest(tmp_path: Path) -> None:
    run = planned()
    with Store(tmp_path) as store:
        store.add_runs([run], {})
        store.add_metrics(
            run.run_id, [(1, 0.1, "loss", 2.0), (5, 0.5, "loss", 1.0), (5, 0.5, "test_acc", 0.5)]
        )
        store.add_spectra([spectrum(run.run_id, 0, 0, [1.0, 0.5]), spectrum(run.run_id, 10, 0, [1.0, 1e-5]),
                           spectrum(run.run_id, 10, 1, [0.9, 0.8])])  # fmt: skip
        assert store.latest_values(run.run_id, ("loss", "test_acc", "train_loss")) == {
            "loss": 1.0,
            "test_acc": 0.5,
        }
        assert store.latest_ranks(run.run_id) == [1, 2]
        assert store.run(run.run_id).config is store.run(run.run_id).config  # decoded once  # type: ignore[union-attr]


def test_latest_many_reads_what_each_runs_own_seeks_read(tmp_path: Path) -> None:
    """One query for many runs (the app's first picture of 20,000 runs) answers as ``latest_values``
    and ``latest_ranks`` do run by run: a NaN (stored NULL) is there as None, a name never written
    is absent, a run without spectra has no ranks, an unknown run is left out."""
    a, b, c = planned(seed=1), planned(seed=2), planned(seed=3)
    names = ("train_loss", "loss", "test_acc")
    with Store(tmp_path) as store:
        store.add_runs([a, b, c], {})
        store.add_metrics(a.run_id, [(1, 0.1, "loss", 2.0), (5, 0.5, "loss", 1.0), (5, 0.5, "test_acc", 0.5)])
        store.add_metrics(b.run_id, [(1, 0.1, "train_loss", 0.3), (9, 0.9, "train_loss", float("nan"))])
        store.add_spectra([spectrum(a.run_id, 0, 0, [1.0, 0.5]), spectrum(a.run_id, 10, 0, [1.0, 1e-5]),
                           spectrum(a.run_id, 10, 1, [0.9, 0.8])])  # fmt: skip
        ids = [a.run_id, b.run_id, c.run_id, "0123456789ab"]
        many = store.latest_many(ids, names)
        assert set(many) == {a.run_id, b.run_id, c.run_id}
        for run_id in ids[:3]:
            values, ranks = many[run_id]
            assert values == store.latest_values(run_id, names)
            assert sorted(ranks) == sorted(store.latest_ranks(run_id))
        assert many[b.run_id] == ({"train_loss": None}, []) and many[a.run_id][1] in ([1, 2], [2, 1])


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["show", "abc"],
        ["export"],
        ["cancel", "abc"],
        ["plot"],
        ["claims"],
        ["report", "-o", "r.md"],
    ],
    ids=lambda c: c[0],
)
def test_every_command_opens_its_store_by_one_rule(tmp_path: Path, command: list[str]) -> None:
    """No store where --store points: exit 2 (a bad option); a store that cannot be opened: exit 1."""
    from typer.testing import CliRunner

    from rankbias_tui.cli import app

    missing = CliRunner().invoke(app, [*command, "--store", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no rankbias store at" in missing.output, missing.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / DB_NAME).write_bytes(b"not a database, just bytes" * 200)
    damaged = CliRunner().invoke(app, [*command, "--store", str(tmp_path / "bad")])
    assert damaged.exit_code == 1 and str(tmp_path / "bad" / DB_NAME) in damaged.output, damaged.output
    assert "Traceback" not in missing.output + damaged.output


def test_last_metrics_by_index_equal_a_full_scan(tmp_path: Path) -> None:
    # issue 19: list, export and claims read the latest values by index seeks, not every row of a run
    rng = np.random.default_rng(0)
    a, b, c = planned(lr=0.1), planned(lr=0.2), planned(lr=0.3)  # c: no metrics at all
    full_scan = (
        "SELECT name, value FROM metrics m WHERE run_id=? AND step="
        "(SELECT MAX(step) FROM metrics WHERE run_id=m.run_id AND name=m.name)"
    )
    with Store(tmp_path) as store:
        store.add_runs([a, b, c], {})
        for run in (a, b):
            names = ["acc", "loss", "test_acc", "train_loss", "z"][: 3 + (run is b) * 2]
            steps = rng.permutation(200)[:150]  # written out of order, with gaps
            store.add_metrics(
                run.run_id, [(int(s), s / 10, n, float(rng.random())) for s in steps for n in names]
            )
            store.add_metrics(run.run_id, [(int(steps.max()), 1.0, "loss", None)])  # type: ignore[list-item]
        for run in (a, b, c):
            expected = dict(store.conn.execute(full_scan, (run.run_id,)).fetchall())
            assert store.last_metrics(run.run_id) == expected
        assert store.last_metrics(a.run_id)["loss"] is None and store.last_metrics(c.run_id) == {}


def test_a_queued_run_has_no_device(tmp_path: Path) -> None:
    a = planned()
    with Store(tmp_path) as store:
        store.add_runs([a], {})
        store.start_attempt(a.run_id, "cuda:1", 1)
        store.set_status(a.run_id, "cancelled")
        assert store.run(a.run_id).device == "cuda:1"  # type: ignore[union-attr]
        store.requeue([a.run_id])
        assert store.run(a.run_id).device is None  # type: ignore[union-attr]  # not where it will train
        assert store.runs()[0].device is None


def test_packs_are_the_latest_segments(tmp_path: Path) -> None:
    a, b, c = planned(lr=0.1), planned(lr=0.2), planned(lr=0.3)
    with Store(tmp_path) as store:
        store.add_runs([a, b, c], {})
        for run in (a, b):
            store.add_segment(run.run_id, -1, "cpu", "pack of 2, eager", [a.run_id, b.run_id])
        store.add_segment(a.run_id, 40, "cpu", "eager", [a.run_id])  # resumed alone
        assert store.packs() == {a.run_id: (a.run_id,), b.run_id: (a.run_id, b.run_id)}


def test_a_run_in_two_sweeps_counts_once(tmp_path: Path) -> None:
    shared, other = planned("a", lr=0.1), planned("a", lr=0.2)
    again = PlannedRun(shared.run_id, "b", shared.config)  # the same run, declared in sweep b too
    with Store(tmp_path) as store:
        store.add_runs([shared, other], {})
        store.add_runs([again], {})
        store.set_status(shared.run_id, "done")
        assert store.sweeps() == {"a": 2, "b": 1}
        assert store.status_counts() == {"done": 1, "queued": 1} and len(store.runs()) == 2
        assert store.status_counts("b") == {"done": 1}
        assert [r.run_id for r in store.recent_runs(5, "b")] == [shared.run_id]
        assert [r.run_id for r in store.recent_runs(1, status=["queued"])] == [other.run_id]
