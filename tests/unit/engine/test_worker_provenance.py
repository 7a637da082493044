"""The worker process: what it stamps on the events it sends (a real spawned worker, a tiny run)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.worker import worker_main
from rankbias_tui.protocol import Started, WorkerEnded
from rankbias_tui.provenance import provenance
from rankbias_tui.spec import RunConfig

pytestmark = pytest.mark.slow  # spawns a worker that imports torch and trains a tiny run

TINY = RunConfig(model="mlp", depth=2, width=16, dataset="digits", epochs=1, batch_size=256, lr_milestones=())


def test_a_worker_stamps_each_start_with_what_it_runs(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    args = (
        child,
        "0123456789ab",
        TINY.model_dump_json(),
        "cpu",
        None,
        str(tmp_path / "ckpt"),
        None,
        1,
        False,
    )
    proc = ctx.Process(target=worker_main, args=args, daemon=True)
    proc.start()
    child.close()
    events = []
    while not (events and isinstance(events[-1], WorkerEnded)):
        events.append(parent.recv())
    proc.join(30)
    assert events[-1] == WorkerEnded("done", None)
    start = next(e for e in events if isinstance(e, Started))
    here = provenance()
    assert start.provenance == here | {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
        "gpu": None,  # on the CPU
        "data_sha256": load_dataset("digits").digest,  # what it trained on
    }
    assert isinstance(start.provenance["git_dirty"], bool) == bool(here["git_sha"])
