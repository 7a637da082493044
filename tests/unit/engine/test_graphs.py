"""engine.graphs on the CPU: the graphed step's logic with capture off (same trajectory as eager),
the warm-up before capture, the capture's device and streams (on a fake ``torch.cuda``), the
rollback after a failed warm-up, and out-of-memory errors from a capture.

On a GPU the same ``_body`` is captured once and replayed (tests/gpu); here it runs eagerly, which
checks the device-side batch indexing, the SGD update with a tensor learning rate, the momentum
buffers kept in the optimiser's state, and the on-device loss/accuracy sums.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rankbias_tui.engine import graphs
from rankbias_tui.engine import loop as loop_mod
from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.graphs import (
    WARMUP_STEPS,
    GraphedStep,
    StepGraph,
    capture_step,
    sgd_foreach_,
    warm_up,
)
from rankbias_tui.engine.loop import Loop, Member
from rankbias_tui.engine.pack import Pack
from rankbias_tui.engine.train import EagerStep, Run, graphed_or_eager
from rankbias_tui.protocol import Event, Metrics
from rankbias_tui.spec import RunConfig

# The milestone is inside the run (epoch 2 of 2 trains at the decayed lr): milestone 1 would decay
# before the first epoch, and a step that never took a new lr would pass.
CFG = RunConfig(
    model="mlp-bn",
    depth=2,
    width=24,
    dataset="digits",
    epochs=2,
    batch_size=16,
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-3,
    lr_milestones=(2,),
)
SMALL = CFG.model_copy(update={"width": 8, "batch_size": 480})


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


@pytest.mark.slow  # trains real (tiny) runs
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


@pytest.mark.slow  # trains real (tiny) runs
def test_cpu_runs_are_eager(digits) -> None:
    run = Run(CFG, "cpu", digits)
    step, mode = graphed_or_eager(run, graphs=True)
    assert isinstance(step, EagerStep) and mode == "eager"
    calls = []
    StepGraph(lambda: calls.append(1), [], capture=False)()
    assert calls == [1]


@pytest.mark.slow  # trains real (tiny) runs
def test_bf16_channels_last_conv_net_trains_on_cpu(digits) -> None:
    cfg = RunConfig(model="vgg16", dataset="digits", train_size=32, batch_size=16, epochs=1, precision="bf16")
    run = Run(cfg, "cpu", load_dataset("digits", train_size=32))
    assert run.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    events: list[Event] = []
    assert Loop(run, GraphedStep(run, capture=False), events.append).epoch()
    assert isinstance(events[-1], Metrics) and math.isfinite(events[-1].values["loss"])
    assert math.isfinite(run.evaluate(run.data.x_test[:64], run.data.y_test[:64])[0])  # eval in bf16 too


def snapshot(state: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().clone() for t in state]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


# ----- warm-up past the batch table ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("batch_size", "train_size", "drop_last"), [(480, None, True), (720, None, False), (16, 20, False)]
)
def test_warm_up_with_fewer_steps_than_warm_up_steps(
    digits, batch_size: int, train_size: int | None, drop_last: bool
) -> None:
    """digits at B = 480 (drop_last) or 720 has 2 steps per epoch, a train_size of 20 at B = 16 one
    full batch and a tail: the batch table has fewer rows than the warm-up takes steps."""
    cfg = SMALL.model_copy(
        update={"batch_size": batch_size, "train_size": train_size, "drop_last": drop_last}
    )
    data = load_dataset("digits", train_size=train_size) if train_size else digits
    run = Run(cfg, "cpu", data)
    assert run.steps_per_epoch < WARMUP_STEPS
    step = GraphedStep(run, capture=False)
    state = step.replay.state
    before = snapshot(state)
    with pytest.raises(IndexError):  # what the warm-up did before: steps one after another
        for _ in range(WARMUP_STEPS):
            step.replay.body()
    graphs._restore(state, before)
    for replay in (step.replay, step.replay_tail):
        if replay is not None:
            warm_up(replay.body, state, before)
            assert_same(snapshot(state), before)  # every warm-up step undone
    eager_run = Run(cfg, "cpu", data)
    eager, graphed = Loop(eager_run, EagerStep(eager_run), lambda e: None), Loop(run, step, lambda e: None)
    for _ in range(cfg.epochs):
        assert eager.epoch() and graphed.epoch()
    for (name, a), b in zip(
        eager_run.model.state_dict().items(), run.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)


def test_pack_warm_up_with_one_step_per_epoch(digits) -> None:
    cfgs = [SMALL.model_copy(update={"seed": s, "train_size": 24, "batch_size": 16}) for s in range(3)]
    pack = Pack([Member(f"r{i}", c) for i, c in enumerate(cfgs)], "cpu", digits, graphs=False)
    assert pack.steps_per_epoch < WARMUP_STEPS and pack.tail_fn is not None  # 1 full batch, 1 tail
    for fn in (pack.step_fn, pack.tail_fn):
        before = snapshot(fn.state)
        warm_up(fn.body, fn.state, before)
        assert_same(snapshot(fn.state), before)


# ----- out of memory while capturing ---------------------------------------------------------------
def raising(message: str):
    """A stand-in for ``graphs._capture`` that fails as CUDA's ``capture_end`` does."""

    def capture(*args: object) -> None:
        raise RuntimeError(message)

    return capture


@pytest.mark.parametrize(
    ("message", "oom"),
    [("CUDA error: out of memory", True), ("CUDA out of memory. Tried to allocate 2.00 GiB", True),
     ("cudaErrorMemoryAllocation", True), ("operation not permitted when stream is capturing", False)],
)  # fmt: skip
def test_capture_raises_out_of_memory_as_such(
    monkeypatch: pytest.MonkeyPatch, message: str, oom: bool
) -> None:
    monkeypatch.setattr(graphs, "_capture", raising(message))
    state = [torch.zeros(2)]
    with pytest.raises(torch.cuda.OutOfMemoryError if oom else RuntimeError) as info:
        capture_step(lambda: None, state)
    assert isinstance(info.value, torch.cuda.OutOfMemoryError) == oom


def test_pack_splits_on_out_of_memory_in_capture_and_falls_back_otherwise(
    monkeypatch: pytest.MonkeyPatch, digits
) -> None:
    """The pack's own choice between split-and-retry (the error reaches the worker) and eager."""
    members = [Member(f"r{i}", SMALL.model_copy(update={"seed": i, "batch_size": 64})) for i in range(2)]
    pack = Pack(members, "cpu", digits, graphs=False)
    monkeypatch.setattr(graphs, "_capture", raising("CUDA error: out of memory"))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        pack._step_fns(capture=True)
    monkeypatch.setattr(graphs, "_capture", raising("capture failed"))
    step, _ = pack._step_fns(capture=True)
    assert step.graph is None and "capture failed" in pack.mode()


# ----- the capture's device and streams, on a fake torch.cuda -----------------------------------------
class FakeStream:
    def __init__(self, name: str, device: str, log: list):
        self.name, self.device, self.log = name, device, log

    def wait_stream(self, other: FakeStream) -> None:
        self.log.append(("wait", self.name, other.name))


class FakeCuda:
    """Just enough of torch.cuda for ``graphs._capture``, logging what it is asked, and where."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.current_device = "cuda:0"

    @contextlib.contextmanager
    def device(self, dev: torch.device) -> Iterator[None]:
        previous, self.current_device = self.current_device, str(dev)
        yield
        self.current_device = previous

    def current_stream(self, dev: torch.device | None = None) -> FakeStream:
        return FakeStream("current", str(dev) if dev is not None else self.current_device, self.log)

    def Stream(self, device: torch.device | None = None) -> FakeStream:  # noqa: N802 - torch's name
        self.log.append(("new stream", str(device), self.current_device))
        return FakeStream("side", str(device), self.log)

    @contextlib.contextmanager
    def stream(self, s: FakeStream) -> Iterator[None]:
        self.log.append(("on", s.name))
        yield

    def CUDAGraph(self) -> object:  # noqa: N802
        return object()

    @contextlib.contextmanager
    def graph(self, g: object, stream: FakeStream | None = None) -> Iterator[None]:
        self.log.append(("capture", stream.name if stream else None, self.current_device))
        yield


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
    fake = FakeCuda()
    for name in ("device", "current_stream", "Stream", "stream", "CUDAGraph", "graph"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    restore = graphs._restore

    def logged_restore(state, saved) -> None:
        fake.log.append(("restore",))
        restore(state, saved)

    monkeypatch.setattr(graphs, "_restore", logged_restore)
    return fake


def test_capture_on_the_tensors_device_not_the_current_one(fake_cuda: FakeCuda) -> None:
    weight = torch.zeros(3)

    def body() -> None:
        weight.add_(1.0)

    graphs._capture(body, [weight], torch.device("cuda", 1))
    log = fake_cuda.log
    assert ("new stream", "cuda:1", "cuda:1") in log  # made on cuda:1, inside its device context
    assert ("capture", "side", "cuda:1") in log  # an explicit stream of cuda:1, not torch's default
    assert log.count(("restore",)) == WARMUP_STEPS + 1
    assert torch.equal(weight, torch.zeros(3))  # warm-up and capture leave nothing behind


def test_failed_warm_up_waits_for_the_side_stream_before_rolling_back(fake_cuda: FakeCuda) -> None:
    weight, calls = torch.zeros(3), []

    def body() -> None:
        calls.append(1)
        weight.add_(1.0)
        if len(calls) == 2:
            raise RuntimeError("an op that cannot be captured")

    with pytest.raises(RuntimeError, match="cannot be captured"):
        StepGraph(body, [weight], capture=True)
    log = fake_cuda.log
    last_wait = max(i for i, e in enumerate(log) if e == ("wait", "current", "side"))
    assert log[-1] == ("restore",) and last_wait == len(log) - 2
    assert torch.equal(weight, torch.zeros(3))
