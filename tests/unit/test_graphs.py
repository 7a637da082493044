"""The graphed step's logic on the CPU (engine.graphs with capture off): same trajectory as eager.

On a GPU the same ``_body`` is captured once and replayed (tests/gpu); here it runs eagerly, which
checks the device-side batch indexing, the SGD update with a tensor learning rate, the momentum
buffers kept in the optimiser's state, and the on-device loss/accuracy sums.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rankbias_tui.engine import loop as loop_mod
from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.graphs import GraphedStep, StepGraph, sgd_foreach_
from rankbias_tui.engine.loop import Loop
from rankbias_tui.engine.train import EagerStep, Run, graphed_or_eager
from rankbias_tui.protocol import Event, Metrics
from rankbias_tui.spec import RunConfig

pytestmark = pytest.mark.slow  # trains real (tiny) runs

CFG = RunConfig(model="mlp-bn", depth=2, width=24, dataset="digits", epochs=2, batch_size=16, lr=0.05,
                momentum=0.9, weight_decay=5e-3, lr_milestones=(1,))  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def epoch_end_logs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_mod, "LOG_INTERVAL_S", 1e9)


def trained(cfg: RunConfig, data, graphed: bool) -> tuple[Run, list[Event]]:
    run, events = Run(cfg, "cpu", data), []
    loop = Loop(run, GraphedStep(run, capture=False) if graphed else EagerStep(run), events.append)
    for _ in range(cfg.epochs):
        assert loop.epoch()
    return run, events


@pytest.mark.parametrize(
    "cfg", [CFG, CFG.model_copy(update={"momentum": 0.0, "model": "mlp", "loss": "mse"})]
)
def test_graph_step_logic_follows_the_eager_loop(cfg: RunConfig, digits, tmp_path: Path) -> None:
    eager, eager_events = trained(cfg, digits, graphed=False)
    graphed, graphed_events = trained(cfg, digits, graphed=True)
    assert [(type(e), e.step, e.epoch) for e in graphed_events] == [  # type: ignore[union-attr]
        (type(e), e.step, e.epoch)
        for e in eager_events  # type: ignore[union-attr]
    ]
    for a, b in zip(eager_events, graphed_events, strict=True):
        assert isinstance(a, Metrics) and isinstance(b, Metrics)
        assert a.values == pytest.approx(b.values, rel=1e-5)
    for (name, a), b in zip(
        eager.model.state_dict().items(), graphed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    graphed.save(0, tmp_path / "g.pt")  # the optimiser's own format: an eager run resumes from it
    resumed = Run(cfg, "cpu", digits)
    resumed.load(tmp_path / "g.pt")
    assert resumed.step == graphed.step
    if cfg.momentum:
        buf = resumed.opt.state[next(resumed.model.parameters())]["momentum_buffer"]
        assert buf.abs().sum() > 0


def test_sgd_foreach_is_torch_sgd() -> None:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(5, 3, generator=gen), torch.randn(4, generator=gen)]
    ref = [p.clone().requires_grad_() for p in params]
    opt = torch.optim.SGD(ref, lr=0.1, momentum=0.9, weight_decay=0.01)
    bufs = [torch.zeros_like(p) for p in params]
    for _ in range(4):
        grads = [torch.randn(p.shape, generator=gen) for p in params]
        for r, g in zip(ref, grads, strict=True):
            r.grad = g.clone()
        opt.step()
        sgd_foreach_(params, grads, bufs, torch.tensor(-0.1), 0.9, 0.01)
    for p, r in zip(params, ref, strict=True):
        torch.testing.assert_close(p, r.detach(), rtol=1e-6, atol=1e-7)


def test_cpu_runs_are_eager(digits) -> None:
    run = Run(CFG, "cpu", digits)
    step, mode = graphed_or_eager(run, graphs=True)
    assert isinstance(step, EagerStep) and mode == "eager"
    calls = []
    StepGraph(lambda: calls.append(1), [], capture=False)()
    assert calls == [1]


def test_bf16_channels_last_conv_net_trains_on_cpu(digits) -> None:
    cfg = RunConfig(model="vgg16", dataset="digits", train_size=32, batch_size=16, epochs=1, precision="bf16")
    run = Run(cfg, "cpu", load_dataset("digits", train_size=32))
    assert run.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    events: list[Event] = []
    assert Loop(run, GraphedStep(run, capture=False), events.append).epoch()
    assert isinstance(events[-1], Metrics) and math.isfinite(events[-1].values["loss"])
    assert math.isfinite(run.evaluate(run.data.x_test[:64], run.data.y_test[:64])[0])  # eval in bf16 too
