"""Cluster utilisation before and after a node joins a Ray sweep (issue 22's figure).

A loopback cluster (a head with no CPU, two one-CPU workers) trains a queue of short runs, one task
per run; once both workers are busy a third one-CPU node joins. Every 0.5 s the script samples the
cluster's CPUs in use (``ray.cluster_resources`` minus ``ray.available_resources``) and prints:
  before    CPUs in use / CPUs in the cluster, averaged from the start of training to the join
  after     the same from the join to the moment the queue is empty
  reaction  seconds from the join to the first run placed on the new node

Ray is isolated in a loopback-only network namespace, as in ``ray_bench.py`` (run as root).

    python benchmarks/ray_elastic.py              # ~1-2 minutes on 2 cores
    python benchmarks/ray_elastic.py --frozen     # slots frozen at start, as before issue 22
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_bench import loopback_only, reexec_in_namespace  # noqa: E402


class Frozen:
    """The launcher without its ``capacity``: the slots stay what they were at start."""

    def __init__(self, launcher: object) -> None:
        self.start_run = launcher.start_run  # type: ignore[attr-defined]
        self.start_pack = launcher.start_pack  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frozen", action="store_true", help="slots frozen at start (before issue 22)")
    frozen = parser.parse_args().frozen
    if not loopback_only():
        reexec_in_namespace()
    import ray
    from ray.cluster_utils import Cluster

    from rankbias_tui.scheduler import Scheduler, SchedulerOptions, prepare
    from rankbias_tui.spec import RunConfig
    from rankbias_tui.store import Store
    from rankbias_tui.sweep import PlannedRun, run_id

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    base = dict(model="mlp", depth=2, width=16, dataset="digits", lr_milestones=(), measure_every=1, epochs=6)
    runs = [PlannedRun(run_id(c), "elastic", c) for c in (RunConfig(**base, seed=s) for s in range(12))]
    options = SchedulerOptions("cpu", pack_size=1, graphs=False, backend="ray", ray_address=cluster.address)
    backend = prepare(options)
    samples: list[tuple[float, float, float]] = []  # (time, CPUs in use, CPUs in the cluster)
    with Store(Path(tempfile.mkdtemp()), create=True) as store:
        launcher = Frozen(backend.launcher) if frozen else backend.launcher
        sched = Scheduler(store, store.queue(runs, {}), backend.slots, options, launcher=launcher)
        thread = threading.Thread(target=sched.run, daemon=True)
        start = time.monotonic()
        thread.start()
        joined = first_there = emptied = None
        added = None
        while thread.is_alive():  # until every run has ended
            total = ray.cluster_resources().get("CPU", 0.0)
            used = total - ray.available_resources().get("CPU", 0.0)
            now = time.monotonic()
            samples.append((now, used, total))
            placed = [w.host.proc.placed for w in list(sched.workers.values()) if w.host.proc.placed]
            if added is None and len(placed) == 2:
                added, joined = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1"), now
            if added and not first_there and any(p.node_id == added.node_id for p in placed):
                first_there = now
            if not sched.queue and joined is not None and emptied is None:
                emptied = now
            time.sleep(0.5)
        thread.join(300)
        outcomes = {store.run(r.run_id).status for r in runs}  # type: ignore[union-attr]
    ray.shutdown()
    cluster.shutdown()
    assert joined is not None, "the sweep ended before both nodes were busy"
    before = [u / t for at, u, t in samples if start + 2 <= at < joined and t]
    end = emptied or samples[-1][0]
    after = [u / t for at, u, t in samples if joined + 6 <= at <= end and t]  # the node is up, slots asked
    mode = "slots frozen at start" if frozen else "slots follow the cluster"
    print(f"{mode}: before the join {statistics.mean(before):.0%} of 2 CPUs in use, ", end="")
    print(f"after it {statistics.mean(after):.0%} of 3 CPUs (from 6 s after the join to the queue's end)")
    there = f"{first_there - joined:.1f} s after it joined" if first_there else "never, until the queue ended"
    print(f"a run placed on the new node {there}; the runs ended {sorted(outcomes)}")


if __name__ == "__main__":
    main()
