"""The one epoch loop: an eager run, a graphed run and a fused pack all train through ``Loop``.

Owns: the training protocol and its version (``PROTOCOL_VERSION``): the learning-rate schedule,
how an epoch splits into batches (the last one kept short unless ``drop_last``); the cadence
(running loss and accuracy logged about once a second and at every epoch end; evaluation every
``eval_every`` epochs and at measurement points; spectra every ``measure_every`` epochs; the
members' checkpoints after each measurement, or every ``checkpoint_every`` epochs); the divergence rules (a non-finite running loss, NaN/inf
weights at a measurement, the guard of PAPER.md on measurement points), each stopping a run with
its reason; cancellation; and every event that reports them (``rankbias_tui.protocol``). It drives two
objects passed in: a
``Trainer`` (the members being trained, and what happens between epochs: evaluate, measure, save)
and a ``Step`` (one training step of every live member, its per-epoch set-up and running sums).
Does not own: how a step is computed (``engine.train``: eager; ``engine.graphs``: one CUDA graph;
``engine.pack``: K runs fused), loading data or resuming (the entry points ``train.train`` and
``pack.train_pack``). Imports no torch: every tensor lives behind the two interfaces.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from .. import checkpoints
from ..catalog import model_entry
from ..measures import ACC, LOSS, LR, TRAIN_ACC, Status
from ..protocol import Checkpoint, Event, Finished, Metrics, Progress, Spectra, SpectrumRow, Started
from ..spec import RunConfig

Emit = Callable[[Event], None]
LOG_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Member:
    """One run being trained: its id (for events), config, checkpoint directory and resume step,
    and the SHA-256 the store acknowledged for each of its checkpoints (step -> digest)."""

    run_id: str
    cfg: RunConfig
    ckpt_dir: Path | None = None
    resume_step: int | None = None
    digests: Mapping[int, str] = field(default_factory=dict)


# ----- the protocol ------------------------------------------------------------------------------
# The version of the training protocol below, stored with every run and in every checkpoint: a
# change that alters the numbers of a configuration (whose id stays the same) bumps it, and a
# checkpoint of another version is never resumed (``resume.load_checkpoint``). 1: rankbias up to
# issue 11. 2: the authors' protocol to the step (issue 11): the schedule of ``lr_at``, the last
# partial batch kept (``epoch_batches``), the guard on measurement points, TF32 off for fp32.
PROTOCOL_VERSION = 2


def lr_at(cfg: RunConfig, epoch: int) -> float:
    """The learning rate of 1-based epoch ``epoch``: lr * gamma^(milestones <= epoch), as the
    authors' ``MultiStepLR.step(epoch)`` at the start of each epoch (epoch 60 already decayed)."""
    return cfg.lr * cfg.lr_gamma ** sum(m <= epoch for m in cfg.lr_milestones)


def last_lr(cfg: RunConfig, epoch: int) -> float:
    """The learning rate of the steps that produced the weights after ``epoch`` completed epochs
    (the bound at a milestone must use the rate the weights were trained with, not the next one);
    at initialisation, the rate the first epoch will use."""
    return lr_at(cfg, max(1, epoch))


@dataclass(frozen=True)
class Batches:
    """An epoch of ``n`` examples as steps: ``full`` batches of ``size``, then one ``tail`` batch of
    the rest (0: no tail)."""

    size: int
    full: int
    tail: int

    @property
    def steps(self) -> int:
        return self.full + (self.tail > 0)

    def of_step(self, i: int) -> int:
        """Examples in step ``i`` (0-based) of the epoch."""
        return self.tail if i == self.full else self.size


def epoch_batches(n: int, cfg: RunConfig) -> Batches:
    """How ``cfg`` splits ``n`` training examples per epoch: ceil(n/B) steps, the last one short,
    as the authors' DataLoader (``drop_last`` False); floor(n/B) steps with ``drop_last``. A batch
    larger than the data (the spec refuses it) is one step of all of it."""
    full, rest = divmod(n, cfg.batch_size)
    if full == 0:
        return Batches(n, 1, 0)
    if rest == 1 and model_entry(cfg.model).batch_norm_1d:
        rest = 0  # BatchNorm1d cannot train on one example (torch raises; the authors' loader would)
    return Batches(cfg.batch_size, full, 0 if cfg.drop_last else rest)


def is_measure_epoch(cfg: RunConfig, epoch: int) -> bool:
    return epoch == 0 or epoch % cfg.measure_every == 0 or epoch == cfg.epochs


def is_checkpoint_epoch(cfg: RunConfig, epoch: int) -> bool:
    """Checkpoint after every measurement, or (``checkpoint_every``) after initialisation, every
    ``checkpoint_every`` epochs and at the end. Any epoch end will do: a checkpoint holds all a
    resume needs (weights, optimiser, batch-order generator, the guard's points), and writing one
    changes no number."""
    if cfg.checkpoint_every is None:
        return is_measure_epoch(cfg, epoch)
    return epoch == 0 or epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs


def is_eval_epoch(cfg: RunConfig, epoch: int) -> bool:
    """Evaluate every ``eval_every`` epochs, at the end, and at every measurement point (the
    guard reads the train accuracy there)."""
    return epoch % cfg.eval_every == 0 or is_measure_epoch(cfg, epoch)


def guard_reason(cfg: RunConfig, epoch: int, points: Sequence[tuple[int, float]]) -> str | None:
    """PAPER.md's guard, at a measurement point ``epoch``: from epoch ``diverge_after`` on, the train
    accuracies at the last three measurement points (``points``: (epoch, accuracy)) all
    <= ``diverge_acc``. Why the run diverged, or None."""
    last = list(points[-3:])
    if epoch < cfg.diverge_after or len(last) < 3 or last[-1][0] != epoch:
        return None
    if any(acc > cfg.diverge_acc for _, acc in last):
        return None
    listed = ", ".join(f"{acc:.3f} at epoch {e}" for e, acc in last)
    return f"train accuracy <= {cfg.diverge_acc:g} at the last three measurement points ({listed})"


# ----- what the loop drives ----------------------------------------------------------------------
class Step(Protocol):
    """One training step of every live member, with no host synchronisation."""

    def begin_epoch(self) -> None:
        """Set this epoch's learning rates and batch order (``epoch_batches``); zero the sums."""

    def __call__(self) -> None: ...

    def running(self, seen: int) -> list[tuple[float, float]]:
        """Each member's mean (loss, accuracy) over the last ``seen`` steps, then zero the sums: the
        mean of their batch losses, and the share of their examples classified right."""
        ...


class Trainer(Protocol):
    """The members being trained in lockstep (one for a single run) and their state."""

    members: Sequence[Member]
    active: list[bool]  # False once a member ended: its weights stay frozen
    train_accs: list[list[tuple[int, float]]]  # (epoch, eval-mode train accuracy) at measurement points
    steps_per_epoch: int
    step: int  # steps taken
    epoch: int  # completed epochs

    @property
    def total_steps(self) -> int: ...

    def eval_metrics(self) -> list[dict[str, float]]:
        """Every member's train/test loss and accuracy (``train_acc``, ``test_acc``, ...)."""
        ...

    def measure(self) -> dict[int, list[SpectrumRow] | None]:
        """Each live member's spectrum rows; None for a member whose weights hold NaN/inf."""
        ...

    def measure_metrics(self) -> dict[str, float]:
        """Metrics about the measurement itself, sent with each member's spectra (may be empty)."""
        ...

    def save(self, k: int, path: Path) -> str:
        """Write member k's checkpoint to ``path``; return the SHA-256 of the bytes written."""
        ...

    def freeze(self, k: int) -> None:
        """Member k has ended: stop training it (``active[k]`` False)."""


def stamped(emit: Emit, data_digest: str) -> Emit:
    """``emit`` with the data set's digest (``engine.data.content_digest``) added to the provenance
    of each ``Started`` event: the segment it starts records what it trained on."""

    def stamp(event: Event) -> None:
        if isinstance(event, Started) and data_digest:
            event = replace(event, provenance={**(event.provenance or {}), "data_sha256": data_digest})
        emit(event)

    return stamp


# ----- the loop ----------------------------------------------------------------------------------
class Loop:
    """Trains ``trainer``'s members with ``step``, reporting through ``emit``; ``poll_cancel``
    returns the run ids asked to stop since it was last called (checked at every log point)."""

    def __init__(self, trainer: Trainer, step: Step, emit: Emit, poll_cancel: Callable[[], list[str]] = list):
        self.trainer, self.step, self.emit, self.poll_cancel = trainer, step, emit, poll_cancel
        self.statuses = {m.run_id: Status.RUNNING for m in trainer.members}
        self.notes: dict[str, str] = {}

    def run(self, resumed: int, mode: str, notes: dict[str, str] | None = None) -> dict[str, str]:
        """Train from initialisation (``resumed`` -1) or the checkpoint at step ``resumed`` to the
        end; every member ends with a ``Finished`` event. ``notes``: run_id -> what the start
        should say (a checkpoint not resumed), sent with ``Started`` and kept with the run's end.
        Return run_id -> final status."""
        t = self.trainer
        cfg = t.members[0].cfg  # members share epochs and cadence
        self.notes = notes or {}
        for m in t.members:
            note = self.notes.get(m.run_id)
            self.emit(Started(m.run_id, t.total_steps, resumed, mode, PROTOCOL_VERSION, note))
        if resumed < 0:
            self.checkpoint_point(evaluate=True)
        while t.epoch < cfg.epochs and any(t.active):
            if not self.epoch():
                break
            self.checkpoint_point(evaluate=is_eval_epoch(cfg, t.epoch))
            if is_measure_epoch(cfg, t.epoch):
                for k in self.live():
                    if reason := guard_reason(t.members[k].cfg, t.epoch, t.train_accs[k]):
                        self.stop(k, Status.DIVERGED, reason)
        for k in self.live():
            self.stop(k, Status.DONE)
        return self.statuses

    def epoch(self) -> bool:
        """One epoch of every live member, logging about once a second and at the end; False if
        no member is left to train (the epoch then does not count)."""
        t, step = self.trainer, self.step
        step.begin_epoch()
        last = t.steps_per_epoch - 1
        seen, next_log = 0, time.monotonic() + LOG_INTERVAL_S
        for i in range(t.steps_per_epoch):
            step()
            seen += 1
            t.step += 1
            if i == last or time.monotonic() >= next_log:
                self._log_running(seen, i + 1)
                self._cancel(self.poll_cancel())
                if not any(t.active):
                    return False
                seen, next_log = 0, time.monotonic() + LOG_INTERVAL_S
        t.epoch += 1
        return True

    def _log_running(self, seen: int, done: int) -> None:
        t = self.trainer
        means = self.step.running(seen)  # the one host sync, about once a second
        epoch = t.epoch + done / t.steps_per_epoch
        for k in self.live():
            (loss, acc), member = means[k], t.members[k]
            values = {LOSS: loss, ACC: acc, LR: lr_at(member.cfg, t.epoch + 1)}
            self.emit(Metrics(member.run_id, t.step, epoch, values))
            if not math.isfinite(loss):  # the running sum: some step since the last log point
                steps = f"step {t.step}" if seen == 1 else f"steps {t.step - seen + 1}-{t.step}"
                self.stop(k, Status.DIVERGED, f"training loss became {loss} in {steps} (epoch {t.epoch + 1})")

    def _cancel(self, run_ids: list[str]) -> None:
        for k in self.live():
            if self.trainer.members[k].run_id in run_ids:
                self.stop(k, Status.CANCELLED, "cancelled by request")

    def checkpoint_point(self, evaluate: bool) -> None:
        """Initialisation or an epoch end: evaluate, measure and checkpoint as the cadence says, then
        report progress."""
        t = self.trainer
        step, epoch = t.step, float(t.epoch)
        cfg = t.members[0].cfg  # members share the cadence
        measure = is_measure_epoch(cfg, t.epoch)
        if evaluate:
            for k, values in enumerate(t.eval_metrics()):
                if t.active[k]:
                    self.emit(Metrics(t.members[k].run_id, step, epoch, values))
                    if measure:  # the guard's points, saved with the checkpoint below
                        t.train_accs[k].append((t.epoch, values[TRAIN_ACC]))
        if measure:
            self._measure(step, epoch)
        if is_checkpoint_epoch(cfg, t.epoch):
            self._save(step)
        for k in self.live():
            self.emit(Progress(t.members[k].run_id, step, epoch))

    def _measure(self, step: int, epoch: float) -> None:
        t = self.trainer
        for k, rows in t.measure().items():
            member = t.members[k]
            if rows is None:
                self.stop(k, Status.DIVERGED, f"NaN/inf weights at step {step} (epoch {epoch:g})")
                continue
            self.emit(Spectra(member.run_id, tuple(rows)))
            if extra := t.measure_metrics():
                self.emit(Metrics(member.run_id, step, epoch, extra))

    def _save(self, step: int) -> None:
        """Each live member's checkpoint after ``step``, and its acknowledgement request."""
        t = self.trainer
        for k in self.live():
            member = t.members[k]
            if member.ckpt_dir is not None:
                sha = t.save(k, checkpoints.path(member.ckpt_dir, step))
                self.emit(Checkpoint(member.run_id, step, sha))

    def stop(self, k: int, status: str, reason: str | None = None) -> None:
        """Freeze member k for the rest of the loop and report its end, with why (its first line)
        and what its start said."""
        run_id = self.trainer.members[k].run_id
        self.trainer.freeze(k)
        self.statuses[run_id] = status
        why = "\n".join(line for line in (reason, self.notes.get(run_id)) if line) or None
        self.emit(Finished(run_id, status, why))

    def live(self) -> list[int]:
        return [k for k, active in enumerate(self.trainer.active) if active]
