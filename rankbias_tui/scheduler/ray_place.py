"""Which GPU of a Ray cluster a GPU task goes to: one placement group bundle per physical GPU, and
the next task into the bundle with the fewest tasks (Ray itself only through ``RayGroups``).

Why: Ray packs tasks that ask for a fraction of a GPU onto as few GPUs as hold them (issue 22: 12
tasks at 0.25 GPU on nodes of 4 and 2 GPUs landed 4+4 on two GPUs of the first node and 4 on one
of the second; half the GPUs idle). Here every GPU of every live node is reserved as a bundle
``{"GPU": 1, "CPU": c}`` pinned to its node (the node's ``ray.io/node-id`` label), ``c`` its share
of the node's CPUs (``shares``: at most ``per_device``, as each task takes one CPU). A task runs in
a bundle (``PlacementGroupSchedulingStrategy``) and asks for 1/``per_device`` of its GPU there, so
Ray gives it that bundle's GPU, the one ``ray.get_gpu_ids()`` names. The bundles follow the cluster
each time the scheduler asks how many tasks it holds (``GpuBundles.follow``): a node that joins gets
its bundles, a node that left loses them.

Each bundle also keeps the bytes free on its GPU that a task measured when it started there with no
other task of ours beside it (``protocol.GpuMemory``, relayed onto the task as ``gpu_free``): the
scheduler sizes later packs for that GPU from it (``GpuBundles.next_memory``).

Does not own: submitting tasks (``scheduler.ray_backend``), what a task asks for or the slots of
the whole cluster (``scheduler.ray_plan``), the memory model of a pack (``scheduler.packing``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

NODE_LABEL = "ray.io/node-id"  # every Ray node carries its id as this label
READY_S = 2.0  # how long ``follow`` waits for new bundles to be reserved (Ray takes milliseconds)


class Task(Protocol):
    """What a bundle counts of a task (``ray_backend.RayTask``)."""

    gpu_free: int | None  # bytes free on its GPU when it started, once its worker measured them

    def is_alive(self) -> bool: ...


class Groups(Protocol):
    """The calls to Ray that the bundles need (``RayGroups``; a fake in the unit tests)."""

    def nodes(self) -> list[tuple[str, dict[str, float]]]:
        """The id and resources of each live node."""
        ...

    def create(self, node_id: str, cpus: int) -> Any:
        """A placement group of one bundle of one GPU and ``cpus`` CPUs on node ``node_id``."""
        ...

    def ready(self, groups: list[Any], timeout: float) -> list[Any]:
        """Those of ``groups`` whose bundle is reserved, waiting at most ``timeout`` seconds."""
        ...

    def remove(self, group: Any) -> None: ...

    def strategy(self, group: Any) -> dict[str, Any]:
        """The ``.options`` keywords that run a task in ``group``'s bundle."""
        ...


@dataclass(eq=False)
class Bundle:
    """One GPU of one node, reserved with ``cpus`` CPUs: it holds ``cpus`` tasks at once."""

    group: Any
    node_id: str
    cpus: int
    ready: bool = False
    tasks: list[tuple[Task, bool]] = field(default_factory=list)  # (task, it started alone here)
    free: int | None = None  # bytes free on the GPU, measured by a task that started here alone


def shares(resources: dict[str, float], per_device: int) -> list[int]:
    """How many tasks each GPU of a node holds: its CPUs (one per task) shared between its whole
    GPUs as evenly as they go, at most ``per_device`` each (a GPU left without a CPU gets no bundle).
    In all ``min(CPUs, GPUs x per_device)``, what ``ray_plan.Resources.per_node`` counts."""
    gpus, cpus = int(resources.get("GPU", 0) + 1e-9), int(resources.get("CPU", 0) + 1e-9)
    if gpus == 0:
        return []
    base, extra = divmod(min(cpus, gpus * per_device), gpus)
    return [n for n in (base + (i < extra) for i in range(gpus)) if n > 0]


class GpuBundles:
    """The bundles of the live nodes' GPUs and the tasks each holds."""

    def __init__(self, per_device: int, groups: Groups | None = None, ready_s: float = READY_S):
        self.per_device = per_device
        self.groups: Groups = groups if groups is not None else RayGroups()
        self.ready_s = ready_s
        self.bundles: list[Bundle] = []  # in the order they were made: the first of equals is taken

    def follow(self) -> int:
        """Bring the bundles in line with the live nodes (new GPUs reserved, waiting ``ready_s`` at
        most for them; those of nodes gone removed); return how many tasks the reserved ones hold."""
        nodes = dict(self.groups.nodes())
        for gone in [b for b in self.bundles if b.node_id not in nodes]:
            self.groups.remove(gone.group)  # its tasks went with their node
            self.bundles.remove(gone)
        new = []
        for node_id, resources in nodes.items():
            have = sum(b.node_id == node_id for b in self.bundles)
            wanted = shares(resources, self.per_device)
            new += [Bundle(self.groups.create(node_id, cpus), node_id, cpus) for cpus in wanted[have:]]
        self.bundles += new
        if waiting := [b for b in self.bundles if not b.ready]:
            done = self.groups.ready([b.group for b in waiting], self.ready_s if new else 0.0)
            for bundle in waiting:
                bundle.ready = any(group is bundle.group for group in done)
        return sum(b.cpus for b in self.bundles if b.ready)

    def choose(self) -> Bundle | None:
        """The bundle for the next task: of the reserved ones with room, the one with the fewest
        tasks, then the one whose node has the fewest (spread over GPUs, then nodes), then the first
        made; a full one only if all are full (Ray queues the task). None: none is reserved (the
        bundles are made by ``follow`` the first time)."""
        if not self.bundles:
            self.follow()
        ready = [b for b in self.bundles if b.ready]
        for bundle in ready:
            _settle(bundle)
        on_node = Counter(b.node_id for b in ready for _ in b.tasks)
        return min(
            ready, key=lambda b: (len(b.tasks) >= b.cpus, len(b.tasks), on_node[b.node_id]), default=None
        )

    def add(self, bundle: Bundle, task: Task) -> None:
        """``task`` was submitted into ``bundle`` (after ``choose``: finished tasks are gone)."""
        bundle.tasks.append((task, not bundle.tasks))

    def next_memory(self) -> tuple[int | None, int]:
        """(bytes free on the GPU the next task goes to, or None while no task measured it there
        alone; how many tasks share that GPU, its pack included)."""
        bundle = self.choose()
        return (bundle.free, bundle.cpus) if bundle is not None else (None, 1)

    def strategy(self, bundle: Bundle) -> dict[str, Any]:
        return self.groups.strategy(bundle.group)

    def release(self) -> None:
        """Give every GPU back to the cluster (the bundles go with the driver anyway)."""
        for bundle in self.bundles:
            self.groups.remove(bundle.group)
        self.bundles.clear()


def _settle(bundle: Bundle) -> None:
    """Keep the latest figure a task that started alone measured; forget the tasks that ended."""
    for task, alone in bundle.tasks:
        if alone and task.gpu_free is not None:
            bundle.free = task.gpu_free
    bundle.tasks = [(task, alone) for task, alone in bundle.tasks if task.is_alive()]


class RayGroups:
    """``Groups`` on the cluster this process is connected to."""

    def __init__(self) -> None:
        self._ready: dict[Any, Any] = {}  # group -> the one reference that resolves once it is reserved

    def nodes(self) -> list[tuple[str, dict[str, float]]]:
        import ray

        return [(n["NodeID"], n["Resources"]) for n in ray.nodes() if n.get("Alive")]

    def create(self, node_id: str, cpus: int) -> Any:
        from ray.util import placement_group

        bundle = {"GPU": 1.0, "CPU": float(cpus)}
        group = placement_group([bundle], bundle_label_selector=[{NODE_LABEL: node_id}])
        self._ready[group] = group.ready()
        return group

    def ready(self, groups: list[Any], timeout: float) -> list[Any]:
        import ray

        refs = {self._ready[group]: group for group in groups}
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        return [refs[ref] for ref in done]

    def remove(self, group: Any) -> None:
        from ray.util import remove_placement_group

        self._ready.pop(group, None)
        remove_placement_group(group)

    def strategy(self, group: Any) -> dict[str, Any]:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(group, 0)}
