"""Issue 19, row 12: the spec edited after a kill -9 (``epochs`` 2 -> 1), then run again.

The runs queued with the old grid are superseded: not trained, kept with their data, marked stopped
saying why, and left out of the sweep's list, export and claims; the current grid trains. Planning
the old grid again makes its runs current again.
"""

from __future__ import annotations

from pathlib import Path

from rankbias_tui import scheduler
from rankbias_tui.measures import Status
from rankbias_tui.store import Store
from tests.support.runs import planned, rankbias

SPEC = """
[sweeps.s]
dataset = "digits"
model = "mlp"
depth = 2
width = 8
batch_size = 256
lr_milestones = []
measure_every = 1
epochs = {epochs}
seeds = [1, 2]
"""


def grid(epochs: int) -> list:
    return [
        planned("s", epochs=epochs, seed=seed, batch_size=256, width=8, measure_every=1) for seed in (1, 2)
    ]


def test_the_store_records_each_sweeps_current_grid(tmp_path: Path) -> None:
    old, new = grid(2), grid(1)
    with Store(tmp_path / "store", create=True) as store:
        store.queue(old, {})
        store.set_status(old[0].run_id, Status.DONE)
        store.queue(new, {})
        assert store.supersede(new) == [old[1].run_id]  # the finished one is kept as it is
        assert [r.run_id for r in store.runs("s")] == [r.run_id for r in new]
        assert len(store.runs("s", superseded=True)) == 4 and store.sweeps() == {"s": 2}
        assert store.superseded() == {old[0].run_id: ["s"], old[1].run_id: ["s"]}
        assert scheduler.stop_superseded(store, [old[1].run_id]) == [old[1].run_id]
        row = store.run(old[1].run_id)
        assert row is not None and row.status == Status.STOPPED and "superseded" in (row.error or "")
        assert store.supersede(old) == [r.run_id for r in new]  # the old grid planned again
        assert [r.run_id for r in store.runs("s")] == [r.run_id for r in old]


def test_a_spec_edited_after_a_kill_trains_only_its_current_grid(tmp_path: Path) -> None:
    store_dir, spec = tmp_path / "store", tmp_path / "experiments.toml"
    old = grid(2)
    with Store(store_dir, create=True) as store:  # what a killed scheduler leaves: queued runs
        store.queue(old, {})
    spec.write_text(SPEC.format(epochs=1))
    done = rankbias("run", str(spec), "--store", str(store_dir), "--headless", "--devices", "cpu")
    assert done.returncode == 0, done.stderr
    assert "not running 2 unfinished run(s) of these sweeps" in done.stdout
    assert "of other sweeps" not in done.stdout
    with Store(store_dir) as store:
        current = store.runs("s")
        assert [r.config.epochs for r in current] == [1, 1] and {r.status for r in current} == {Status.DONE}
        for run in old:
            row = store.run(run.run_id)
            assert row is not None and row.status == Status.STOPPED and row.attempts == 0
    listed = rankbias("list", "--store", str(store_dir), "--sweep", "s", "--format", "csv")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1 + 2
