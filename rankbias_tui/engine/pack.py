"""A fused pack: K compatible runs trained at once, each step one program for all of them.

``Pack`` is both the ``Trainer`` and the ``Step`` that ``engine.loop.Loop`` drives, exactly as it
drives a single run. Each member keeps its identity: its own seed (initial weights, and a generator
drawing the same per-epoch ``randperm`` as a single run), its own lr / momentum / weight decay and
schedule, its own training subset (``data.subset_rows``), metrics, spectra, checkpoints (in the
single run's format) and status; its events carry its run id. A member that ends early (NaN/inf
loss or weights, the guard, a cancel) is frozen while the others go on. The step is one CUDA graph
replay on a GPU (``engine.graphs``). Does not own: the loop, cadence or events (``engine.loop``),
which runs form a pack (``scheduler.packing``) or the stacked model (``engine.fused``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ..measures import MEASURE_SHARE, TEST_ACC, TEST_LOSS, TRAIN_ACC, TRAIN_LOSS
from ..protocol import SpectrumRow
from . import spectral
from .data import DataSet, load_dataset, subset_rows
from .fused import PackModel, buffers_from_state, sgd_state
from .graphs import StepGraph
from .loop import PROTOCOL_VERSION, Emit, Loop, Member, epoch_batches, last_lr, lr_at, stamped
from .models import measured_layers
from .resume import load_latest
from .train import restore_generator, save_atomic, set_precision

EVAL_ELEMENTS = 1 << 24  # floats per evaluation chunk of all members' activations


class Pack:
    """K members on one device, sharing one data set; step, epoch and cadence in lockstep."""

    def __init__(self, members: list[Member], device: str, data: DataSet, graphs: bool = True):
        self.members, self.cfgs = members, [m.cfg for m in members]
        self.device, self.data, self.k = torch.device(device), data, len(members)
        cfg = self.cfgs[0]
        self.model = PackModel(self.cfgs, data.in_shape, data.n_classes, device)
        measured = measured_layers(self.model.template, cfg, data.in_shape)
        self.layers = [(layer.name, layer.m) for layer in measured]  # (name, m) of each measured layer
        self.gens = [torch.Generator(device=self.device).manual_seed(c.seed) for c in self.cfgs]
        self.x = data.x_train.reshape(len(data.y_train), -1)  # (N_all, D), a view
        rows = [subset_rows(len(data.y_train), c.train_size, c.seed) for c in self.cfgs]
        self.shared = cfg.train_size is None or cfg.train_size >= len(data.y_train)
        self.rows = torch.stack(rows).to(self.device)  # (K, n): member k's training examples
        self.batches = epoch_batches(self.rows.shape[1], cfg)  # the same for every member
        self.steps_per_epoch = self.batches.steps
        self.step, self.epoch = 0, 0  # steps taken, completed epochs (all members in lockstep)
        self.train_accs: list[list[tuple[int, float]]] = [[] for _ in members]  # the guard's points
        self.active = [True] * self.k
        self.measure_s, self.started = 0.0, time.monotonic()
        self._static_buffers()
        self.capture_failed = ""
        self.notes: dict[str, str] = {}  # run_id -> why its checkpoint was not resumed
        self.step_fn, self.tail_fn = self._step_fns(graphs and self.device.type == "cuda")

    def _step_fns(self, capture: bool) -> tuple[StepGraph, StepGraph | None]:
        """The graphed steps (full batches; the short last batch, if any, with a graph of its own),
        or eager ones if capture is off or fails (not for lack of memory: that must reach the
        scheduler, which splits the pack)."""
        full, tail = (lambda: self._body(self._batch())), (lambda: self._body(self.tail_perm))
        has_tail = self.batches.tail > 0
        try:
            return (
                StepGraph(full, self._written(), capture=capture),
                StepGraph(tail, self._written(), capture=capture) if has_tail else None,
            )
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - any other capture problem: train eagerly
            self.capture_failed = (str(err).splitlines() or [type(err).__name__])[0][:120]
            return StepGraph(full, [], capture=False), StepGraph(
                tail, [], capture=False
            ) if has_tail else None

    def _static_buffers(self) -> None:
        k, dev, batches = self.k, self.device, self.batches
        self.perm = torch.zeros(batches.full, k, batches.size, dtype=torch.long, device=dev)  # (S, K, B)
        self.tail_perm = torch.zeros(k, batches.tail, dtype=torch.long, device=dev)  # (K, T)
        self.i, self.examples = 0, 0  # host-side: the step within the epoch, examples per member since read
        self.counter = torch.zeros(1, dtype=torch.long, device=dev)
        self.loss_sum = torch.zeros(k, device=dev)  # (K,)
        self.correct = torch.zeros(k, dtype=torch.long, device=dev)  # (K,)

    def _written(self) -> list[Tensor]:
        m = self.model
        bufs = [m.buf] if m.buf is not None else []
        return [m.flat, *bufs, *m.running_mean, *m.running_var, self.counter, self.loss_sum, self.correct]

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfgs[0].epochs

    def mode(self) -> str:
        if self.capture_failed:
            return f"pack of {self.k}, eager (graph capture failed: {self.capture_failed})"
        return f"pack of {self.k}, " + ("graphed" if self.step_fn.graph is not None else "eager")

    # ----- the step: every member's SGD step at once -------------------------------------------
    def _batch(self) -> Tensor:
        """This step's full batches, (K, B) rows of ``self.x``, chosen by the device counter."""
        idx = self.perm.index_select(0, self.counter).view(self.k, -1)  # no host sync
        self.counter += 1
        return idx

    def _body(self, rows: Tensor) -> None:
        """One SGD step of every member on its batch ``rows`` (K, B): a full batch or the tail."""
        k, b = rows.shape
        idx = rows.reshape(-1)  # (K*B,)
        x = self.x.index_select(0, idx).view(k, b, -1)  # (K, B, D)
        y = self.data.y_train.index_select(0, idx).view(k, b)  # (K, B)
        logits = self.model.forward(x)  # (K, B, classes)
        per_member = self._losses(logits, y).mean(1)  # (K,), the mean over the batch's examples
        grads = torch.autograd.grad(per_member.sum(), self.model.params)
        self.model.sgd_(grads)
        with torch.no_grad():
            self.loss_sum += per_member.detach()
            self.correct += (logits.detach().argmax(-1) == y).sum(1)

    def _losses(self, logits: Tensor, y: Tensor) -> Tensor:
        """Per-example losses (K, N), so that a row's mean is the single run's batch loss."""
        k, n, c = logits.shape
        if self.cfgs[0].loss == "mse":
            return (logits - torch.nn.functional.one_hot(y, c).to(logits.dtype)).pow(2).mean(-1)
        return torch.nn.functional.cross_entropy(
            logits.reshape(k * n, c), y.reshape(-1), reduction="none"
        ).view(k, n)

    def begin_epoch(self) -> None:
        """Learning rates of this epoch, and each member's permutation from its own generator."""
        self.model.set_lr(
            [lr_at(c, self.epoch + 1) if a else 0.0 for c, a in zip(self.cfgs, self.active, strict=True)]
        )
        n, (s, k, b), tail = self.rows.shape[1], self.perm.shape, self.batches.tail
        perms = torch.stack([torch.randperm(n, generator=g, device=self.device) for g in self.gens])  # (K, n)
        ordered = self.rows.gather(1, perms)  # (K, n) rows of self.x, in each member's order
        self.perm.copy_(ordered[:, : s * b].reshape(k, s, b).transpose(0, 1))
        self.tail_perm.copy_(ordered[:, s * b : s * b + tail])
        self.counter.zero_(), self.loss_sum.zero_(), self.correct.zero_()
        self.i = 0

    def __call__(self) -> None:
        if self.tail_fn is not None and self.i == self.batches.full:
            self.tail_fn()
        else:
            self.step_fn()
        self.examples += self.batches.of_step(self.i)
        self.i += 1

    def running(self, seen: int) -> list[tuple[float, float]]:
        losses = (self.loss_sum / seen).tolist()  # the one host sync, about once a second
        accs = (self.correct.double() / self.examples).tolist()
        self.loss_sum.zero_(), self.correct.zero_()
        self.examples = 0
        return list(zip(losses, accs, strict=True))

    def freeze(self, k: int) -> None:
        """Member k ended: its learning rate becomes 0 and its weights stay as they are."""
        self.active[k] = False
        self.model.freeze(k)

    def _live(self) -> list[int]:
        return [k for k in range(self.k) if self.active[k]]

    # ----- evaluation, guard, measurement --------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor, rows: Tensor | None) -> tuple[list[float], list[float]]:
        """Each member's mean loss and accuracy over a split in eval mode; x (N, D), y (N,);
        ``rows`` (K, n) picks each member's examples (None: all of them, the same for everyone)."""
        n = len(y) if rows is None else rows.shape[1]
        width = max(self.cfgs[0].width, self.data.n_classes) if rows is None else x.shape[1]
        chunk = max(1, EVAL_ELEMENTS // (self.k * width))
        w1 = self.model.first_matrix() if rows is None else None
        loss_sum = torch.zeros(self.k, dtype=torch.float64, device=self.device)
        correct = torch.zeros(self.k, dtype=torch.long, device=self.device)
        for start in range(0, n, chunk):
            if rows is None:
                yb = y[start : start + chunk].expand(self.k, -1)  # (K, M)
                logits = self.model.forward_shared(x[start : start + chunk], w1)  # (K, M, classes)
            else:
                idx = rows[:, start : start + chunk]  # (K, M)
                yb = y[idx]
                logits = self.model.forward(x[idx], train=False)
            loss_sum += self._losses(logits, yb).double().sum(1)
            correct += (logits.argmax(-1) == yb).sum(1)
        return (loss_sum / n).tolist(), (correct.double() / n).tolist()

    def eval_metrics(self) -> list[dict[str, float]]:
        d = self.data
        train_loss, train_acc = self.evaluate(self.x, d.y_train, None if self.shared else self.rows)
        test_loss, test_acc = self.evaluate(d.x_test.reshape(len(d.y_test), -1), d.y_test, None)
        out = []
        for k in range(self.k):
            names = (TRAIN_LOSS, TRAIN_ACC, TEST_LOSS, TEST_ACC)
            out.append(
                dict(zip(names, (train_loss[k], train_acc[k], test_loss[k], test_acc[k]), strict=True))
            )
        return out

    def measure(self) -> dict[int, list[SpectrumRow] | None]:
        """Spectra of every live member's measured layers, with one ``singular_values`` call
        (batched per shape over members and layers: the Gram route on CUDA); None for a member
        whose weights hold NaN/inf."""
        start, live = time.monotonic(), self._live()
        mats = [self.model.weight(name)[k].detach() for k in live for name, _ in self.layers]
        svals = spectral.singular_values(mats)
        fros = {
            name: torch.linalg.matrix_norm(self.model.weight(name).detach().double()).tolist()
            for name, _ in self.layers
        }
        out: dict[int, list[SpectrumRow] | None] = {}
        for j, k in enumerate(live):
            mine = svals[j * len(self.layers) : (j + 1) * len(self.layers)]
            rows = [
                self._row(k, i, name, m, s, fros[name][k])
                for i, ((name, m), s) in enumerate(zip(self.layers, mine, strict=True))
            ]
            out[k] = rows if all(bool(torch.isfinite(s).all()) for s in mine) else None
        self.measure_s += time.monotonic() - start
        return out

    def _row(self, k: int, i: int, name: str, m: int, s: Tensor, fro: float) -> SpectrumRow:
        cfg = self.cfgs[k]
        d_out, d_in = self.model.weight(name).shape[1:]
        ctx = spectral.Context.of(
            self.members[k].run_id, cfg, self.step, self.epoch, last_lr(cfg, self.epoch)
        )
        return spectral.layer_row(i, name, (int(d_out), int(d_in)), s, fro, m, ctx)

    def measure_metrics(self) -> dict[str, float]:
        """The fraction of the pack's wall time so far spent measuring spectra."""
        return {MEASURE_SHARE: self.measure_s / max(1e-9, time.monotonic() - self.started)}

    # ----- checkpoints: one file per member, in the single run's format ---------------------------
    def save(self, k: int, path: Path) -> str:
        cfg, n_params = self.cfgs[k], len(self.model.slots)
        lr = last_lr(cfg, self.epoch)  # the optimiser's last lr
        bufs = self.model.member_buffers(k) if self.step else None
        payload = {
            "model": self.model.member_state(k, self.step),
            "opt": sgd_state(cfg, lr, n_params, bufs),
            "gen": self.gens[k].get_state(),
            "step": self.step,
            "epoch": self.epoch,
            "train_accs": list(self.train_accs[k]),
            "protocol_version": PROTOCOL_VERSION,
        }
        return save_atomic(payload, path)

    def resume(self, emit: Emit) -> int:
        """Load every member's checkpoint at the latest step all of them can resume from
        (``engine.resume``: a damaged latest file falls back to the one before), made under this
        training protocol; return it, else -1 (``notes`` says why for a member whose checkpoint is
        of another protocol)."""
        start = load_latest(self.members, self.device, emit)
        self.notes = start.notes
        for k, (payload, path) in enumerate(zip(start.payloads, start.paths, strict=True)):
            self.model.load_member(k, payload["model"])
            bufs = buffers_from_state(payload["opt"], len(self.model.slots))
            if bufs is not None:
                self.model.load_member_buffers(k, bufs)
            restore_generator(self.gens[k], payload["gen"], path)
            self.train_accs[k] = [(int(e), float(a)) for e, a in payload["train_accs"]]
        if start.step >= 0:
            self.step, self.epoch = start.payloads[0]["step"], start.payloads[0]["epoch"]
        return start.step


def train_pack(
    members: list[Member],
    device: str,
    emit: Emit,
    *,
    data_dir: Path | None = None,
    graphs: bool = True,
    poll_cancel: Callable[[], list[str]] = list,
) -> dict[str, str]:
    """Train a pack to the end; every member ends with a ``Finished`` event; return id -> status.

    ``poll_cancel`` returns the ids of members to cancel (asked since it was last called)."""
    cfg = members[0].cfg
    set_precision(cfg.precision)
    data = load_dataset(cfg.dataset, data_dir, device)  # the full set: members pick their subsets
    pack = Pack(members, device, data, graphs)
    resumed = pack.resume(emit)
    return Loop(pack, pack, stamped(emit, data.digest), poll_cancel).run(resumed, pack.mode(), pack.notes)
