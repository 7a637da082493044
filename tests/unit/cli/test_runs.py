"""``rankbias list``'s rows (cli.runs.list_row), read from a store without the command around them."""

from __future__ import annotations

from pathlib import Path

from rankbias_tui.cli.runs import list_row
from rankbias_tui.store import Store
from tests.support.runs import planned


def test_a_running_run_s_latest_warning_is_its_reason_in_list(tmp_path: Path) -> None:
    run = planned(seed=1)
    with Store(tmp_path) as store:
        store.add_runs([run], {})
        store.start_attempt(run.run_id, "cpu", 4242)
        assert list_row(store, store.run(run.run_id))["reason"] is None  # type: ignore[arg-type]
        store.add_warning(run.run_id, "worker stalled at step 40: no word from it for 300 s (frozen or hung)")
        row = list_row(store, store.run(run.run_id))  # type: ignore[arg-type]
        assert row["status"] == "running"
        assert (
            row["reason"] == "warning: worker stalled at step 40: no word from it for 300 s (frozen or hung)"
        )
        store.set_status(run.run_id, "failed", error="worker killed by SIGKILL before the run finished")
        assert list_row(store, store.run(run.run_id))["reason"].startswith("worker killed")  # type: ignore[arg-type, union-attr]


def test_list_shows_the_most_recently_active_runs_and_counts_them_all(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rankbias_tui.cli import app

    ids = [planned(seed=i) for i in range(60)]
    with Store(tmp_path) as store:
        store.add_runs(ids, {})
        for i, run in enumerate(ids[:57]):  # done in order, at 1000 + i; the latest: 56
            store.start_attempt(run.run_id, "cpu", 1)
            store.set_status(run.run_id, "done", finished_at=1000.0 + i)
        store.start_attempt(ids[0].run_id, "cpu", 1)  # the oldest runs again, in this process
        store.set_status(ids[1].run_id, "failed", error="boom", finished_at=999.0)  # a long time ago
        store.conn.execute("UPDATE runs SET started_at=finished_at - 100 WHERE status != 'running'")
        store.conn.execute("UPDATE runs SET created_at=0")
    runner = CliRunner()
    shown = runner.invoke(app, ["list", "--store", str(tmp_path), "--limit", "5"])
    assert shown.exit_code == 0, shown.output
    listed = [line.split()[0] for line in shown.stdout.splitlines()[1:]]
    # running first, then the latest starts or ends (not the queued ones, registered at 0), in sweep order
    assert listed == [r.run_id for r in (ids[0], ids[53], ids[54], ids[55], ids[56])]
    assert shown.stderr.strip() == (
        "60 runs: 55 done, 3 queued, 1 running, 1 failed (showing the 5 most recently active; --limit 0 shows all)"
    )
    failed = runner.invoke(app, ["list", "--store", str(tmp_path), "--status", "failed"])
    assert [line.split()[0] for line in failed.stdout.splitlines()[1:]] == [ids[1].run_id]
    assert "showing" not in failed.stderr
    everything = runner.invoke(app, ["list", "--store", str(tmp_path), "--format", "csv"])
    assert len(everything.stdout.splitlines()) == 61  # csv and json: every run unless --limit says
    assert len(runner.invoke(app, ["list", "--store", str(tmp_path)]).stdout.splitlines()) == 51


def test_at_80_columns_a_failed_run_keeps_its_reason(tmp_path: Path) -> None:
    from rankbias_tui.cli.output import table_lines
    from rankbias_tui.cli.runs import LIST_COLUMNS, list_columns

    ok, bad = planned(seed=1), planned(seed=2)
    with Store(tmp_path) as store:
        store.add_runs([ok, bad], {})
        store.set_status(bad.run_id, "failed", error="RuntimeError: CUDA error: an illegal memory access")
        rows = [list_row(store, r) for r in store.runs()]
    lines, dropped = table_lines(rows, list_columns(rows), 80)
    assert "reason" not in [c.key for c in dropped] and "RuntimeError: CUDA" in "\n".join(lines)
    assert max(map(len, lines)) <= 80
    assert list_columns(rows[:1]) == LIST_COLUMNS  # no reason to keep: it goes first, as before
