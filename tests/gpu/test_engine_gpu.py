"""The fast engine on a real GPU: captured CUDA graphs and graphed packs (skipped without CUDA).

The CPU tests (tests/unit/test_fused*.py) run the same step logic eagerly; these check that the
captured versions follow the same trajectories, that every model captures, and that spectra of
packs take the GPU route. Run with ``pytest tests/gpu``; each test takes seconds.
"""

from __future__ import annotations

import pytest
import torch

from rankbias_tui.engine import loop as loop_mod
from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.graphs import GraphedStep
from rankbias_tui.engine.loop import Loop, Member
from rankbias_tui.engine.pack import Pack, train_pack
from rankbias_tui.engine.train import EagerStep, Run, graphed_or_eager, train
from rankbias_tui.protocol import Event, Metrics, Spectra, Started
from rankbias_tui.spec import RunConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = "cuda:0"
MLP = RunConfig(model="mlp-bn", depth=3, width=32, dataset="digits", epochs=2, batch_size=16, lr=0.05,
                momentum=0.9, weight_decay=5e-3, lr_milestones=(1,), measure_every=1)  # fmt: skip


@pytest.fixture(autouse=True)
def epoch_end_logs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_mod, "LOG_INTERVAL_S", 1e9)


def record(cfg: RunConfig, **kw) -> tuple[str, list[Event]]:
    events: list[Event] = []
    return train(cfg, CUDA, events.append, run_id="r", **kw), events


def mode(events: list[Event]) -> str:
    assert isinstance(events[0], Started)
    return events[0].mode


def evals(events: list[Event]) -> list[dict[str, float]]:
    return [e.values for e in events if isinstance(e, Metrics) and "test_acc" in e.values]


def ranks(events: list[Event]) -> list[list[int]]:
    return [[r.rank for r in e.rows] for e in events if isinstance(e, Spectra)]


def test_graphed_run_follows_the_eager_loop() -> None:
    data = load_dataset("digits", device=CUDA)
    eager, graphed = Run(MLP, CUDA, data), Run(MLP, CUDA, data)
    step, how = graphed_or_eager(graphed, graphs=True)
    assert how == "graphed" and isinstance(step, GraphedStep) and step.replay.graph is not None
    eager_loop = Loop(eager, EagerStep(eager), lambda e: None)
    graphed_loop = Loop(graphed, step, lambda e: None)
    for _ in range(MLP.epochs):
        assert eager_loop.epoch() and graphed_loop.epoch()
    for (name, a), b in zip(
        eager.model.state_dict().items(), graphed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    assert graphed.step == eager.step


def test_modes_reported_in_started() -> None:
    assert mode(record(MLP)[1]) == "graphed"
    assert mode(record(MLP, graphs=False)[1]) == "eager (graphs off)"


def test_graphed_pack_member_follows_its_single_run() -> None:
    cfgs = [MLP.model_copy(update=dict(seed=s, lr=lr)) for s, lr in ((0, 0.05), (1, 0.1), (2, 0.02))]
    events: dict[str, list[Event]] = {}
    members = [Member(f"r{i}", c) for i, c in enumerate(cfgs)]
    status = train_pack(members, CUDA, lambda e: events.setdefault(e.run_id, []).append(e))
    assert set(status.values()) == {"done"}
    assert mode(events["r0"]) == "pack of 3, graphed"
    for i, cfg in enumerate(cfgs):
        _, single = record(cfg)
        a, b = evals(single), evals(events[f"r{i}"])
        assert [x["test_loss"] for x in a] == pytest.approx([x["test_loss"] for x in b], rel=1e-3)
        assert ranks(single) == ranks(events[f"r{i}"])


@pytest.mark.parametrize(
    "model,precision",
    [("resnet18", "fp32"), ("resnet18", "bf16"), ("vgg16", "fp32"), ("vgg16", "bf16"), ("vit", "fp32")],
)
def test_every_model_trains_graphed(model: str, precision: str) -> None:
    cfg = RunConfig(model=model, depth=2, width=64, dataset="synthetic", train_size=256, batch_size=32,
                    epochs=1, precision=precision, lr=0.01)  # fmt: skip
    status, events = record(cfg)
    assert status == "done" and mode(events) == "graphed"
    losses = [e.values["loss"] for e in events if isinstance(e, Metrics) and "loss" in e.values]
    assert losses and all(loss == loss for loss in losses)  # finite


def test_pack_spectra_take_the_gpu_route_and_match_the_cpu() -> None:
    data = load_dataset("digits", device=CUDA)
    pack = Pack([Member(f"r{i}", MLP.model_copy(update={"seed": i})) for i in range(4)], CUDA, data)
    rows = pack.measure()
    for k, member_rows in rows.items():
        assert member_rows is not None
        for row in member_rows:
            w = pack.model.weight(row.layer)[k].detach().cpu().double()
            s = torch.linalg.svdvals(w / torch.linalg.matrix_norm(w))
            got = torch.from_numpy(row.svals.copy())
            torch.testing.assert_close(got, s, rtol=1e-8, atol=1e-10)
