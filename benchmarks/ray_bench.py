"""Ray backend benchmark: the quickstart sweep with the local and the Ray backend, side by side.

Trains the same runs twice on this machine, in one process: with the local backend (a spawned
worker process per run or pack) and with the Ray backend on a private Ray instance (a Ray task per
run or pack, with as many CPUs as the local backend has slots), then prints
  wall time    of each backend, and their ratio (goal: Ray within 1.3x of local)
  overhead     per task: from submission to the task's start on a node (Ray's scheduling and
               worker start-up; the worker process each task then spawns is the local backend's too)
  bytes        sent back per run: events (pickled, as relayed) and checkpoints; with
               ``--checkpoint-dir`` the Ray sweep runs again with nodes writing checkpoints into a
               shared directory (``rankbias run --checkpoint-dir``), and its bytes are printed too
  same numbers whether every run's evaluation metrics and singular values are bitwise equal.

Ray must not reach the network: run as root, and the script re-executes itself in a new network
namespace that has only loopback (``unshare -n``); ``--no-netns`` skips that (only if you know why).

    python benchmarks/ray_bench.py                 # the quickstart sweep (~3-5 minutes on 2 cores)
    python benchmarks/ray_bench.py --epochs 10     # shorter runs: the overhead weighs more
    python benchmarks/ray_bench.py --epochs 5 --checkpoint-dir   # driver bytes with and without
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loopback_only() -> bool:
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return [line.split(":")[0].strip() for line in lines] == ["lo"]


def reexec_in_namespace() -> None:
    """Run this script again in a loopback-only network namespace (needs root)."""
    script = " ".join([sys.executable, *map(_quote, sys.argv)])
    os.execvp("unshare", ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {script}"])


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def planned_runs(spec: Path, sweep: str | None, epochs: int | None) -> list:
    from rankbias_tui.spec import load_spec
    from rankbias_tui.sweep import PlannedRun, expand

    runs = expand(load_spec(spec), [sweep] if sweep else [])
    if epochs is None:
        return runs
    return [PlannedRun(r.run_id, r.sweep, r.config.model_copy(update={"epochs": epochs})) for r in runs]


def train(
    store_dir: Path, runs: list, backend: str, pack_size: int | None, checkpoint_dir: Path | None = None
) -> tuple[float, list]:
    """Wall seconds to train ``runs`` into a new store, and the Ray tasks that trained them."""
    from rankbias_tui.scheduler import Scheduler, SchedulerOptions, prepare
    from rankbias_tui.store import Store

    where = str(checkpoint_dir) if checkpoint_dir else None
    options = SchedulerOptions("cpu", pack_size=pack_size, backend=backend, checkpoint_dir=where)
    target = prepare(options)  # ray: connected already (main), so this only plans
    launcher = Recording(target.launcher)
    with Store(store_dir, create=True) as store:
        todo = store.queue(runs, {})
        start = time.perf_counter()
        outcomes = Scheduler(store, todo, target.slots, options, launcher=launcher).run()
        wall = time.perf_counter() - start
    assert set(outcomes.values()) == {"done"}, outcomes
    return wall, launcher.tasks


class Recording:
    """A launcher that keeps every task it starts (for their timings and byte counts)."""

    def __init__(self, inner: object):
        self.inner, self.tasks = inner, []

    def start_run(self, *args: object) -> object:
        host = self.inner.start_run(*args)
        self.tasks.append(host.proc)
        return host

    def start_pack(self, *args: object) -> object:
        host = self.inner.start_pack(*args)
        self.tasks.append(host.proc)
        return host


def numbers(store_dir: Path, run_ids: list[str]) -> list:
    from rankbias_tui.store import Store

    with Store(store_dir) as store:
        evals = {"train_loss", "train_acc", "test_loss", "test_acc"}
        return [([m for m in store.metrics(r) if m[2] in evals], store.spectra(r)) for r in run_ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "experiments.toml")
    parser.add_argument("--sweep", default=None, help="default: the spec's default (quickstart)")
    parser.add_argument("--epochs", type=int, default=None, help="override every run's epochs")
    parser.add_argument("--pack-size", type=int, default=None, help="1: no packs")
    parser.add_argument("--repeat", type=int, default=1, help="alternate N times; the best of each")
    parser.add_argument("--no-netns", action="store_true", help="do not isolate Ray in a namespace")
    parser.add_argument(
        "--checkpoint-dir",
        action="store_true",
        help="also a Ray sweep with nodes writing checkpoints to a shared dir",
    )
    args = parser.parse_args()
    if not args.no_netns and not loopback_only():
        if os.geteuid() != 0:
            sys.exit("run as root (Ray is isolated in a loopback-only network namespace), or --no-netns")
        reexec_in_namespace()

    from rankbias_tui.scheduler.ray_cluster import connect, import_ray

    runs = planned_runs(args.spec, args.sweep, args.epochs)
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="rbbench-") as tmp:
        os.environ["RAY_TMPDIR"] = tmp  # short socket paths, removed with the rest
        t0 = time.perf_counter()
        print(connect(None, num_cpus=cpus), f"(started in {time.perf_counter() - t0:.1f} s, not counted)")
        local_s, ray_s = [], []
        for i in range(args.repeat):  # alternated, so that a busy spell of the machine hits both
            local_s.append(train(Path(tmp) / f"local{i}", runs, "local", args.pack_size)[0])
            wall, tasks = train(Path(tmp) / f"ray{i}", runs, "ray", args.pack_size)
            ray_s.append(wall)
        ids = [r.run_id for r in runs]
        same = numbers(Path(tmp) / "local0", ids) == numbers(Path(tmp) / "ray0", ids)
        if args.checkpoint_dir:
            shared = train(Path(tmp) / "ray-dir", runs, "ray", args.pack_size, Path(tmp) / "shared")[1]
            same_dir = numbers(Path(tmp) / "local0", ids) == numbers(Path(tmp) / "ray-dir", ids)
        import_ray().shutdown()
    local_s, ray_s = min(local_s), min(ray_s)
    waits = [t.wait_s for t in tasks if t.wait_s is not None]
    print(f"{len(runs)} runs ({args.sweep or 'default sweep'}), {len(tasks)} Ray tasks, {cpus} CPUs, "
          f"best of {args.repeat}")  # fmt: skip
    print(
        f"wall time      local {local_s:7.1f} s   ray {ray_s:7.1f} s   ratio ray/local {ray_s / local_s:.2f}x"
    )
    print(f"overhead/task  submission -> start on a node: median {statistics.median(waits):.2f} s, "
          f"max {max(waits):.2f} s; (ray - local) / tasks = {(ray_s - local_s) / len(tasks):.2f} s")  # fmt: skip
    print(f"bytes per run  events {sum(t.event_bytes for t in tasks) / len(runs) / 1024:.1f} KiB, "
          f"checkpoints {sum(t.checkpoint_bytes for t in tasks) / len(runs) / 1024:.1f} KiB")  # fmt: skip
    print(f"same numbers   {'yes: metrics and singular values bitwise equal' if same else 'NO'}")
    if args.checkpoint_dir:
        events = sum(t.event_bytes for t in shared) / len(runs) / 1024
        ckpts = sum(t.checkpoint_bytes for t in shared) / len(runs) / 1024
        print("with --checkpoint-dir (nodes write checkpoints into a shared directory):")
        print(f"bytes per run  events {events:.1f} KiB, checkpoints {ckpts:.1f} KiB")
        print(f"same numbers   {'yes: metrics and singular values bitwise equal' if same_dir else 'NO'}")


if __name__ == "__main__":
    main()
