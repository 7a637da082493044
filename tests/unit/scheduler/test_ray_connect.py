"""Which cluster ``--ray-address auto`` joins, and a head that stops answering (issue 22: recipes,
head loss). No Ray cluster: the head is a listening socket here."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from rankbias_tui.measures import Status
from rankbias_tui.protocol import WorkerLost
from rankbias_tui.scheduler import Scheduler, SchedulerOptions, Slots, ray_cluster
from rankbias_tui.scheduler.devices import BackendError
from rankbias_tui.scheduler.ray_cluster import ClusterLost, HeadWatch, own_cluster_address
from rankbias_tui.spec import RunConfig
from rankbias_tui.store import Store
from rankbias_tui.sweep import PlannedRun, run_id


@pytest.fixture
def ray_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "ray").mkdir()
    return tmp_path / "ray" / "ray_current_cluster"


def test_auto_is_the_cluster_this_user_started(ray_tmp: Path) -> None:
    with pytest.raises(BackendError, match=r"no Ray cluster was started on this machine .*ray start --head"):
        own_cluster_address()
    ray_tmp.write_text("10.0.0.5:6379\n")
    assert own_cluster_address() == "10.0.0.5:6379"


def test_auto_never_joins_another_user_s_cluster(ray_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22, 6: on a shared node, ``auto`` attached to another user's cluster."""
    ray_tmp.write_text("10.0.0.5:6379")
    monkeypatch.setattr(os, "getuid", lambda: os.stat(ray_tmp).st_uid + 1)  # the file is someone else's
    with pytest.raises(BackendError) as err:
        own_cluster_address()
    assert "(10.0.0.5:6379) was started by user" in str(err.value)
    assert "only when it is named: --ray-address 10.0.0.5:6379" in str(err.value)


def test_ray_address_in_the_environment_is_this_user_s_own_choice(
    ray_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    assert own_cluster_address() == "head:6379"


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def _wait(condition, seconds: float = 5.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_head_that_stops_answering_is_lost_after_a_while() -> None:
    server = _listening()
    host, port = server.getsockname()
    watch = HeadWatch(f"{host}:{port}", lost_after=0.3, probe_s=0.05)
    time.sleep(0.2)
    assert watch.answering()
    watch.check()  # answering: nothing to say
    server.close()
    assert _wait(lambda: not watch.answering())
    watch.check()  # silent, but not yet for long
    time.sleep(0.35)
    with pytest.raises(ClusterLost) as lost:
        watch.check()
    message = str(lost.value)
    assert f"head at {host}:{port} has not answered for" in message
    assert "every run resumes from its last checkpoint" in message
    assert lost.value.hard_exit and lost.value.exit_code == 3


class SilentHead:
    """A ``HeadWatch`` whose head has stopped answering."""

    address = "10.0.0.5:6379"

    def __init__(self, lost: bool) -> None:
        self.lost = lost

    def answering(self) -> bool:
        return False

    def check(self) -> None:
        if self.lost:
            raise ClusterLost(self.address, 12.0)


def test_no_ray_call_is_made_while_the_head_is_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Ray call blocks while the head is gone: capacity is 0 (the scheduler waits), a task is
    not submitted but lost (its run requeued, not failed), and tasks are not cancelled through Ray."""
    pytest.importorskip("ray")
    from rankbias_tui.scheduler import ray_backend
    from rankbias_tui.scheduler.launcher import Launch
    from rankbias_tui.scheduler.ray_plan import Resources

    def blocked() -> list:
        raise AssertionError("a Ray call while the head is silent")

    monkeypatch.setattr(ray_backend, "alive_nodes", blocked)
    monkeypatch.setattr(ray_backend, "import_ray", blocked)
    launcher = ray_backend.RayLauncher(Resources(1.0, 0.0), SilentHead(lost=False))  # type: ignore[arg-type]
    assert launcher.capacity() == 0
    run = PlannedRun("r1", "t", RunConfig(dataset="digits"))
    host = launcher.start_run(run, None, "ray:cpu", Launch(None, tmp_path, 1, True))
    assert _wait(lambda: host.conn.poll())
    lost = host.conn.recv()
    assert isinstance(lost, WorkerLost) and "head is not answering" in lost.reason
    host.proc.terminate()
    host.proc.kill()
    assert not host.proc.is_alive()
    launcher.watch = SilentHead(lost=True)  # type: ignore[assignment]
    with pytest.raises(ClusterLost):
        launcher.capacity()


class Idle:
    """A scripted launcher that is never asked to start anything (no node fits)."""

    def start_run(self, *args: object) -> None:
        raise AssertionError("nothing fits: nothing starts")

    def start_pack(self, *args: object) -> None:
        raise AssertionError("nothing fits: nothing starts")


class LostCluster(Idle):
    """A scripted elastic launcher whose head is lost at once."""

    def capacity(self) -> int:
        raise ClusterLost("10.0.0.5:6379", 10.0)


def test_a_lost_head_stops_the_scheduler_with_every_run_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rankbias_tui.scheduler import service

    monkeypatch.setattr(service, "RESIZE_S", 0.0)
    configs = [RunConfig(dataset="digits", model="mlp", depth=2, width=8, seed=s) for s in range(2)]
    runs = [PlannedRun(run_id(c), "t", c) for c in configs]
    with Store(tmp_path, create=True) as store:
        todo = store.queue(runs, {})
        sched = Scheduler(store, todo, Slots(("ray:cpu",), 1, 1), SchedulerOptions(), launcher=LostCluster())
        with pytest.raises(ClusterLost) as lost:
            sched.run()
        assert "nothing recorded was lost" in str(lost.value)
        for run in runs:
            row = store.run(run.run_id)
            assert row is not None and row.status == Status.STOPPED
            assert "has not answered for 10 s" in (row.error or "")


def test_the_watch_module_needs_no_ray() -> None:
    assert "ray" not in vars(ray_cluster)


class Shrinking(Idle):
    """A scripted elastic launcher whose every node has left."""

    def capacity(self) -> int:
        return 0


def test_a_background_scheduler_publishes_its_slots_when_they_follow_the_cluster(tmp_path: Path) -> None:
    """The app reads a background scheduler's slots from its state file: rewritten on a change."""
    from rankbias_tui.scheduler.daemon import Daemon

    with Store(tmp_path, create=True) as store:
        daemon = Daemon(store, Slots(("ray:cpu",), 2, 1), SchedulerOptions(), launcher=Shrinking())
        published: list[int] = []
        daemon.publish = lambda slots: published.append(slots.capacity)
        daemon.queue.append(PlannedRun("r1", "t", RunConfig(dataset="digits")))
        daemon._fill_slots()
        assert published == [0] and daemon.waiting_for_nodes
        daemon._fill_slots()  # no change: nothing rewritten
        assert published == [0]


class Autoscaled(Idle):
    """A scripted elastic launcher of a cluster that grows on demand (``launcher.Scalable``)."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def capacity(self) -> int:
        return 0

    def want(self, tasks: int) -> None:
        self.asked.append(tasks)


def test_a_cluster_that_can_grow_is_asked_for_room_for_the_queued_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rankbias_tui.scheduler import service
    from rankbias_tui.scheduler.launcher import Scalable

    monkeypatch.setattr(service, "RESIZE_S", 0.0)
    configs = [RunConfig(dataset="digits", model="mlp", depth=2, width=8, seed=s) for s in range(3)]
    runs = [PlannedRun(run_id(c), "t", c) for c in configs]
    launcher = Autoscaled()
    assert isinstance(launcher, Scalable)
    with Store(tmp_path, create=True) as store:
        todo = store.queue(runs, {})
        sched = Scheduler(
            store, todo, Slots(("ray:cpu",), 0, 1), SchedulerOptions(pack_size=1), launcher=launcher
        )
        for _ in range(3):
            sched.turn()
        assert launcher.asked == [3]  # asked once, not at every turn
        sched.queue.pop()
        sched.turn()
        assert launcher.asked == [3, 2]
        sched.shutdown("stopped")
        assert launcher.asked == [3, 2, 0]  # withdrawn
