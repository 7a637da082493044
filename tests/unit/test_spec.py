"""Spec loading: defaults, overrides, grids, and every class of error reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankbias_tui.cli import app
from rankbias_tui.spec import RunConfig, SpecError, load_spec

GOOD = """
default_sweep = "a"
[defaults]
dataset = "digits"
epochs = 3
[sweeps.a]
description = "two by two"
lr = 0.2
grid.batch_size = [4, 8]
grid.weight_decay = [0.0, 1e-3]
seeds = [0, 1]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    return {p.path: f"{p.message} {p.hint}" for p in info.value.problems}


def test_paper_defaults() -> None:
    cfg = RunConfig()
    assert (cfg.model, cfg.depth, cfg.width, cfg.dataset) == ("mlp-bn", 10, 100, "cifar10")
    assert (cfg.epochs, cfg.momentum, cfg.lr_milestones, cfg.lr_gamma) == (500, 0.0, (60, 100, 200), 0.2)
    assert (cfg.loss, cfg.rank_eps, cfg.measure_every) == ("ce", 1e-3, 10)


def test_good_spec_resolves_defaults_and_overrides(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    sweep = spec.sweeps["a"]
    assert spec.default_sweep == "a"
    assert spec.defaults == {"dataset": "digits", "epochs": 3}
    assert sweep.base == {"lr": 0.2}
    assert sweep.grid == {"batch_size": (4, 8), "weight_decay": (0.0, 1e-3)}
    assert sweep.seeds == (0, 1)


def test_unknown_keys_get_did_you_mean(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("lr = 0.2", "learning_rate = 0.2\nbatchsize = 3"))
    assert "sweeps.a.learning_rate" in found and "unknown key" in found["sweeps.a.learning_rate"]
    assert "did you mean 'batch_size'" in found["sweeps.a.batchsize"]


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = """
default_sweep = "quick"
[defaults]
lr = -1.0
modle = "mlp"
[sweeps.quickstart]
model = "resnet-18"
dataset = "cifar"
batch_size = 0
grid.weight_decay = []
grid.lrr = [0.1]
grid.epochs = [1, "two"]
"""
    found = problems(tmp_path, text)
    assert "greater than 0" in found["defaults.lr"]
    assert "did you mean 'model'" in found["defaults.modle"]
    assert "did you mean 'resnet18'" in found["sweeps.quickstart.model"]
    assert "did you mean 'cifar10'" in found["sweeps.quickstart.dataset"]
    assert "greater than or equal to 1" in found["sweeps.quickstart.batch_size"]
    assert "non-empty" in found["sweeps.quickstart.grid.weight_decay"]
    assert (
        "not a run field" in found["sweeps.quickstart.grid.lrr"]
        and "'lr'" in found["sweeps.quickstart.grid.lrr"]
    )
    assert "integer" in found["sweeps.quickstart.grid.epochs[1]"]
    assert "did you mean 'quickstart'" in found["default_sweep"]
    assert len(found) == 9


def test_wrong_types_and_bad_seeds(tmp_path: Path) -> None:
    found = problems(
        tmp_path, GOOD.replace("lr = 0.2", 'lr = "fast"\nlr_milestones = [10, 5]').replace("[0, 1]", "[]")
    )
    assert "valid number" in found["sweeps.a.lr"]
    assert "increasing" in found["sweeps.a.lr_milestones"]
    assert "non-empty list" in found["sweeps.a.seeds"]


def test_syntax_error_and_missing_file(tmp_path: Path) -> None:
    assert "invalid TOML" in problems(tmp_path, "[sweeps.a\nlr=1")["(syntax)"]
    with pytest.raises(SpecError):
        load_spec(tmp_path / "nope.toml")


def test_cli_reports_file_and_path_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = write(tmp_path, GOOD.replace("lr = 0.2", "lr = 0"))
    store = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(spec), "--headless", "--store", str(store)])
    assert result.exit_code == 2
    assert f"{spec}: sweeps.a.lr" in result.output
    assert "Traceback" not in result.output
    assert not store.exists()


def test_shipped_spec_is_valid() -> None:
    spec = load_spec(Path(__file__).parents[2] / "experiments.toml")
    assert spec.default_sweep == "quickstart"
    assert spec.sweeps["quickstart"].base["dataset"] == "digits"
    for name in ("mlp-bn-grid", "vgg16-grid", "resnet18-grid", "wd0-control"):
        assert name in spec.sweeps
