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
