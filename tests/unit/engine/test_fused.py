"""The stacked pack model (engine.fused): each member is exactly its own single-run model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rankbias_tui.engine.fused import PackModel, buffers_from_state, sgd_state
from rankbias_tui.engine.models import build_model
from rankbias_tui.spec import RunConfig

IN_SHAPE, CLASSES = (1, 8, 8), 10
HYPER = [dict(lr=0.1, weight_decay=1e-3), dict(lr=0.05, momentum=0.9, weight_decay=5e-3), dict(lr=0.2)]


def configs(model: str = "mlp-bn", **fields) -> list[RunConfig]:
    base = dict(model=model, depth=3, width=12, dataset="digits") | fields
    return [RunConfig(**base, seed=seed, **hyper) for seed, hyper in enumerate(HYPER)]


def singles(cfgs: list[RunConfig]) -> list[torch.nn.Module]:
    out = []
    for cfg in cfgs:
        torch.manual_seed(cfg.seed)
        out.append(build_model(cfg, IN_SHAPE, CLASSES))
    return out


def batch(k: int, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return torch.randn(k, n, 64, generator=gen), torch.randint(0, CLASSES, (k, n), generator=gen)


def test_members_start_as_seeded_single_runs() -> None:
    cfgs = configs()
    pack = PackModel(cfgs, IN_SHAPE, CLASSES, "cpu")
    for k, model in enumerate(singles(cfgs)):
        expected, got = model.state_dict(), pack.member_state(k, step=0)
        assert list(got) == list(expected)
        assert all(torch.equal(got[name], expected[name]) for name in expected)


@pytest.mark.parametrize("model", ["mlp", "mlp-bn"])
def test_forward_and_running_stats_match_each_member(model: str) -> None:
    cfgs = configs(model, activation="leaky-relu")
    pack, models = PackModel(cfgs, IN_SHAPE, CLASSES, "cpu"), singles(cfgs)
    x, _ = batch(len(cfgs))
    logits = pack.forward(x)  # (K, N, classes), training mode
    for k, m in enumerate(models):
        torch.testing.assert_close(logits[k], m(x[k]), rtol=1e-5, atol=1e-6)
        state = pack.member_state(k, step=1)
        for name, value in m.state_dict().items():
            if "running" in name:
                torch.testing.assert_close(state[name], value, rtol=1e-5, atol=1e-6)
    shared = pack.forward_shared(x[0], pack.first_matrix())  # eval mode, the same inputs for all
    gathered = pack.forward(x[0].expand(len(cfgs), -1, -1), train=False)
    for k, m in enumerate(models):
        m.eval()
        torch.testing.assert_close(shared[k], m(x[0]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gathered[k], m(x[0]), rtol=1e-5, atol=1e-6)


def test_sgd_matches_torch_optim_per_member() -> None:
    cfgs = configs()
    pack, models = PackModel(cfgs, IN_SHAPE, CLASSES, "cpu"), singles(cfgs)
    opts = [torch.optim.SGD(m.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
            for m, c in zip(models, cfgs, strict=True)]  # fmt: skip
    pack.set_lr([c.lr for c in cfgs])
    for step in range(5):
        x, y = batch(len(cfgs), n=8 + step)
        logits = pack.forward(x)
        per_member = F.cross_entropy(logits.reshape(-1, CLASSES), y.reshape(-1), reduction="none")
        pack.sgd_(torch.autograd.grad(per_member.view(len(cfgs), -1).mean(1).sum(), pack.params))
        for k, (m, opt) in enumerate(zip(models, opts, strict=True)):
            opt.zero_grad()
            F.cross_entropy(m(x[k]), y[k]).backward()
            opt.step()
    for k, m in enumerate(models):
        state = pack.member_state(k, step=5)
        for name, value in m.state_dict().items():
            torch.testing.assert_close(state[name], value, rtol=1e-5, atol=1e-6, msg=f"member {k} {name}")


def test_freeze_stops_one_member_and_keeps_the_rest() -> None:
    cfgs = configs()
    frozen, plain = PackModel(cfgs, IN_SHAPE, CLASSES, "cpu"), PackModel(cfgs, IN_SHAPE, CLASSES, "cpu")
    for pack in (frozen, plain):
        pack.set_lr([c.lr for c in cfgs])
    frozen.freeze(1)
    for _ in range(3):
        x, y = batch(len(cfgs))
        for pack in (frozen, plain):
            loss = F.cross_entropy(pack.forward(x).reshape(-1, CLASSES), y.reshape(-1))
            pack.sgd_(torch.autograd.grad(loss, pack.params))
    assert torch.equal(frozen.flat[1], torch.zeros_like(frozen.flat[1]))
    assert torch.isfinite(frozen.forward(x)).all()
    torch.testing.assert_close(frozen.flat[[0, 2]], plain.flat[[0, 2]], rtol=0, atol=0)


def test_member_round_trip_through_a_single_run_checkpoint() -> None:
    cfgs = configs()
    pack = PackModel(cfgs, IN_SHAPE, CLASSES, "cpu")
    torch.nn.init.normal_(pack.buf)
    k, n = 1, len(pack.slots)
    opt_state = sgd_state(cfgs[k], 0.05, n, pack.member_buffers(k))
    model = build_model(cfgs[k], IN_SHAPE, CLASSES)
    model.load_state_dict(pack.member_state(k, step=3))
    real = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9, weight_decay=5e-3)
    real.load_state_dict(opt_state)  # what train.Run.load does with a pack's checkpoint
    assert real.param_groups[0]["lr"] == 0.05
    other = PackModel(cfgs, IN_SHAPE, CLASSES, "cpu")
    other.load_member(0, model.state_dict())
    other.load_member_buffers(0, buffers_from_state(real.state_dict(), n))
    assert torch.equal(other.flat[0], pack.flat[k]) and torch.equal(other.buf[0], pack.buf[k])
    assert buffers_from_state(sgd_state(cfgs[0], 0.1, n, None), n) is None


def test_only_mlps_pack() -> None:
    with pytest.raises(ValueError, match="cannot be packed"):
        PackModel([RunConfig(model="vgg16")], (3, 32, 32), 10, "cpu")
