"""GPU placement on a real Ray cluster with fake GPUs (issue 22, 4): the session cluster gains a node
of 4 GPUs and one of 2 (each at an address of its own on loopback, so that the store's names tell
them apart), for this test only.

Ray's GPUs here are declared, not real: the runs would train on the CPU (their ``Job`` says so),
while Ray places and names their tasks as GPU tasks, which is what this test is about; the sweep is
stopped once all twelve are placed (twelve trainings at once take minutes on a small machine).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rankbias_tui.scheduler import Scheduler, SchedulerOptions, StopRequested, prepare, ray_backend
from rankbias_tui.scheduler.ray_task import Job
from rankbias_tui.store import Request, Store
from tests.support import runs

TINY = dict(runs.TINY, epochs=1)
NODES = {"127.0.0.2": 4, "127.0.0.3": 2}  # address -> GPUs (and 4 CPUs per GPU: one per task)


@pytest.fixture
def gpu_nodes(ray_cluster) -> Iterator[dict[str, object]]:
    """address -> the node added there (a test may remove one: pop it)."""
    added = {
        address: ray_cluster.add_node(num_cpus=4 * gpus, num_gpus=gpus, node_ip_address=address)
        for address, gpus in NODES.items()
    }
    ray_cluster.wait_for_nodes()
    try:
        yield added
    finally:
        for node in added.values():
            ray_cluster.remove_node(node)  # the other tests count on two one-CPU nodes


@pytest.mark.soak  # about 19 s at load 5 (six probes, then twelve Ray workers start); -m soak
def test_twelve_runs_at_a_quarter_gpu_spread_two_per_gpu_over_six_gpus(
    ray_cluster, gpu_nodes: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: Ray packed the 12 tasks asking for 0.25 GPU each onto 3 of the 6 GPUs (4, 4, 0, 0
    on the first node, 4, 0 on the second). Now each GPU is a bundle and the next task goes to the
    one with the fewest: 2 on each, and the store names each run's GPU and node (the GPUs open
    together once their probes answered: None, no CUDA driver here). A node that leaves takes its
    bundles with it."""
    monkeypatch.setattr(ray_backend, "Job", lambda *a, **k: replace(Job(*a, **k), gpu=False))
    planned = [runs.planned(base=TINY, seed=s) for s in range(12)]
    options = SchedulerOptions("cuda", per_device=4, pack_size=1, graphs=False, backend="ray")
    backend = prepare(options)
    assert backend.slots.per_device == 24  # 6 GPUs x 4 tasks: room for all 12 at once
    with Store(tmp_path, create=True) as store:
        scheduler = Scheduler(store, store.queue(planned, {}), backend.slots, options, backend.launcher)

        def stop_once_all_are_placed(scheduler: Scheduler) -> None:
            hosts = scheduler.hosts
            if len(hosts) == len(planned) and all(h.proc.placed for h in hosts):
                store.request(Request("stop"))

        try:
            with pytest.raises(StopRequested):
                scheduler.run(stop_once_all_are_placed)
            ray_cluster.remove_node(gpu_nodes.pop("127.0.0.3"))
            runs.wait_for(lambda: backend.launcher.capacity() == 16, 30, "the 2-GPU node's bundles to go")
            assert {b.node_id for b in backend.launcher.gpus.bundles} == {gpu_nodes["127.0.0.2"].node_id}
        finally:
            backend.launcher.gpus.release()
        devices = Counter(store.run(r.run_id).device for r in planned)
        assert {store.run(r.run_id).status for r in planned} == {"stopped"}
    expected = {f"cuda:{i}@{address}": 2 for address, gpus in NODES.items() for i in range(gpus)}
    assert devices == expected, devices
