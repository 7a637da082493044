"""Training helpers shared by tests/gpu: the same check on a CUDA device (the step captured as a
CUDA graph) and on the CPU (its twin: the same step code run eagerly, ``capture=False``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from rankbias_tui import checkpoints
from rankbias_tui.engine.data import DataSet
from rankbias_tui.engine.graphs import GraphedStep
from rankbias_tui.engine.loop import Loop
from rankbias_tui.engine.train import EagerStep, Run
from rankbias_tui.protocol import Event, Metrics
from rankbias_tui.spec import RunConfig

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA")
needs_two_gpus = pytest.mark.skipif(not CUDA or torch.cuda.device_count() < 2, reason="needs two GPUs")


def on(devices: tuple[str, ...], *rows: tuple) -> list:
    """Parameters (device, *row) for each device and row: CUDA ones skip without CUDA, CPU twins
    are marked slow and cpu_twin."""
    marks = {"cpu": [pytest.mark.slow, pytest.mark.cpu_twin]}
    return [
        pytest.param(d, *row, marks=marks.get(d, needs_cuda), id="-".join(map(str, (d, *row))))
        for d in devices
        for row in rows
    ]


def captures(device: str) -> bool:
    return device.startswith("cuda")


def graphed_step(run: Run) -> GraphedStep:
    """The graphed step: captured on a GPU, its eager twin on the CPU."""
    return GraphedStep(run, capture=captures(str(run.device)))


def train_epochs(cfg: RunConfig, device: str, data: DataSet, graphed: bool) -> tuple[Run, list[Event], dict]:
    """``cfg.epochs`` epochs of one run with the graphed or the eager step, no evaluation; returns
    the run, its events and its initial state_dict (CPU copies)."""
    run, events = Run(cfg, device, data, "r"), []
    init = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    loop = Loop(run, graphed_step(run) if graphed else EagerStep(run), events.append)
    if graphed and captures(device):
        assert loop.step.replay.graph is not None  # type: ignore[attr-defined]
    for _ in range(cfg.epochs):
        assert loop.epoch()
    return run, events, init


def train_to_end(
    cfg: RunConfig, device: str, data: DataSet, ckpt_dir: Path | None = None, resume_step: int | None = None
) -> tuple[Run, list[Event], str]:
    """``train.train`` with the graphed step on the CPU too: checkpoints, resume and the whole loop."""
    run, events = Run(cfg, device, data, "r", ckpt_dir), []
    resumed = -1
    if ckpt_dir is not None and resume_step is not None:
        run.load(checkpoints.path(ckpt_dir, resume_step))
        resumed = run.step
    status = Loop(run, graphed_step(run), events.append).run(resumed, "test")["r"]
    return run, events, status


def running_losses(events: list[Event]) -> list[float]:
    return [e.values["loss"] for e in events if isinstance(e, Metrics) and "loss" in e.values]


def assert_follows(got: nn.Module, want: nn.Module, init: dict[str, Tensor], tol: float) -> None:
    """``got`` ended where ``want`` did: each floating tensor (weights and BatchNorm statistics)
    within ``tol`` of how far ``want`` moved from ``init``, counters equal. Relative to the
    movement, so a step that trained nothing (a graph replaying nothing) cannot pass."""
    assert_state_follows(got.state_dict(), want.state_dict(), init, tol)


def assert_state_follows(
    got: dict[str, Tensor], want: dict[str, Tensor], init: dict[str, Tensor], tol: float
) -> None:
    """``assert_follows`` on state_dicts (a checkpoint's ``model``, say)."""
    moved_total = 0.0
    for name, w in want.items():
        g, w, w0 = got[name].cpu(), w.cpu(), init[name].cpu()
        if not w.is_floating_point():
            assert torch.equal(g, w), name  # num_batches_tracked
            continue
        moved = (w.double() - w0.double()).norm().item()
        moved_total += moved
        assert (g.double() - w.double()).norm().item() <= tol * moved + 1e-6, name
    assert moved_total > 0


def update_cosine(got: nn.Module, want: nn.Module, init: dict[str, Tensor]) -> float:
    """Cosine between the two runs' whole updates (all parameters as one vector)."""
    a, b = [], []
    for name, p in want.named_parameters():
        a.append((dict(got.named_parameters())[name].detach().cpu().double() - init[name].double()).flatten())
        b.append((p.detach().cpu().double() - init[name].double()).flatten())
    return torch.nn.functional.cosine_similarity(torch.cat(a), torch.cat(b), dim=0).item()
