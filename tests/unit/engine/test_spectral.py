"""Singular values (both routes), rank measures and the bound of ``rankbias_tui.engine.spectral``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rankbias_tui.engine.spectral import (
    Context,
    effective_rank,
    gram_route,
    measure,
    rank_bound,
    singular_values,
    stable_rank,
    svdvals_route,
)
from rankbias_tui.measures import is_vacuous, rank_at_eps
from rankbias_tui.protocol import SpectrumRow

SHAPES = [(10, 40), (40, 10), (30, 30), (100, 3072), (64, 27)]


def _random_mats(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) for shape in SHAPES] + [torch.randn(10, 40, generator=gen)]


def _reference(w: torch.Tensor) -> torch.Tensor:
    w = w.to(torch.float64)
    return torch.linalg.svdvals(w / torch.linalg.matrix_norm(w))


def _with_singular_values(s: list[float], d_out: int, d_in: int, seed: int = 0) -> torch.Tensor:
    """U diag(s) V^T with random orthonormal U (d_out x k) and V (d_in x k), float64."""
    gen = torch.Generator().manual_seed(seed)
    k = len(s)
    u, _ = torch.linalg.qr(torch.randn(d_out, k, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d_in, k, generator=gen, dtype=torch.float64))
    return u @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ v.T  # (d_out, d_in)


@pytest.mark.parametrize("route", [svdvals_route, gram_route, singular_values])
def test_routes_match_svdvals(route):
    mats = _random_mats()
    got = route(mats)
    assert len(got) == len(mats)
    for w, s in zip(mats, got, strict=True):
        assert s.dtype == torch.float64 and s.device.type == "cpu"
        assert s.shape == (min(w.shape),)
        assert torch.all(s[:-1] >= s[1:]), "descending"
        torch.testing.assert_close(s, _reference(w), rtol=0, atol=1e-10)


@pytest.mark.parametrize("route", [svdvals_route, gram_route])
def test_zero_matrix_gives_zeros(route):
    (s,) = route([torch.zeros(5, 8)])
    assert torch.equal(s, torch.zeros(5, dtype=torch.float64))


@pytest.mark.parametrize("route", [svdvals_route, gram_route])
def test_non_finite_matrix_gives_nan_without_spoiling_its_group(route):
    bad = torch.ones(4, 6)
    bad[0, 0] = math.nan
    good = torch.randn(4, 6)
    s_bad, s_good = route([bad, good])
    assert torch.isnan(s_bad).all()
    torch.testing.assert_close(s_good, _reference(good), rtol=0, atol=1e-10)


def test_float64_input_is_not_modified():
    w = torch.randn(20, 30, dtype=torch.float64)
    before = w.clone()
    svdvals_route([w])
    gram_route([w])
    assert torch.equal(w, before)


@pytest.mark.parametrize("eps", [1e-3, 1e-2, 5e-2])
def test_rank_at_matches_matrix_rank(eps):
    gen = torch.Generator().manual_seed(1)
    # A low-rank part plus small noise puts singular values on both sides of eps.
    w = torch.randn(60, 4, generator=gen) @ torch.randn(4, 80, generator=gen)
    w = (w + 0.05 * torch.randn(60, 80, generator=gen)).to(torch.float64)
    (s,) = singular_values([w])
    expected = torch.linalg.matrix_rank(w / torch.linalg.matrix_norm(w), atol=eps, rtol=0)
    assert rank_at_eps(s, eps) == int(expected)


@pytest.mark.parametrize("d_out,d_in", [(50, 80), (80, 50), (64, 64)])
def test_known_rank(d_out, d_in):
    # Singular values of the normalised matrix: 7 clearly above 1e-3, 2 just above, 3 just below.
    s = [1.0, 0.8, 0.5, 0.3, 0.1, 0.05, 0.01, 1.2e-3, 1.05e-3, 0.95e-3, 0.8e-3, 1e-5]
    s = (torch.tensor(s, dtype=torch.float64) / torch.tensor(s, dtype=torch.float64).norm()).tolist()
    w = _with_singular_values(s, d_out, d_in)
    expected = sum(v > 1e-3 for v in s)
    for route in (svdvals_route, gram_route):
        (got,) = route([w])
        assert rank_at_eps(got, 1e-3) == expected


def test_stable_and_effective_rank_on_known_vectors():
    n = 7
    (identity,) = singular_values([torch.eye(n)])
    assert stable_rank(identity) == pytest.approx(n)
    assert effective_rank(identity) == pytest.approx(n)
    (rank_one,) = singular_values([torch.outer(torch.randn(9), torch.randn(5))])
    assert stable_rank(rank_one) == pytest.approx(1.0)
    assert effective_rank(rank_one) == pytest.approx(1.0, abs=1e-6)
    # Two equal singular values and one half as large: p = (0.4, 0.4, 0.2).
    v = np.array([2.0, 2.0, 1.0])
    assert stable_rank(v) == pytest.approx(9 / 4)
    assert effective_rank(v) == pytest.approx(math.exp(-(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2))))
    assert stable_rank(np.zeros(3)) == 0.0 and effective_rank(np.zeros(3)) == 0.0


def test_rank_bound():
    assert rank_bound(1, 32, 1e-3, 0.1, 5e-4) == pytest.approx(32 * math.log(2000) / 5e-5)
    assert rank_bound(1024, 8, 1e-2, 0.5, 6e-3) == pytest.approx(1024 * 8 * math.log(200) / 3e-3)
    assert rank_bound(1, 32, 1e-3, 0.1, 0.0) == math.inf


CTX = Context("r", step=7, epoch=2.0, eps=1e-3, lr=0.1, batch_size=8, weight_decay=5e-4)


def test_measure_reports_and_leaves_weights_unchanged():
    gen = torch.Generator().manual_seed(2)
    fc = torch.nn.Parameter(torch.randn(30, 40, generator=gen))
    conv = torch.nn.Parameter(torch.randn(16, 3, 3, 3, generator=gen))
    before = (fc.detach().clone(), conv.detach().clone())
    named = [("fc1", fc, 1), ("conv1", conv.reshape(16, -1), 64)]
    out = measure(named, CTX)
    assert torch.equal(fc.detach(), before[0]) and torch.equal(conv.detach(), before[1])
    assert fc.grad is None and conv.grad is None
    assert all(isinstance(r, SpectrumRow) for r in out)
    assert [(r.layer, r.layer_index, r.m) for r in out] == [("fc1", 0, 1), ("conv1", 1, 64)]
    assert all((r.run_id, r.step, r.epoch, r.rank_eps) == ("r", 7, 2.0, 1e-3) for r in out)
    assert (out[1].d_out, out[1].d_in) == (16, 27) and out[1].svals.shape == (16,)
    assert out[1].svals.dtype == np.float64 and not out[1].svals.flags.writeable
    w = fc.detach().to(torch.float64)
    assert out[0].fro_norm == pytest.approx(float(torch.linalg.matrix_norm(w)))
    assert out[0].spectral_norm == pytest.approx(float(torch.linalg.matrix_norm(w, ord=2)))
    assert out[0].rank == 30
    assert out[1].bound == pytest.approx(rank_bound(64, 8, 1e-3, 0.1, 5e-4))
    assert is_vacuous(out[0].bound, out[0].d_out, out[0].d_in) and math.isfinite(out[0].bound)
    np.testing.assert_allclose(out[0].svals, _reference(fc.detach()).numpy(), atol=1e-10)


def test_measure_names_non_finite_layers():
    bad = torch.ones(4, 4)
    bad[1, 1] = math.inf
    with pytest.raises(ValueError, match="fc2"):
        measure([("fc1", torch.ones(4, 4), 1), ("fc2", bad, 1)], CTX)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gram_route_on_cuda_matches_cpu_svdvals():
    mats = _random_mats(seed=3)
    on_gpu = singular_values([w.cuda() for w in mats])
    on_cpu = svdvals_route(mats)
    for g, c in zip(on_gpu, on_cpu, strict=True):
        assert g.device.type == "cpu"
        torch.testing.assert_close(g, c, rtol=0, atol=1e-10)
