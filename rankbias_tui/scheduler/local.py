"""The local backend: each run, or fused pack, is a worker process spawned on this machine.

Owns: ``prepare`` (the backend for ``--backend local``: slots from ``--devices`` and
``--per-device``, ``devices.plan_slots``) and ``ProcessLauncher``, the ``launcher.Launcher`` that
starts the worker processes (``start_run``, ``start_pack``: spawned, each with its own pipe, and
for a pack a control pipe that carries ``protocol.Cancel``); a worker here is judged by the watchdog
from the moment it is spawned (``hosts.Watch``: a remote task waiting for a node is not). Does not own what the scheduler does
with a worker's events (``scheduler.hosts``) nor the loop (``scheduler.service``). Imports no
torch: the engine is imported in the child process only.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

from .. import checkpoints
from ..sweep import PlannedRun
from .devices import Backend, plan_slots
from .hosts import Host, Watch
from .launcher import Launch
from .options import SchedulerOptions


def prepare(options: SchedulerOptions, connect: bool = True) -> Backend:
    """Worker processes on this machine, on the devices ``options`` name (DeviceError if none
    fits); ``connect`` does not apply (nothing to connect to)."""
    slots = plan_slots(options.devices, options.per_device)
    where = f"{', '.join(slots.devices)} ({slots.per_device} at a time per device)"
    return Backend(slots, ProcessLauncher(), where)


class ProcessLauncher:
    """Starts worker processes on this machine (``ray_backend.RayLauncher``, the other launcher,
    starts the same workers in Ray tasks)."""

    def __init__(self) -> None:
        self.ctx = mp.get_context("spawn")  # CUDA-safe, and no state leaks from this process

    def start_run(self, run: PlannedRun, resume: int | None, device: str, launch: Launch) -> Host:
        return start_run(self.ctx, run, resume, device, launch)

    def start_pack(
        self, runs: list[PlannedRun], resumes: list[int | None], device: str, launch: Launch
    ) -> Host:
        return start_pack(self.ctx, runs, resumes, device, launch)


def start_run(ctx: Any, run: PlannedRun, resume: int | None, device: str, launch: Launch) -> Host:
    """Start the process training ``run`` alone (``ctx``: a multiprocessing spawn context)."""
    from ..engine.worker import worker_main  # noqa: PLC0415 - imported in the child, not here

    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=worker_main,
        args=(
            child,
            run.run_id,
            run.config.model_dump_json(),
            device,
            _str(launch.data_dir),
            str(checkpoints.run_directory(launch.checkpoint_root, run.run_id)),
            resume,
            launch.threads,
            launch.graphs,
            launch.acknowledged(run.run_id) if resume is not None else {},
        ),
        name=f"rankbias-{run.run_id}",
        daemon=True,
    )
    proc.start()
    child.close()
    return Host(proc, parent, device, watch=Watch(heard=time.monotonic()))


def start_pack(
    ctx: Any, runs: list[PlannedRun], resumes: list[int | None], device: str, launch: Launch
) -> Host:
    """Start one process training ``runs`` as a fused pack."""
    from ..engine.worker import pack_worker_main  # noqa: PLC0415 - imported in the child, not here

    members = [
        (
            r.run_id,
            r.config.model_dump_json(),
            str(checkpoints.run_directory(launch.checkpoint_root, r.run_id)),
            resume,
            launch.acknowledged(r.run_id) if resume is not None else {},
        )
        for r, resume in zip(runs, resumes, strict=True)
    ]
    parent, child = ctx.Pipe(duplex=False)
    control_in, control_out = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=pack_worker_main,
        args=(child, control_in, members, device, _str(launch.data_dir), launch.threads, launch.graphs),
        name=f"rankbias-pack-{runs[0].run_id}",
        daemon=True,
    )
    proc.start()
    child.close()
    control_in.close()
    return Host(
        proc, parent, device, control=control_out, size=len(runs), watch=Watch(heard=time.monotonic())
    )


def _str(path: Path | None) -> str | None:
    return str(path) if path else None
