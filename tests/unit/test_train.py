"""The training loop: schedule, cadence, determinism, divergence, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.loop import Loop, diverged_by_guard, is_measure_epoch, lr_at
from rankbias_tui.engine.train import EagerStep, Run, train
from rankbias_tui.protocol import Checkpoint, Event, Finished, Metrics, Spectra, Started
from rankbias_tui.spec import RunConfig

pytestmark = pytest.mark.slow  # trains real (tiny) runs

TINY = RunConfig(
    model="mlp-bn",
    depth=2,
    width=16,
    dataset="digits",
    epochs=3,
    batch_size=64,
    lr_milestones=(),
    measure_every=2,
)


def timeless(events: list[Event]) -> list[Event]:
    """Events without the running loss/accuracy, which are logged on a wall-clock cadence (about
    once a second), so a loaded machine logs them at other steps; everything else is exact."""
    return [e for e in events if not (isinstance(e, Metrics) and "loss" in e.values)]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def record(cfg: RunConfig, **kwargs) -> tuple[str, list[Event]]:
    events: list[Event] = []
    status = train(cfg, "cpu", events.append, run_id="r", **kwargs)
    return status, events


def one_epoch(run: Run) -> bool:
    return Loop(run, EagerStep(run), lambda e: None).epoch()


def test_step_schedule() -> None:
    cfg = RunConfig(lr=1.0, lr_milestones=(60, 100, 200), lr_gamma=0.2)
    assert [lr_at(cfg, e) for e in (0, 59, 60, 100, 200, 499)] == pytest.approx(
        [1, 1, 0.2, 0.04, 0.008, 0.008]
    )


def test_measurement_cadence() -> None:
    cfg = RunConfig(epochs=25, measure_every=10)
    assert [e for e in range(26) if is_measure_epoch(cfg, e)] == [0, 10, 20, 25]


def test_events_and_determinism() -> None:
    status, events = record(TINY)
    assert status == "done" and events[-1] == Finished("r", "done")
    spectra = [e for e in events if isinstance(e, Spectra)]
    assert [e.rows[0].epoch for e in spectra] == [0.0, 2.0, 3.0]  # init, every 2 epochs, the end
    assert len(spectra[0].rows) == 2  # two hidden Linears measured
    evals = [e.values for e in events if isinstance(e, Metrics) and "test_acc" in e.values]
    assert len(evals) == 4 and evals[-1]["train_acc"] > 0.5
    _, again = record(TINY)
    assert timeless(again) == timeless(events)  # same seed, same everything
    _, other = record(TINY.model_copy(update={"seed": 1}))
    assert [e for e in other if isinstance(e, Spectra)] != spectra


def test_nan_loss_is_diverged() -> None:
    status, events = record(TINY.model_copy(update={"lr": 1e12, "model": "mlp"}))
    assert status == "diverged" and events[-1] == Finished("r", "diverged")
    assert not any(isinstance(e, Spectra) and e.rows[0].epoch == 3.0 for e in events)  # stopped early


def test_divergence_guard() -> None:
    cfg = TINY.model_copy(update={"diverge_after": 2})
    assert diverged_by_guard(cfg, 3, [0.9, 0.1, 0.12, 0.15])
    assert not diverged_by_guard(cfg, 3, [0.1, 0.12, 0.16])
    assert not diverged_by_guard(cfg, 2, [0.1, 0.1, 0.1])  # not before diverge_after


def test_checkpoint_round_trip(tmp_path: Path, digits) -> None:
    run = Run(TINY, "cpu", digits)
    one_epoch(run)
    run.save(0, tmp_path / "c.pt")
    copy = Run(TINY.model_copy(update={"seed": 5}), "cpu", digits)
    copy.load(tmp_path / "c.pt")
    assert copy.step == run.step and copy.epoch == 1
    for a, b in zip(run.model.state_dict().values(), copy.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    one_epoch(run)
    one_epoch(copy)  # same generator state: same batches, same weights
    for a, b in zip(run.model.parameters(), copy.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_resume_from_checkpoint_matches(tmp_path: Path) -> None:
    status, full = record(TINY, ckpt_dir=tmp_path)
    ckpt = sorted(tmp_path.glob("step-*.pt"))
    step = int(ckpt[1].stem.removeprefix("step-"))  # the epoch-2 checkpoint
    _, resumed = record(TINY, ckpt_dir=tmp_path, resume_step=step)
    assert resumed[0] == Started("r", total_steps=66, resumed_from=step, mode="eager")
    tail = [e for e in full if isinstance(e, Checkpoint | Spectra) and at(e) > step]
    assert [e for e in resumed if isinstance(e, Checkpoint | Spectra)] == tail


def at(event: Checkpoint | Spectra) -> int:
    return event.step if isinstance(event, Checkpoint) else event.rows[0].step


def test_bound_uses_the_lr_that_trained_the_weights() -> None:
    import math

    from rankbias_tui import spectral

    cfg = TINY.model_copy(
        update={"lr_milestones": (2,), "lr_gamma": 0.5, "measure_every": 1, "weight_decay": 1e-3}
    )
    _, events = record(cfg)
    bounds = {e.rows[0].epoch: e.rows[0].bound for e in events if isinstance(e, Spectra)}  # epoch -> fc1's

    def expected(lr: float) -> float:
        return spectral.rank_bound(1, cfg.batch_size, cfg.rank_eps, lr, cfg.weight_decay)

    # Epochs 1 and 2 were trained at lr 0.1; the cut to 0.05 applies from epoch 3 on.
    assert [bounds[e] for e in (0.0, 1.0, 2.0)] == pytest.approx([expected(0.1)] * 3)
    assert bounds[3.0] == pytest.approx(expected(0.05)) and math.isfinite(bounds[3.0])


def test_resume_on_another_device_kind_is_a_clear_error(tmp_path: Path) -> None:
    from rankbias_tui.engine.train import restore_generator

    cuda_like = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state is 16 bytes
    with pytest.raises(RuntimeError, match="written on a cuda device.*--devices cuda"):
        restore_generator(torch.Generator(), cuda_like, tmp_path / "c.pt")
