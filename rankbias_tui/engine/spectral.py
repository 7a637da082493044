"""Singular values of weight matrices and the rank measures built on them (pure torch).

Owns: the singular values of W/||W||_F (float64, batched per shape, Gram + eigvalsh on CUDA,
svdvals elsewhere), stable rank, effective rank, the paper's rank bound (torch ``weight_decay``
convention, PAPER.md), and ``measure``, which turns named weight matrices into
``protocol.SpectrumRow`` rows (the only place a measurement's singular values leave torch). Does
not own: the rank_eps and vacuous-bound rules (``measures``, applied here to the numpy singular
values), which layers are measured or how a weight becomes a matrix (``rankbias_tui.engine.models``),
nor when measurements happen. Imports nothing from the engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..measures import rank_at_eps
from ..protocol import SpectrumRow

if TYPE_CHECKING:
    from ..spec import RunConfig

Route = Callable[[torch.Tensor], torch.Tensor]  # (G, d_out, d_in) float64 -> (G, min(d)) descending


def _normalised(mats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack same-shape matrices as float64 divided by their Frobenius norms.

    Returns (G, d_out, d_in) and a (G,) mask of matrices holding non-finite values (zeroed here so
    one bad layer cannot fail the whole batch). Zero matrices stay zero (no division by 0)."""
    x = torch.stack([w.detach().to(torch.float64) for w in mats])  # (G, d_out, d_in), a copy
    bad = ~torch.isfinite(x).all(dim=(-2, -1))  # (G,)
    x[bad] = 0.0
    fro = torch.linalg.matrix_norm(x)  # (G,)
    fro = torch.where(fro > 0, fro, torch.ones_like(fro))
    return x / fro[:, None, None], bad


def _svdvals(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(x)  # (G, min(d_out, d_in)), descending


def _gram_eigvals(x: torch.Tensor) -> torch.Tensor:
    """sqrt of the eigenvalues of the smaller Gram matrix, descending (float64 keeps ~1e-11)."""
    gram = x @ x.mT if x.shape[-2] <= x.shape[-1] else x.mT @ x  # (G, k, k), k = min(d_out, d_in)
    eig = torch.linalg.eigvalsh(gram)  # (G, k), ascending
    return eig.flip(-1).clamp_min(0.0).sqrt()


def _by_group(mats: list[torch.Tensor], route: Route) -> list[torch.Tensor]:
    """Apply ``route`` once per (shape, device) group; results on the CPU, in input order."""
    groups: dict[tuple[tuple[int, ...], torch.device], list[int]] = {}
    for i, w in enumerate(mats):
        if w.ndim != 2:
            raise ValueError(f"matrix {i} has shape {tuple(w.shape)}; expected 2-D")
        groups.setdefault((tuple(w.shape), w.device), []).append(i)
    out: list[torch.Tensor] = [torch.empty(0)] * len(mats)
    with torch.no_grad():
        for idx in groups.values():
            x, bad = _normalised([mats[i] for i in idx])
            s = route(x)  # (G, k)
            s[bad] = math.nan
            for i, row in zip(idx, s.cpu(), strict=True):
                out[i] = row
    return out


def svdvals_route(mats: list[torch.Tensor]) -> list[torch.Tensor]:
    """Singular values of each W/||W||_F via batched ``torch.linalg.svdvals`` in float64."""
    return _by_group(mats, _svdvals)


def gram_route(mats: list[torch.Tensor]) -> list[torch.Tensor]:
    """Singular values of each W/||W||_F via float64 Gram matrices and batched ``eigvalsh``."""
    return _by_group(mats, _gram_eigvals)


def singular_values(mats: list[torch.Tensor]) -> list[torch.Tensor]:
    """For each 2-D W: singular values of W/||W||_F, float64, descending, on the CPU.

    CUDA matrices take the Gram route (3-4x faster there, bench/README.md), others svdvals.
    A zero matrix gives zeros; a matrix with NaN/inf gives NaNs."""
    on_cuda = [i for i, w in enumerate(mats) if w.is_cuda]
    elsewhere = [i for i, w in enumerate(mats) if not w.is_cuda]
    out: list[torch.Tensor] = [torch.empty(0)] * len(mats)
    for idx, route in ((on_cuda, gram_route), (elsewhere, svdvals_route)):
        for i, s in zip(idx, route([mats[i] for i in idx]), strict=True):
            out[i] = s
    return out


# --- scalar measures of a descending singular-value vector of the normalised matrix ------------


def _vec(s: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(s, dtype=torch.float64).flatten()


def stable_rank(s: torch.Tensor | np.ndarray) -> float:
    """sum(s^2) / max(s)^2; 0 for a zero matrix."""
    v = _vec(s)
    top = float(v.max()) if v.numel() else 0.0
    return float((v**2).sum()) / top**2 if top > 0 else 0.0


def effective_rank(s: torch.Tensor | np.ndarray) -> float:
    """exp of the Shannon entropy of p = s/sum(s), with 0 log 0 = 0; 0 for a zero matrix."""
    v = _vec(s)
    total = float(v.sum())
    if not total > 0:
        return 0.0
    p = v[v > 0] / total
    return math.exp(float(-(p * p.log()).sum()))


def rank_bound(m: int, batch_size: int, eps: float, lr: float, weight_decay: float) -> float:
    """The paper's bound m*B*ln(2/eps)/(lr*wd), torch ``weight_decay`` convention; inf when wd == 0.

    Uncapped: callers cap it at min(d_out, d_in) and call it vacuous when it reaches that."""
    if weight_decay == 0:
        return math.inf
    return m * batch_size * math.log(2.0 / eps) / (lr * weight_decay)


@dataclass(frozen=True)
class Context:
    """What a measurement needs besides the weights: whose and when it is (stamped on its rows),
    the rank threshold, and the hyper-parameters of the bound (lr: the one that trained them)."""

    run_id: str
    step: int
    epoch: float
    eps: float
    lr: float
    batch_size: int
    weight_decay: float

    @classmethod
    def of(cls, run_id: str, cfg: RunConfig, step: int, epoch: int, lr: float) -> Context:
        """The context of ``run_id``'s weights at ``step`` (after ``epoch`` epochs), trained with
        ``lr`` (``engine.loop.last_lr``), with ``cfg``'s eps, batch size and weight decay."""
        return cls(run_id, step, float(epoch), cfg.rank_eps, lr, cfg.batch_size, cfg.weight_decay)


def _fro_norms(mats: list[torch.Tensor]) -> list[float]:
    """Frobenius norms in float64, with one device-to-host copy per device (not one per matrix)."""
    out = [0.0] * len(mats)
    for device in {w.device for w in mats}:
        idx = [i for i, w in enumerate(mats) if w.device == device]
        norms = torch.stack([torch.linalg.matrix_norm(mats[i].to(torch.float64)) for i in idx])  # (G,)
        for i, value in zip(idx, norms.cpu().tolist(), strict=True):
            out[i] = value
    return out


def _frozen(s: torch.Tensor) -> np.ndarray:
    array = s.numpy().copy()
    array.flags.writeable = False
    return array


def measure(named: list[tuple[str, torch.Tensor, int]], ctx: Context) -> list[SpectrumRow]:
    """Rows of (name, 2-D weight matrix, m) triples with one batched ``singular_values`` call.

    Reads the weights only (no_grad, copies). Raises ValueError naming layers with NaN/inf weights."""
    with torch.no_grad():
        mats = [w.detach() for _, w, _ in named]
        svals = singular_values(mats)
        fros = _fro_norms(mats)
    bad = [name for (name, _, _), s in zip(named, svals, strict=True) if not bool(torch.isfinite(s).all())]
    if bad:
        raise ValueError(f"non-finite weights in layer(s): {', '.join(bad)}")
    return [
        layer_row(i, name, (int(w.shape[0]), int(w.shape[1])), s, fro, m, ctx)
        for i, ((name, w, m), s, fro) in enumerate(zip(named, svals, fros, strict=True))
    ]


def layer_row(
    index: int, name: str, shape: tuple[int, int], s: torch.Tensor, fro: float, m: int, ctx: Context
) -> SpectrumRow:
    """Every measure of layer ``index`` from the singular values ``s`` of W/||W||_F and ||W||_F."""
    top = float(s[0]) if s.numel() else 0.0
    svals = _frozen(s)  # the one torch -> numpy conversion of a measurement
    return SpectrumRow(
        run_id=ctx.run_id,
        step=ctx.step,
        epoch=ctx.epoch,
        layer_index=index,
        layer=name,
        d_out=shape[0],
        d_in=shape[1],
        m=m,
        svals=svals,
        rank=rank_at_eps(svals, ctx.eps),
        rank_eps=ctx.eps,
        stable_rank=stable_rank(s),
        effective_rank=effective_rank(s),
        spectral_norm=top * fro,  # s are of W/||W||_F, so s_max(W) = s[0] * ||W||_F
        fro_norm=fro,
        bound=rank_bound(m, ctx.batch_size, ctx.eps, ctx.lr, ctx.weight_decay),
    )
