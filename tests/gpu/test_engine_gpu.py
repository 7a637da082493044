"""The fast engine on a real GPU: captured CUDA graphs and graphed packs (skipped without CUDA).

The CPU tests (tests/unit/test_fused*.py) run the same step logic eagerly; these check that the
captured versions follow the same trajectories, that every model captures, and that spectra of
packs take the GPU route. Run with ``pytest tests/gpu``; each test takes seconds.
"""

from __future__ import annotations

import pytest
import torch

from rankbias_tui.engine import graphs as graphs_mod
from rankbias_tui.engine import pack as pack_mod
from rankbias_tui.engine import train as train_mod
from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.graphs import GraphedRun, graphed_or_eager
from rankbias_tui.engine.pack import Member, Pack, train_pack
from rankbias_tui.engine.train import Run, train
from rankbias_tui.spec import RunConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = "cuda:0"
MLP = RunConfig(model="mlp-bn", depth=3, width=32, dataset="digits", epochs=2, batch_size=16, lr=0.05,
                momentum=0.9, weight_decay=5e-3, lr_milestones=(1,), measure_every=1)  # fmt: skip


@pytest.fixture(autouse=True)
def epoch_end_logs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_mod, "LOG_INTERVAL_S", 1e9)
    monkeypatch.setattr(graphs_mod, "LOG_INTERVAL_S", 1e9)
    monkeypatch.setattr(pack_mod, "LOG_INTERVAL_S", 1e9)


def record(cfg: RunConfig, **kw) -> tuple[str, list[tuple]]:
    events: list[tuple] = []
    return train(cfg, CUDA, lambda *e: events.append(e), **kw), events


def test_graphed_run_follows_the_eager_loop() -> None:
    data = load_dataset("digits", device=CUDA)
    eager, graphed = Run(MLP, CUDA, data), Run(MLP, CUDA, data)
    trainer, mode = graphed_or_eager(graphed, graphs=True)
    assert mode == "graphed" and isinstance(trainer, GraphedRun) and trainer.step.graph is not None
    for _ in range(MLP.epochs):
        assert eager.train_epoch(lambda *e: None) and trainer.train_epoch(lambda *e: None)
    for (name, a), b in zip(
        eager.model.state_dict().items(), graphed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    assert graphed.state.step == eager.state.step


def test_modes_reported_in_started() -> None:
    assert record(MLP)[1][0][1]["mode"] == "graphed"
    assert record(MLP, graphs=False)[1][0][1]["mode"] == "eager (graphs off)"


def test_graphed_pack_member_follows_its_single_run() -> None:
    cfgs = [MLP.model_copy(update=dict(seed=s, lr=lr)) for s, lr in ((0, 0.05), (1, 0.1), (2, 0.02))]
    events: dict[str, list[tuple]] = {}
    members = [Member(f"r{i}", c) for i, c in enumerate(cfgs)]
    status = train_pack(members, CUDA, lambda rid, *e: events.setdefault(rid, []).append(e))
    assert set(status.values()) == {"done"}
    assert events["r0"][0][1]["mode"] == "pack of 3, graphed"
    for i, cfg in enumerate(cfgs):
        _, single = record(cfg)
        a = [e[3] for e in single if e[0] == "metrics" and "test_acc" in e[3]]
        b = [e[3] for e in events[f"r{i}"] if e[0] == "metrics" and "test_acc" in e[3]]
        assert [x["test_loss"] for x in a] == pytest.approx([x["test_loss"] for x in b], rel=1e-3)
        ranks_a = [[r["rank"] for r in e[3]] for e in single if e[0] == "spectra"]
        ranks_b = [[r["rank"] for r in e[3]] for e in events[f"r{i}"] if e[0] == "spectra"]
        assert ranks_a == ranks_b


@pytest.mark.parametrize(
    "model,precision",
    [("resnet18", "fp32"), ("resnet18", "bf16"), ("vgg16", "fp32"), ("vgg16", "bf16"), ("vit", "fp32")],
)
def test_every_model_trains_graphed(model: str, precision: str) -> None:
    cfg = RunConfig(model=model, depth=2, width=64, dataset="synthetic", train_size=256, batch_size=32,
                    epochs=1, precision=precision, lr=0.01)  # fmt: skip
    status, events = record(cfg)
    assert status == "done" and events[0][1]["mode"] == "graphed"
    losses = [e[3]["loss"] for e in events if e[0] == "metrics" and "loss" in e[3]]
    assert losses and all(loss == loss for loss in losses)  # finite


def test_pack_spectra_take_the_gpu_route_and_match_the_cpu() -> None:
    data = load_dataset("digits", device=CUDA)
    pack = Pack([Member(f"r{i}", MLP.model_copy(update={"seed": i})) for i in range(4)], CUDA, data)
    rows = pack.measure()
    for k, member_rows in rows.items():
        assert member_rows is not None
        for row in member_rows:
            w = pack.model.weight(row["layer"])[k].detach().cpu().double()
            s = torch.linalg.svdvals(w / torch.linalg.matrix_norm(w))
            got = torch.frombuffer(bytearray(row["svals"]), dtype=torch.float64)
            torch.testing.assert_close(got, s, rtol=1e-8, atol=1e-10)
