"""How a scheduler runs: the one options object carried from the CLI to the scheduler.

``rankbias run`` (and ``attach``, for a scheduler the app starts) builds one ``SchedulerOptions``;
a foreground scheduler gets it as is, a background one as command-line arguments (``argv`` and
``parse`` are each other's inverse). What a spec says about a run is not here: that is the run's
``RunConfig``; these options only say where and how the runs are trained.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

IDLE_EXIT_S = 300.0
STALL_S = 300.0


RAY_CLIENT = (
    "--ray-address {address}: Ray Client (ray://) cannot stream a task's events back, which every "
    "rankbias task does; run rankbias on a node of the cluster instead (ssh to the head, then "
    "`rankbias run ... --backend ray --ray-address auto`: in a terminal its scheduler runs in the "
    "background and outlives the SSH session; `rankbias attach` there shows it again)"
)


@dataclass(frozen=True)
class SchedulerOptions:
    """Where and how a scheduler trains runs (the ``rankbias run`` options that concern it)."""

    devices: str = "auto"
    """auto, cpu, cuda (all GPUs) or cuda:0,1."""
    per_device: int | None = None
    """Concurrent runs per device (default: CPU cores for cpu, 1 per GPU)."""
    data_dir: Path | None = None
    """Where data sets are cached (default ~/.cache/rankbias/data)."""
    keep_checkpoints: bool = False
    """Keep the last checkpoint of finished runs."""
    pack_size: int | None = None
    """Most mlp/mlp-bn runs trained as one fused pack (None: the spec's, else automatic; 1: none)."""
    graphs: bool = True
    """Replay CUDA graphs on GPUs (False: the eager loop)."""
    idle_exit_s: float = IDLE_EXIT_S
    """A background scheduler exits after this many seconds with nothing to do (0: never)."""
    backend: str = "local"
    """A name in ``scheduler.backends.BACKENDS``: local (worker processes here) or ray (Ray tasks)."""
    ray_address: str | None = None
    """The Ray cluster (auto, host:6379); None: a new private Ray instance on this machine."""
    stall_s: float = STALL_S
    """A worker not heard from for this many seconds (longer if its runs' steps are slow) is
    stalled: killed, and its runs resume from their checkpoints (0: never; ``scheduler.watchdog``).
    A live worker sends a heartbeat every second."""
    checkpoint_dir: str | None = None
    """Ray backend: where nodes write checkpoints themselves (an absolute path every node reaches, or
    a URI through pyarrow.fs: ``checkpoint_dir.parse``); None: they come back through the driver."""

    def argv(self) -> list[str]:
        """These options as arguments of ``python -m rankbias_tui.scheduler.daemon``."""
        args = ["--devices", self.devices, "--idle-exit", str(self.idle_exit_s)]
        if self.per_device is not None:
            args += ["--per-device", str(self.per_device)]
        if self.pack_size is not None:
            args += ["--pack-size", str(self.pack_size)]
        if not self.graphs:
            args.append("--no-graphs")
        if self.data_dir is not None:
            args += ["--data-dir", str(Path(self.data_dir).resolve())]
        if self.keep_checkpoints:
            args.append("--keep-checkpoints")
        if self.backend != "local":
            args += ["--backend", self.backend]
        if self.ray_address is not None:
            args += ["--ray-address", self.ray_address]
        if self.stall_s != STALL_S:
            args += ["--stall-after", str(self.stall_s)]
        if self.checkpoint_dir is not None:
            args += ["--checkpoint-dir", self.checkpoint_dir]
        return args

    @classmethod
    def parse(cls, args: argparse.Namespace) -> SchedulerOptions:
        """The options ``argv`` wrote, from a parser that ``add_arguments`` set up."""
        return cls(
            args.devices,
            args.per_device,
            args.data_dir,
            args.keep_checkpoints,
            args.pack_size,
            not args.no_graphs,
            args.idle_exit,
            args.backend,
            args.ray_address,
            args.stall_after,
            args.checkpoint_dir,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments ``SchedulerOptions.argv`` writes."""
    parser.add_argument("--devices", default="auto", help="auto, cpu, cuda or cuda:0,1")
    parser.add_argument("--per-device", type=int, default=None, help="concurrent runs per device")
    parser.add_argument("--data-dir", type=Path, default=None, help="data set cache")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep finished runs' checkpoints")
    parser.add_argument("--pack-size", type=int, default=None, help="most runs per fused pack")
    parser.add_argument("--no-graphs", action="store_true", help="eager loop on GPUs")
    parser.add_argument("--idle-exit", type=float, default=IDLE_EXIT_S, help="seconds idle before exiting")
    # no choices here: ``backends.prepare`` checks the name against its table (exit status 2 too)
    parser.add_argument("--backend", default="local", help="where runs train (scheduler.backends)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster (default: a private instance)")
    parser.add_argument(
        "--stall-after", type=float, default=STALL_S, help="seconds silent before a worker is killed"
    )
    parser.add_argument("--checkpoint-dir", default=None, help="where Ray nodes write checkpoints")
