"""How a sweep's runs fit on a Ray cluster, without Ray: what one task (a run or a pack) asks for,
how many such tasks each node holds, and the slots of the whole cluster (``plan``). Pure: the
nodes' resources are passed in (``ray_cluster.alive_nodes`` reads them from a live cluster)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .devices import BackendError, DeviceError, Slots, check_syntax


class RayUnfit(BackendError):
    """No node of the cluster has the resources one run asks for."""


@dataclass(frozen=True)
class Resources:
    """What one task (a run or a pack) asks Ray for."""

    num_cpus: float
    num_gpus: float

    @property
    def gpu(self) -> bool:
        return self.num_gpus > 0

    @property
    def per_gpu(self) -> int:
        """How many such tasks share one GPU (``--per-device``)."""
        return round(1 / self.num_gpus) if self.num_gpus else 0

    def fits(self, node: dict[str, float]) -> bool:
        return node.get("CPU", 0) >= self.num_cpus and node.get("GPU", 0) >= self.num_gpus

    def per_node(self, node: dict[str, float]) -> int:
        """How many such tasks ``node`` runs at once."""
        counts = [math.floor(node.get("CPU", 0) / self.num_cpus + 1e-9)] if self.num_cpus else []
        if self.num_gpus:
            counts.append(math.floor(node.get("GPU", 0) / self.num_gpus + 1e-9))
        return min(counts) if counts else 0

    def describe(self) -> str:
        gpus = f", {self.num_gpus:g} GPU" if self.num_gpus else ""
        return f"{self.num_cpus:g} CPU{gpus}"


def plan(
    devices: str, per_device: int | None, nodes: list[dict[str, float]], elastic: bool = False
) -> tuple[Slots, Resources]:
    """Slots and per-task resources for ``--devices`` on a cluster whose nodes have ``nodes``.

    ``cpu``: one single-threaded run per CPU (the local default too). ``cuda`` (``auto`` on a
    cluster with GPUs): each task asks for 1/``per_device`` of a GPU and one CPU. A request that
    no node can meet raises ``RayUnfit`` rather than waiting for ever, except on an ``elastic``
    cluster (one named by address) whose nodes have no CPU at all yet (a head that trains nothing,
    before its workers join): there the slots start at 0 and the scheduler waits for nodes."""
    spec = check_syntax(devices)
    if spec.startswith("cuda:"):
        raise DeviceError(f"--devices {spec}: on the Ray backend, use --devices cuda (Ray assigns the GPUs)")
    has_gpus = any(n.get("GPU", 0) > 0 for n in nodes)
    gpu = spec == "cuda" or (spec == "auto" and has_gpus)
    res = Resources(1.0, 1.0 / (per_device or 1)) if gpu else Resources(1.0, 0.0)
    capacity = sum(res.per_node(n) for n in nodes)
    if capacity == 0 and not (elastic and not any(n.get("CPU", 0) for n in nodes)):
        shapes = "; ".join(f"{n.get('CPU', 0):g} CPU, {n.get('GPU', 0):g} GPU" for n in nodes) or "none"
        raise RayUnfit(
            f"no node of the Ray cluster has the {res.describe()} that one run asks for (nodes: {shapes})"
            + (": use --devices cpu, or add GPU nodes" if gpu else "")
        )
    return Slots(("ray:cuda" if gpu else "ray:cpu",), capacity, 1), res
