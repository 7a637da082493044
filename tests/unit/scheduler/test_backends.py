"""Backends as a table (``scheduler.backends.BACKENDS``) and launchers as a protocol
(``scheduler.launcher.Launcher``): a new backend is one row, and the scheduler's loop drives any
launcher that meets the protocol, without asking which backend it has."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest

from rankbias_tui.protocol import Finished, Metrics, Started
from rankbias_tui.scheduler import (
    BACKENDS,
    Backend,
    BackendError,
    Launch,
    Launcher,
    Scheduler,
    SchedulerOptions,
    Slots,
    check_backend,
    describe_backends,
    prepare,
    service,
)
from rankbias_tui.scheduler.backends import BackendRow
from rankbias_tui.scheduler.hosts import Host
from rankbias_tui.scheduler.launcher import Elastic
from rankbias_tui.scheduler.local import ProcessLauncher
from rankbias_tui.scheduler.ray_backend import RayLauncher
from rankbias_tui.scheduler.ray_plan import RayUnfit, Resources, plan
from rankbias_tui.spec import RunConfig
from rankbias_tui.store import Store
from rankbias_tui.sweep import PlannedRun, run_id

SLOTS = Slots(("fake:0",), 1, 1)


class Ended:
    """A worker process that has ended (``hosts.WorkerProcess``); its sentinel is readable."""

    pid, exitcode = 4242, 0

    def __init__(self) -> None:
        self.sentinel, write = os.pipe()
        os.close(write)  # EOF: readable, as an exited process's sentinel is

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: float | None = None) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class Scripted:
    """A launcher of no known backend: each run "trains" by replaying three events down a pipe."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, Launch]] = []

    def start_run(self, run: PlannedRun, resume: int | None, device: str, launch: Launch) -> Host:
        self.started.append((run.run_id, device, launch))
        reader, writer = mp.Pipe(duplex=False)
        for event in (Started(run.run_id, 10, -1, "scripted"), Metrics(run.run_id, 10, 1.0, {"loss": 0.5})):
            writer.send(event)
        writer.send(Finished(run.run_id, "done"))
        writer.close()
        return Host(Ended(), reader, device)

    def start_pack(
        self, runs: list[PlannedRun], resumes: list[int | None], device: str, launch: Launch
    ) -> Host:
        raise AssertionError("no packs asked for (--pack-size 1)")


def test_the_builtin_launchers_meet_the_protocol() -> None:
    assert isinstance(ProcessLauncher(), Launcher)
    assert isinstance(RayLauncher(Resources(1.0, 0.0)), Launcher)  # Ray is not imported for this
    assert isinstance(Scripted(), Launcher)
    assert not isinstance(object(), Launcher)


def test_local_is_the_row_that_plans_processes_on_this_machine() -> None:
    backend = prepare(SchedulerOptions("cpu", per_device=3))
    assert isinstance(backend.launcher, ProcessLauncher)
    assert backend.slots.devices == ("cpu",) and backend.slots.per_device == 3
    assert backend.where == "cpu (3 at a time per device)"
    assert list(BACKENDS) == ["local", "ray"]
    assert describe_backends() == "local: worker processes on this machine; ray: tasks on a Ray cluster"


def test_a_new_backend_is_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    launcher = Scripted()
    row = BackendRow(
        "scripted events",
        lambda options, connect: Backend(SLOTS, launcher, f"nowhere ({connect})"),
        lambda: checked.append("x"),
    )
    monkeypatch.setitem(BACKENDS, "fake", row)
    options = SchedulerOptions(backend="fake")
    check_backend(options)
    assert checked == ["x"]
    backend = prepare(options, connect=False)
    assert backend.launcher is launcher and backend.where == "nowhere (False)" and len(checked) == 2
    assert describe_backends().endswith("; fake: scripted events")
    with pytest.raises(BackendError, match="unknown backend 'k8s': use one of local, ray, fake"):
        check_backend(SchedulerOptions(backend="k8s"))


def test_the_scheduler_trains_through_any_launcher(tmp_path: Path) -> None:
    configs = [RunConfig(dataset="digits", model="mlp", depth=2, width=8, seed=s) for s in range(2)]
    runs = [PlannedRun(run_id(c), "t", c) for c in configs]
    launcher = Scripted()
    with Store(tmp_path, create=True) as store:
        todo = store.queue(runs, {})
        outcomes = Scheduler(store, todo, SLOTS, SchedulerOptions(pack_size=1), launcher=launcher).run()
        assert outcomes == {r.run_id: "done" for r in runs}
        assert [(r, d) for r, d, _ in launcher.started] == [(r.run_id, "fake:0") for r in runs]
        assert launcher.started[0][2].checkpoint_root == store.paths.checkpoints
        row = store.run(runs[0].run_id)
        assert row is not None and row.status == "done" and row.pid == 4242 and row.device == "fake:0"
        assert store.metrics(runs[0].run_id) == [(10, 1.0, "loss", 0.5)]


class Cluster(Scripted):
    """A scripted launcher whose cluster grows: ``capacity`` tasks fit (``launcher.Elastic``)."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes = 0

    def capacity(self) -> int:
        return self.nodes


def test_an_elastic_launcher_s_slots_follow_its_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22, 1: slots are not frozen at start. A cluster with no node that fits waits (saying
    so), and a node that joins gets work at once; runs already started are not touched."""
    monkeypatch.setattr(service, "RESIZE_S", 0.0)  # ask the launcher at every turn
    configs = [RunConfig(dataset="digits", model="mlp", depth=2, width=8, seed=s) for s in range(3)]
    runs = [PlannedRun(run_id(c), "t", c) for c in configs]
    cluster = Cluster()
    assert isinstance(cluster, Elastic) and not isinstance(Scripted(), Elastic)
    with Store(tmp_path, create=True) as store:
        todo = store.queue(runs, {})
        sched = Scheduler(
            store, todo, Slots(("ray:cpu",), 0, 1), SchedulerOptions(pack_size=1), launcher=cluster
        )
        for _ in range(3):
            sched.turn()
        assert cluster.started == [] and sched.waiting_for_nodes  # no node yet: nothing fails, it waits
        cluster.nodes = 2  # a node with two slots joins
        sched.turn()
        assert len(cluster.started) == 2 and sched.slots.per_device == 2 and not sched.waiting_for_nodes
        assert sched.run() == {r.run_id: "done" for r in runs}


def test_a_cluster_whose_workers_have_not_joined_yet_is_planned_to_wait() -> None:
    head_only = [{"CPU": 0.0}]
    slots, res = plan("cpu", None, head_only, elastic=True)
    assert slots.per_device == 0 and res.num_cpus == 1.0
    with pytest.raises(RayUnfit):  # a private instance gets no more nodes: refused, as before
        plan("cpu", None, head_only)
    with pytest.raises(RayUnfit):  # CPUs but no GPU for a GPU request: refused at once, as before
        plan("cuda", None, [{"CPU": 4.0}], elastic=True)
