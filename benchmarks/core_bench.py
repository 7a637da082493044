"""This engine's training loop against a plain PyTorch loop, in one process.

Trains the same configuration (default: MLP-BN-10-100 on CIFAR-shaped synthetic data, B = 32)
1. with a plain loop: DataLoader over a TensorDataset with shuffling, ``loss.item()`` every step;
2. with ``engine.train.Run``: data on the device, batches drawn by index, no host sync in the loop;
and prints steps/s for both and their ratio, then the spectral measurement's cost as a share of
training time at the default cadence (every 10 epochs of CIFAR-10, 50,000 examples).

    python benchmarks/core_bench.py [--device cpu|cuda] [--batch-size 32] [--steps 600]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.loop import Loop
from rankbias_tui.engine.models import build_model
from rankbias_tui.engine.train import EagerStep, Run
from rankbias_tui.spec import RunConfig

CIFAR_TRAIN = 50_000


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_loop(cfg: RunConfig, data, device: str, steps: int) -> float:
    """The loop most papers' code uses; returns steps/s."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.in_shape, data.n_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    ds = TensorDataset(data.x_train.cpu(), data.y_train.cpu())
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    done, losses = 0, []
    sync(device)
    start = time.perf_counter()
    while done < steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())  # host sync every step
            done += 1
            if done == steps:
                break
    sync(device)
    return steps / (time.perf_counter() - start)


def engine_loop(cfg: RunConfig, data, device: str, steps: int) -> tuple[float, Run]:
    """The eager epoch loop for whole epochs covering at least ``steps``; returns steps/s."""
    run = Run(cfg, device, data)
    loop = Loop(run, EagerStep(run), lambda event: None)
    epochs = max(1, -(-steps // run.steps_per_epoch))
    sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        loop.epoch()
    sync(device)
    return epochs * run.steps_per_epoch / (time.perf_counter() - start), run


def measure_seconds(run: Run, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run.measure()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the scheduler gives each run 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = RunConfig(dataset="synthetic", batch_size=args.batch_size, lr=0.05, weight_decay=5e-4)
    data = load_dataset("synthetic", device=args.device)
    print(
        f"MLP-BN-10-100, synthetic 3x32x32, B={cfg.batch_size}, device={args.device}, threads={args.threads}"
    )
    plain_loop(cfg, data, args.device, 50)  # warm-up both paths
    engine_loop(cfg, data, args.device, 50)
    plain = plain_loop(cfg, data, args.device, args.steps)
    engine, run = engine_loop(cfg, data, args.device, args.steps)
    print(f"plain loop (DataLoader, .item() every step): {plain:9.1f} steps/s")
    print(f"rankbias engine (data on device, no sync):   {engine:9.1f} steps/s")
    print(f"ratio engine / plain:                        {engine / plain:9.2f}x")
    seconds = measure_seconds(run)
    epoch_s = (CIFAR_TRAIN // cfg.batch_size) / engine
    share = seconds / (seconds + cfg.measure_every * epoch_s)
    print(f"one spectral measurement ({len(run.layers)} layers): {seconds * 1e3:.1f} ms")
    print(
        f"measurement share of run time at the default cadence (every {cfg.measure_every} epochs of "
        f"CIFAR-10, {CIFAR_TRAIN // cfg.batch_size} steps/epoch): {100 * share:.3f}%"
    )


if __name__ == "__main__":
    main()
