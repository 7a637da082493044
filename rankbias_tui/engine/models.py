"""The networks a run can train, and which of their weights count as "measured" layers.

Owns: building each architecture of PAPER.md (``mlp``, ``mlp-bn``, CIFAR ``resnet18``, ``vgg16``
with BatchNorm, a small ``vit``) with stable, CSV-safe module names, and the training loss of a
single run; choosing the measured layers (the paper's set, as each model's catalog row states it,
or every weight matrix) with ``m``, the number of times each is applied per example; and viewing a
weight as a (d_out, d_in) matrix. Does not own: which models exist and which builder makes each
(``rankbias_tui.catalog``), seeding (the caller seeds before ``build_model``), training, or any
spectral computation (``engine.spectral``).
"""

from __future__ import annotations

import fnmatch
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rankbias_tui import references
from rankbias_tui.catalog import MODELS, ModelEntry, model_entry, resolve
from rankbias_tui.spec import RunConfig

VIT_HEADS = 4
VIT_MLP_RATIO = 2
VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
RESNET18_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


def _act(cfg: RunConfig) -> nn.Module:
    return nn.LeakyReLU(0.01) if cfg.activation == "leaky-relu" else nn.ReLU()


# --- MLP ---------------------------------------------------------------------------------------


def build_mlp(cfg: RunConfig, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """L x [Linear -> (BatchNorm1d) -> act] -> Linear head; names fc1..fcL, bn1.., act1.., head."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())  # (N, C*H*W)
    d_in = math.prod(in_shape)
    for i in range(1, cfg.depth + 1):
        layers[f"fc{i}"] = nn.Linear(d_in, cfg.width)  # (N, H)
        if MODELS[cfg.model].batch_norm_1d:
            layers[f"bn{i}"] = nn.BatchNorm1d(cfg.width)
        layers[f"act{i}"] = _act(cfg)
        d_in = cfg.width
    layers["head"] = nn.Linear(d_in, n_classes)  # (N, classes)
    return nn.Sequential(layers)


# --- ResNet-18 (CIFAR variant) -----------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN with a residual; a 1x1 conv+BN shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, cfg: RunConfig):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = _act(cfg)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.shortcut = nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(c_out)))
        self.act2 = _act(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C_in, H, W)
        y = self.act1(self.bn1(self.conv1(x)))  # (N, C_out, H/s, W/s)
        y = self.bn2(self.conv2(y))
        return self.act2(y + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: 3x3 stem (stride 1, no max-pool), 4 stages x 2 blocks, avg pool, head."""

    def __init__(self, cfg: RunConfig, in_channels: int, n_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = _act(cfg)
        c_in = 64
        for i, (c_out, stride) in enumerate(RESNET18_STAGES, start=1):
            blocks = [BasicBlock(c_in, c_out, stride, cfg), BasicBlock(c_out, c_out, 1, cfg)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            c_in = c_out
        self.head = nn.Linear(512, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W)
        x = self.act1(self.bn1(self.conv1(x)))  # (N, 64, H, W)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, 512, H/8, W/8)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (N, 512)
        return self.head(x)  # (N, classes)


def build_resnet18(cfg: RunConfig, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """ResNet-18 for inputs of shape (C, H, W) (any size: the pool before the head is adaptive)."""
    return ResNet18(cfg, in_shape[0], n_classes)


# --- VGG-16 with BatchNorm ---------------------------------------------------------------------


def build_vgg16(cfg: RunConfig, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """VGG-16-BN, names conv1..conv13, bn.., act.., pool1..; pools skipped once the map is 1x1."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c_in, side = in_shape[0], min(in_shape[1:])
    n_conv = n_pool = 0
    for item in VGG16_PLAN:
        if item == "M":
            n_pool += 1
            if side >= 2:  # a 2x2 pool of a 1x1 map would fail; skip it on small inputs
                layers[f"pool{n_pool}"] = nn.MaxPool2d(2)
                side //= 2
            continue
        n_conv += 1
        layers[f"conv{n_conv}"] = nn.Conv2d(c_in, int(item), 3, padding=1)
        layers[f"bn{n_conv}"] = nn.BatchNorm2d(int(item))
        layers[f"act{n_conv}"] = _act(cfg)
        c_in = int(item)
    layers["gap"] = nn.AdaptiveAvgPool2d(1)  # (N, 512, 1, 1) whatever the input size
    layers["flatten"] = nn.Flatten()  # (N, 512)
    layers["head"] = nn.Linear(512, n_classes)  # (N, classes)
    return nn.Sequential(layers)


# --- small ViT ---------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention with separate, measurable q/k/v/out Linear projections."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, D) -> (N, heads, T, D/heads)
        n, t, d = x.shape
        return x.view(n, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, D)
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        y = F.scaled_dot_product_attention(q, k, v)  # (N, heads, T, D/heads)
        return self.out(y.transpose(1, 2).flatten(2))  # (N, T, D)


class Mlp(nn.Module):
    """The transformer feed-forward: fc1 (D -> ratio*D), act, fc2 (ratio*D -> D)."""

    def __init__(self, dim: int, cfg: RunConfig):
        super().__init__()
        self.fc1 = nn.Linear(dim, VIT_MLP_RATIO * dim)
        self.act = _act(cfg)
        self.fc2 = nn.Linear(VIT_MLP_RATIO * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, D)
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, cfg: RunConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, VIT_HEADS)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, D)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def vit_patch_size(in_shape: tuple[int, int, int]) -> int:
    """4 if both image sides are divisible by 4, else 2 if by 2, else 1."""
    return next(p for p in (4, 2, 1) if in_shape[1] % p == 0 and in_shape[2] % p == 0)


class ViT(nn.Module):
    """Small ViT: conv patch embedding, learned positions, pre-norm blocks, mean pooling, head."""

    def __init__(self, cfg: RunConfig, in_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        dim = math.ceil(cfg.width / VIT_HEADS) * VIT_HEADS
        p = vit_patch_size(in_shape)
        n_tokens = (in_shape[1] // p) * (in_shape[2] // p)
        self.patch = nn.Conv2d(in_shape[0], dim, p, stride=p)
        self.pos = nn.Parameter(torch.randn(1, n_tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W)
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos  # (N, T, D)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))  # (N, classes)


def build_vit(cfg: RunConfig, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """The small ViT for inputs of shape (C, H, W), patches of ``vit_patch_size(in_shape)``."""
    return ViT(cfg, in_shape, n_classes)


def _entry(model: str) -> ModelEntry:
    if model not in MODELS and not references.is_reference(model):
        raise ValueError(f"unknown model {model!r}")
    return model_entry(model)


def build_model(cfg: RunConfig, in_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The network ``cfg.model`` for inputs of shape ``in_shape`` (C, H, W for the built-ins) by
    its catalog row's builder; PyTorch default init, unseeded. A user's builder is called as
    ``builder(input_shape, num_classes, options)``; what it raises, or a result that is not a
    module, is a ``references.UserCodeError`` carrying the user's traceback."""
    entry = _entry(cfg.model)
    if not entry.user:
        return resolve(entry.builder)(cfg, in_shape, n_classes)
    ref = cfg.model
    builder = references.call("importing model", ref, references.load, ref, cfg.code_dir)
    model = references.call(
        "model builder", ref, builder, tuple(in_shape), n_classes, dict(cfg.model_options)
    )
    if not isinstance(model, nn.Module):
        raise references.UserCodeError(
            f"model builder {ref!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def loss_fn(cfg: RunConfig, logits: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The training objective ``cfg.loss`` of a batch, averaged: cross-entropy or MSE to one-hot."""
    if cfg.loss == "mse":
        return F.mse_loss(logits, F.one_hot(y, n_classes).to(logits.dtype))
    return F.cross_entropy(logits, y)


# --- measured layers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredLayer:
    """A weight whose rank is tracked: ``shape`` = (d_out, d_in) of its matrix view,
    ``m`` = applications per example (1 for a Linear, H_out*W_out for a conv, tokens in a ViT)."""

    name: str
    module: nn.Module
    m: int
    shape: tuple[int, int]


def _has_matrix(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return isinstance(weight, nn.Parameter) and weight.ndim >= 2


def _paper_rule(model: str) -> Callable[[str, nn.Module], bool]:
    """PAPER.md's measured set, as the model's catalog row states it (hidden Linears of an MLP,
    3x3 convs of ResNet-18, all VGG convs, the Linears of the ViT's blocks; a user's model: every
    Linear and Conv*d, the final classifier left out by ``measured_layers``)."""
    rule = _entry(model).paper_layers
    kind = tuple(getattr(nn, k) for k in ((rule.kind,) if isinstance(rule.kind, str) else rule.kind))

    def measured(name: str, mod: nn.Module) -> bool:
        return (
            isinstance(mod, kind)
            and (rule.kernel is None or mod.kernel_size == rule.kernel)
            and name.startswith(rule.prefix)
            and name not in rule.excluding
        )

    return measured


def _uses_per_example(
    model: nn.Module, modules: list[nn.Module], in_shape: tuple[int, ...], calls: list[int] | None = None
) -> list[int]:
    """Count each module's output positions on one dummy example (summed over repeated calls);
    ``calls``, if given, receives the index of each module called, in call order."""
    counts = [0] * len(modules)

    def hook_for(i: int) -> Callable[..., None]:
        def hook(mod: nn.Module, args: object, out: torch.Tensor) -> None:
            counts[i] += out.numel() // mod.weight.shape[0]  # batch of 1: positions per example
            if calls is not None:
                calls.append(i)

        return hook

    handles = [mod.register_forward_hook(hook_for(i)) for i, mod in enumerate(modules)]
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *in_shape), dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return counts


def _by_patterns(patterns: tuple[str, ...], names: list[str]) -> Callable[[str, nn.Module], bool]:
    """Module names matching any of ``patterns`` (shell-style); a pattern that matches none of the
    model's weight layers is an error that lists them."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            raise ValueError(
                f"measured_layers pattern {pattern!r} matches no layer of the model; "
                f"its layers with weight matrices: {', '.join(names) or '(none)'}"
            )
    return lambda name, mod: any(fnmatch.fnmatchcase(name, p) for p in patterns)


def measured_layers(model: nn.Module, cfg: RunConfig, in_shape: tuple[int, ...]) -> list[MeasuredLayer]:
    """The layers to measure (``cfg.measured_layers``: 'paper', 'all' or name patterns), in module
    order. A row whose rule leaves out the final classifier drops the candidate called last."""
    weights = [(n, mod) for n, mod in model.named_modules() if _has_matrix(mod)]
    layers = cfg.measured_layers
    if isinstance(layers, tuple):
        rule = _by_patterns(layers, [n for n, _ in weights])
    else:
        rule = _paper_rule(cfg.model) if layers == "paper" else (lambda name, mod: True)
    chosen = [(n, mod) for n, mod in weights if rule(n, mod)]
    calls: list[int] = []
    uses = _uses_per_example(model, [mod for _, mod in chosen], in_shape, calls)
    if layers == "paper" and _entry(cfg.model).paper_layers.except_classifier and calls:
        # a user's model: the final classifier is the candidate the forward pass calls last, and a
        # module it never calls (an auxiliary head) is not measured rather than an error
        keep = [i for i in range(len(chosen)) if uses[i] and i != calls[-1]]
        chosen, uses = [chosen[i] for i in keep], [uses[i] for i in keep]
    if not chosen:
        raise ValueError(f"no layer of model {cfg.model!r} to measure (measured_layers = {layers!r})")
    out = []
    for (name, mod), m in zip(chosen, uses, strict=True):
        if m == 0:
            raise RuntimeError(f"layer {name} is not used in the forward pass")
        shape = (mod.weight.shape[0], math.prod(mod.weight.shape[1:]))
        out.append(MeasuredLayer(name=name, module=mod, m=m, shape=shape))
    return out


def weight_matrix(layer: MeasuredLayer) -> torch.Tensor:
    """The detached weight as a (d_out, d_in) matrix; conv (C_out, C_in, k, k) -> C_out x C_in*k*k.

    A view of the parameter when it is contiguous (a copy for e.g. channels-last conv weights)."""
    return layer.module.weight.detach().reshape(layer.shape)
