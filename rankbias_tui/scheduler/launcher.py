"""The plug point for backends: what the scheduler asks of a launcher, and what it hands one.

Owns: ``Launcher`` (the protocol every backend's launcher meets: start one run, or the runs of a
fused pack, on a device slot and hand back the ``hosts.Host`` that trains them) and ``Launch``
(what every worker is started with besides its runs). A new backend is a class with these two
methods plus a row in ``scheduler.backends.BACKENDS``; the scheduler's loop
(``scheduler.service``) never asks which backend it has. Does not own any launcher:
``scheduler.local`` (processes on this machine) and ``scheduler.ray_backend`` (Ray tasks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..sweep import PlannedRun
from .hosts import Host


@dataclass(frozen=True)
class Launch:
    """What every worker process is started with, besides its runs."""

    data_dir: Path | None
    checkpoint_root: Path  # the store's; each run has a directory of its own below it
    threads: int
    graphs: bool
    # run id -> {step: SHA-256} of the checkpoints the store acknowledged (verified before a resume)
    acknowledged: Callable[[str], dict[int, str]] = lambda run_id: {}
    # run id -> {step: path or URI} of those checkpoints that are not under ``checkpoint_root``
    locations: Callable[[str], dict[int, str]] = lambda run_id: {}
    checkpoint_dir: str | None = None  # ``SchedulerOptions.checkpoint_dir``: where new ones go


@runtime_checkable
class Launcher(Protocol):
    """Starts workers for the scheduler. Each call returns at once with the ``Host`` of a worker
    that streams ``protocol`` events down ``Host.conn`` and ends with its process handle
    (``Host.proc``); a pack's host also takes ``protocol.Cancel`` on ``Host.control``."""

    def start_run(self, run: PlannedRun, resume: int | None, device: str, launch: Launch) -> Host:
        """Start training ``run`` alone on ``device`` (a slot of the backend's ``Slots``), from the
        checkpoint of step ``resume`` (None: from the start)."""
        ...

    def start_pack(
        self, runs: list[PlannedRun], resumes: list[int | None], device: str, launch: Launch
    ) -> Host:
        """Start training ``runs`` as one fused pack on ``device``, each from its ``resumes`` step."""
        ...


@runtime_checkable
class Elastic(Protocol):
    """A launcher whose capacity follows a cluster (``ray_backend.RayLauncher``): the scheduler asks
    it every few seconds how many tasks fit now, so joining nodes get work at once and a cluster
    with no node that fits waits (instead of failing its runs)."""

    def capacity(self) -> int:
        """How many tasks the live nodes hold at once now (0: none fits; wait)."""
        ...


@runtime_checkable
class Scalable(Protocol):
    """A launcher whose cluster can grow on demand (``ray_backend.RayLauncher``: Ray's autoscaler):
    told, when it changes, how many tasks the scheduler would run at once if there were room."""

    def want(self, tasks: int) -> None:
        """Ask for room for ``tasks`` tasks in all (0: nothing more is needed)."""
        ...


@runtime_checkable
class RemoteGpus(Protocol):
    """A launcher that places tasks on the GPUs of other machines (``ray_backend.RayLauncher``): the
    scheduler cannot measure their memory, so the launcher says what its tasks measured there."""

    def next_gpu_memory(self) -> tuple[int | None, int]:
        """(bytes free on the GPU the next task goes to, as a task measured them with none of ours
        beside it; None: not known, or no GPU; how many tasks share that GPU)."""
        ...
