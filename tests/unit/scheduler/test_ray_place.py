"""GPU placement on Ray without a cluster (issue 22, 4): one bundle per GPU of each live node, the
next task into the bundle with the fewest tasks, and packs sized from the memory a probe, then a
task, measured on its GPU. Ray's calls are a fake (``Groups``); tests/ray/test_ray_gpus.py runs the real thing."""

from __future__ import annotations

from collections import Counter
from multiprocessing import Pipe
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rankbias_tui.protocol import GpuMemory, Placed, WorkerEnded
from rankbias_tui.scheduler import Scheduler, packing
from rankbias_tui.scheduler.devices import Slots
from rankbias_tui.scheduler.ray_place import GpuBundles, shares
from rankbias_tui.scheduler.ray_plan import Resources
from rankbias_tui.store import Store
from tests.support import runs

FOUR, TWO = {"CPU": 16.0, "GPU": 4.0}, {"CPU": 8.0, "GPU": 2.0}  # the nodes of 4 and 2 GPUs


class FakeGroups:
    """Ray's placement groups, reserved at once unless ``held`` (another job holds those GPUs), and
    their probes, answering at once with the node's ``free`` figure (None: fake GPUs) unless
    ``quiet``."""

    def __init__(self, nodes: dict[str, dict[str, float]]):
        self.live = dict(nodes)
        self.made: list[tuple[str, int]] = []
        self.removed: list[tuple[str, int]] = []
        self.held: set[str] = set()  # nodes whose GPUs cannot be reserved now
        self.free: dict[str, int | None] = {}  # node -> what its probes answer
        self.quiet: set[str] = set()  # nodes whose probes have not answered (yet)
        self.probed: list[Any] = []

    def nodes(self) -> list[tuple[str, dict[str, float]]]:
        return list(self.live.items())

    def create(self, node_id: str, cpus: int) -> Any:
        self.made.append((node_id, cpus))
        return (node_id, len(self.made))

    def ready(self, groups: list[Any], timeout: float) -> list[Any]:
        return [g for g in groups if g[0] not in self.held]

    def remove(self, group: Any) -> None:
        self.removed.append(group)

    def strategy(self, group: Any) -> dict[str, Any]:
        return {"placement_group": group}

    def probe(self, group: Any) -> Any:
        self.probed.append(group)
        return group

    def answers(self, probes: list[Any]) -> list[tuple[bool, int | None]]:
        return [(g[0] not in self.quiet, self.free.get(g[0])) for g in probes]


class FakeTask:
    def __init__(self, gpu_free: int | None = None):
        self.gpu_free, self.alive = gpu_free, True

    def is_alive(self) -> bool:
        return self.alive


def place(book: GpuBundles, count: int) -> list[tuple[Any, FakeTask]]:
    """Submit ``count`` tasks as the launcher does: each into the bundle ``choose`` gives."""
    placed = []
    for _ in range(count):
        bundle, task = book.choose(), FakeTask()
        book.add(bundle, task)
        placed.append((bundle, task))
    return placed


def test_a_node_s_cpus_are_shared_between_its_gpus() -> None:
    assert shares(FOUR, 4) == [4, 4, 4, 4]
    assert shares({"CPU": 3.0, "GPU": 2.0}, 2) == [2, 1]  # one CPU per task, as evenly as it goes
    assert shares({"CPU": 2.0, "GPU": 4.0}, 1) == [1, 1]  # two GPUs have no CPU to feed them
    assert shares({"CPU": 8.0}, 4) == [] and shares({"CPU": 0.0, "GPU": 2.0}, 1) == []
    for node in (FOUR, TWO, {"CPU": 3.0, "GPU": 2.0}, {"CPU": 2.0, "GPU": 4.0}):
        for per_device in (1, 2, 4):  # the slots the plan counts are the bundles' tasks
            assert sum(shares(node, per_device)) == Resources(1.0, 1 / per_device).per_node(node)


def test_twelve_tasks_at_a_quarter_gpu_spread_two_per_gpu_over_both_nodes() -> None:
    """Issue 22, 4: 12 tasks at 0.25 GPU on nodes of 4 and 2 GPUs landed 4, 4, 0, 0 and 4, 0."""
    groups = FakeGroups({"a": FOUR, "b": TWO})
    book = GpuBundles(4, groups)
    assert book.follow() == 24 and groups.made == [("a", 4)] * 4 + [("b", 4)] * 2
    placed = place(book, 12)
    assert sorted(Counter(id(b) for b, _ in placed).values()) == [2] * 6
    assert [b.node_id for b, _ in placed[:4]] == ["a", "b", "a", "b"]  # nodes take turns among equals
    assert book.strategy(placed[0][0]) == {"placement_group": ("a", 1)}


def test_a_task_that_ends_frees_its_gpu_for_the_next() -> None:
    book = GpuBundles(2, FakeGroups({"b": TWO}))
    book.follow()
    placed = place(book, 3)  # two GPUs of two slots each
    first, second = placed[0][0], placed[1][0]
    assert first is not second and placed[2][0] is first
    assert book.choose() is second
    placed[0][1].alive = placed[2][1].alive = False  # both tasks on the first GPU ended
    assert book.choose() is first and first.tasks == []


def test_bundles_follow_nodes_that_join_and_leave() -> None:
    groups = FakeGroups({"a": FOUR})
    book = GpuBundles(1, groups)
    assert book.follow() == 4
    groups.live["b"] = TWO
    assert book.follow() == 6 and len(groups.made) == 6  # only the new node's GPUs are reserved
    del groups.live["a"]
    assert book.follow() == 2
    assert sorted(g[0] for g in groups.removed) == ["a"] * 4 and {b.node_id for b in book.bundles} == {"b"}
    groups.live["c"] = TWO
    groups.held.add("c")  # its GPUs are someone else's for now: not counted, nothing placed there
    assert book.follow() == 2
    assert {book.choose().node_id for _ in range(3)} == {"b"}
    groups.held.clear()
    assert book.follow() == 4
    book.release()
    assert book.bundles == [] and len(groups.removed) == 8


def test_no_bundle_reserved_means_no_gpu_to_give() -> None:
    groups = FakeGroups({"a": FOUR})
    groups.held.add("a")
    book = GpuBundles(1, groups, ready_s=0)
    assert book.choose() is None and book.next_memory() == (None, 1)


def test_a_gpu_s_memory_is_the_figure_a_task_measured_there_alone() -> None:
    book = GpuBundles(2, FakeGroups({"b": TWO}))
    book.follow()
    (first, alone), (second, _), (_, beside) = place(book, 3)  # the third shares the first GPU
    assert book.next_memory() == (None, 2)  # nothing measured yet: the packs keep the CPU's cap
    beside.gpu_free = 10 << 30  # measured with our other task on the GPU: not the GPU's figure
    book.choose()
    assert first.free is None
    alone.gpu_free = 40 << 30
    alone.alive = beside.alive = False  # the first GPU is free again, and it is the next one
    assert book.next_memory() == (40 << 30, 2)
    assert second.free is None


def test_ray_packs_are_sized_from_the_memory_their_gpu_reported(tmp_path: Path) -> None:
    """Issue 22, 4: Ray packs were capped at 16 (``ray:cuda`` is no ``cuda...`` device the scheduler
    can measure); now the memory a task measured on the GPU the next pack goes to sizes it, with the
    local backend's model (``packing.auto_pack_size``: 40% of it, shared by that GPU's slots)."""
    pytest.importorskip("ray")
    from rankbias_tui.scheduler.ray_backend import RayLauncher

    launcher = RayLauncher(Resources(1.0, 0.5))
    launcher.gpus = GpuBundles(2, FakeGroups({"b": TWO}))
    launcher.gpus.follow()
    run = runs.planned(base=runs.DIGITS)  # the paper's MLP-BN 10x100
    member = packing.member_bytes(run.config)
    with Store(tmp_path) as store:
        sched = Scheduler(store, [], Slots(("ray:cuda",), 4, 1), launcher=launcher)
        assert sched._auto_pack_size(run, "ray:cuda") == packing.CPU_PACK_SIZE  # not measured yet
        bundle = launcher.gpus.choose()
        launcher.gpus.add(bundle, FakeTask(gpu_free=int(2 * 40 * member / packing.MEMORY_SHARE) + 1))
        launcher.gpus.add(launcher.gpus.choose(), FakeTask())  # the other GPU, still unmeasured
        assert launcher.gpus.choose() is bundle
        assert sched._auto_pack_size(run, "ray:cuda") == 40  # 2 slots on that GPU: 40 each
        bundle.tasks.clear()
        bundle.free = 80 << 30  # an H100's
        assert sched._auto_pack_size(run, "ray:cuda") == packing.MAX_PACK_SIZE


def test_the_figure_a_worker_sends_reaches_its_gpu_s_bundle_on_the_way_to_the_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's ``GpuMemory`` is read by the relay of its Ray task (and passed on: the
    scheduler ignores it); the task's bundle keeps it for that GPU's next packs."""
    ray = pytest.importorskip("ray")
    from rankbias_tui.scheduler import ray_backend

    fake_ray = SimpleNamespace(get=lambda item: item, exceptions=ray.exceptions)  # a stream of events
    monkeypatch.setattr(ray_backend, "import_ray", lambda: fake_ray)
    book = GpuBundles(4, FakeGroups({"b": TWO}))
    book.follow()
    events = [Placed("10.0.0.7", "b", "cuda:1", 42), GpuMemory(40 << 30), WorkerEnded("done")]
    reader, writer = Pipe(duplex=False)
    task = ray_backend.RayTask(iter(events), writer, tmp_path, "r")
    book.add(book.choose(), task)
    task.join(10)
    assert [reader.recv() for _ in events] == events and task.gpu_free == 40 << 30
    assert book.next_memory() == (40 << 30, 4)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_gpu_takes_tasks_once_its_probe_answered_and_its_first_pack_is_sized_from_it(
    tmp_path: Path,
) -> None:
    """The first pack on a GPU was capped at 16 (nothing measured there yet); now a probe measures
    the GPU as its bundle is made, and no task goes there before it has answered."""
    pytest.importorskip("ray")
    from rankbias_tui.scheduler.ray_backend import RayLauncher

    groups = FakeGroups({"a": {"CPU": 1.0, "GPU": 1.0}})
    groups.quiet.add("a")
    launcher = RayLauncher(Resources(1.0, 1.0))
    launcher.gpus = book = GpuBundles(1, groups)
    assert book.follow() == 0 and groups.probed == [("a", 1)]  # reserved, not measured: closed
    assert book.choose() is None and launcher.capacity() == 0
    groups.free["a"] = 80 << 30  # an H100's
    groups.quiet.clear()
    assert book.follow() == 1 and book.bundles[0].free == 80 << 30 and groups.probed == [("a", 1)]
    run = runs.planned(base=runs.DIGITS)  # the paper's MLP-BN 10x100
    with Store(tmp_path) as store:
        sched = Scheduler(store, [], Slots(("ray:cuda",), 1, 1), launcher=launcher)
        assert sched._auto_pack_size(run, "ray:cuda") == packing.MAX_PACK_SIZE == 256
        bundle = book.choose()
        book.add(bundle, FakeTask(gpu_free=8 << 30))  # a task alone there measured less since
        bundle.tasks[0][0].alive = False
        assert book.next_memory() == (8 << 30, 1)  # the probe's figure stood until then


def test_a_probe_that_finds_no_cuda_opens_its_gpu_with_no_figure() -> None:
    groups = FakeGroups({"b": TWO})  # its probes answer None, as on Ray's declared GPUs
    book = GpuBundles(2, groups)
    assert book.follow() == 4 and len(groups.probed) == 2
    assert book.next_memory() == (None, 2)  # the packs keep the CPU's cap (16)


def test_a_probe_that_never_answers_opens_its_gpu_after_the_wait() -> None:
    groups, clock = FakeGroups({"b": TWO}), Clock()
    groups.held.add("b")
    groups.quiet.add("b")
    book = GpuBundles(2, groups, ready_s=0, probe_s=30, clock=clock)
    assert book.follow() == 0
    clock.now += 60  # held by another job all that time: the wait starts once the GPUs are ours
    groups.held.clear()
    assert book.follow() == 0
    clock.now += 29
    assert book.follow() == 0 and book.choose() is None
    clock.now += 1
    assert book.follow() == 4 and book.next_memory() == (None, 2)
    groups.quiet.clear()
    groups.free["b"] = 80 << 30  # too late: tasks may be on the GPU by now
    assert book.follow() == 4 and book.next_memory() == (None, 2)


def test_the_gpus_probed_together_open_together() -> None:
    """Opened one by one as their probes answer, the first GPUs would take the first packs, each
    sized for its share of the whole queue; a node that joins later waits only for its own."""
    groups = FakeGroups({"a": FOUR, "b": TWO})
    groups.quiet.add("b")
    book = GpuBundles(4, groups)
    assert book.follow() == 0 and book.choose() is None  # a's GPUs measured, b's not yet
    groups.quiet.clear()
    assert book.follow() == 24
    groups.live["c"] = TWO
    groups.quiet.add("c")
    assert book.follow() == 24 and {b.node_id for b, _ in place(book, 6)} == {"a", "b"}
