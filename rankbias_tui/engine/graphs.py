"""Whole-step CUDA graphs: capture one training step once, then replay it every step.

Owns: ``StepGraph`` (capture on the device of the tensors the step writes, after a warm-up whose
effects are undone, so the trajectory is the one the eager loop follows; running out of memory
while capturing is raised as ``torch.cuda.OutOfMemoryError``, which packs split on),
``sgd_foreach_`` (torch.optim.SGD's update with the learning rate in a device tensor) and
``GraphedStep``, the graphed twin of a single run's ``train.EagerStep``: the batch is taken by index
from a device-resident permutation with a device step counter, then forward, backward, update, and
on-device sums of loss and accuracy; an epoch's short last batch (``engine.loop.epoch_batches``) is
a second graph captured for its shape. Whatever changes between steps lives in tensors the graphs
read, so the host only replays; the learning-rate schedule writes a tensor and never re-captures.
With ``capture=False`` (and on a CPU) the same step runs eagerly, which is what the CPU tests run
(``warm_up`` runs there too). Does not own: the loop, logging, measurement or checkpoints
(``engine.loop`` drives the step and does them between replays). Imports nothing of
``engine.train`` (which picks this step), so it names what it needs of a run in ``SingleRun``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor, nn

from ..spec import RunConfig
from .data import DataSet
from .loop import Batches, lr_at
from .models import loss_fn

WARMUP_STEPS = 3


class StepGraph:
    """Calls ``body`` (no arguments, no result) as one CUDA graph replay, or eagerly.

    ``state`` = every tensor the body writes (all on one device: the graph is captured there)."""

    def __init__(self, body: Callable[[], None], state: Sequence[Tensor], capture: bool):
        self.body, self.state = body, list(state)
        self.graph = capture_step(body, self.state) if capture else None

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.body()


def capture_step(body: Callable[[], None], state: Sequence[Tensor]) -> torch.cuda.CUDAGraph:
    """``body`` captured as a CUDA graph on the device of ``state``; running out of memory while
    capturing raises ``torch.cuda.OutOfMemoryError`` whatever form CUDA gave it (packs split on
    that error, and only on that one)."""
    try:
        return _capture(body, state, state[0].device)
    except torch.cuda.OutOfMemoryError:
        raise
    except RuntimeError as err:
        if is_out_of_memory(err):
            raise torch.cuda.OutOfMemoryError(f"out of memory during graph capture: {err}") from err
        raise


def is_out_of_memory(err: BaseException) -> bool:
    """Whether an error is CUDA running out of memory: ``capture_end`` and the caching allocator
    inside a capture report it as a plain RuntimeError ("CUDA error: out of memory", error 2)."""
    text = str(err).lower()
    return isinstance(err, torch.cuda.OutOfMemoryError) or any(
        sign in text for sign in ("out of memory", "cudaerrormemoryallocation", "cuda error 2:")
    )


def _capture(body: Callable[[], None], state: Sequence[Tensor], device: torch.device) -> torch.cuda.CUDAGraph:
    """Warm up on a side stream (lazy init, allocator), undo the warm-up, record one step.

    Streams, the warm-up and the capture all belong to ``device`` (the current device may be
    another one when a run trains in-process on ``cuda:1``). Recording itself runs nothing."""
    with torch.cuda.device(device):
        current = torch.cuda.current_stream(device)
        saved = [t.detach().clone() for t in state]  # on the current stream
        side = torch.cuda.Stream(device=device)
        side.wait_stream(current)  # the copies above are done before the side stream writes
        try:
            with torch.cuda.stream(side):
                warm_up(body, state, saved)
            current.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # An explicit capture stream: torch's default one is made once, on whichever device
            # was current at the first capture in the process.
            with torch.cuda.graph(graph, stream=side):
                body()
        finally:
            # The warm-up may have failed part-way with work still queued on the side stream:
            # wait for it before the rollback writes the same tensors on the current stream.
            current.wait_stream(side)
            _restore(state, saved)
    return graph


def warm_up(body: Callable[[], None], state: Sequence[Tensor], saved: Sequence[Tensor]) -> None:
    """``WARMUP_STEPS`` real steps, each from the saved state, which is then put back.

    Each step starts from the same state, so each reads row 0 of the epoch's batch table, which
    holds as few rows as there are steps in an epoch (one, with a small training set or a large
    batch): warm-up steps taken one after another would index past it."""
    for _ in range(WARMUP_STEPS):
        body()
        _restore(state, saved)


@torch.no_grad()
def _restore(state: Sequence[Tensor], saved: Sequence[Tensor]) -> None:
    for tensor, value in zip(state, saved, strict=True):
        tensor.copy_(value)


@torch.no_grad()
def sgd_foreach_(
    params: list[Tensor],
    grads: Sequence[Tensor],
    bufs: list[Tensor] | None,
    neg_lr: Tensor,
    momentum: float,
    weight_decay: float,
) -> None:
    """torch.optim.SGD (no dampening, no nesterov) with lr = -neg_lr, a 0-d device tensor.

    ``bufs`` start at zero: mom * 0 + d = d is torch's first-step clone."""
    d = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay else list(grads)
    if bufs is not None:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, d)
        d = bufs
    torch._foreach_add_(params, torch._foreach_mul(d, neg_lr))


class SingleRun(Protocol):
    """What a single run's step uses of ``engine.train.Run``."""

    cfg: RunConfig
    device: torch.device
    data: DataSet
    model: nn.Module
    opt: torch.optim.SGD
    gen: torch.Generator
    epoch: int
    batches: Batches

    def autocast(self) -> torch.autocast: ...

    def as_input(self, x: Tensor) -> Tensor: ...


def running_means(loss_sum: Tensor, correct: Tensor, seen: int, examples: int) -> tuple[float, float]:
    """A single run's mean batch loss over ``seen`` steps and accuracy over their ``examples``, from
    on-device sums (read with one host sync), which are then zeroed: the running metrics of the
    eager and graphed steps."""
    out = loss_sum.item() / seen, correct.item() / examples
    loss_sum.zero_(), correct.zero_()
    return out


class GraphedStep:
    """A run's step as one captured CUDA graph replay; same batches, same update as the eager step.

    An epoch whose last batch is short replays a second graph, captured for the tail's shape."""

    def __init__(self, run: SingleRun, capture: bool = True):
        self.run, batches, dev = run, run.batches, run.device
        self.perm = torch.zeros(batches.full, batches.size, dtype=torch.long, device=dev)  # (S, B)
        self.tail_perm = torch.zeros(batches.tail, dtype=torch.long, device=dev)  # (T,), T = 0: none
        self.counter = torch.zeros(1, dtype=torch.long, device=dev)  # the step within the epoch
        self.neg_lr = torch.zeros((), device=dev)
        self.loss_sum = torch.zeros((), device=dev)
        self.correct = torch.zeros((), dtype=torch.long, device=dev)
        self.params = list(run.model.parameters())
        self.bufs = self._momentum_buffers()
        self.i, self.examples = 0, 0  # host-side: the step within the epoch, examples since read
        run.model.train()
        state = [*self.params, *run.model.buffers(), *(self.bufs or []), self.counter, self.loss_sum]
        state.append(self.correct)
        self.replay = StepGraph(lambda: self._body(self._batch()), state, capture)
        self.replay_tail = (
            StepGraph(lambda: self._body(self.tail_perm), state, capture) if batches.tail else None
        )

    def _momentum_buffers(self) -> list[Tensor] | None:
        """The optimiser's own buffers (zeros if it has none yet), so checkpoints stay its format."""
        if self.run.cfg.momentum == 0:
            return None
        states = [self.run.opt.state[p] for p in self.params]
        for p, state in zip(self.params, states, strict=True):
            state.setdefault("momentum_buffer", torch.zeros_like(p))
        return [state["momentum_buffer"] for state in states]

    def _batch(self) -> Tensor:
        """This step's full batch of indices, (B,), chosen by the device counter: no host sync."""
        idx = self.perm.index_select(0, self.counter).view(-1)
        self.counter += 1
        return idx

    def _body(self, idx: Tensor) -> None:
        run, data = self.run, self.run.data
        x, y = data.x_train.index_select(0, idx), data.y_train.index_select(0, idx)
        with run.autocast():
            logits = run.model(run.as_input(x))  # (B, classes)
            loss = loss_fn(run.cfg, logits, y, data.n_classes)  # the mean over this batch's examples
        grads = torch.autograd.grad(loss, self.params)
        cfg = run.cfg
        sgd_foreach_(self.params, grads, self.bufs, self.neg_lr, cfg.momentum, cfg.weight_decay)
        with torch.no_grad():
            self.loss_sum += loss.detach().float()
            self.correct += (logits.detach().argmax(1) == y).sum()

    def begin_epoch(self) -> None:
        run, b = self.run, self.run.batches
        lr = lr_at(run.cfg, run.epoch + 1)
        for group in run.opt.param_groups:
            group["lr"] = lr  # what a checkpoint records
        self.neg_lr.fill_(-lr)
        perm = torch.randperm(len(run.data.y_train), generator=run.gen, device=run.device)  # (N,)
        self.perm.copy_(perm[: self.perm.numel()].view_as(self.perm))
        self.tail_perm.copy_(perm[self.perm.numel() : self.perm.numel() + b.tail])
        self.counter.zero_(), self.loss_sum.zero_(), self.correct.zero_()
        self.i = 0

    def __call__(self) -> None:
        batches = self.run.batches
        if self.replay_tail is not None and self.i == batches.full:
            self.replay_tail()
        else:
            self.replay()
        self.examples += batches.of_step(self.i)
        self.i += 1

    def running(self, seen: int) -> list[tuple[float, float]]:
        examples, self.examples = self.examples, 0
        return [running_means(self.loss_sum, self.correct, seen, examples)]
