"""The options the ``rankbias`` commands share, declared once (Typer's ``Annotated`` form), and the
one builder of ``SchedulerOptions`` from them.

Every command that can start a scheduler (``run``; ``attach``, for a scheduler the app starts)
takes the same scheduler options with the same defaults (``SchedulerOptions``'s own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..scheduler import RAY_CLIENT, BackendError, SchedulerOptions, describe_backends, parse_checkpoint_dir
from .common import fail

DEFAULT = SchedulerOptions()
DEFAULT_STORE = Path("runs")
DEFAULT_SPEC = Path("experiments.toml")

StoreDir = Annotated[Path, typer.Option("--store", help="Results directory (holds rankbias.sqlite).")]
SpecFile = Annotated[Path, typer.Argument(help="The sweep spec (TOML).", show_default=True)]
Format = Annotated[str, typer.Option("--format", "-f", help="table (aligned columns), csv or json.")]
SweepFilter = Annotated[Optional[str], typer.Option("--sweep", "-s", help="Only runs of this sweep.")]

# ----- where and how a scheduler trains ---------------------------------------------------------
Devices = Annotated[str, typer.Option("--devices", help="auto, cpu, cuda (all GPUs) or cuda:0,1.")]
PerDevice = Annotated[
    Optional[int],
    typer.Option(
        "--per-device", min=1, help="Concurrent runs per device (default: CPU cores for cpu, 1 per GPU)."
    ),
]
DataDir = Annotated[
    Optional[Path],
    typer.Option(
        "--data-dir",
        envvar="RANKBIAS_DATA_DIR",
        help="Where data sets are cached/downloaded (default ~/.cache/rankbias/data).",
    ),
]
KeepCheckpoints = Annotated[
    bool, typer.Option("--keep-checkpoints", help="Keep the last checkpoint of finished runs.")
]
PackSize = Annotated[
    Optional[int],
    typer.Option(
        "--pack-size",
        min=1,
        help="Most mlp/mlp-bn runs trained together as one fused pack (default: the spec's pack_size, "
        "else sized from device memory; 1 turns packing off). Results are the same either way.",
    ),
]
NoGraphs = Annotated[
    bool,
    typer.Option("--no-graphs", help="On GPUs, train with the eager loop instead of replaying CUDA graphs."),
]
StallAfter = Annotated[
    float,
    typer.Option(
        "--stall-after",
        min=0,
        help="Seconds a worker may go unheard (it sends a heartbeat every second) before it counts as "
        "stalled: it is killed and its runs resume from their last checkpoint (longer for runs whose "
        "steps are slow; 0: never).",
    ),
]
Backend = Annotated[str, typer.Option("--backend", help=f"{describe_backends()}.")]
RayAddress = Annotated[
    Optional[str],
    typer.Option(
        "--ray-address",
        help="With --backend ray: auto (the cluster this machine is a node of) or HOST:6379 (default: "
        "a new private Ray instance on this machine, on 127.0.0.1 only). Not ray:// (Ray Client).",
    ),
]
CheckpointDir = Annotated[
    Optional[str],
    typer.Option(
        "--checkpoint-dir",
        help="With --backend ray: where nodes write checkpoints themselves instead of sending them "
        "through this machine: a shared directory every node reaches at the same path, or a URI "
        "through pyarrow.fs (s3://, gs://, hdfs://, file://; pip install pyarrow). Default: each "
        "checkpoint comes back here, into the store.",
    ),
]


def scheduler_options(
    *,
    devices: str,
    per_device: int | None,
    data_dir: Path | None,
    keep_checkpoints: bool,
    pack_size: int | None,
    no_graphs: bool,
    backend: str,
    ray_address: str | None,
    stall_after: float = DEFAULT.stall_s,
    checkpoint_dir: str | None = DEFAULT.checkpoint_dir,
) -> SchedulerOptions:
    """The one place the command-line options become ``SchedulerOptions`` (exit 2 for a Ray Client
    address, ``scheduler.options.RAY_CLIENT``, and for a ``--checkpoint-dir`` that cannot be used)."""
    if ray_address is not None and ray_address.startswith("ray://"):
        raise fail(RAY_CLIENT.format(address=ray_address), 2)
    if checkpoint_dir is not None:
        if backend != "ray":
            raise fail("--checkpoint-dir is for --backend ray: the local backend writes into the store", 2)
        try:
            checkpoint_dir = parse_checkpoint_dir(checkpoint_dir).uri
        except BackendError as e:
            raise fail(str(e), 2) from None
    return SchedulerOptions(
        devices=devices,
        per_device=per_device,
        data_dir=data_dir,
        keep_checkpoints=keep_checkpoints,
        pack_size=pack_size,
        graphs=not no_graphs,
        backend=backend,
        ray_address=ray_address,
        stall_s=stall_after,
        checkpoint_dir=checkpoint_dir,
    )
