"""The models and data sets a run can name: one row each (no torch here).

Owns: ``MODELS`` and ``DATASETS``, the one table of each, and ``resolve``, which imports the code
a row names only when it is used. Everything else reads these rows: the spec takes its allowed
``model`` and ``dataset`` values and the training-set sizes from them, packing its shapes and which
models pack, the engine its builders, loaders and the layers the paper rule measures. Does not own:
the networks or the data themselves (``engine.models``, ``engine.data``), which the rows name as
``"module:attribute"`` strings so that importing this module stays torch-free.

A new model is one ``ModelEntry`` in ``MODELS``: a builder ``builder(cfg, in_shape, n_classes)``
returning an ``nn.Module`` (in ``engine.models`` or any importable module), and which of its
weights the paper rule measures. A new data set is one ``DatasetEntry`` in ``DATASETS``: a loader
``loader(name, data_dir)`` returning an ``engine.data.DataSet``, with its input shape, classes
and training-set size (tests check the offline ones against what the loader returns). The order
of the rows is the order the spec lists them in its messages.

A user's own model (``model = "module:callable"`` in a spec, ``rankbias_tui.references``) is one
more row, made when it is asked for (``model_entry``): its builder is the reference, called as
``builder(input_shape, num_classes, options)``; the paper rule, generalised, measures every Linear
and Conv*d except the final classifier; it never packs. A user's data set has no row: its shape,
classes and size are known only once its loader has run (``engine.data``).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from .references import is_reference


@dataclass(frozen=True)
class LayerRule:
    """Which weights of a model the paper rule (PAPER.md) measures: the modules of ``kind`` (a
    ``torch.nn`` class name, or several), only ``kernel``-sized ones if given (convs), only those
    whose name starts with ``prefix``, except the names in ``excluding`` and, with
    ``except_classifier``, the last of them the forward pass calls (the final classifier)."""

    kind: str | tuple[str, ...]
    kernel: tuple[int, int] | None = None
    prefix: str = ""
    excluding: tuple[str, ...] = ()
    except_classifier: bool = False


@dataclass(frozen=True)
class ModelEntry:
    """One architecture a run can train."""

    name: str
    builder: str  # "module:callable", called as builder(cfg, in_shape, n_classes) -> nn.Module
    paper_layers: LayerRule
    packs: bool = False  # the fused-pack engine (engine.fused) can stack runs of it
    batch_norm_1d: bool = False  # BatchNorm1d after each hidden layer: a last batch of 1 is dropped
    user: bool = False  # a user's reference: builder(input_shape, num_classes, options)


@dataclass(frozen=True)
class DatasetEntry:
    """One data set a run can train on, as its loader returns it (normalised, padded)."""

    name: str
    loader: str  # "module:callable", called as loader(name, data_dir) -> engine.data.DataSet
    in_shape: tuple[int, int, int]  # (C, H, W) of one input
    classes: int
    train_size: int  # examples in the training split, before a run's ``train_size``
    offline: bool = False  # needs no files and no network

    @property
    def input_size(self) -> int:
        """C*H*W: the width of one flattened input."""
        return math.prod(self.in_shape)


_MODELS = "rankbias_tui.engine.models"
_DATA = "rankbias_tui.engine.data"

MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        # MLPs: depth x [Linear -> (BatchNorm1d) -> act] -> Linear head; the hidden Linears measured
        ModelEntry("mlp", f"{_MODELS}:build_mlp", LayerRule("Linear", excluding=("head",)), packs=True),
        ModelEntry(
            "mlp-bn",
            f"{_MODELS}:build_mlp",
            LayerRule("Linear", excluding=("head",)),
            packs=True,
            batch_norm_1d=True,
        ),
        # CIFAR ResNet-18: its 3x3 convs, not the 1x1 shortcuts
        ModelEntry("resnet18", f"{_MODELS}:build_resnet18", LayerRule("Conv2d", kernel=(3, 3))),
        # VGG-16 with BatchNorm: every conv
        ModelEntry("vgg16", f"{_MODELS}:build_vgg16", LayerRule("Conv2d")),
        # small ViT: the Linears of its transformer blocks
        ModelEntry("vit", f"{_MODELS}:build_vit", LayerRule("Linear", prefix="blocks.")),
    )
}

# Training-set sizes: torchvision's splits, the 80% stratified split of scikit-learn's 1,797 digits,
# and the synthetic set of engine.data (CIFAR-shaped Gaussians labelled by a random teacher).
# MNIST-like images are padded from 28x28 to 32x32.
_TV = f"{_DATA}:load_torchvision"
DATASETS: dict[str, DatasetEntry] = {
    e.name: e
    for e in (
        DatasetEntry("cifar10", _TV, (3, 32, 32), classes=10, train_size=50_000),
        DatasetEntry("cifar100", _TV, (3, 32, 32), classes=100, train_size=50_000),
        DatasetEntry("mnist", _TV, (1, 32, 32), classes=10, train_size=60_000),
        DatasetEntry("fashion-mnist", _TV, (1, 32, 32), classes=10, train_size=60_000),
        DatasetEntry("svhn", _TV, (3, 32, 32), classes=10, train_size=73_257),
        DatasetEntry("digits", f"{_DATA}:load_digits", (1, 8, 8), classes=10, train_size=1_437, offline=True),
        DatasetEntry(
            "synthetic", f"{_DATA}:make_synthetic", (3, 32, 32), classes=10, train_size=4_096, offline=True
        ),
    )
}

MODEL_NAMES = tuple(MODELS)
DATASET_NAMES = tuple(DATASETS)
PACKABLE_MODELS = tuple(name for name, entry in MODELS.items() if entry.packs)


# A user's model: every Linear and Conv*d weight except the final classifier (the paper's rule,
# generalised: PAPER.md measures the hidden layers and leaves out the head).
USER_LAYERS = LayerRule(("Linear", "Conv1d", "Conv2d", "Conv3d"), except_classifier=True)


def model_entry(name: str) -> ModelEntry:
    """The row of a built-in model, or the row of a user's ``"module:callable"`` reference;
    KeyError for an unknown name."""
    if is_reference(name):
        return ModelEntry(name, name, USER_LAYERS, user=True)
    return MODELS[name]


def resolve(target: str) -> Any:
    """The object a ``"package.module:attribute"`` string names, importing the module now."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{target!r} is not 'module:attribute'")
    return getattr(importlib.import_module(module), attr)
