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

Each bundle also keeps the bytes free on its GPU, which the scheduler sizes that GPU's packs from
(``GpuBundles.next_memory``): first as a probe measured them (``free_bytes``: a tiny task sent into
the bundle as it is made, before any of ours), then as the latest task that started there with no
other task of ours beside it measured them (``protocol.GpuMemory``, relayed onto the task as
``gpu_free``). A bundle takes tasks only once its probe has answered (or failed, or ``PROBE_S``
passed: then with no figure, and its packs keep the CPU's cap until a task measures one), so even
the first pack on a GPU is sized from its memory; the bundles probed together open together.

Does not own: submitting tasks (``scheduler.ray_backend``), what a task asks for or the slots of
the whole cluster (``scheduler.ray_plan``), the memory model of a pack (``scheduler.packing``).
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

NODE_LABEL = "ray.io/node-id"  # every Ray node carries its id as this label
READY_S = 2.0  # how long ``follow`` waits for new bundles to be reserved (Ray takes milliseconds)
PROBE_S = 30.0  # how long a reserved bundle waits for its probe (a Ray worker starts, imports torch)
PROBE_GPU = 0.01  # the share of its GPU the probe asks for (any task in a bundle asks for some)

log = logging.getLogger(__name__)


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

    def probe(self, group: Any) -> Any:
        """Send the probe (``free_bytes``) into ``group``'s bundle; a handle for ``answers``."""
        ...

    def answers(self, probes: list[Any]) -> list[tuple[bool, int | None]]:
        """For each of ``probes``, without waiting: whether it has answered (or failed), and the
        bytes it measured (None: it failed, or found no CUDA device)."""
        ...


@dataclass(eq=False)
class Bundle:
    """One GPU of one node, reserved with ``cpus`` CPUs: it holds ``cpus`` tasks at once."""

    group: Any
    node_id: str
    cpus: int
    ready: bool = False  # reserved
    probe: Any = None  # the probe measuring its GPU, until it answers (``Groups.probe``)
    since: float = 0.0  # when it was reserved: its probe's wait starts then
    heard: bool = False  # its probe answered, failed or was waited for long enough
    tasks: list[tuple[Task, bool]] = field(default_factory=list)  # (task, it started alone here)
    free: int | None = None  # bytes free on the GPU: by the probe, then by a task that started alone

    @property
    def open(self) -> bool:
        """Reserved and its GPU measured (or given up on): tasks go in."""
        return self.ready and self.probe is None

    def __str__(self) -> str:
        return f"a GPU of node {self.node_id[:12]}"


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

    def __init__(
        self,
        per_device: int,
        groups: Groups | None = None,
        ready_s: float = READY_S,
        probe_s: float = PROBE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.per_device = per_device
        self.groups: Groups = groups if groups is not None else RayGroups()
        self.ready_s, self.probe_s, self.clock = ready_s, probe_s, clock
        self.bundles: list[Bundle] = []  # in the order they were made: the first of equals is taken

    def follow(self) -> int:
        """Bring the bundles in line with the live nodes (new GPUs reserved, waiting ``ready_s`` at
        most for them, and probed; those of nodes gone removed); return how many tasks the open ones
        hold (reserved, and their probe answered)."""
        nodes = dict(self.groups.nodes())
        for gone in [b for b in self.bundles if b.node_id not in nodes]:
            self.groups.remove(gone.group)  # its tasks went with their node
            self.bundles.remove(gone)
        new = []
        for node_id, resources in nodes.items():
            have = sum(b.node_id == node_id for b in self.bundles)
            wanted = shares(resources, self.per_device)
            new += [Bundle(self.groups.create(node_id, cpus), node_id, cpus) for cpus in wanted[have:]]
        for bundle in new:  # Ray runs it as soon as the bundle is reserved
            bundle.probe = self.groups.probe(bundle.group)
        self.bundles += new
        if waiting := [b for b in self.bundles if not b.ready]:
            done = self.groups.ready([b.group for b in waiting], self.ready_s if new else 0.0)
            for bundle in waiting:
                bundle.ready = any(group is bundle.group for group in done)
                bundle.since = self.clock()
        self._hear_probes()
        return sum(b.cpus for b in self.bundles if b.open)

    def _hear_probes(self) -> None:
        """Take the figures of the probes that answered, and give up on those waited for too long
        (their GPU opens with no figure; a later answer is not taken: our tasks may be there by
        then). The GPUs probed open together, once no reserved one waits for its probe: opened one
        by one, the first would take the first packs, each sized for a share of the whole queue."""
        probed = [b for b in self.bundles if b.ready and b.probe is not None]
        if waiting := [b for b in probed if not b.heard]:
            now = self.clock()
            answers = self.groups.answers([b.probe for b in waiting])
            for bundle, (answered, free) in zip(waiting, answers, strict=True):
                if answered:
                    bundle.free, bundle.heard = free, True
                    log.info("%s: %s bytes free (probe, %.1f s)", bundle, free, now - bundle.since)
                elif now - bundle.since >= self.probe_s:
                    bundle.heard = True
                    log.warning("%s: no answer from its probe; its packs keep the cap", bundle)
        if all(b.heard for b in probed):
            for bundle in probed:
                bundle.probe = None

    def choose(self) -> Bundle | None:
        """The bundle for the next task: of the open ones with room, the one with the fewest tasks,
        then the one whose node has the fewest (spread over GPUs, then nodes), then the first made;
        a full one only if all are full (Ray queues the task). None: none is open (the bundles are
        made by ``follow`` the first time)."""
        if not self.bundles:
            self.follow()
        ready = [b for b in self.bundles if b.open]
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
        """(bytes free on the GPU the next task goes to, or None while neither its probe nor a task
        alone there measured it; how many tasks share that GPU, its pack included)."""
        bundle = self.choose()
        return (bundle.free, bundle.cpus) if bundle is not None else (None, 1)

    def strategy(self, bundle: Bundle) -> dict[str, Any]:
        return self.groups.strategy(bundle.group)

    def release(self) -> None:
        """Give every GPU back to the cluster (the bundles go with the driver anyway)."""
        for bundle in self.bundles:
            self.groups.remove(bundle.group)
        self.bundles.clear()


def free_bytes() -> int | None:
    """The probe, in a Ray task on the GPU's node: the bytes free on the GPU Ray gave it (``cuda:0``,
    the one it sees), its own CUDA context already taken as a worker's is; None without CUDA (Ray's
    GPUs only declared)."""
    try:  # CUDA's driver: torch finds no GPU without it, and need not be imported (seconds) to say so
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    from ..engine.devices import cuda_device_count, free_memory  # noqa: PLC0415 - torch, on the node

    return free_memory("cuda:0") if cuda_device_count() else None


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
        self._probe: Any = None  # ``free_bytes`` as a Ray remote function, once asked for

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

    def probe(self, group: Any) -> Any:
        import ray

        if self._probe is None:  # a worker of its own (max_calls), whose CUDA context goes with it
            remote = ray.remote(num_cpus=0, num_gpus=PROBE_GPU, max_calls=1, max_retries=0)
            self._probe = remote(free_bytes)
        return self._probe.options(**self.strategy(group)).remote()

    def answers(self, probes: list[Any]) -> list[tuple[bool, int | None]]:
        import ray

        done = set(ray.wait(probes, num_returns=len(probes), timeout=0)[0])
        return [(True, _answer(ray, ref)) if ref in done else (False, None) for ref in probes]


def _answer(ray: Any, ref: Any) -> int | None:
    """A probe's figure; None if it failed (its GPU opens with no figure)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:
        log.warning("a GPU's probe failed: %s", str(err).splitlines()[0][:300])
        return None
