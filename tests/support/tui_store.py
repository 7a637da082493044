"""A recorded store for the terminal UI tests: two sweeps of small digits MLPs in every state.

Written through ``Store`` with deterministic numbers and timestamps (no torch, no training), so
Pilot and snapshot tests see the same screens on every machine. ``python
tests/support/tui_store.py DIR`` writes it to DIR (for screenshots and trying the UI).
"""

from __future__ import annotations

import asyncio
import functools
import math
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path

import numpy as np

from rankbias_tui.spec import load_spec
from rankbias_tui.store import SpectrumRow, Store
from rankbias_tui.sweep import expand

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
NOW = T0 + 4000.0
SPEC_TOML = """\
default_sweep = "quick"

[defaults]
model = "mlp-bn"
depth = 3
width = 32
dataset = "digits"
epochs = 20
lr = 0.1
lr_milestones = []
measure_every = 5

[sweeps.quick]
description = "digits MLP-BN 3x32: batch size x weight decay"
grid.batch_size = [8, 16, 32]
grid.weight_decay = [0.0, 0.01]

[sweeps.lr-wd]
description = "same lr*wd product, two ways"
batch_size = 16
grid.lr = [0.1, 0.2]
grid.weight_decay = [0.01, 0.005]
"""
# A tiny sweep that really trains (a few seconds): for the live and CLI tests.
TINY_SPEC = """\
default_sweep = "tiny"

[sweeps.tiny]
model = "mlp"
depth = 2
width = 16
dataset = "digits"
epochs = 3
lr = 0.1
lr_milestones = []
measure_every = 1
batch_size = 32
grid.weight_decay = [0.0, 0.01]
"""
# status and fraction of the 20 epochs reached, by position in the store
PLAN = [
    ("done", 1.0), ("done", 1.0), ("running", 0.5), ("done", 1.0), ("queued", 0.0), ("failed", 0.25),
    ("done", 1.0), ("cancelled", 0.3), ("done", 1.0), ("queued", 0.0),
]  # fmt: skip
LAYERS = [("fc1", 32, 64), ("fc2", 32, 32), ("fc3", 32, 32)]
ERROR = "RuntimeError: CUDA error: an illegal memory access was encountered\n  File train.py, line 101"


BIG_SWEEPS = """
[sweeps.deep]
description = "depth x width x seed"
batch_size = 32
grid.depth = [2, 3, 4]
grid.width = [16, 32]
grid.epochs = [10, 20]
seeds = [0, 1, 2]
"""


def write_spec(directory: Path, big: bool = False) -> Path:
    path = directory / "experiments.toml"
    path.write_text(SPEC_TOML + (BIG_SWEEPS if big else ""))
    return path


def svals(k: int, decay: float) -> np.ndarray:
    """A descending spectrum of a normalised matrix (sum of squares 1)."""
    s = np.exp(-decay * np.arange(k, dtype=float))
    return s / np.sqrt((s**2).sum())


def make_store(directory: Path, *, runs: int | None = None, big: bool = False) -> Store:
    """Write the fixture store (and its spec, ``experiments.toml``) in ``directory``; return it open.

    ``big``: a third sweep, ``deep`` (36 runs varying depth, width, epochs and seed), as well."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = load_spec(write_spec(directory, big))
    planned = expand(spec, ["quick", "lr-wd", *(["deep"] if big else [])])[:runs]
    store = Store(directory)
    store.add_runs(planned, {"rankbias": "0.1.0", "git_sha": "fixture", "python": "3.11"})
    store.conn.execute("UPDATE runs SET created_at=?", (T0,))
    for i, run in enumerate(planned):
        status, fraction = PLAN[i % len(PLAN)]
        _record(store, run.run_id, run.config, status, fraction, i)
    return store


def _record(store: Store, run_id: str, cfg, status: str, fraction: float, i: int) -> None:  # noqa: ANN001
    steps_per_epoch = 1437 // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    epochs = int(round(fraction * cfg.epochs))
    start = T0 + 100 * i
    with store.transaction():
        if status != "queued":
            store.start_attempt(run_id, "cpu", 1000 + i)
        store.set_progress(
            run_id, epochs * steps_per_epoch, float(epochs), total if status != "queued" else None
        )
        for epoch in range(epochs + 1 if status != "queued" else 0):
            step = epoch * steps_per_epoch
            loss = 2.3 * math.exp(-epoch / (4 + cfg.batch_size / 8)) + 0.02
            acc = 1 - 0.9 * math.exp(-epoch / 3) - 0.03 * (cfg.weight_decay == 0)
            values = {"train_loss": loss, "train_acc": acc, "test_loss": loss * 1.3, "test_acc": acc - 0.04}
            if epoch:
                values |= {"loss": loss * 1.1, "acc": acc - 0.01, "lr": cfg.lr}
            store.add_metrics(run_id, [(step, float(epoch), k, v) for k, v in values.items()])
            if epoch % cfg.measure_every == 0:
                store.add_spectra(_spectra(run_id, cfg, step, epoch))
        if status == "running":
            store.set_status(run_id, "running", started_at=start)
        elif status != "queued":
            store.set_status(
                run_id, status, error=ERROR if status == "failed" else None, started_at=start,
                finished_at=start + 60 + 10 * epochs,
            )  # fmt: skip


def _spectra(run_id: str, cfg, step: int, epoch: int) -> list[SpectrumRow]:  # noqa: ANN001
    rows = []
    strength = cfg.weight_decay * cfg.lr * 400 / cfg.batch_size  # smaller B, larger lr*wd: lower rank
    for index, (name, d_out, d_in) in enumerate(LAYERS):
        k = min(d_out, d_in)
        s = svals(k, 0.05 + strength * epoch * (1 + 0.3 * index))
        bound = (
            math.inf
            if cfg.weight_decay == 0
            else cfg.batch_size * math.log(2 / cfg.rank_eps) / (cfg.lr * cfg.weight_decay)
        )
        rows.append(
            SpectrumRow(
                run_id=run_id, step=step, epoch=float(epoch), layer_index=index, layer=name, d_out=d_out,
                d_in=d_in, m=1, svals=s, rank=int((s > cfg.rank_eps).sum()), rank_eps=cfg.rank_eps,
                stable_rank=float((s**2).sum() / s[0] ** 2), effective_rank=float(k * 0.8),
                spectral_norm=float(s[0] * 3), fro_norm=3.0, bound=bound,
            )
        )  # fmt: skip
    return rows


def pilot_test(fn: Callable[..., Coroutine[None, None, None]]) -> Callable[..., None]:
    """Run an async Pilot test with ``asyncio.run`` (no pytest async plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


class SpawnRecorder:
    """Stands in for ``scheduler.spawn`` in app tests: records the call, starts nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, object]] = []

    def __call__(self, directory: Path, options: object) -> None:
        self.calls.append((directory, options))


def make_app(store_dir: Path, **kwargs):  # noqa: ANN201 - RankbiasApp
    """The app on a fixture store, not polling on its own, with a fixed clock and device probe."""
    from rankbias_tui.tui import create_app

    kwargs.setdefault("spawn", SpawnRecorder())
    return create_app(
        store_dir, Path(store_dir) / "experiments.toml", live=False, clock=lambda: NOW,
        probe=lambda device, pci_bus_id=None: (1.5, None, None), **kwargs,
    )  # fmt: skip


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "runs-fixture")
    make_store(target).close()
    print(f"wrote {target}/rankbias.sqlite and {target}/experiments.toml")
