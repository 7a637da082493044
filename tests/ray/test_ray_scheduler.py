"""The scheduler on the Ray backend, on a real cluster of a head and two one-CPU worker nodes.

A sweep spreads over both nodes; a node removed in the middle of a run sends it back to the queue
and it resumes from its last stored checkpoint on the other node with bitwise the numbers of an
uninterrupted run; cancel, pack-member cancel and stop end tasks; the store is written only here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rankbias_tui.scheduler import Scheduler, SchedulerOptions, StopRequested, plan_slots, prepare
from rankbias_tui.store import Request, Store
from rankbias_tui.sweep import PlannedRun
from tests.support import runs

TINY = dict(runs.TINY, measure_every=1)
EVAL = ("train_loss", "train_acc", "test_loss", "test_acc")


def planned(**fields: object) -> PlannedRun:
    return runs.planned(base=TINY, **fields)


def wait_for(predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    runs.wait_for(predicate, timeout)


def ray_scheduler(store: Store, runs: list[PlannedRun], pack_size: int = 1) -> Scheduler:
    options = SchedulerOptions("cpu", pack_size=pack_size, graphs=False, backend="ray")
    backend = prepare(options)
    return Scheduler(store, runs, backend.slots, options, launcher=backend.launcher)


class Background:
    """A scheduler in a thread with its own store connection (as the CLI's would be)."""

    def __init__(self, store_dir: Path, runs: list[PlannedRun], pack_size: int = 1):
        self.outcomes: dict[str, str] = {}
        self.error: BaseException | None = None
        self.scheduler: Scheduler | None = None
        self.thread = threading.Thread(target=self._main, args=(store_dir, runs, pack_size), daemon=True)
        self.thread.start()

    def _main(self, store_dir: Path, runs: list[PlannedRun], pack_size: int) -> None:
        with Store(store_dir) as store:
            self.scheduler = ray_scheduler(store, store.queue(runs, {}), pack_size)
            try:
                self.outcomes.update(self.scheduler.run())
            except BaseException as err:  # noqa: BLE001 - the test looks at it
                self.error = err

    def placed(self) -> dict[str, object]:
        """run_id -> where its task started (Placed), for runs in progress."""
        if self.scheduler is None:
            return {}
        return {
            rid: w.host.proc.placed for rid, w in list(self.scheduler.workers.items()) if w.host.proc.placed
        }

    def join(self) -> None:
        self.thread.join(180)
        assert not self.thread.is_alive()


def eval_rows(store: Store, rid: str) -> list[tuple]:
    return [m for m in store.metrics(rid) if m[2] in EVAL]


def local_reference(store_dir: Path, runs: list[PlannedRun]) -> Store:
    store = Store(store_dir, create=True)
    options = SchedulerOptions("cpu", 2, pack_size=1, graphs=False)
    Scheduler(store, store.queue(runs, {}), plan_slots("cpu", 2), options).run()
    return store


def test_a_sweep_spreads_over_both_nodes_and_names_each_run_s_node(ray_cluster, tmp_path: Path) -> None:
    runs = [planned(epochs=2, seed=s) for s in range(2)]
    Store(tmp_path, create=True).close()
    nodes: set[str] = set()
    job = Background(tmp_path, runs)
    while job.thread.is_alive():
        nodes |= {p.node_id for p in job.placed().values()}
        time.sleep(0.05)
    job.join()
    assert job.error is None and job.outcomes == {r.run_id: "done" for r in runs}
    assert len(nodes) == 2  # one run on each node: each has one CPU
    with Store(tmp_path) as store:
        for r in runs:
            assert store.run(r.run_id).device == "cpu@127.0.0.1"  # list, show and the app name the node
            assert len(eval_rows(store, r.run_id)) == 3 * len(EVAL)  # epochs 0, 1, 2
            assert not (store.paths.checkpoints / r.run_id).exists()  # finished: checkpoints removed


def test_cancel_ends_the_task_and_stop_requeues_every_run(ray_cluster, tmp_path: Path) -> None:
    runs = [planned(epochs=200, seed=s) for s in range(2)]
    Store(tmp_path, create=True).close()
    job = Background(tmp_path, runs)
    wait_for(lambda: len(job.placed()) == 2)
    job.scheduler.cancel(runs[0].run_id)
    wait_for(lambda: runs[0].run_id in job.outcomes or job.scheduler.outcomes.get(runs[0].run_id))
    with Store(tmp_path) as store:
        store.request(Request("stop"))
    job.join()
    assert isinstance(job.error, StopRequested)
    with Store(tmp_path) as store:
        assert store.run(runs[0].run_id).status == "cancelled"
        assert store.run(runs[1].run_id).status == "stopped"  # resumable; no scheduler starts it on its own
    wait_for(lambda: _free_cpus() == 2, timeout=30)  # both tasks ended: their CPUs are back


def _free_cpus() -> float:
    import ray

    return ray.available_resources().get("CPU", 0)


def test_a_pack_member_is_cancelled_alone(ray_cluster, tmp_path: Path) -> None:
    runs = [planned(epochs=6, seed=s) for s in range(2)]
    Store(tmp_path, create=True).close()
    job = Background(tmp_path, runs, pack_size=2)
    wait_for(lambda: len(job.placed()) == 2)
    job.scheduler.cancel(runs[1].run_id)
    job.join()
    assert job.error is None
    assert job.outcomes == {runs[0].run_id: "done", runs[1].run_id: "cancelled"}


def test_a_run_on_a_removed_node_resumes_on_another_with_the_same_numbers(
    ray_cluster, tmp_path: Path
) -> None:
    run = planned(epochs=6, seed=3)
    Store(tmp_path / "ray", create=True).close()
    job = Background(tmp_path / "ray", [run])
    with Store(tmp_path / "ray") as store:
        wait_for(lambda: run.run_id in job.placed() and (store.run(run.run_id).checkpoint_step or 0) > 0)
        placed = job.placed()[run.run_id]
        (node,) = [n for n in ray_cluster.list_all_nodes() if n.node_id == placed.node_id]
        ray_cluster.remove_node(node, allow_graceful=False)
        # A lost machine takes its processes with it. Killing the node's raylet alone leaves the Ray
        # worker alive for seconds, streaming results straight to this driver, so the run could
        # finish in its first attempt (the test was flaky so): the Ray worker goes too, before the
        # training process it started (``placed.pid``), so that it cannot report that death.
        worker = int(Path(f"/proc/{placed.pid}/stat").read_text().rpartition(")")[2].split()[1])
        for pid in (worker, placed.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        ray_cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")  # the later tests' second node
        job.join()
        row = store.run(run.run_id)
        why = f"error {job.error!r}, outcomes {job.outcomes}, run {row.status if row else None}: {row.error if row else ''}"
        assert job.error is None and job.outcomes == {run.run_id: "done"}, why
        assert row.attempts == 2
        reference = local_reference(tmp_path / "local", [run])
        assert eval_rows(store, run.run_id) == eval_rows(reference, run.run_id)
        assert store.spectra(run.run_id) == reference.spectra(run.run_id)
        reference.close()


@pytest.mark.soak  # in soak to keep the suite under 10 minutes; its path has faster tests too
def test_a_node_that_joins_mid_sweep_gets_work_at_once(ray_cluster, tmp_path: Path) -> None:
    """Issue 22, 1: slots follow the cluster. Both one-CPU nodes busy, a third joins: a queued run
    starts on it while the first two still train (before: 2 of 3 CPUs used to the end)."""
    runs = [planned(epochs=8, seed=s) for s in range(10, 14)]
    Store(tmp_path, create=True).close()
    job = Background(tmp_path, runs)
    wait_for(lambda: len(job.placed()) == 2)
    before = {p.node_id for p in job.placed().values()}
    added = ray_cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    try:
        seen: set[str] = set()

        def on_new_node() -> bool:
            seen.update(p.node_id for p in job.placed().values())
            return added.node_id in seen

        wait_for(lambda: job.scheduler is not None and job.scheduler.slots.per_device == 3)  # asked every 2 s
        wait_for(on_new_node, timeout=60)  # a queued run starts there
        assert len(before) == 2 and added.node_id not in before
        job.join()
        assert job.error is None and job.outcomes == {r.run_id: "done" for r in runs}
    finally:
        ray_cluster.remove_node(added)  # the later tests count on two nodes
