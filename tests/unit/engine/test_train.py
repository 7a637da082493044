"""The training loop: schedule, cadence, determinism, divergence, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rankbias_tui import checkpoints
from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.loop import PROTOCOL_VERSION, Loop, is_measure_epoch, lr_at
from rankbias_tui.engine.train import EagerStep, Run, load_checkpoint, train
from rankbias_tui.protocol import Checkpoint, Event, Finished, Metrics, Progress, RunWarning, Spectra, Started
from rankbias_tui.spec import RunConfig
from tests.support.faults import flip, record_of

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
    """Epoch e (1-based) trains at lr * gamma^(milestones <= e): the 60th already at 0.2 lr."""
    cfg = RunConfig(lr=1.0, lr_milestones=(60, 100, 200), lr_gamma=0.2)
    assert [lr_at(cfg, e) for e in (1, 59, 60, 99, 100, 200, 500)] == pytest.approx(
        [1, 1, 0.2, 0.2, 0.04, 0.008, 0.008]
    )


def test_a_milestone_applies_to_its_own_epoch() -> None:
    """lr_milestones = [2]: the logged lr and the update of epoch 2 are lr * gamma."""
    _, events = record(TINY.model_copy(update={"lr_milestones": (2,), "lr_gamma": 0.1, "epochs": 2}))
    running = [e for e in events if isinstance(e, Metrics) and "lr" in e.values]
    assert {e.epoch <= 1.0: e.values["lr"] for e in running} == pytest.approx({True: 0.1, False: 0.01})


@pytest.mark.parametrize(("drop_last", "steps"), [(False, 23), (True, 22)])
def test_steps_per_epoch_keep_or_drop_the_last_batch(drop_last: bool, steps: int, digits) -> None:
    cfg = TINY.model_copy(update={"drop_last": drop_last, "epochs": 1})  # 1,437 examples at B = 64
    assert Run(cfg, "cpu", digits).steps_per_epoch == steps
    _, events = record(cfg)
    assert events[0].total_steps == steps  # type: ignore[union-attr]
    assert [e.step for e in events if isinstance(e, Metrics) and "loss" in e.values][-1] == steps


def test_the_short_last_batch_is_a_mean_over_its_own_examples(digits) -> None:
    """The tail step of an epoch (29 examples) is exactly one SGD step on those 29 examples."""
    import torch.nn.functional as F

    cfg = TINY.model_copy(update={"epochs": 1, "weight_decay": 0.0})
    run = Run(cfg, "cpu", digits)
    step = EagerStep(run)
    step.begin_epoch()
    for _ in range(22):
        step()
    before = [p.detach().clone() for p in run.model.parameters()]
    tail = step.perm[22 * 64 :]
    assert len(tail) == 29
    ref = Run(cfg, "cpu", digits)
    ref.model.load_state_dict(run.model.state_dict())
    ref.model.train()
    loss = F.cross_entropy(ref.model(digits.x_train[tail]), digits.y_train[tail])
    loss.backward()
    step()
    for p0, p, q in zip(before, run.model.parameters(), ref.model.parameters(), strict=True):
        torch.testing.assert_close(p, p0 - cfg.lr * q.grad)
    correct = int(step.correct)
    assert step.running(23)[0][1] == pytest.approx(correct / 1437)  # accuracy over the examples seen


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
    assert status == "diverged" and isinstance(events[-1], Finished)
    assert events[-1].error and events[-1].error.startswith("training loss became nan in steps")
    assert not any(isinstance(e, Spectra) and e.rows[0].epoch == 3.0 for e in events)  # stopped early


def test_divergence_guard_on_measurement_points() -> None:
    """A guard every run trips (accuracy <= 1): it stops at the third measurement point (epochs
    0, 2, 4), not at the third evaluated epoch, and says why."""
    cfg = TINY.model_copy(update={"diverge_after": 0, "diverge_acc": 1.0, "epochs": 6})
    status, events = record(cfg)
    assert status == "diverged"
    end = events[-1]
    assert (
        isinstance(end, Finished)
        and "at epoch 0, " in str(end.error)
        and str(end.error).endswith("at epoch 4)")
    )
    assert max(e.epoch for e in events if isinstance(e, Metrics)) == 4.0


def test_checkpoint_round_trip(tmp_path: Path, digits) -> None:
    run = Run(TINY, "cpu", digits)
    one_epoch(run)
    run.save(0, tmp_path / "c.pt")
    copy = Run(TINY.model_copy(update={"seed": 5}), "cpu", digits)
    assert copy.load(tmp_path / "c.pt") is None  # loaded: made under this protocol
    assert load_checkpoint(tmp_path / "c.pt", copy.device)[0]["protocol_version"] == PROTOCOL_VERSION  # type: ignore[index]
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
    digest = {"data_sha256": load_dataset("digits").digest}  # the data it trained on (report provenance)
    assert resumed[0] == Started("r", 69, step, "eager", PROTOCOL_VERSION, None, digest)  # 23 steps per epoch
    tail = [e for e in full if isinstance(e, Checkpoint | Spectra) and at(e) > step]
    assert [e for e in resumed if isinstance(e, Checkpoint | Spectra)] == tail


def at(event: Checkpoint | Spectra) -> int:
    return event.step if isinstance(event, Checkpoint) else event.rows[0].step


def after(events: list[Event], step: int) -> list[Event]:
    """What a run reported after ``step`` (running loss/accuracy aside: they follow the clock)."""
    kept = (Metrics, Spectra, Checkpoint, Progress)
    return [
        e
        for e in timeless(events)
        if isinstance(e, kept) and (e.rows[0].step if isinstance(e, Spectra) else e.step) > step
    ]


@pytest.mark.parametrize("what", ["weights", "generator"])
@pytest.mark.parametrize("acknowledged", [True, False], ids=["digest", "crc-only"])
def test_flipped_bytes_in_the_latest_checkpoint_fall_back_to_the_one_before(
    tmp_path: Path, what: str, acknowledged: bool
) -> None:
    status, full = record(TINY, ckpt_dir=tmp_path)
    sent = {e.step: e.digest for e in full if isinstance(e, Checkpoint)}
    assert sorted(sent) == [0, 46, 69] and all(len(d) == 64 for d in sent.values())
    latest = checkpoints.path(tmp_path, 46)
    flip(latest, record_of(latest, what))
    torch.load(latest, weights_only=True)  # torch.load does not notice: it checks no CRC
    status, again = record(TINY, ckpt_dir=tmp_path, resume_step=46, digests=sent if acknowledged else None)
    warned = [e.text for e in again if isinstance(e, RunWarning)]
    assert warned[0].startswith(f"checkpoint {latest} is damaged (")
    assert ("SHA-256" if acknowledged else "CRC of archive/data/") in warned[0]
    assert warned[1:] == ["resumed from the earlier checkpoint at step 0 instead"]
    start = next(e for e in again if isinstance(e, Started))
    assert start.resumed_from == 0 and status == "done"
    assert after(again, 0) == after(full, 0)  # bitwise the numbers of the uninterrupted run
    assert checkpoints.read_verified(latest, sent[46])  # and the damaged file was written afresh


def test_bound_uses_the_lr_that_trained_the_weights() -> None:
    import math

    from rankbias_tui.engine import spectral

    cfg = TINY.model_copy(
        update={"lr_milestones": (2,), "lr_gamma": 0.5, "measure_every": 1, "weight_decay": 1e-3}
    )
    _, events = record(cfg)
    bounds = {e.rows[0].epoch: e.rows[0].bound for e in events if isinstance(e, Spectra)}  # epoch -> fc1's

    def expected(lr: float) -> float:
        return spectral.rank_bound(1, cfg.batch_size, cfg.rank_eps, lr, cfg.weight_decay)

    # Epoch 1 was trained at lr 0.1; the cut to 0.05 applies from epoch 2 on (the authors' schedule).
    assert [bounds[e] for e in (0.0, 1.0)] == pytest.approx([expected(0.1)] * 2)
    assert [bounds[e] for e in (2.0, 3.0)] == pytest.approx([expected(0.05)] * 2)
    assert math.isfinite(bounds[3.0])


def test_resume_on_another_device_kind_is_a_clear_error(tmp_path: Path) -> None:
    from rankbias_tui.engine.train import restore_generator

    cuda_like = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state is 16 bytes
    with pytest.raises(RuntimeError, match="written on a cuda device.*--devices cuda"):
        restore_generator(torch.Generator(), cuda_like, tmp_path / "c.pt")


def test_a_checkpoint_of_another_protocol_restarts_the_run_and_says_so(tmp_path: Path) -> None:
    _, full = record(TINY, ckpt_dir=tmp_path)
    last = sorted(tmp_path.glob("step-*.pt"))[-2]
    payload = torch.load(last, weights_only=True)
    del payload["protocol_version"]  # as protocol 1 wrote them
    torch.save(payload, last)
    status, again = record(TINY, ckpt_dir=tmp_path, resume_step=payload["step"])
    start, end = again[0], again[-1]
    assert isinstance(start, Started) and start.resumed_from == -1 and status == "done"
    assert "made under training protocol 1" in str(start.note) and "restarted from scratch" in str(start.note)
    assert isinstance(end, Finished) and end.error == start.note  # kept with the run's end
    assert timeless(again)[1:-1] == timeless(full)[1:-1]  # trained from scratch: the same numbers


def test_fp32_turns_tf32_off_and_bf16_allows_it() -> None:
    from rankbias_tui.engine.train import set_precision

    set_precision("bf16")
    assert torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "high"
    record(TINY.model_copy(update={"epochs": 1}))  # the worker's entry point sets it
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"


def test_checkpoint_every_sets_the_checkpoint_cadence_and_changes_no_number(tmp_path: Path) -> None:
    """Checkpoints every epoch (between measurements too), and a resume from one that is no
    measurement point continues with bitwise the numbers of an uninterrupted run."""
    cfg = TINY.model_copy(update={"epochs": 4, "measure_every": 3})  # measured at epochs 0, 3, 4
    every = cfg.model_copy(update={"checkpoint_every": 1})
    _, measured = record(cfg, ckpt_dir=tmp_path / "measured")
    _, full = record(every, ckpt_dir=tmp_path / "every")
    assert [e.step for e in measured if isinstance(e, Checkpoint)] == [0, 69, 92]
    assert [e.step for e in full if isinstance(e, Checkpoint)] == [0, 23, 46, 69, 92]
    assert [e for e in timeless(full) if not isinstance(e, Checkpoint)] == [
        e for e in timeless(measured) if not isinstance(e, Checkpoint)
    ]
    _, resumed = record(every, ckpt_dir=tmp_path / "every", resume_step=23)  # after epoch 1
    assert next(e for e in resumed if isinstance(e, Started)).resumed_from == 23
    assert after(resumed, 23) == after(full, 23)
    sparse = cfg.model_copy(update={"checkpoint_every": 3, "epochs": 5})  # 0, 3 and the end
    _, events = record(sparse, ckpt_dir=tmp_path / "sparse")
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [0, 69, 115]
