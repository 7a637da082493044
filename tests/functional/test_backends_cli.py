"""``rankbias run --backend`` and ``--dry-run`` without a cluster: Ray missing is exit 2 with the
line that installs it; a dry run prints the packs and where they go, and starts and writes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankbias_tui.cli import app

GOLDEN_SPEC = Path(__file__).resolve().parents[1] / "data" / "golden" / "spec.toml"
runner = CliRunner()


@pytest.mark.parametrize("extra", [["--headless"], ["--dry-run"]])
def test_the_ray_backend_without_ray_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    args = ["run", str(GOLDEN_SPEC), "--store", str(tmp_path), "--backend", "ray", "--devices", "cpu", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "pip install 'rankbias-tui[ray]'" in result.output
    assert not (tmp_path / "rankbias.sqlite").exists()


def test_an_unknown_backend_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["run", str(GOLDEN_SPEC), "--store", str(tmp_path), "--headless", "--backend", "k8s"]
    )
    assert result.exit_code == 2 and "unknown backend 'k8s'" in result.output


def test_dry_run_prints_waves_of_packs_and_writes_nothing(tmp_path: Path) -> None:
    args = [
        "run",
        str(GOLDEN_SPEC),
        "--store",
        str(tmp_path),
        "--dry-run",
        "--devices",
        "cpu",
        "--per-device",
        "2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("4 runs: 0 already finished, 4 to run on cpu (2 at a time per device)")
    assert lines[1] == "wave 1: 2 task(s), 4 run(s)"
    assert all(line.startswith("  cpu  pack of 2: ") for line in lines[2:4]) and len(lines) == 4
    assert not (tmp_path / "rankbias.sqlite").exists()
    single = runner.invoke(app, [*args, "--pack-size", "1"])
    assert "wave 2: 2 task(s), 2 run(s)" in single.output and "pack of" not in single.output
