"""Worker process entry point: train one run and stream its events to the scheduler.

Each worker owns one end of a pipe; the scheduler owns the other and is the only process that
writes to the store. Whatever happens inside the run - an exception, CUDA running out of memory, a
missing data set - ends as one ``finished`` event carrying a status and a reason. A worker killed
from outside sends nothing; the scheduler notices the dead process and records that instead.
"""

from __future__ import annotations

import os
import signal
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def worker_main(
    conn: Connection,
    config_json: str,
    device: str,
    data_dir: str | None,
    ckpt_dir: str,
    resume_step: int | None,
    threads: int,
) -> None:
    """Process target (spawn): run to completion, always ending with a ``finished`` event."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scheduler's to handle
    status, error = "failed", None
    try:
        import torch

        from ..spec import RunConfig
        from .data import DatasetUnavailable
        from .train import train

        torch.set_num_threads(threads)
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        cfg = RunConfig.model_validate_json(config_json)

        def emit(kind: str, *payload: Any) -> None:
            conn.send((kind, *payload))

        try:
            status = train(
                cfg, device, emit, data_dir=Path(data_dir) if data_dir else None,
                ckpt_dir=Path(ckpt_dir), resume_step=resume_step,
            )  # fmt: skip
        except torch.cuda.OutOfMemoryError as err:
            error = f"out of memory on {device}: {str(err).splitlines()[0]}"
        except DatasetUnavailable as err:
            error = str(err)
    except Exception as err:  # noqa: BLE001 - every failure must reach the store with its reason
        error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-6)}"
    try:
        conn.send(("finished", status if error is None else "failed", error))
        conn.close()
    except (BrokenPipeError, OSError):
        os._exit(1)
