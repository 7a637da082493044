"""Single runs on a GPU: the captured CUDA graph against the eager loop (skipped without CUDA).

Each check also runs on the CPU as its twin (``device`` fixture, tests/gpu/conftest.py): the same
step code with capture off, so the logic is checked on every machine and the GPU adds only the
capture. Weights and BatchNorm statistics are compared relative to how far the eager run moved
(tests/support/engine_runs.py), so a graph that replays nothing fails. Run with
``pytest tests/gpu``; each test takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rankbias_tui import checkpoints
from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.train import set_precision, train
from rankbias_tui.protocol import Event, Metrics, Started
from rankbias_tui.spec import RunConfig
from tests.support.engine_runs import (
    assert_follows,
    assert_state_follows,
    needs_cuda,
    needs_two_gpus,
    on,
    running_losses,
    train_epochs,
    train_to_end,
    update_cosine,
)

# Two epochs, the milestone between them: the second epoch trains at 0.2 lr, so a graph that kept
# the learning rate it was captured with ends elsewhere (milestone 1 would decay before epoch 1).
BASE = dict(
    depth=2,
    width=64,
    epochs=2,
    batch_size=16,
    lr=0.002,
    momentum=0.9,
    weight_decay=5e-3,
    lr_milestones=(2,),
    measure_every=1,
)
BOTH, GPU = ("cpu", "cuda:0"), ("cuda:0",)
# lr 0.002: at 0.02 the conv nets' tiny-batch BatchNorm turns 1e-8 rounding differences between two
# exact implementations into 10% after 4 steps; at 0.002 they stay near 1e-6.
MLP = RunConfig(model="mlp-bn", dataset="digits", **BASE)


def small(model: str, device: str, **fields) -> tuple[RunConfig, object]:
    """A few steps of ``model``: digits on the CPU (cheap), CIFAR-shaped synthetic data on a GPU."""
    dataset = "synthetic" if device.startswith("cuda") else "digits"
    cfg = RunConfig(**(BASE | dict(model=model, dataset=dataset, train_size=32) | fields))
    return cfg, load_dataset(dataset, device=device, train_size=32, subset_seed=cfg.seed)


def started(events: list[Event]) -> Started:
    assert isinstance(events[0], Started)
    return events[0]


@pytest.mark.parametrize(
    ("device", "model", "loss"),
    on(BOTH, ("mlp", "ce"), ("mlp", "mse"), ("mlp-bn", "ce"), ("vit", "ce"))
    + on(GPU, ("resnet18", "ce"), ("vgg16", "ce")),
)
def test_graphed_run_follows_the_eager_loop(device: str, model: str, loss: str) -> None:
    """fp32, every model (and MSE under capture): weights, BatchNorm statistics and losses after
    4 steps (two epochs, the second at the learning rate decayed at the milestone of epoch 2, which
    the graph must pick up). No CPU twin for the conv nets: minutes on two shared cores
    (tests/unit/engine/test_graphs.py trains vgg16 there)."""
    cfg, data = small(model, device, loss=loss)
    eager, eager_events, init = train_epochs(cfg, device, data, graphed=False)
    graphed, graphed_events, _ = train_epochs(cfg, device, data, graphed=True)
    tol = 1e-2 if device.startswith("cuda") else 1e-3
    assert_follows(graphed.model, eager.model, init, tol)
    assert running_losses(graphed_events) == pytest.approx(running_losses(eager_events), rel=tol)
    assert graphed.step == eager.step == 4


@pytest.mark.parametrize(("device", "model"), on(GPU, ("resnet18",), ("vgg16",)))
def test_bf16_channels_last_follows_fp32_loosely(device: str, model: str) -> None:
    """bf16 autocast with channels-last weights and inputs, graphed, against fp32 eager: the same
    direction of update and about the same losses (a graph that replayed nothing has cosine 0)."""
    cfg, data = small(model, device)
    fp32, fp32_events, init = train_epochs(cfg, device, data, graphed=False)
    set_precision("bf16")  # as a worker sets it for a bf16 run (the fixture puts fp32 back)
    bf16, bf16_events, _ = train_epochs(
        cfg.model_copy(update={"precision": "bf16"}), device, data, graphed=True
    )
    convs = [p for p in bf16.model.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert update_cosine(bf16.model, fp32.model, init) > 0.7
    assert running_losses(bf16_events) == pytest.approx(running_losses(fp32_events), rel=0.1)


@needs_cuda
@pytest.mark.parametrize(
    ("batch_size", "train_size", "drop_last"), [(480, None, True), (720, None, False), (16, 20, False)]
)
def test_fewer_steps_per_epoch_than_warm_up_steps(
    batch_size: int, train_size: int | None, drop_last: bool, tmp_path: Path
) -> None:
    """The warm-up once read past the batch table here (a device-side assert that poisoned the
    context). Through ``train`` as a worker runs it, graphed against eager: weights and BatchNorm
    statistics of the last checkpoint (relative to how far the eager run moved) and losses; the
    CPU twin is tests/unit/engine/test_graphs.py."""
    cfg = MLP.model_copy(update={"batch_size": batch_size, "train_size": train_size, "drop_last": drop_last})
    events: list[Event] = []
    assert train(cfg, "cuda:0", events.append, run_id="r", ckpt_dir=tmp_path / "graphed") == "done"
    assert started(events).mode == "graphed"
    eager: list[Event] = []
    train(cfg, "cuda:0", eager.append, run_id="r", ckpt_dir=tmp_path / "eager", graphs=False)
    assert started(eager).mode == "eager (graphs off)"
    init, want = checkpointed_states(tmp_path / "eager")
    got_init, got = checkpointed_states(tmp_path / "graphed")
    assert_states_equal(got_init, init)  # the same start
    assert_state_follows(got, want, init, 1e-2)
    assert running_losses(events) == pytest.approx(running_losses(eager), rel=1e-3)


def checkpointed_states(ckpt_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The model's state_dict at initialisation and at the end, from a run's checkpoints (one at
    every measurement point: ``measure_every = 1``)."""
    paths = sorted(ckpt_dir.glob("step-*.pt"))
    assert len(paths) >= 2, paths
    first, last = (
        torch.load(p, map_location="cpu", weights_only=True)["model"] for p in (paths[0], paths[-1])
    )
    assert int(paths[0].stem.removeprefix("step-")) == 0
    return first, last


def assert_states_equal(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for name, w in want.items():
        assert torch.equal(got[name], w), name


def test_graphed_resume_with_momentum_buffers(device: str, tmp_path: Path) -> None:
    """Stop after epoch 1, resume graphed from its checkpoint: the same end as uninterrupted."""
    cfg = MLP.model_copy(update={"epochs": 3, "train_size": 320})
    data = load_dataset("digits", device=device, train_size=320, subset_seed=cfg.seed)
    full, _, status = train_to_end(cfg, device, data, tmp_path / "full")
    assert status == "done"
    first = sorted((tmp_path / "full").glob("step-*.pt"))[1]  # after epoch 1
    step = int(first.stem.removeprefix("step-"))
    (tmp_path / "cut").mkdir()
    first.rename(tmp_path / "cut" / first.name)
    payload = torch.load(tmp_path / "cut" / first.name, weights_only=True)
    assert all(s["momentum_buffer"].abs().sum() > 0 for s in payload["opt"]["state"].values())
    resumed, events, status = train_to_end(cfg, device, data, tmp_path / "cut", resume_step=step)
    assert status == "done" and started(events).resumed_from == step
    for name, want in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], want, rtol=1e-5, atol=1e-6, msg=name)
    last = checkpoints.path(tmp_path / "full", full.step).name
    want_opt = torch.load(tmp_path / "full" / last, weights_only=True)["opt"]["state"]
    got_opt = torch.load(tmp_path / "cut" / last, weights_only=True)["opt"]["state"]
    for i, state in want_opt.items():
        torch.testing.assert_close(
            got_opt[i]["momentum_buffer"], state["momentum_buffer"], rtol=1e-5, atol=1e-6
        )


@needs_cuda
def test_modes_reported_in_started() -> None:
    events: list[Event] = []
    train(MLP, "cuda:0", events.append, run_id="r")
    assert started(events).mode == "graphed"
    events.clear()
    train(MLP, "cuda:0", events.append, run_id="r", graphs=False)
    assert started(events).mode == "eager (graphs off)"


@needs_two_gpus
def test_in_process_run_on_the_second_gpu_captures_there() -> None:
    """cuda:0 stays the current device: streams and capture must still be cuda:1's."""
    torch.cuda.set_device(0)
    events: list[Event] = []
    assert train(MLP, "cuda:1", events.append, run_id="r") == "done"
    assert started(events).mode == "graphed" and torch.cuda.current_device() == 0
    eager: list[Event] = []
    train(MLP, "cuda:1", eager.append, run_id="r", graphs=False)
    assert running_losses(events) == pytest.approx(running_losses(eager), rel=1e-3)
    for got, want in zip(evals(events), evals(eager), strict=True):
        assert got == pytest.approx(want, rel=1e-3)


def evals(events: list[Event]) -> list[dict[str, float]]:
    return [e.values for e in events if isinstance(e, Metrics) and "test_acc" in e.values]
