"""Whole-step CUDA graphs: capture one training step once, then replay it every step.

Owns: ``StepGraph`` (capture after a warm-up whose effects are undone, so the trajectory is the one
the eager loop follows), ``sgd_foreach_`` (torch.optim.SGD's update with the learning rate in a
device tensor) and ``GraphedRun``, the graphed step of a single run: the batch is taken by index
from a device-resident permutation with a device step counter, then forward, backward, update, and
on-device sums of loss and accuracy. Whatever changes between steps lives in tensors the graph
reads, so the host only replays; the learning-rate schedule writes a tensor and never re-captures.
With ``capture=False`` (and on a CPU) the same step runs eagerly, which is what the CPU tests run.
Does not own: measurement, logging or checkpoints (``engine.train`` does them between replays).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .train import LOG_INTERVAL_S, Emit, Run, loss_fn, lr_at

WARMUP_STEPS = 3


class StepGraph:
    """Calls ``body`` (no arguments, no result) as one CUDA graph replay, or eagerly."""

    def __init__(self, body: Callable[[], None], state: Sequence[Tensor], capture: bool):
        self.body = body
        self.graph = _capture(body, state) if capture else None

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.body()


def _capture(body: Callable[[], None], state: Sequence[Tensor]) -> torch.cuda.CUDAGraph:
    """Warm up on a side stream (lazy init, allocator), undo the warm-up, record one step.

    ``state`` = every tensor the body writes; the warm-up steps are real steps, so their effect
    on weights, buffers and counters is rolled back. Recording itself runs nothing."""
    saved = [t.detach().clone() for t in state]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    try:
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                body()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            body()
    finally:
        with torch.no_grad():
            for tensor, value in zip(state, saved, strict=True):
                tensor.copy_(value)
    return graph


@torch.no_grad()
def sgd_foreach_(
    params: list[Tensor], grads: Sequence[Tensor], bufs: list[Tensor] | None, neg_lr: Tensor,
    momentum: float, weight_decay: float,
) -> None:  # fmt: skip
    """torch.optim.SGD (no dampening, no nesterov) with lr = -neg_lr, a 0-d device tensor.

    ``bufs`` start at zero: mom * 0 + d = d is torch's first-step clone."""
    d = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay else list(grads)
    if bufs is not None:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, d)
        d = bufs
    torch._foreach_add_(params, torch._foreach_mul(d, neg_lr))


class GraphedRun:
    """A ``Run`` trained by replaying one captured step; same batches, same update as eager."""

    def __init__(self, run: Run, capture: bool = True):
        self.run = run
        n, b = len(run.data.y_train), run.cfg.batch_size
        dev = run.device
        self.perm = torch.zeros(run.steps_per_epoch, min(b, n), dtype=torch.long, device=dev)  # (S, B)
        self.counter = torch.zeros(1, dtype=torch.long, device=dev)  # the step within the epoch
        self.neg_lr = torch.zeros((), device=dev)
        self.loss_sum = torch.zeros((), device=dev)
        self.correct = torch.zeros((), dtype=torch.long, device=dev)
        self.params = list(run.model.parameters())
        self.bufs = self._momentum_buffers()
        run.model.train()
        state = [*self.params, *run.model.buffers(), *(self.bufs or []), self.counter, self.loss_sum]
        self.step = StepGraph(self._body, [*state, self.correct], capture)

    def _momentum_buffers(self) -> list[Tensor] | None:
        """The optimiser's own buffers (zeros if it has none yet), so checkpoints stay its format."""
        if self.run.cfg.momentum == 0:
            return None
        states = [self.run.opt.state[p] for p in self.params]
        for p, state in zip(self.params, states, strict=True):
            state.setdefault("momentum_buffer", torch.zeros_like(p))
        return [state["momentum_buffer"] for state in states]

    def _body(self) -> None:
        run, data = self.run, self.run.data
        idx = self.perm.index_select(0, self.counter).view(-1)  # (B,), no host sync
        self.counter += 1
        x, y = data.x_train.index_select(0, idx), data.y_train.index_select(0, idx)
        with run.autocast():
            logits = run.model(run.as_input(x))  # (B, classes)
            loss = loss_fn(run.cfg, logits, y, data.n_classes)
        grads = torch.autograd.grad(loss, self.params)
        cfg = run.cfg
        sgd_foreach_(self.params, grads, self.bufs, self.neg_lr, cfg.momentum, cfg.weight_decay)
        with torch.no_grad():
            self.loss_sum += loss.detach().float()
            self.correct += (logits.detach().argmax(1) == y).sum()

    def _begin_epoch(self) -> None:
        run = self.run
        lr = lr_at(run.cfg, run.state.epoch)
        for group in run.opt.param_groups:
            group["lr"] = lr  # what a checkpoint records
        self.neg_lr.fill_(-lr)
        perm = torch.randperm(len(run.data.y_train), generator=run.gen, device=run.device)  # (N,)
        self.perm.copy_(perm[: self.perm.numel()].view_as(self.perm))
        self.counter.zero_(), self.loss_sum.zero_(), self.correct.zero_()

    def train_epoch(self, emit: Emit) -> bool:
        """``Run.train_epoch`` by replays; False if the loss became NaN/inf."""
        run = self.run
        self._begin_epoch()
        seen, next_log = 0, time.monotonic() + LOG_INTERVAL_S
        for i in range(run.steps_per_epoch):
            self.step()
            seen += 1
            run.state.step += 1
            if i == run.steps_per_epoch - 1 or time.monotonic() >= next_log:
                if not run._log_running(emit, self.loss_sum, self.correct, seen, i + 1):
                    return False
                self.loss_sum.zero_(), self.correct.zero_()
                seen, next_log = 0, time.monotonic() + LOG_INTERVAL_S
        run.state.epoch += 1
        return True


def graphed_or_eager(run: Run, graphs: bool) -> tuple[Run | GraphedRun, str]:
    """What trains ``run`` (something with ``train_epoch(emit)``) and the mode to report."""
    if run.device.type != "cuda":
        return run, "eager"
    if not graphs:
        return run, "eager (graphs off)"
    try:
        return GraphedRun(run), "graphed"
    except torch.cuda.OutOfMemoryError:
        raise  # reported as such; the eager loop would not fit either
    except Exception as err:  # noqa: BLE001 - any other capture problem falls back to the eager loop
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return run, f"eager (graph capture failed: {first[:120]})"
