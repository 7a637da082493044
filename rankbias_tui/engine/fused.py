"""Fused packs of MLPs: K runs of ``mlp`` / ``mlp-bn`` stacked into one program.

Owns: the stacked parameters of a pack (one flat (K, P) float32 buffer, a row per member, whose
slices are the autograd leaves), the batched forward (``torch.baddbmm`` per layer, BatchNorm with
per-member batch statistics and running buffers), the SGD update with per-member lr / momentum /
weight decay as (K, 1) tensors (the update of ``torch.optim.SGD``), freezing a member, and turning a
member into a single run's ``state_dict`` and back, so checkpoints of packs and single runs are
interchangeable. Members are initialised exactly as a single run: ``torch.manual_seed(seed)`` then
``build_model``. Does not own: the pack's training loop (``engine.pack``) or CUDA graphs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..catalog import MODELS, PACKABLE_MODELS
from ..spec import RunConfig
from .models import build_model


@dataclass(frozen=True)
class Slot:
    """One parameter of a member inside the member's row of the flat buffer."""

    name: str  # as in the single run's state_dict, e.g. "fc1.weight"
    shape: tuple[int, ...]
    offset: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class PackModel:
    """K members of one MLP architecture; member k is row k of every stacked tensor."""

    def __init__(self, cfgs: Sequence[RunConfig], in_shape: tuple[int, int, int], n_classes: int, device):
        self.cfgs, self.k, self.device = list(cfgs), len(cfgs), torch.device(device)
        self.depth, self.bn = cfgs[0].depth, MODELS[cfgs[0].model].batch_norm_1d
        self.act = nn.LeakyReLU(0.01) if cfgs[0].activation == "leaky-relu" else nn.ReLU()
        members = [_seeded_model(c, in_shape, n_classes) for c in cfgs]
        self.template = template = members[0]  # member 0's module, for names and measured layers
        self.slots, offset = [], 0
        for name, p in template.named_parameters():
            self.slots.append(Slot(name, tuple(p.shape), offset))
            offset += p.numel()
        self.flat = torch.zeros(self.k, offset, device=self.device)  # (K, P)
        self.leaves = {s.name: self._leaf(s) for s in self.slots}  # views of self.flat
        self.grad = torch.zeros_like(self.flat)  # (K, P), reused every step: no big allocations
        self.buf = torch.zeros_like(self.flat) if any(c.momentum for c in cfgs) else None  # (K, P)
        bns = [m for m in template.modules() if isinstance(m, nn.BatchNorm1d)]
        self.bn_eps, self.bn_momentum = (bns[0].eps, bns[0].momentum) if bns else (1e-5, 0.1)
        width = cfgs[0].width
        self.running_mean = [torch.zeros(self.k, width, device=self.device) for _ in bns]  # (K, H) each
        self.running_var = [torch.ones(self.k, width, device=self.device) for _ in bns]
        self.neg_lr = torch.zeros(self.k, 1, device=self.device)  # -lr per member, (K, 1)
        self.momentum = torch.tensor([[c.momentum] for c in cfgs], device=self.device)  # (K, 1)
        self.wd = torch.tensor([[c.weight_decay] for c in cfgs], device=self.device)  # (K, 1)
        for k, member in enumerate(members):
            self.load_member(k, member.state_dict())

    def _leaf(self, slot: Slot) -> Tensor:
        view = self.flat[:, slot.offset : slot.offset + slot.numel].view(self.k, *slot.shape)
        return view.requires_grad_()  # a leaf sharing the flat buffer's memory

    @property
    def params(self) -> list[Tensor]:
        """The leaves in the single run's ``model.parameters()`` order."""
        return [self.leaves[s.name] for s in self.slots]

    def weight(self, layer: str) -> Tensor:
        return self.leaves[f"{layer}.weight"]  # (K, d_out, d_in)

    # ----- forward: activations feature-major, (K, H, N), so no layer needs a transpose ---------
    def forward(self, x: Tensor, train: bool = True) -> Tensor:
        """x (K, N, D), one batch per member -> logits (K, N, classes) (a strided view)."""
        h = torch.baddbmm(self.leaves["fc1.bias"].unsqueeze(-1), self.weight("fc1"), x.mT)  # (K, H, N)
        return self._tail(self._post(0, h, train), train)

    def forward_shared(self, x: Tensor, w1: Tensor) -> Tensor:
        """Eval mode on the same inputs x (N, D) for every member; w1 = ``first_matrix()``."""
        n = x.shape[0]
        h = torch.addmm(self.leaves["fc1.bias"].reshape(-1, 1), w1, x.T)  # (K*H, N), one GEMM
        return self._tail(self._post(0, h.view(self.k, -1, n), train=False), train=False)

    def first_matrix(self) -> Tensor:
        """fc1's weights of all members as one (K*H, D) matrix (a copy)."""
        w = self.weight("fc1")
        return w.reshape(self.k * w.shape[1], w.shape[2])

    def _tail(self, h: Tensor, train: bool) -> Tensor:
        """Hidden layers 2..L and the head: h (K, H, N) -> logits (K, N, classes)."""
        for i in range(1, self.depth):
            w, b = self.weight(f"fc{i + 1}"), self.leaves[f"fc{i + 1}.bias"]
            h = self._post(i, torch.baddbmm(b.unsqueeze(-1), w, h), train)  # (K, H, N)
        logits = torch.baddbmm(self.leaves["head.bias"].unsqueeze(-1), self.weight("head"), h)
        return logits.mT  # (K, classes, N) -> (K, N, classes)

    def _post(self, i: int, h: Tensor, train: bool) -> Tensor:
        """BatchNorm (mlp-bn) and activation of hidden layer i+1; h (K, H, N)."""
        if self.bn:
            h = self._bn(i, h, train)
        return self.act(h)

    def _bn(self, i: int, h: Tensor, train: bool) -> Tensor:
        """torch's own batch norm on h viewed as (1, K*H, N): channel k*H + j is unit j of member
        k, so each member's statistics are over its own N examples and its running buffers (views
        of (K, H) tensors) update in place."""
        gamma, beta = self.leaves[f"bn{i + 1}.weight"], self.leaves[f"bn{i + 1}.bias"]
        k, width, n = h.shape
        out = F.batch_norm(
            h.reshape(1, k * width, n),
            self.running_mean[i].view(-1),
            self.running_var[i].view(-1),
            gamma.reshape(-1),
            beta.reshape(-1),
            training=train,
            momentum=self.bn_momentum,
            eps=self.bn_eps,
        )
        return out.view(k, width, n)

    # ----- optimiser -----------------------------------------------------------------------------
    @torch.no_grad()
    def sgd_(self, grads: Sequence[Tensor]) -> None:
        """torch.optim.SGD's update, per member: d = g + wd p; buf = mom buf + d; p -= lr buf.

        A zero-initialised buffer gives buf = d on the first step, as torch's clone does."""
        d = torch.cat([gr.reshape(self.k, -1) for gr in grads], dim=1, out=self.grad)  # (K, P)
        d.addcmul_(self.wd, self.flat)
        if self.buf is not None:
            self.buf.mul_(self.momentum).add_(d)  # torch's own two steps: their rounding, too
            d = self.buf
        self.flat.addcmul_(self.neg_lr, d)

    def set_lr(self, lrs: Sequence[float]) -> None:
        self.neg_lr.copy_(-torch.tensor(lrs, dtype=torch.float32).view(self.k, 1))

    @torch.no_grad()
    def freeze(self, k: int) -> None:
        """Stop member k for good: zero weights and hyperparameters keep its rows finite and still."""
        self.flat[k].zero_()
        if self.buf is not None:
            self.buf[k].zero_()
        for mean, var in zip(self.running_mean, self.running_var, strict=True):
            mean[k].zero_(), var[k].fill_(1.0)
        self.neg_lr[k], self.momentum[k], self.wd[k] = 0.0, 0.0, 0.0

    # ----- one member as a single run's state ----------------------------------------------------
    def member_state(self, k: int, step: int) -> dict[str, Tensor]:
        """Member k as the single run's ``model.state_dict()`` (copies on the CPU)."""
        out: dict[str, Tensor] = {}
        for i in range(self.depth):
            out |= self._layer_state(k, f"fc{i + 1}")
            if self.bn:
                out |= self._layer_state(k, f"bn{i + 1}")
                out[f"bn{i + 1}.running_mean"] = self.running_mean[i][k].detach().cpu().clone()
                out[f"bn{i + 1}.running_var"] = self.running_var[i][k].detach().cpu().clone()
                out[f"bn{i + 1}.num_batches_tracked"] = torch.tensor(step)  # one per train step
        return out | self._layer_state(k, "head")

    def _layer_state(self, k: int, layer: str) -> dict[str, Tensor]:
        names = (f"{layer}.weight", f"{layer}.bias")
        return {n: self.leaves[n][k].detach().cpu().clone() for n in names}

    @torch.no_grad()
    def load_member(self, k: int, state: dict[str, Tensor]) -> None:
        """Set member k from a single run's ``model.state_dict()``."""
        for slot in self.slots:
            self.leaves[slot.name][k].copy_(state[slot.name])
        for i in range(len(self.running_mean)):
            self.running_mean[i][k].copy_(state[f"bn{i + 1}.running_mean"])
            self.running_var[i][k].copy_(state[f"bn{i + 1}.running_var"])

    def member_buffers(self, k: int) -> list[Tensor] | None:
        """Member k's momentum buffers per parameter (CPU copies), None without momentum."""
        if self.buf is None or self.cfgs[k].momentum == 0:
            return None
        return [self.buf[k, s.offset : s.offset + s.numel].view(s.shape).cpu().clone() for s in self.slots]

    @torch.no_grad()
    def load_member_buffers(self, k: int, bufs: Sequence[Tensor]) -> None:
        if self.buf is not None:
            for slot, b in zip(self.slots, bufs, strict=True):
                self.buf[k, slot.offset : slot.offset + slot.numel].copy_(b.reshape(-1))


def _seeded_model(cfg: RunConfig, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """The single run's initial model: the same seed, the same construction (train.Run)."""
    if not MODELS[cfg.model].packs:
        raise ValueError(f"model {cfg.model!r} cannot be packed (only {', '.join(PACKABLE_MODELS)})")
    torch.manual_seed(cfg.seed)
    return build_model(cfg, in_shape, n_classes)


def sgd_state(cfg: RunConfig, lr: float, n_params: int, bufs: list[Tensor] | None) -> dict:
    """``torch.optim.SGD.state_dict()`` as the single run's optimiser would have it."""
    params = [nn.Parameter(torch.empty(0)) for _ in range(n_params)]
    opt = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    for p, b in zip(params, bufs or [], strict=False):
        opt.state[p]["momentum_buffer"] = b
    return opt.state_dict()


def buffers_from_state(opt_state: dict, n_params: int) -> list[Tensor] | None:
    """Momentum buffers from a single run's optimiser state_dict; None where it has none."""
    state = opt_state.get("state", {})
    bufs = [state.get(i, {}).get("momentum_buffer") for i in range(n_params)]
    return None if any(b is None for b in bufs) else bufs
