"""A small results store with realistic shape, built through the public Store API (no training).

``build_store(dir, follows_paper=True, seeds=(0,))`` registers the sweep ``trend`` (MLP-BN 4x100
on digits: batch_size 8/32/128 x lr 0.05/0.1 x weight_decay 0/1e-3/5e-3, 18 runs per seed,
measured at epochs 0, 5 and 10) and fills it with metrics and spectra whose singular values are constructed so that the
final average rank follows the paper: it falls with lr * wd / B, wd = 0 stays at the maximum,
test accuracy barely moves. Seed s lowers the rank of fc2 by s (the average by s/4) and moves
test accuracy by 0.002 * s, so several seeds have a small, known spread. ``follows_paper=False`` mirrors every trend instead (ranks start at half
the maximum and grow with lr * wd / B, wd = 0 stays at half, test accuracy tracks the rank).
A second sweep, ``pending``, holds two queued runs without any data.

Singular values are of W/||W||_F, as the engine stores them: for a target rank r at eps = 1e-3,
r values between 1 and 0.02 and the rest between 4e-4 and 1e-7, divided by their 2-norm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rankbias_tui.spec import parse_spec
from rankbias_tui.store import SpectrumRow, Store
from rankbias_tui.sweep import expand_sweep

LAYERS = (("fc1", 100, 64), ("fc2", 100, 100), ("fc3", 100, 100), ("fc4", 100, 100))
MAX_AVG_RANK = sum(min(d_out, d_in) for _, d_out, d_in in LAYERS) / len(LAYERS)  # 91.0
EPOCHS = (0, 5, 10)
GRID = {"batch_size": [8, 32, 128], "lr": [0.05, 0.1], "weight_decay": [0.0, 1e-3, 5e-3]}
TRAIN_SIZE = 1024
SPEC = {
    "defaults": {"model": "mlp-bn", "depth": 4, "width": 100, "dataset": "digits", "epochs": 10,
                 "lr_milestones": [], "measure_every": 5},
    "sweeps": {
        "trend": {"description": "constructed spectra", "grid": GRID},
        "pending": {"description": "never run", "batch_size": 16, "seeds": [1, 2]},
    },
}  # fmt: skip


def strength(batch_size: int, lr: float, weight_decay: float) -> float:
    """Fraction of the maximal rank that the constructed runs move by: grows with lr * wd / B."""
    if weight_decay == 0:
        return 0.0
    return min(0.45, 0.12 * math.log2(1 + 2e5 * lr * weight_decay / batch_size))


def rank_fraction(config: dict, epoch: float, follows_paper: bool) -> float:
    """The constructed rank / maximal rank of every layer of a run at ``epoch``."""
    s = strength(config["batch_size"], config["lr"], config["weight_decay"])
    start, end = (1.0, 1.0 - s) if follows_paper else (0.5, 0.5 + s)
    return start + (end - start) * epoch / config["epochs"]


def svals_with_rank(k: int, rank: int) -> np.ndarray:
    """A descending vector of k singular values of a unit-Frobenius matrix with rank_1e-3 = rank."""
    above = np.geomspace(1.0, 0.02, rank) if rank else np.empty(0)
    below = np.geomspace(4e-4, 1e-7, k - rank) if k > rank else np.empty(0)
    s = np.concatenate([above, below])
    return s / np.linalg.norm(s)


def _spectra(run_id: str, config: dict, step: int, epoch: float, follows_paper: bool) -> list[SpectrumRow]:
    rows = []
    seed_shift = {"fc2": config["seed"]} if epoch else {}  # the seeds' spread, after initialisation
    eps = config["rank_eps"]
    wd, lr, batch = config["weight_decay"], config["lr"], config["batch_size"]
    for index, (name, d_out, d_in) in enumerate(LAYERS):
        k = min(d_out, d_in)
        s = svals_with_rank(
            k, round(rank_fraction(config, epoch, follows_paper) * k) - seed_shift.get(name, 0)
        )
        p = s[s > 0] / s.sum()
        rows.append(SpectrumRow(
            run_id=run_id, step=step, epoch=epoch, layer_index=index, layer=name, d_out=d_out, d_in=d_in,
            m=1, svals=s, rank=int((s > eps).sum()), rank_eps=eps, stable_rank=float((s**2).sum() / s[0] ** 2),
            effective_rank=math.exp(float(-(p * np.log(p)).sum())), spectral_norm=float(s[0]) * 10.0,
            fro_norm=10.0, bound=batch * math.log(2 / eps) / (lr * wd) if wd else math.inf,
        ))  # fmt: skip
    return rows


def _metrics(config: dict, steps_per_epoch: int, follows_paper: bool, jitter: float) -> list[tuple]:
    rows = []
    for epoch in range(config["epochs"] + 1):
        step = epoch * steps_per_epoch
        frac = rank_fraction(config, epoch, follows_paper)
        # Following the paper, accuracy ignores the rank; mirrored, it tracks it closely.
        acc = (0.95 + jitter if follows_paper else 0.3 + 0.6 * frac) + 0.002 * config["seed"]
        acc *= min(1.0, 0.2 + epoch / 5)
        evals = {"train_loss": 1 - acc, "train_acc": min(1.0, acc + 0.02), "test_loss": 1.1 - acc,
                 "test_acc": acc}  # fmt: skip
        rows += [(step, float(epoch), name, value) for name, value in evals.items()]
        if epoch:
            running = {"loss": 1.2 - acc, "acc": acc - 0.01, "lr": config["lr"]}
            rows += [(step - 1, epoch - 0.01, name, value) for name, value in running.items()]
    return rows


def build_store(directory: Path, follows_paper: bool = True, seeds: Sequence[int] = (0,)) -> Store:
    """Create and fill the store in ``directory``; return it open (the caller closes it)."""
    raw = {**SPEC, "sweeps": {**SPEC["sweeps"], "trend": {**SPEC["sweeps"]["trend"], "seeds": list(seeds)}}}
    spec = parse_spec(raw, Path("fixture.toml"))
    store = Store(directory)
    trend, pending = expand_sweep(spec, "trend"), expand_sweep(spec, "pending")
    store.add_runs(trend, {"rankbias": "fixture"})
    store.add_runs(pending, {"rankbias": "fixture"})
    for i, planned in enumerate(trend):
        config = planned.config.model_dump(mode="json")
        steps_per_epoch = TRAIN_SIZE // config["batch_size"]
        total = steps_per_epoch * config["epochs"]
        store.set_status(planned.run_id, "running", device="cpu")
        jitter = 0.004 * ((i * 7) % 5 - 2)  # deterministic, within +-0.008
        store.add_metrics(planned.run_id, _metrics(config, steps_per_epoch, follows_paper, jitter))
        for epoch in EPOCHS:
            step = epoch * steps_per_epoch
            store.add_spectra(_spectra(planned.run_id, config, step, float(epoch), follows_paper))
        store.set_progress(planned.run_id, total, float(config["epochs"]), total)
        store.set_status(planned.run_id, "done")
    return store
