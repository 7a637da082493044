"""The one epoch loop (engine.loop) driven with a fake trainer and step: no torch, no training.

Checks the cadence (evaluate, measure, checkpoint, progress), the divergence rules, cancellation
and freezing of one member while the others go on, and that every member ends with ``Finished``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rankbias_tui.engine import loop as loop_mod
from rankbias_tui.engine.loop import PROTOCOL_VERSION, Loop, Member, guard_reason, lr_at
from rankbias_tui.protocol import (
    Checkpoint,
    Event,
    Finished,
    Metrics,
    Progress,
    SpectrumRow,
    Started,
)
from rankbias_tui.spec import RunConfig

CFG = RunConfig(dataset="digits", epochs=3, measure_every=2, lr_milestones=(2,), lr_gamma=0.5)


@pytest.fixture(autouse=True)
def epoch_end_logs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_mod, "LOG_INTERVAL_S", 1e9)


class Fake:
    """A trainer and its step at once, for ``k`` members: losses[epoch][k] is the running loss."""

    def __init__(self, k: int, losses: dict[int, list[float]] | None = None, ckpt: Path | None = None,
                 accs: dict[int, float] | None = None):  # fmt: skip
        self.members = [Member(f"r{i}", CFG, ckpt / f"r{i}" if ckpt else None) for i in range(k)]
        self.active, self.train_accs = [True] * k, [[] for _ in range(k)]
        self.steps_per_epoch, self.step, self.epoch = 4, 0, 0
        self.losses, self.bad_weights, self.calls = losses or {}, set(), []
        self.saved: list[tuple[int, Path]] = []
        self.accs = accs or {}  # epoch -> every member's train accuracy (default 0.9)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * CFG.epochs

    def begin_epoch(self) -> None:
        self.calls.append(("begin", self.epoch))

    def __call__(self) -> None:
        self.calls.append(("step", self.step))

    def running(self, seen: int) -> list[tuple[float, float]]:
        return [(loss, 0.5) for loss in self.losses.get(self.epoch, [1.0] * len(self.members))]

    def eval_metrics(self) -> list[dict[str, float]]:
        self.calls.append(("eval", self.epoch))
        return [{"train_acc": self.accs.get(self.epoch, 0.9), "test_acc": 0.8} for _ in self.members]

    def measure(self) -> dict[int, list[SpectrumRow] | None]:
        return {k: None if k in self.bad_weights else [self._row(k)] for k, a in enumerate(self.active) if a}

    def _row(self, k: int) -> SpectrumRow:
        s = np.array([1.0, 0.5])
        return SpectrumRow(
            f"r{k}", self.step, float(self.epoch), 0, "fc1", 2, 2, 1, s, 2, 1e-3, 1, 1, 1, 1, 1
        )

    def measure_metrics(self) -> dict[str, float]:
        return {}

    def save(self, k: int, path: Path) -> str:
        self.saved.append((k, path))
        return f"digest of {path.name}"  # what the loop sends with the acknowledgement

    def freeze(self, k: int) -> None:
        self.active[k] = False
        self.calls.append(("freeze", k))


def run(fake: Fake, cancel_at: dict[int, list[str]] | None = None) -> tuple[dict[str, str], list[Event]]:
    events: list[Event] = []
    polls = iter(range(100))
    asked = cancel_at or {}
    statuses = Loop(fake, fake, events.append, lambda: asked.get(next(polls), [])).run(-1, "fake")
    return statuses, events


def kinds(events: list[Event], run_id: str = "r0") -> list[str]:
    return [type(e).__name__ for e in events if e.run_id == run_id]  # type: ignore[union-attr]


def test_cadence_of_one_member(tmp_path: Path) -> None:
    fake = Fake(1, ckpt=tmp_path)
    statuses, events = run(fake)
    assert statuses == {"r0": "done"}
    assert events[0] == Started("r0", 12, -1, "fake", PROTOCOL_VERSION) and events[-1] == Finished(
        "r0", "done"
    )
    init = ["Metrics", "Spectra", "Checkpoint", "Progress"]  # evaluate, measure, checkpoint at epoch 0
    epoch1 = ["Metrics", "Metrics", "Progress"]  # running metrics, evaluation; no measurement
    epoch2 = ["Metrics", "Metrics", "Spectra", "Checkpoint", "Progress"]
    assert kinds(events) == ["Started", *init, *epoch1, *epoch2, *epoch2, "Finished"]
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [0, 8, 12]
    assert [e.digest for e in events if isinstance(e, Checkpoint)][-1] == "digest of step-000000012.pt"
    assert fake.saved == [(0, tmp_path / "r0" / f"step-{s:09d}.pt") for s in (0, 8, 12)]
    running = [e for e in events if isinstance(e, Metrics) and "loss" in e.values]
    # the authors' schedule: milestone 2 means the 2nd epoch already trains at lr * gamma
    assert [(e.step, e.epoch, e.values["lr"]) for e in running] == [
        (4, 1.0, 0.1),
        (8, 2.0, 0.05),
        (12, 3.0, 0.05),
    ]
    assert [e.epoch for e in events if isinstance(e, Progress)] == [0.0, 1.0, 2.0, 3.0]
    assert fake.calls.count(("begin", 0)) == 1 and sum(c[0] == "step" for c in fake.calls) == 12
    assert lr_at(CFG, 2) == 0.05


def test_non_finite_running_loss_freezes_that_member_only() -> None:
    fake = Fake(2, losses={1: [1.0, math.nan]})
    statuses, events = run(fake)
    assert statuses == {"r0": "done", "r1": "diverged"}
    assert kinds(events, "r1")[-2:] == ["Metrics", "Finished"]  # the NaN loss is reported, then the end
    assert ("freeze", 1) in fake.calls and kinds(events, "r0").count("Spectra") == 3


def test_a_single_member_that_diverges_ends_the_loop() -> None:
    fake = Fake(1, losses={0: [math.inf]})
    statuses, events = run(fake)
    assert statuses == {"r0": "diverged"} and fake.epoch == 0  # the epoch does not count
    assert events[-1] == Finished("r0", "diverged", "training loss became inf in steps 1-4 (epoch 1)")
    assert kinds(events).count("Spectra") == 1


def test_cancel_and_nan_weights() -> None:
    fake = Fake(3)
    fake.bad_weights = {2}  # its first measurement finds NaN/inf weights
    statuses, events = run(fake, cancel_at={0: ["r1", "not-ours"]})
    assert statuses == {"r0": "done", "r1": "cancelled", "r2": "diverged"}
    assert events[-1] == Finished("r0", "done")
    assert Finished("r1", "cancelled", "cancelled by request") in events
    assert kinds(events, "r2") == ["Started", "Metrics", "Finished"]  # evaluated, then nothing measured
    assert Finished("r2", "diverged", "NaN/inf weights at step 0 (epoch 0)") in events


def test_a_start_note_is_sent_and_kept_with_the_end() -> None:
    fake = Fake(2)
    events: list[Event] = []
    Loop(fake, fake, events.append).run(-1, "fake", {"r1": "checkpoint not resumed"})
    assert Started("r1", 12, -1, "fake", PROTOCOL_VERSION, "checkpoint not resumed") in events
    assert Started("r0", 12, -1, "fake", PROTOCOL_VERSION, None) in events
    assert events[-2:] == [Finished("r0", "done"), Finished("r1", "done", "checkpoint not resumed")]


def test_guard_stops_a_member_after_its_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fake(2)
    monkeypatch.setattr(loop_mod, "guard_reason", lambda cfg, epoch, points: "low" if epoch >= 2 else None)
    statuses, events = run(fake)
    assert statuses == {"r0": "diverged", "r1": "diverged"}
    assert fake.epoch == 2 and kinds(events)[-2:] == ["Progress", "Finished"]
    assert events[-1] == Finished("r1", "diverged", "low")


def test_guard_reads_measurement_points_only() -> None:
    """measure_every = 2: the points are epochs 0, 2, 4, 6 (and the last); low accuracies at the
    odd epochs between them do not count, and the guard waits for three low points."""
    cfg = CFG.model_copy(update={"epochs": 9, "diverge_after": 4, "diverge_acc": 0.15})
    accs = {0: 0.1, 1: 0.05, 2: 0.9, 3: 0.05, 4: 0.12, 5: 0.05, 6: 0.1, 7: 0.05, 8: 0.11}
    fake = Fake(1, accs=accs)
    fake.members = [Member("r0", cfg)]
    statuses, events = run(fake)
    assert statuses == {"r0": "diverged"} and fake.epoch == 8  # points 4, 6, 8 all <= 0.15
    assert fake.train_accs[0] == [(0, 0.1), (2, 0.9), (4, 0.12), (6, 0.1), (8, 0.11)]
    reason = "train accuracy <= 0.15 at the last three measurement points (0.120 at epoch 4, 0.100 at epoch 6, 0.110 at epoch 8)"
    assert events[-1] == Finished("r0", "diverged", reason)


def test_guard_rule() -> None:
    cfg = CFG.model_copy(update={"diverge_after": 50, "diverge_acc": 0.15})
    low = [(30, 0.1), (40, 0.12), (50, 0.15)]
    assert guard_reason(cfg, 50, low) is not None  # from epoch diverge_after on, <= counts
    assert guard_reason(cfg, 40, low[:2]) is None  # fewer than three points
    assert guard_reason(cfg, 40, [(20, 0.1), (30, 0.1), (40, 0.1)]) is None  # before diverge_after
    assert guard_reason(cfg, 50, [(30, 0.1), (40, 0.16), (50, 0.1)]) is None  # one point above
    assert guard_reason(cfg, 51, low) is None  # 51 is not a measurement point: no new evidence


def test_schedule_as_the_authors_multisteplr() -> None:
    """MultiStepLR.step(epoch) at the start of 1-based epoch e: lr * gamma^(milestones <= e)."""
    cfg = RunConfig(lr=1.0, lr_milestones=(2,), lr_gamma=0.1)
    assert [lr_at(cfg, e) for e in (1, 2, 3)] == pytest.approx([1.0, 0.1, 0.1])  # epoch 2 already decayed
    paper = RunConfig(lr=1.0)  # milestones 60, 100, 200; gamma 0.2
    assert [lr_at(paper, e) for e in (59, 60, 99, 100, 200, 500)] == pytest.approx(
        [1.0, 0.2, 0.2, 0.04, 0.008, 0.008]
    )


@pytest.mark.parametrize(
    ("n", "fields", "steps", "tail"),
    [
        (1437, dict(batch_size=64), 23, 29),  # the authors' digits epoch: ceil(1437/64)
        (1437, dict(batch_size=64, drop_last=True), 22, 0),
        (1408, dict(batch_size=64), 22, 0),  # no remainder: no tail either way
        (1437, dict(batch_size=4, model="mlp"), 360, 1),
        (1437, dict(batch_size=4), 359, 0),  # mlp-bn cannot train on one example
        (100, dict(batch_size=128), 1, 0),  # a batch larger than the data: one step of all of it
    ],
)
def test_epoch_batches(n: int, fields: dict, steps: int, tail: int) -> None:
    batches = loop_mod.epoch_batches(n, RunConfig(**fields))
    assert (batches.steps, batches.tail) == (steps, tail)
    covered = sum(batches.of_step(i) for i in range(batches.steps))
    assert covered == (
        n if tail or n % batches.size == 0 or n < fields["batch_size"] else n - n % batches.size
    )
