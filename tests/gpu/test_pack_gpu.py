"""Fused packs on a GPU: members under one captured graph follow their single runs; a member frozen
or cancelled mid-epoch stays still while the others go on; training subsets; out of memory gives
the split-and-retry path, not the eager fallback; spectra take the GPU route (skipped without
CUDA; the CPU twins run the same pack code with capture off)."""

from __future__ import annotations

import signal
from multiprocessing import Pipe
from pathlib import Path

import pytest
import torch

from rankbias_tui.engine import loop as loop_mod
from rankbias_tui.engine import worker
from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.loop import Loop, Member
from rankbias_tui.engine.pack import Pack
from rankbias_tui.protocol import (
    Event,
    Finished,
    GpuMemory,
    Metrics,
    OutOfMemory,
    Spectra,
    Started,
    WorkerEnded,
)
from rankbias_tui.spec import RunConfig
from tests.support.engine_runs import captures, needs_cuda, on, running_losses, train_to_end

BOTH, GPU = ("cpu", "cuda:0"), ("cuda:0",)
# The milestone between the two epochs: the second trains at 0.2 lr, which the graph must pick up.
MLP = RunConfig(
    model="mlp-bn",
    depth=3,
    width=32,
    dataset="digits",
    epochs=2,
    batch_size=16,
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-3,
    lr_milestones=(2,),
    measure_every=1,
)


def pack_of(cfgs: list[RunConfig], device: str) -> Pack:
    data = load_dataset("digits", device=device)
    pack = Pack([Member(f"r{i}", c) for i, c in enumerate(cfgs)], device, data, graphs=captures(device))
    assert (pack.step_fn.graph is not None) == captures(device), pack.mode()
    return pack


def run_pack(pack: Pack, poll_cancel=list) -> tuple[dict[str, str], dict[str, list[Event]]]:
    events: dict[str, list[Event]] = {}
    status = Loop(pack, pack, lambda e: events.setdefault(e.run_id, []).append(e), poll_cancel).run(
        -1, pack.mode()
    )
    return status, events


def alone(cfg: RunConfig, device: str) -> list[Event]:
    data = load_dataset("digits", device=device, train_size=cfg.train_size, subset_seed=cfg.seed)
    return train_to_end(cfg, device, data)[1]


def evals(events: list[Event]) -> list[dict[str, float]]:
    return [e.values for e in events if isinstance(e, Metrics) and "test_acc" in e.values]


def ranks(events: list[Event]) -> list[list[int]]:
    return [[r.rank for r in e.rows] for e in events if isinstance(e, Spectra)]


def assert_same_run(pack_events: list[Event], single: list[Event], rel: float = 1e-3) -> None:
    assert running_losses(pack_events) == pytest.approx(running_losses(single), rel=rel)
    for got, want in zip(evals(pack_events), evals(single), strict=True):
        assert got == pytest.approx(want, rel=rel)
    assert ranks(pack_events) == ranks(single)


@pytest.mark.parametrize(("device", "train_size"), on(BOTH, (300,)) + on(GPU, (None,)))
def test_pack_members_follow_their_single_runs(device: str, train_size: int | None) -> None:
    """Each member on its own seeded training subset, and shared data (on the CPU that one is
    tests/unit/engine/test_pack.py)."""
    hyper = ((0, 0.05), (1, 0.1), (2, 0.02))
    cfgs = [MLP.model_copy(update=dict(seed=s, lr=lr, train_size=train_size)) for s, lr in hyper]
    status, events = run_pack(pack_of(cfgs, device))
    assert set(status.values()) == {"done"}
    assert isinstance(events["r0"][0], Started) and events["r0"][0].mode.startswith("pack of 3")
    for i, cfg in enumerate(cfgs):
        assert_same_run(events[f"r{i}"], alone(cfg, device))


def test_frozen_and_cancelled_members_mid_epoch(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging every step: r1 diverges (frozen) at its first log, r2 is cancelled at the fourth;
    both stay still under the graph while r0 trains on as its single run does."""
    monkeypatch.setattr(loop_mod, "LOG_INTERVAL_S", 0.0)  # every step is a log point
    cfgs = [MLP.model_copy(update=dict(seed=i, train_size=160)) for i in range(3)]
    cfgs[1] = cfgs[1].model_copy(update={"lr": 1e12})
    pack = pack_of(cfgs, device)
    polls = iter([[], [], [], ["r2"]])
    status, events = run_pack(pack, poll_cancel=lambda: next(polls, []))
    assert status == {"r0": "done", "r1": "diverged", "r2": "cancelled"}
    assert events["r2"][-1] == Finished("r2", "cancelled", "cancelled by request")
    assert max(e.step for e in events["r2"] if isinstance(e, Metrics)) == 4  # mid-epoch
    for k in (1, 2):  # frozen rows: zero weights, zero learning rate, still zero after the graph ran on
        assert pack.model.flat[k].abs().sum().item() == 0 and pack.model.neg_lr[k].item() == 0
    single = alone(cfgs[0], device)
    assert running_losses(events["r0"])[-1] == pytest.approx(running_losses(single)[-1], rel=1e-3)
    assert evals(events["r0"])[-1] == pytest.approx(evals(single)[-1], rel=1e-3)


@needs_cuda
def test_out_of_memory_in_a_pack_reaches_the_scheduler(tmp_path: Path) -> None:
    """With the process held to a sliver of the GPU, a big pack fails with ``OutOfMemory`` (the
    scheduler halves the pack and retries) rather than training eagerly; the context survives and
    a small pack then trains under the same limit."""
    torch.cuda.empty_cache()
    sigint, threads = signal.getsignal(signal.SIGINT), torch.get_num_threads()  # the worker sets both
    total = torch.cuda.get_device_properties(0).total_memory
    limit = torch.cuda.memory_reserved(0) + (512 << 20)
    torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), 0)
    try:
        big = MLP.model_copy(update={"width": 2048, "depth": 4, "epochs": 1})
        members = [
            (f"r{i}", big.model_copy(update={"seed": i}).model_dump_json(), str(tmp_path / f"r{i}"), None, {})
            for i in range(32)
        ]
        parent, child = Pipe(duplex=False)
        control, _ = Pipe(duplex=False)
        worker.pack_worker_main(child, control, members, "cuda:0", None, 1)
        sent = []
        while parent.poll():
            sent.append(parent.recv())
        assert any(isinstance(e, OutOfMemory) for e in sent), sent[-1:]
        measured = [e.free for e in sent if isinstance(e, GpuMemory)]  # the Ray backend sizes packs by it
        assert len(measured) == 1 and 0 < measured[0] <= total
        assert isinstance(sent[-1], WorkerEnded) and sent[-1].status == "failed"
        assert "out of memory" in (sent[-1].error or "")
        torch.cuda.empty_cache()
        status, _ = run_pack(
            pack_of([MLP.model_copy(update={"seed": i, "epochs": 1}) for i in range(2)], "cuda:0")
        )
        assert set(status.values()) == {"done"}
    finally:
        signal.signal(signal.SIGINT, sigint)
        torch.set_num_threads(threads)
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()


@needs_cuda
def test_pack_spectra_take_the_gpu_route_and_match_the_cpu() -> None:
    pack = pack_of([MLP.model_copy(update={"seed": i}) for i in range(4)], "cuda:0")
    rows = pack.measure()
    for k, member_rows in rows.items():
        assert member_rows is not None
        for row in member_rows:
            w = pack.model.weight(row.layer)[k].detach().cpu().double()
            s = torch.linalg.svdvals(w / torch.linalg.matrix_norm(w))
            got = torch.from_numpy(row.svals.copy())
            torch.testing.assert_close(got, s, rtol=1e-8, atol=1e-10)
