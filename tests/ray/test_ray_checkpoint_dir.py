"""``--checkpoint-dir`` on the two-node cluster (issue 22, 5): the nodes write every checkpoint into
a shared directory themselves and send back only its path and digest; a run whose task is killed
resumes on a node from that directory, with bitwise the numbers of an uninterrupted run (its twin,
trained at the same time on the other node), and not one checkpoint byte reached the driver."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from rankbias_tui.scheduler import Scheduler, SchedulerOptions, prepare
from rankbias_tui.store import Store
from rankbias_tui.sweep import PlannedRun
from tests.ray.test_ray_scheduler import Background, eval_rows, planned, wait_for


class Shared(Background):
    """A Ray scheduler in a thread whose nodes write checkpoints into ``shared``; ``tasks``: every
    ``RayTask`` it started (what came back through the driver)."""

    def __init__(self, store_dir: Path, runs: list[PlannedRun], shared: Path):
        self.options = SchedulerOptions(
            "cpu", pack_size=1, graphs=False, backend="ray", checkpoint_dir=str(shared)
        )
        self.tasks: list = []
        super().__init__(store_dir, runs)

    def _main(self, store_dir: Path, runs: list[PlannedRun], pack_size: int) -> None:
        with Store(store_dir) as store:
            backend = prepare(self.options)
            start = backend.launcher.start_run

            def recorded(*args: object) -> object:
                host = start(*args)
                self.tasks.append(host.proc)
                return host

            backend.launcher.start_run = recorded
            self.scheduler = Scheduler(
                store, store.queue(runs, {}), backend.slots, self.options, launcher=backend.launcher
            )
            try:
                self.outcomes.update(self.scheduler.run())
            except BaseException as err:  # noqa: BLE001 - the test looks at it
                self.error = err


@pytest.mark.soak  # in soak to keep the suite under 10 minutes; its path has faster tests too
def test_a_killed_task_resumes_from_the_shared_directory_and_no_checkpoint_reaches_the_driver(
    ray_cluster, tmp_path: Path
) -> None:
    run = planned(epochs=60, seed=7, checkpoint_every=2)  # measured every epoch, checkpointed every 2
    shared = tmp_path / "shared"
    for name in ("ray", "twin"):
        Store(tmp_path / name, create=True).close()
    job = Shared(tmp_path / "ray", [run], shared)
    twin = Shared(tmp_path / "twin", [run], tmp_path / "twin-shared")  # uninterrupted, on the other node
    with Store(tmp_path / "ray") as store:
        wait_for(lambda: run.run_id in job.placed() and (store.run(run.run_id).checkpoint_step or 0) > 0)
        step = store.run(run.run_id).checkpoint_step
        where = store.checkpoint_locations(run.run_id)[step]
        assert where == str(shared / run.run_id / f"step-{step:09d}.pt")  # the store keeps where it is
        placed = job.placed()[run.run_id]
        # the task's Ray worker, then the training process it started: the task is lost, not failed
        worker = int(Path(f"/proc/{placed.pid}/stat").read_text().rpartition(")")[2].split()[1])
        for pid in (worker, placed.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        job.join()
        row = store.run(run.run_id)
        assert job.error is None and job.outcomes == {run.run_id: "done"}, (job.error, row.error)
        assert row.attempts == 2
        resumed = [s.from_step for s in store.segments(run.run_id)][1]
        assert (
            resumed > 0 and resumed % 90 == 0
        )  # from a checkpoint in the shared directory (45 steps an epoch)
        assert len(job.tasks) == 2 and [t.checkpoint_bytes for t in job.tasks] == [0, 0]
        assert not list(store.paths.checkpoints.rglob("*.pt"))  # nothing was ever stored through the driver
        assert not (shared / run.run_id).exists()  # finished: its checkpoints removed there too
        twin.join()
        with Store(tmp_path / "twin") as reference:
            assert twin.outcomes == {run.run_id: "done"} and reference.run(run.run_id).attempts == 1
            assert eval_rows(store, run.run_id) == eval_rows(reference, run.run_id)
            assert store.spectra(run.run_id) == reference.spectra(run.run_id)
