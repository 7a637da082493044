"""The training loop of one run, readable top to bottom.

The data set lives on the training device; each step draws its batch by index from a per-epoch
permutation of a seeded generator, so there is no DataLoader and no host synchronisation inside
the step loop: loss and accuracy accumulate in device tensors and are read only at logging points
(about once a second, and at every epoch end). Spectra are measured at initialisation, every
``measure_every`` epochs and at the end; a checkpoint follows each measurement so a run can resume
exactly where its last acknowledged checkpoint was.

Events go out through ``emit(kind, *payload)``; the worker forwards them to the scheduler.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import spectral
from ..spec import RunConfig
from .data import DataSet, load_dataset
from .models import build_model, measured_layers, weight_matrix

Emit = Callable[..., None]
LOG_INTERVAL_S = 1.0
EVAL_CHUNK = 1024


@dataclass
class RunState:
    """Everything that must survive a resume, besides model and optimizer."""

    step: int = 0
    epoch: int = 0  # completed epochs
    train_accs: list[float] = field(default_factory=list)  # eval-mode, for the divergence guard


def lr_at(cfg: RunConfig, epoch: int) -> float:
    """Step schedule: multiply by lr_gamma at each milestone already reached."""
    return cfg.lr * cfg.lr_gamma ** sum(epoch >= m for m in cfg.lr_milestones)


def last_lr(cfg: RunConfig, epoch: int) -> float:
    """The learning rate of the steps that produced the weights after ``epoch`` completed epochs
    (the bound at a milestone must use the rate the weights were trained with, not the next one)."""
    return lr_at(cfg, max(0, epoch - 1))


def spectrum_row(index: int, s: spectral.LayerSpectrum, m: int, eps: float) -> dict[str, Any]:
    """One layer's measurement as the plain row a worker sends and the store keeps."""
    return dict(
        layer_index=index, layer=s.name, d_out=s.shape[0], d_in=s.shape[1], m=m, svals=s.svals.tobytes(),
        rank=s.rank, rank_eps=eps, stable_rank=s.stable_rank, effective_rank=s.effective_rank,
        spectral_norm=s.spectral_norm, fro_norm=s.fro_norm, bound=s.bound,
    )  # fmt: skip


def is_measure_epoch(cfg: RunConfig, epoch: int) -> bool:
    return epoch == 0 or epoch % cfg.measure_every == 0 or epoch == cfg.epochs


def is_eval_epoch(cfg: RunConfig, epoch: int) -> bool:
    return epoch % cfg.eval_every == 0 or epoch == cfg.epochs


def loss_fn(cfg: RunConfig, logits: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    if cfg.loss == "mse":
        return F.mse_loss(logits, F.one_hot(y, n_classes).to(logits.dtype))
    return F.cross_entropy(logits, y)


class Run:
    """One run's model, optimiser, data and batch generator on one device."""

    def __init__(self, cfg: RunConfig, device: str, data: DataSet):
        self.cfg, self.device, self.data = cfg, torch.device(device), data
        torch.manual_seed(cfg.seed)  # initial weights depend on the seed only
        self.model = build_model(cfg, data.in_shape, data.n_classes).to(self.device)
        if cfg.precision == "bf16":
            self.model = self.model.to(memory_format=torch.channels_last)  # 4-D conv weights only
        self.layers = measured_layers(self.model, cfg, data.in_shape)
        self.opt = torch.optim.SGD(
            self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.steps_per_epoch = max(1, len(data.y_train) // cfg.batch_size)
        self.state = RunState()

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs

    def autocast(self) -> torch.autocast:
        """bfloat16 autocast when the run asks for it (``precision = "bf16"``), else a no-op.

        No cast cache: CUDA graph capture requires that, and each weight is cast once anyway."""
        bf16 = self.cfg.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False)

    def as_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images in channels-last memory for bf16 conv nets (matching their weights)."""
        if self.cfg.precision == "bf16" and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    # ----- one epoch of steps: no host synchronisation except at log points --------------------
    def train_epoch(self, emit: Emit) -> bool:
        """Train one epoch; return False if the loss became NaN/inf."""
        cfg, data, model = self.cfg, self.data, self.model
        for group in self.opt.param_groups:
            group["lr"] = lr_at(cfg, self.state.epoch)
        model.train()
        n = len(data.y_train)
        perm = torch.randperm(n, generator=self.gen, device=self.device)  # (N,)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen, next_log = 0, time.monotonic() + LOG_INTERVAL_S
        for i in range(self.steps_per_epoch):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]  # (B,)
            x, y = data.x_train[idx], data.y_train[idx]
            with self.autocast():
                logits = model(self.as_input(x))  # (B, classes)
                loss = loss_fn(cfg, logits, y, data.n_classes)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach()
            correct += (logits.detach().argmax(1) == y).sum()
            seen += 1
            self.state.step += 1
            last = i == self.steps_per_epoch - 1
            if last or time.monotonic() >= next_log:
                if not self._log_running(emit, loss_sum, correct, seen, i + 1):
                    return False
                loss_sum.zero_(), correct.zero_()
                seen, next_log = 0, time.monotonic() + LOG_INTERVAL_S
        self.state.epoch += 1
        return True

    def _log_running(
        self, emit: Emit, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, i: int
    ) -> bool:
        loss = loss_sum.item() / seen  # the one host sync, about once a second
        acc = correct.item() / (seen * self.cfg.batch_size)
        epoch = self.state.epoch + i / self.steps_per_epoch
        emit(
            "metrics",
            self.state.step,
            epoch,
            {"loss": loss, "acc": acc, "lr": lr_at(self.cfg, self.state.epoch)},
        )
        return math.isfinite(loss)

    # ----- evaluation and measurement --------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """Mean loss and accuracy over a whole split, in eval mode."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for start in range(0, len(y), EVAL_CHUNK):
            xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
            with self.autocast():
                logits = self.model(self.as_input(xb))
                loss_sum += loss_fn(self.cfg, logits, yb, self.data.n_classes).double() * len(yb)
            correct += (logits.argmax(1) == yb).sum()
        self.model.train()
        return loss_sum.item() / len(y), correct.item() / len(y)

    def eval_metrics(self) -> dict[str, float]:
        train_loss, train_acc = self.evaluate(self.data.x_train, self.data.y_train)
        test_loss, test_acc = self.evaluate(self.data.x_test, self.data.y_test)
        self.state.train_accs.append(train_acc)
        return {
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
        }

    def measure(self) -> list[dict[str, Any]]:
        """Spectra of the measured layers at the current step, as plain rows."""
        cfg = self.cfg
        named = [(layer.name, weight_matrix(layer), layer.m) for layer in self.layers]
        lr = last_lr(cfg, self.state.epoch)
        spectra = spectral.measure(named, cfg.rank_eps, lr, cfg.batch_size, cfg.weight_decay)
        return [
            spectrum_row(i, s, layer.m, cfg.rank_eps)
            for i, (s, layer) in enumerate(zip(spectra, self.layers, strict=True))
        ]

    def diverged_by_guard(self) -> bool:
        return diverged_by_guard(self.cfg, self.state.epoch, self.state.train_accs)

    # ----- checkpoints -----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        payload = {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "step": self.state.step,
            "epoch": self.state.epoch,
            "train_accs": list(self.state.train_accs),
        }
        save_atomic(payload, path)

    def load(self, path: Path) -> None:
        payload = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(payload["model"])
        self.opt.load_state_dict(payload["opt"])
        restore_generator(self.gen, payload["gen"], path)
        self.state = RunState(payload["step"], payload["epoch"], list(payload["train_accs"]))


def diverged_by_guard(cfg: RunConfig, epoch: int, train_accs: list[float]) -> bool:
    """PAPER.md: after diverge_after epochs, the last three train accuracies all <= diverge_acc."""
    accs = train_accs[-3:]
    return epoch > cfg.diverge_after and len(accs) == 3 and max(accs) <= cfg.diverge_acc


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary name, then rename: a killed worker never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def restore_generator(gen: torch.Generator, state: torch.Tensor, path: Path) -> None:
    """Put a saved batch-order generator state back, or say why it cannot be: CPU and CUDA
    generators are different algorithms, so a run resumes exactly only on the kind it started on."""
    if state.numel() != gen.get_state().numel():
        kind = "cpu" if gen.device.type == "cuda" else "cuda"
        raise RuntimeError(
            f"checkpoint {path} was written on a {kind} device and this worker is on "
            f"{gen.device.type}: resume the run with --devices {kind} (batch order would differ)"
        )
    gen.set_state(state.cpu())


def checkpoint_path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / f"step-{step:09d}.pt"


def train(
    cfg: RunConfig,
    device: str,
    emit: Emit,
    *,
    data_dir: Path | None = None,
    ckpt_dir: Path | None = None,
    resume_step: int | None = None,
    graphs: bool = True,
) -> str:
    """Train one run to the end; return its final status ('done' or 'diverged').

    On CUDA the step is one replayed CUDA graph unless ``graphs`` is False (engine.graphs); the
    ``started`` event's ``mode`` says which loop trains the run."""
    from .graphs import graphed_or_eager  # noqa: PLC0415 - graphs imports this module

    data = load_dataset(cfg.dataset, data_dir, device, cfg.train_size, subset_seed=cfg.seed)
    run = Run(cfg, device, data)
    resumed = -1
    if ckpt_dir is not None and resume_step is not None and checkpoint_path(ckpt_dir, resume_step).exists():
        run.load(checkpoint_path(ckpt_dir, resume_step))
        resumed = run.state.step
    trainer, mode = graphed_or_eager(run, graphs)
    emit("started", {"total_steps": run.total_steps, "resumed_from": resumed, "mode": mode})
    if resumed < 0:
        _checkpoint_point(run, emit, ckpt_dir, evaluate=True)
    while run.state.epoch < cfg.epochs:
        if not trainer.train_epoch(emit):
            return "diverged"
        _checkpoint_point(run, emit, ckpt_dir, evaluate=is_eval_epoch(cfg, run.state.epoch))
        if run.diverged_by_guard():
            return "diverged"
    return "done"


def _checkpoint_point(run: Run, emit: Emit, ckpt_dir: Path | None, evaluate: bool) -> None:
    """End of an epoch (or initialisation): evaluate, measure, checkpoint, as the cadence says."""
    step, epoch = run.state.step, float(run.state.epoch)
    if evaluate:
        emit("metrics", step, epoch, run.eval_metrics())
    if is_measure_epoch(run.cfg, run.state.epoch):
        emit("spectra", step, epoch, run.measure())
        if ckpt_dir is not None:
            run.save(checkpoint_path(ckpt_dir, step))
            emit("checkpoint", step)
    emit("progress", step, epoch)
