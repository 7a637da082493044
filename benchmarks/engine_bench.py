"""Fast engine benchmark: plain loop vs standard engine vs CUDA graphs vs fused packs, one process.

Trains MLP-BN-10-100 on CIFAR-shaped synthetic data (3x32x32, 10 classes; SGD lr 0.05, momentum
0.9, wd 5e-4, as bench/README.md; fp32 with TF32 off, as a worker trains fp32 runs:
``engine.train.set_precision``) and prints, as a ratio to the plain loop at the same batch size:
  plain     DataLoader over a CPU TensorDataset, shuffling, ``loss.item()`` every step
  engine    ``engine.loop.Loop.epoch`` with ``engine.train.EagerStep``: data on the device, batches
            by index, no host sync
  graphed   the same with ``engine.graphs.GraphedStep``: the whole step replayed as one CUDA graph
            (CUDA only)
  pack K    ``engine.pack.Pack``: K runs as one fused program (graphed on CUDA), model-steps/s
then the spectral measurement's share of a pack's run time at the default cadence, and the
projected wall time of the paper's MLP-BN-10-100 grid (180 runs, 500 epochs of CIFAR-10).

    python benchmarks/engine_bench.py --device cuda        # unattended, a few minutes on a GPU
    python benchmarks/engine_bench.py --device cpu --quick # a couple of minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from rankbias_tui.engine.data import DataSet, load_dataset
from rankbias_tui.engine.graphs import GraphedStep
from rankbias_tui.engine.loop import Loop, Member
from rankbias_tui.engine.models import build_model
from rankbias_tui.engine.pack import Pack
from rankbias_tui.engine.train import EagerStep, Run, set_precision
from rankbias_tui.spec import RunConfig

CIFAR_TRAIN = 50_000
GRID_B = (4, 8, 16, 32, 64, 128)  # the paper's grid: 6 B x 5 lr x 6 wd = 180 runs
GRID_PER_B, GRID_EPOCHS = 30, 500


def config(b: int, seed: int = 0, lr: float = 0.05) -> RunConfig:
    return RunConfig(dataset="synthetic", batch_size=b, lr=lr, momentum=0.9, weight_decay=5e-4, seed=seed)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(step: Callable[[], int], device: str, budget: float, warm: int = 3) -> float:
    """Units (steps, or model-steps) per second of ``step`` (returns units done) over ~budget s."""
    for _ in range(warm):
        step()
    sync(device)
    done, start = 0, time.perf_counter()
    while True:
        done += step()
        sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return done / elapsed


def plain_rate(b: int, data: DataSet, device: str, budget: float, cfg: RunConfig | None = None) -> float:
    """The loop most papers' code uses: steps/s of one run of ``cfg`` (default: ``config(b)``)."""
    cfg = cfg or config(b)
    torch.manual_seed(0)
    model = build_model(cfg, data.in_shape, data.n_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    loader = DataLoader(
        TensorDataset(data.x_train.cpu(), data.y_train.cpu()), batch_size=b, shuffle=True, drop_last=True
    )
    batches = iter(loader)

    def step() -> int:
        nonlocal batches
        for _ in range(10):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # host sync every step
        return 10

    return timed(step, device, budget)


def engine_rate(b: int, data: DataSet, device: str, budget: float, graphed: bool) -> float:
    """Whole epochs of the standard (eager) or graphed single-run loop."""
    run = Run(config(b), device, data)
    loop = Loop(run, GraphedStep(run) if graphed else EagerStep(run), lambda event: None)

    def epoch() -> int:
        loop.epoch()
        return run.steps_per_epoch

    return timed(epoch, device, budget, warm=1)


def make_pack(k: int, b: int, data: DataSet, device: str) -> Pack:
    lrs = [0.001, 0.01, 0.05, 0.1]  # members differ as a sweep's runs do
    members = [Member(f"m{i}", config(b, seed=i, lr=lrs[i % len(lrs)])) for i in range(k)]
    return Pack(members, device, data, graphs=device.startswith("cuda"))


def pack_rate(pack: Pack, device: str, budget: float) -> float:
    """Model-steps/s of a pack's step (the epoch loop without its logging)."""
    state = {"i": 0}

    def steps() -> int:
        for _ in range(5):
            if state["i"] % pack.steps_per_epoch == 0:
                pack.begin_epoch()
            pack()
            state["i"] += 1
        return 5 * pack.k

    return timed(steps, device, budget, warm=1)


def measure_share(pack: Pack, pack_steps_per_s: float, measure_every: int = 10) -> tuple[float, float]:
    """Seconds per measurement of all members, and its share of run time at the default cadence
    (every ``measure_every`` epochs of CIFAR-10)."""
    pack.measure()
    seconds = statistics.median(_seconds(pack.measure) for _ in range(3))
    train_s = measure_every * (CIFAR_TRAIN // pack.perm.shape[2]) / pack_steps_per_s
    return seconds, seconds / (seconds + train_s)


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def grid_hours(rate_of_b: Callable[[int], float]) -> float:
    """Wall hours of the paper's grid, one run (or pack) after another, at ``rate_of_b(B)``
    (model-)steps per second."""
    steps = {b: GRID_PER_B * GRID_EPOCHS * (CIFAR_TRAIN // b) for b in GRID_B}
    return sum(steps[b] / rate_of_b(b) for b in GRID_B) / 3600


def interpolate(rates: dict[int, float], k: int) -> float:
    """Model-steps/s at pack size k, log-linear between the measured sizes."""
    sizes = sorted(rates)
    if k <= sizes[0] or len(sizes) == 1:
        return rates[sizes[0]] * min(1.0, k / sizes[0])
    hi = next((s for s in sizes if s >= k), sizes[-1])
    lo = max(s for s in sizes if s <= min(k, hi))
    if hi == lo:
        return rates[hi]
    t = (math.log(k) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return math.exp((1 - t) * math.log(rates[lo]) + t * math.log(rates[hi]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="shorter timings, K in {16, 64} only")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the scheduler gives a worker 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_precision("fp32")  # as a worker sets it for these fp32 runs: no TF32 in matmuls or convolutions
    device, cuda = args.device, args.device.startswith("cuda")
    budget = 1.5 if args.quick else 4.0
    sizes = (16, 64) if args.quick else (16, 64, 256)
    data = load_dataset("synthetic", device=device)
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({args.threads} thread(s))"
    print(f"MLP-BN-10-100, synthetic 3x32x32, SGD momentum 0.9; device {name}; torch {torch.__version__}")
    print(f"{'loop':<34}{'B':>4}{'steps/s':>14}{'x plain':>10}")
    plain, engine, packs = {}, {}, {}
    for b in (8, 32):
        plain[b] = plain_rate(b, data, device, budget)
        engine[b] = engine_rate(b, data, device, budget, graphed=False)
        rows = [("plain loop (DataLoader, .item())", plain[b]), ("standard engine (eager)", engine[b])]
        if cuda:
            rows.append(
                ("graphed engine (one CUDA graph)", engine_rate(b, data, device, budget, graphed=True))
            )
        for label, rate in rows:
            print(f"{label:<34}{b:>4}{rate:>14,.0f}{rate / plain[b]:>9.1f}x", flush=True)
        for k in sizes:
            pack = make_pack(k, b, data, device)
            packs[(k, b)] = rate = pack_rate(pack, device, budget)
            label = f"fused pack K={k} ({pack.mode().split(', ', 1)[1][:8]})"
            print(f"{label:<34}{b:>4}{rate:>14,.0f}{rate / plain[b]:>9.1f}x  model-steps/s", flush=True)
            if k == 16:
                print(f"{'  pack 16 / standard engine':<38}{'':>14}{rate / engine[b]:>9.2f}x", flush=True)
            if k == 64 and b == 32:
                seconds, share = measure_share(pack, rate / k)
            del pack
    print(
        f"spectra of a pack of 64 (640 matrices, one batched call): {seconds * 1e3:.0f} ms per measurement, "
        f"{100 * share:.2f}% of run time at measure_every = 10 epochs of CIFAR-10"
    )
    near = lambda b: 8 if b <= 16 else 32  # noqa: E731 - the measured B closest to a grid B
    fused = grid_hours(lambda b: interpolate({k: packs[(k, near(b))] for k in sizes}, GRID_PER_B))
    print(f"paper's MLP-BN-10-100 grid (180 runs x 500 epochs of CIFAR-10, {GRID_PER_B} runs per pack):")
    print(f"  plain loop, one run at a time: {grid_hours(lambda b: plain[near(b)]):10,.1f} h")
    print(f"  standard engine:               {grid_hours(lambda b: engine[near(b)]):10,.1f} h")
    print(f"  fused packs of {GRID_PER_B}:             {fused:10,.1f} h")


if __name__ == "__main__":
    main()
