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


# ----- issue 9: values that used to pass `validate` and fail (or silently change) later ---------
BAD_VALUE = """
[sweeps.a]
dataset = "digits"
{line}
"""


@pytest.mark.parametrize(
    ("line", "path", "words"),
    [
        ("lr = inf", "sweeps.a.lr", "finite"),
        ("weight_decay = nan", "sweeps.a.weight_decay", "finite"),
        ("epochs = 9223372036854775807", "sweeps.a.epochs", "less than or equal"),
        ('lr = "0.1"', "sweeps.a.lr", "valid number"),
        ("width = true", "sweeps.a.width", "valid integer"),
        ("epochs = 3.0", "sweeps.a.epochs", "valid integer"),
        ("batch_size = 2000", "sweeps.a.batch_size", "larger than the training set (1437"),
        ("train_size = 100\nbatch_size = 128", "sweeps.a.batch_size", "(100 examples)"),
        ("grid.batch_size = [8, 4096]", "sweeps.a.grid.batch_size[1]", "larger than the training set"),
        ("grid.train_size = [50, 500]\nbatch_size = 64", "sweeps.a.batch_size", "(50 examples)"),
        ("seeds = [true]", "sweeps.a.seeds", "integers"),
        ("seeds = [4294967296]", "sweeps.a.seeds", "integers"),
        ("lr_milestones = [2.0]", "sweeps.a.lr_milestones[0]", "valid integer"),
    ],
)
def test_values_that_would_fail_later_are_refused(tmp_path: Path, line: str, path: str, words: str) -> None:
    found = problems(tmp_path, BAD_VALUE.format(line=line))
    assert path in found, found
    assert words in found[path]


def test_a_batch_within_every_training_set_passes(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BAD_VALUE.format(line="batch_size = 1437\nlr = 1")))
    assert spec.sweeps["a"].base["batch_size"] == 1437


@pytest.mark.parametrize("name", ["::x", "../../escape", ".hidden", "a b", "[/red]oops"])
def test_unsafe_sweep_names_are_refused(tmp_path: Path, name: str) -> None:
    found = problems(tmp_path, f'[sweeps."{name}"]\ndataset = "digits"\n')
    assert f"sweeps.{name}" in found
    assert "letters, digits" in found[f"sweeps.{name}"]


def test_safe_sweep_names_pass(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, '[sweeps."my_sweep-2.b"]\ndataset = "digits"\n'))
    assert list(spec.sweeps) == ["my_sweep-2.b"]


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary\x00", bytes(range(256))])
def test_a_binary_spec_is_one_line_and_exit_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "experiments.toml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert [str(p) for p in info.value.problems] == ["(file): is not UTF-8 text (a binary file?)"]
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_validate_counts_a_million_run_grid_without_expanding_it(tmp_path: Path) -> None:
    axis = ", ".join(str(i) for i in range(1, 101))
    text = f'[sweeps.huge]\ndataset = "digits"\ngrid.epochs = [{axis}]\ngrid.depth = [{axis}]\ngrid.width = [{axis}]\n'
    result = CliRunner().invoke(app, ["validate", str(write(tmp_path, text))], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "1,000,000" in result.output
