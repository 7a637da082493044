"""A user's own model and data set in the engine (issue 23): built from a temporary directory, the
paper rule generalised (every Linear and Conv*d but the final classifier, convs with m = output
positions), name patterns, and a builder or loader that fails or returns the wrong thing ending
as a ``UserCodeError`` that carries the user's traceback."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rankbias_tui.engine.data import load_dataset
from rankbias_tui.engine.models import build_model, measured_layers, weight_matrix
from rankbias_tui.engine.train import Run
from rankbias_tui.references import UserCodeError
from rankbias_tui.spec import RunConfig

CODE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, c, classes, hidden):
        super().__init__()
        self.encoder = nn.ModuleDict({"conv": nn.Conv2d(c, 4, 3, padding=1), "proj": nn.Linear(4 * 16, hidden)})
        self.norm = nn.BatchNorm1d(hidden)
        self.classifier = nn.Linear(hidden, classes)  # defined before the head is called: order is by call
        self.unused = nn.Linear(hidden, 2)  # never called: not measured by default

    def forward(self, x):  # (N, C, 4, 4)
        x = torch.relu(self.encoder["conv"](x)).flatten(1)
        return self.classifier(torch.relu(self.norm(self.encoder["proj"](x))))


def build(input_shape, num_classes, options):
    if options.get("fail"):
        deep_failure(options["fail"])
    if options.get("not_a_module"):
        return "a string"
    return Net(input_shape[0], num_classes, options.get("hidden", 8))


def deep_failure(why):
    raise RuntimeError(f"my builder broke: {why}")


def load(options):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, 4, 4, generator=gen)
    y = torch.arange(40) % 3
    if options.get("mismatch"):
        return x, y[:-1], x[:10], y[:10]
    if options.get("float_labels"):
        return x, y.float(), x[:10], y[:10]
    if options.get("three"):
        return x, y, x
    if options.get("scalar"):
        return torch.tensor(1.0), y, x, y
    return x, y, x[:10], y[:10]
"""


@pytest.fixture
def code_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "user_net.py").write_text(textwrap.dedent(CODE))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the engine puts the code directory first
    monkeypatch.delitem(sys.modules, "user_net", raising=False)  # each test imports its own copy
    return str(tmp_path)


def config(code_dir: str, **fields: object) -> RunConfig:
    base = dict(model="user_net:build", dataset="user_net:load", code_dir=code_dir, batch_size=8, epochs=1)
    return RunConfig(**(base | fields))


def test_the_user_s_data_and_model_are_built_and_measured_like_a_built_in(code_dir: str) -> None:
    cfg = config(code_dir, model_options={"hidden": 5}, train_size=30)
    data = load_dataset(
        cfg.dataset, train_size=cfg.train_size, options=cfg.dataset_options, code_dir=code_dir
    )
    assert (data.in_shape, data.n_classes, len(data.y_train), len(data.y_test)) == ((2, 4, 4), 3, 30, 10)
    run = Run(cfg, "cpu", data, "r")
    layers = {layer.name: layer for layer in run.layers}
    assert list(layers) == ["encoder.conv", "encoder.proj"]  # every Linear and conv but the classifier
    conv = layers["encoder.conv"]
    assert (conv.shape, conv.m) == ((4, 2 * 3 * 3), 16)  # C_out x C_in*k*k, m = 4x4 output positions
    assert weight_matrix(conv).shape == (4, 18) and (
        layers["encoder.proj"].shape,
        layers["encoder.proj"].m,
    ) == (
        (5, 64),
        1,
    )
    rows = run.measure()[0]
    assert rows is not None and [r.layer for r in rows] == ["encoder.conv", "encoder.proj"]
    assert rows[0].bound > 0 and math.isfinite(rows[0].bound)  # the bound is drawn for convs too


def test_measured_layers_all_and_name_patterns(code_dir: str) -> None:
    data = load_dataset("user_net:load", code_dir=code_dir)

    def names(layers: object) -> list[str]:
        cfg = config(code_dir, measured_layers=layers)
        torch.manual_seed(0)
        model = build_model(cfg, data.in_shape, data.n_classes)
        return [layer.name for layer in measured_layers(model, cfg, data.in_shape)]

    with pytest.raises(RuntimeError, match="layer unused is not used in the forward pass"):
        names("all")
    assert names(("encoder.*", "classifier")) == ["encoder.conv", "encoder.proj", "classifier"]
    assert names(("*.proj",)) == ["encoder.proj"]
    with pytest.raises(ValueError) as err:
        names(("encoder.*", "decoder.*"))
    assert str(err.value) == (
        "measured_layers pattern 'decoder.*' matches no layer of the model; its layers with weight "
        "matrices: encoder.conv, encoder.proj, classifier, unused"
    )


def test_a_builder_that_raises_fails_with_the_user_s_own_traceback(code_dir: str) -> None:
    with pytest.raises(UserCodeError) as err:
        build_model(config(code_dir, model_options={"fail": "on purpose"}), (2, 4, 4), 3)
    text = str(err.value)
    assert text.startswith("model builder 'user_net:build' raised RuntimeError: my builder broke: on purpose")
    assert 'user_net.py", line' in text and "in deep_failure" in text and "in build" in text
    assert "references.py" not in text  # the user's frames, not rankbias's wrapper


def test_a_builder_that_returns_no_module_is_refused(code_dir: str) -> None:
    with pytest.raises(UserCodeError, match="returned str, not a torch.nn.Module"):
        build_model(config(code_dir, model_options={"not_a_module": True}), (2, 4, 4), 3)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"mismatch": True}, "y_train has shape (39,) for x_train of (40, 2, 4, 4): want (40,)"),
        ({"float_labels": True}, "y_train holds torch.float32: want integer class labels"),
        ({"three": True}, "returned tuple, not (x_train, y_train, x_test, y_test)"),
        (
            {"scalar": True},
            "x_train has shape (): want (N, *input_shape) with N >= 1; y_train has shape (40,)",
        ),
    ],
)
def test_a_loader_with_unusable_tensors_says_what_is_wrong(
    code_dir: str, options: dict, message: str
) -> None:
    with pytest.raises(UserCodeError) as err:
        load_dataset("user_net:load", options=options, code_dir=code_dir)
    assert message in str(err.value) and "user_net:load" in str(err.value)
