"""Issue 22, 3: a cluster that loses its nodes, each on a cluster of its own (a driver in a
subprocess, as `rankbias run` is used).

- The head is killed. Before, Ray aborted the driver after 60 s ("Failed to connect to GCS within
  60 seconds") with no word from rankbias. Now the scheduler says so within seconds, ends with exit
  status 3, leaves every run resumable, and the same command on a live cluster finishes the sweep.
- Every worker node is lost, then one joins: the sweep waits, it does not stop or fail its runs,
  and finishes on the new node from the last checkpoint."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from rankbias_tui.store import Store
from tests.support import runs
from tests.support.side_cluster import SideCluster

SPEC = """
[sweeps.long]
dataset = "digits"
model = "mlp"
batch_size = 16
epochs = 30
width = 64
depth = 4
measure_every = 1
lr_milestones = []
seeds = [1]
"""


@pytest.mark.soak
def test_a_lost_head_stops_the_sweep_with_one_message_and_every_run_resumable(
    ray_cluster, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    doomed = SideCluster(head_cpus=1, workers=0)
    args = _run_args(tmp_path, store)
    driver = _driver(args, doomed.address, stderr=subprocess.PIPE)
    try:
        runs.wait_for(lambda: _checkpointed(store), timeout=90, what="a checkpoint of the run")
        doomed.send("kill-head")
        killed = time.monotonic()
        out, err = driver.communicate(timeout=50)  # Ray alone would abort at 60 s
        took = time.monotonic() - killed
    finally:
        driver.kill()
        doomed.close()
    assert driver.returncode == 3, out + err
    assert took < 40
    assert "has not answered for" in err and "every run resumes from its last checkpoint" in err
    with Store(store) as db:
        (row,) = db.runs()
        assert row.status == "stopped" and "has not answered for" in (row.error or "")
    again = runs.rankbias(*args, "--ray-address", ray_cluster.address, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    with Store(store) as db:
        (row,) = db.runs()
        assert row.status == "done" and row.attempts >= 2
        assert db.segments(row.run_id)[-1].from_step > 0  # resumed on the new node
        assert db.segments(row.run_id)[-1].from_step > 0  # resumed, not trained again from the start


@pytest.mark.soak
def test_all_workers_lost_then_one_added_waits_then_finishes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    cluster = SideCluster(head_cpus=0, workers=1)
    driver = _driver(_run_args(tmp_path, store), cluster.address, stderr=subprocess.STDOUT)
    try:
        runs.wait_for(lambda: _checkpointed(store), timeout=90, what="a checkpoint of the run")
        cluster.send("remove-worker")
        time.sleep(20)  # Ray finds the node dead, the run is requeued, the slots follow (every 2 s)
        assert driver.poll() is None  # waiting, not stopped
        assert _status(store) in ("queued", "running")  # its task may wait for a node to place it
        cluster.send("add-worker")
        out, _ = driver.communicate(timeout=120)
    finally:
        driver.kill()
        cluster.close()
    assert driver.returncode == 0, out
    with Store(store) as db:
        (row,) = db.runs()
        assert row.status == "done" and row.attempts >= 2
        assert db.segments(row.run_id)[-1].from_step > 0  # resumed on the new node


def _run_args(tmp_path: Path, store: Path) -> list[str]:
    """``rankbias run`` of SPEC on the Ray backend, headless, into ``store`` (no address yet)."""
    spec = tmp_path / "experiments.toml"
    spec.write_text(SPEC)
    return ["run", str(spec), "--store", str(store), "--headless", "--devices", "cpu", "--backend", "ray"]


def _driver(args: list[str], address: str, stderr: int) -> subprocess.Popen[str]:
    """The sweep's driver, a ``rankbias run`` process, on the cluster at ``address``."""
    command = [runs.RANKBIAS, *args, "--ray-address", address]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)


def _status(store: Path) -> str:
    with Store(store) as db:
        return db.runs()[0].status


def _checkpointed(store: Path) -> bool:
    if not (store / "rankbias.sqlite").exists():
        return False
    with Store(store) as db:
        rows = db.runs()
        return (
            bool(rows)
            and rows[0].status == "running"
            and max(db.checkpoint_digests(rows[0].run_id), default=0) > 0
        )
