"""Architectures, layer names and the measured-layer selection of ``rankbias_tui.engine.models``."""

from __future__ import annotations

import re

import pytest
import torch

from rankbias_tui.engine.models import build_model, measured_layers, weight_matrix
from rankbias_tui.spec import RunConfig

CIFAR, MNIST, DIGITS = (3, 32, 32), (1, 32, 32), (1, 8, 8)
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


def _cfg(model: str, **kw) -> RunConfig:
    return RunConfig(model=model, **kw)


def _build(cfg: RunConfig, in_shape=CIFAR, n_classes: int = 10) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(cfg, in_shape, n_classes)


@pytest.mark.parametrize(
    "cfg,count",
    [
        (_cfg("mlp-bn", depth=10, width=100), 10),
        (_cfg("mlp", depth=3, width=20), 3),
        (_cfg("resnet18"), 17),
        (_cfg("vgg16"), 13),
        (_cfg("vit", depth=2, width=32), 12),
    ],
)
def test_paper_layer_counts(cfg, count):
    layers = measured_layers(_build(cfg), cfg, CIFAR)
    assert len(layers) == count
    assert all(SAFE_NAME.match(layer.name) for layer in layers)
    assert "head" not in [layer.name for layer in layers]


def test_mlp_names_shapes_and_m():
    cfg = _cfg("mlp-bn", depth=3, width=50)
    layers = measured_layers(_build(cfg), cfg, CIFAR)
    assert [layer.name for layer in layers] == ["fc1", "fc2", "fc3"]
    assert layers[0].shape == (50, 3072) and layers[1].shape == (50, 50)
    assert {layer.m for layer in layers} == {1}


def test_resnet_names_and_m():
    cfg = _cfg("resnet18")
    layers = measured_layers(_build(cfg), cfg, CIFAR)
    names = [layer.name for layer in layers]
    assert names[:3] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    assert names[-1] == "layer4.1.conv2"
    assert layers[0].m == 32 * 32 and layers[0].shape == (64, 27)
    assert layers[-1].m == 4 * 4 and layers[-1].shape == (512, 512 * 9)


def test_vit_linears_are_applied_per_token():
    cfg = _cfg("vit", depth=1, width=30)  # 30 rounds up to 32 (4 heads)
    layers = measured_layers(_build(cfg), cfg, CIFAR)
    names = [layer.name for layer in layers]
    assert names == [f"blocks.0.attn.{p}" for p in "qkv"] + ["blocks.0.attn.out"] + [
        "blocks.0.mlp.fc1",
        "blocks.0.mlp.fc2",
    ]
    assert {layer.m for layer in layers} == {64}  # (32/4)^2 patches
    assert layers[0].shape == (32, 32) and layers[4].shape == (64, 32)


def test_conv_weight_reshape():
    cfg = _cfg("resnet18")
    stem = measured_layers(_build(cfg), cfg, CIFAR)[0]
    mat = weight_matrix(stem)
    weight = stem.module.weight
    assert weight.shape == (64, 3, 3, 3) and mat.shape == (64, 27)
    assert torch.equal(mat, weight.reshape(64, -1))
    assert not mat.requires_grad and mat.data_ptr() == weight.data_ptr()


@pytest.mark.parametrize(
    "cfg,extra",
    [
        (_cfg("mlp", depth=2, width=16), {"head"}),
        (
            _cfg("resnet18"),
            {"head", "layer2.0.shortcut.conv", "layer3.0.shortcut.conv", "layer4.0.shortcut.conv"},
        ),
        (_cfg("vgg16"), {"head"}),
        (_cfg("vit", depth=1, width=16), {"patch", "head"}),
    ],
)
def test_all_adds_head_shortcuts_and_patch(cfg, extra):
    model = _build(cfg)
    paper = {layer.name for layer in measured_layers(model, cfg, CIFAR)}
    cfg_all = cfg.model_copy(update={"measured_layers": "all"})
    every = measured_layers(model, cfg_all, CIFAR)
    assert {layer.name for layer in every} == paper | extra
    assert next(layer for layer in every if layer.name == "head").m == 1


def test_measuring_keeps_training_mode():
    cfg = _cfg("mlp-bn", depth=2, width=8)
    model = _build(cfg)
    measured_layers(model, cfg, CIFAR)
    assert model.training
    model.eval()
    measured_layers(model, cfg, CIFAR)
    assert not model.training


FORWARD_CASES = [
    _cfg("mlp", depth=2, width=16),
    _cfg("mlp-bn", depth=2, width=16),
    _cfg("resnet18"),
    _cfg("vgg16"),
    _cfg("vit", depth=1, width=16),
]


@pytest.mark.parametrize("cfg", FORWARD_CASES, ids=lambda c: c.model)
@pytest.mark.parametrize(
    "in_shape", [CIFAR, MNIST, DIGITS, (1, 28, 28)], ids=["cifar", "mnist", "digits", "28"]
)
def test_forward_shapes(cfg, in_shape):
    model = _build(cfg, in_shape)
    out = model(torch.randn(2, *in_shape))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_vgg_skips_pools_on_small_inputs():
    cfg = _cfg("vgg16")
    pools = [n for n, m in _build(cfg, DIGITS).named_modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert pools == ["pool1", "pool2", "pool3"]  # 8 -> 4 -> 2 -> 1, then no more
    layers = measured_layers(_build(cfg, DIGITS), cfg, DIGITS)
    assert len(layers) == 13 and layers[-1].m == 1


@pytest.mark.parametrize("activation,kind", [("relu", torch.nn.ReLU), ("leaky-relu", torch.nn.LeakyReLU)])
def test_activation_option(activation, kind):
    for model in ("mlp", "resnet18", "vit"):
        cfg = _cfg(model, activation=activation, depth=1, width=8)
        acts = [m for m in _build(cfg).modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
        assert acts and all(type(m) is kind for m in acts)
        if kind is torch.nn.LeakyReLU:
            assert acts[0].negative_slope == 0.01
