"""The catalog of models and data sets (``rankbias_tui.catalog``) against the code that reads it:
its strings name real callables, the spec accepts exactly its rows, its shapes and sizes are what
the loaders return, its packable models are what the pack engine stacks, and the engine builds and
measures a model from its row alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rankbias_tui import catalog, spec
from rankbias_tui.catalog import DATASETS, MODELS, LayerRule, ModelEntry, resolve
from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.fused import PackModel
from rankbias_tui.engine.models import build_model, measured_layers
from rankbias_tui.scheduler import packing
from rankbias_tui.spec import RunConfig

TARGETS = [(f"model {e.name}", e.builder) for e in MODELS.values()] + [
    (f"data set {e.name}", e.loader) for e in DATASETS.values()
]


@pytest.mark.parametrize("row,target", TARGETS, ids=[row for row, _ in TARGETS])
def test_every_builder_and_loader_resolves_to_a_callable(row: str, target: str) -> None:
    assert callable(resolve(target)), f"{row}: {target} is not callable"


def test_resolve_refuses_a_target_without_module_or_attribute() -> None:
    for bad in ("rankbias_tui.engine.models", ":build_mlp", "rankbias_tui.engine.models:"):
        with pytest.raises(ValueError, match="module:attribute"):
            resolve(bad)
    assert resolve("math:prod") is __import__("math").prod


def test_rows_are_keyed_by_their_names() -> None:
    assert all(name == entry.name for name, entry in MODELS.items())
    assert all(name == entry.name for name, entry in DATASETS.items())


def test_the_spec_accepts_exactly_the_catalog_s_rows_in_its_order() -> None:
    # the spec's choices (its messages list them) are the rows; anything with a colon is a user's
    assert spec.CHOICES == {"model": tuple(MODELS), "dataset": tuple(DATASETS)}
    assert RunConfig(model="pkg.mod:build", dataset="mod:load").user_code == ("pkg.mod:build", "mod:load")
    assert RunConfig().model in MODELS and RunConfig().dataset in DATASETS
    for name in MODELS:
        assert RunConfig(model=name).model == name
    for name in DATASETS:
        assert RunConfig(dataset=name).dataset == name
    with pytest.raises(ValueError):
        RunConfig(model="resnet19")
    with pytest.raises(ValueError):
        RunConfig(dataset="cifar11")


@pytest.mark.parametrize("name", [n for n, e in DATASETS.items() if e.offline])
def test_an_offline_data_set_is_what_its_row_says(name: str) -> None:
    entry, data = DATASETS[name], load_dataset(name)
    assert data.name == name
    assert data.in_shape == entry.in_shape
    assert data.x_train[0].numel() == entry.input_size
    assert data.n_classes == entry.classes == int(data.y_train.max()) + 1
    assert len(data.y_train) == entry.train_size


def test_the_offline_data_sets_are_digits_and_synthetic() -> None:
    """Tests and the error for a missing data set rely on these two needing no files."""
    assert [n for n, e in DATASETS.items() if e.offline] == ["digits", "synthetic"]


@pytest.mark.parametrize("name", list(MODELS))
def test_packable_models_are_exactly_those_the_pack_engine_stacks(name: str) -> None:
    cfg = RunConfig(model=name, depth=2, width=8, dataset="digits")
    if MODELS[name].packs:
        pack = PackModel([cfg, cfg.model_copy(update={"seed": 1})], (1, 8, 8), 10, "cpu")
        assert pack.k == 2 and pack.bn == MODELS[name].batch_norm_1d
        assert packing.pack_key(cfg) is not None
    else:
        with pytest.raises(ValueError, match="cannot be packed"):
            PackModel([cfg], (1, 8, 8), 10, "cpu")
        assert packing.pack_key(cfg) is None
    assert catalog.PACKABLE_MODELS == tuple(n for n, e in MODELS.items() if e.packs)


@pytest.mark.parametrize("name", list(MODELS))
def test_batch_norm_1d_is_what_the_model_holds(name: str) -> None:
    cfg = RunConfig(model=name, depth=2, width=8, dataset="digits")
    torch.manual_seed(0)
    model = build_model(cfg, (1, 8, 8), 10)
    has = any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    assert has == MODELS[name].batch_norm_1d


def _toy(cfg: RunConfig, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 6), nn.ReLU(), nn.Linear(6, 5), nn.Linear(5, n_classes))


def test_a_new_model_is_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine builds and measures a model from its row alone: no if-chain names a model."""
    row = ModelEntry("toy", f"{__name__}:_toy", LayerRule("Linear", excluding=("4",)))
    monkeypatch.setitem(MODELS, "toy", row)
    cfg = RunConfig.model_construct(**(RunConfig().model_dump() | {"model": "toy"}))
    model = build_model(cfg, (1, 8, 8), 10)
    assert [layer.name for layer in measured_layers(model, cfg, (1, 8, 8))] == ["1", "3"]
    monkeypatch.setitem(MODELS, "toy", ModelEntry("toy", row.builder, LayerRule("Linear", prefix="3")))
    assert [layer.name for layer in measured_layers(model, cfg, (1, 8, 8))] == ["3"]
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model(RunConfig.model_construct(**(cfg.model_dump() | {"model": "nope"})), (1, 8, 8), 10)
