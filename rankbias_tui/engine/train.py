"""One run's training: the model, optimiser, data and batch order of a single run, its eager step,
and ``train``, which takes a run from its config to the end.

The data set lives on the training device; each step draws its batch by index from a per-epoch
permutation of a seeded generator, so there is no DataLoader and no host synchronisation inside
the step loop: loss and accuracy accumulate in device tensors and are read only at logging points.
``Run`` is the loop's ``Trainer`` for one member (evaluate, measure, save and load checkpoints);
``EagerStep`` is its plain PyTorch step, ``engine.graphs.GraphedStep`` the same step as one CUDA
graph. Does not own: the cadence, divergence checks or events (``engine.loop``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from .. import checkpoints
from ..measures import TEST_ACC, TEST_LOSS, TRAIN_ACC, TRAIN_LOSS
from ..protocol import SpectrumRow
from ..spec import RunConfig
from . import spectral
from .data import DataSet, load_dataset
from .graphs import GraphedStep, running_means
from .loop import PROTOCOL_VERSION, Emit, Loop, Member, epoch_batches, last_lr, lr_at, stamped
from .models import build_model, loss_fn, measured_layers, weight_matrix
from .resume import load_checkpoint, load_latest

EVAL_CHUNK = 1024


class Run:
    """One run's model, optimiser, data and batch generator on one device."""

    def __init__(
        self, cfg: RunConfig, device: str, data: DataSet, run_id: str = "", ckpt_dir: Path | None = None
    ):
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
        self.batches = epoch_batches(len(data.y_train), cfg)
        self.steps_per_epoch = self.batches.steps
        self.members, self.active = [Member(run_id, cfg, ckpt_dir)], [True]
        self.step, self.epoch = 0, 0  # steps taken, completed epochs: what a resume restores
        self.train_accs: list[list[tuple[int, float]]] = [[]]  # the guard's points (engine.loop)

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

    def freeze(self, k: int) -> None:
        self.active[k] = False  # the loop stops here: nothing else to freeze

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

    def eval_metrics(self) -> list[dict[str, float]]:
        train_loss, train_acc = self.evaluate(self.data.x_train, self.data.y_train)
        test_loss, test_acc = self.evaluate(self.data.x_test, self.data.y_test)
        return [{TRAIN_LOSS: train_loss, TRAIN_ACC: train_acc, TEST_LOSS: test_loss, TEST_ACC: test_acc}]

    def measure(self) -> dict[int, list[SpectrumRow] | None]:
        """Spectra of the measured layers at the current step. NaN/inf weights raise ValueError
        (naming the layers): the run fails with that reason rather than ending as diverged."""
        cfg = self.cfg
        named = [(layer.name, weight_matrix(layer), layer.m) for layer in self.layers]
        ctx = spectral.Context.of(
            self.members[0].run_id, cfg, self.step, self.epoch, last_lr(cfg, self.epoch)
        )
        return {0: spectral.measure(named, ctx)}

    def measure_metrics(self) -> dict[str, float]:
        return {}

    # ----- checkpoints -----------------------------------------------------------------------
    def save(self, k: int, path: Path) -> str:
        payload = {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "step": self.step,
            "epoch": self.epoch,
            "train_accs": list(self.train_accs[k]),
            "protocol_version": PROTOCOL_VERSION,
        }
        return save_atomic(payload, path)

    def load(self, path: Path, payload: dict[str, Any] | None = None) -> str | None:
        """Continue from the checkpoint at ``path`` (``payload``: its contents, already read); if
        it was made under another training protocol, change nothing and return why it is not resumed."""
        if payload is None:
            payload, note = load_checkpoint(path, self.device)
            if payload is None:
                return note
        self.model.load_state_dict(payload["model"])
        self.opt.load_state_dict(payload["opt"])
        restore_generator(self.gen, payload["gen"], path)
        self.step, self.epoch = payload["step"], payload["epoch"]
        self.train_accs = [[(int(e), float(a)) for e, a in payload["train_accs"]]]
        return None


class EagerStep:
    """A run's plain PyTorch step: batch by index, forward, backward, ``torch.optim.SGD``."""

    def __init__(self, run: Run):
        self.run = run
        self.i = 0  # the step within the epoch
        self.examples = 0  # in the steps since the running sums were last read
        self.perm = torch.empty(0, dtype=torch.long, device=run.device)  # (N,)
        self.loss_sum = torch.zeros((), device=run.device)
        self.correct = torch.zeros((), device=run.device, dtype=torch.long)

    def begin_epoch(self) -> None:
        run = self.run
        for group in run.opt.param_groups:
            group["lr"] = lr_at(run.cfg, run.epoch + 1)
        run.model.train()
        self.perm = torch.randperm(len(run.data.y_train), generator=run.gen, device=run.device)  # (N,)
        self.i = 0
        self.loss_sum.zero_(), self.correct.zero_()

    def __call__(self) -> None:
        run, b = self.run, self.run.batches.size
        idx = self.perm[self.i * b : self.i * b + run.batches.of_step(self.i)]  # (B,), the tail shorter
        self.i += 1
        self.examples += len(idx)
        x, y = run.data.x_train[idx], run.data.y_train[idx]
        with run.autocast():
            logits = run.model(run.as_input(x))  # (B, classes)
            loss = loss_fn(run.cfg, logits, y, run.data.n_classes)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        self.loss_sum += loss.detach()
        self.correct += (logits.detach().argmax(1) == y).sum()

    def running(self, seen: int) -> list[tuple[float, float]]:
        examples, self.examples = self.examples, 0
        return [running_means(self.loss_sum, self.correct, seen, examples)]


def graphed_or_eager(run: Run, graphs: bool) -> tuple[EagerStep | GraphedStep, str]:
    """The step that trains ``run`` and the mode to report: one CUDA graph on a GPU unless
    ``graphs`` is off or capture fails (then eager, saying why); eager on a CPU."""
    if run.device.type != "cuda":
        return EagerStep(run), "eager"
    if not graphs:
        return EagerStep(run), "eager (graphs off)"
    try:
        return GraphedStep(run), "graphed"
    except torch.cuda.OutOfMemoryError:
        raise  # reported as such; the eager loop would not fit either
    except Exception as err:  # noqa: BLE001 - any other capture problem falls back to the eager loop
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return EagerStep(run), f"eager (graph capture failed: {first[:120]})"


def save_atomic(payload: dict[str, Any], path: Path) -> str:
    """Serialise in memory, then write through a temporary name and a rename
    (``checkpoints.write_atomic``): a killed worker never leaves half a file, a full disk raises
    a plain ``OSError`` (ENOSPC) naming the file and leaves no temporary file behind. Return the
    SHA-256 of the bytes written (sent with the checkpoint's acknowledgement)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return checkpoints.write_atomic(buffer.getbuffer(), path)


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


def train(
    cfg: RunConfig,
    device: str,
    emit: Emit,
    *,
    run_id: str,
    data_dir: Path | None = None,
    ckpt_dir: Path | None = None,
    resume_step: int | None = None,
    graphs: bool = True,
    digests: dict[int, str] | None = None,
) -> str:
    """Train one run to the end (its last event is ``Finished``); return its final status.

    On CUDA the step is one replayed CUDA graph unless ``graphs`` is False (engine.graphs); the
    ``Started`` event's ``mode`` says which step trains the run. ``digests``: step -> the SHA-256
    the store acknowledged for that checkpoint (verified before resuming from it)."""
    set_precision(cfg.precision)
    data = load_dataset(
        cfg.dataset,
        data_dir,
        device,
        cfg.train_size,
        subset_seed=cfg.seed,
        options=cfg.dataset_options,
        code_dir=cfg.code_dir,
    )
    run = Run(cfg, device, data, run_id, ckpt_dir)
    resumed = -1
    start = load_latest([Member(run_id, cfg, ckpt_dir, resume_step, digests or {})], run.device, emit)
    if start.step >= 0:
        run.load(start.paths[0], start.payloads[0])
        resumed = run.step
    step, mode = graphed_or_eager(run, graphs)
    return Loop(run, step, stamped(emit, data.digest)).run(resumed, mode, start.notes)[run_id]


def set_precision(precision: str) -> None:
    """fp32 means fp32: no TF32 in matmuls or convolutions (cuDNN allows it by default); bf16 runs
    (autocast) let the float32 parts use TF32 too. Process-wide: a worker trains one precision."""
    fp32 = precision == "fp32"
    torch.backends.cuda.matmul.allow_tf32 = not fp32
    torch.backends.cudnn.allow_tf32 = not fp32
    torch.set_float32_matmul_precision("highest" if fp32 else "high")
