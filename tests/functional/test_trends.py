"""End to end through the installed CLI: a shortened quickstart shows the paper's trends.

wd = 0 keeps the average rank near its maximum (91 for MLP-BN 4x100 on 8x8 digits: the first
layer is capped at 64); with wd > 0 a smaller batch ends at a lower average rank.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from tests.support import runs

pytestmark = pytest.mark.slow  # trains real (tiny) runs

SPEC = """
default_sweep = "short"
[sweeps.short]
model = "mlp-bn"
depth = 4
width = 100
dataset = "digits"
epochs = 15
lr = 0.1
lr_milestones = []
measure_every = 5
grid.weight_decay = [0.0, 1e-2]
grid.batch_size = [4, 64]
"""
MAX_RANK = (64 + 3 * 100) / 4


def rankbias(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return runs.rankbias(*args, cwd=cwd, timeout=600)


@pytest.mark.soak  # in soak to keep the suite under 10 minutes; its path has faster tests too
def test_quickstart_trends(tmp_path: Path) -> None:
    (tmp_path / "experiments.toml").write_text(SPEC)
    result = rankbias("run", "--headless", "--devices", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    result = rankbias("export", "-o", "summary.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    rank = {(int(r["batch_size"]), float(r["weight_decay"])): float(r["final_avg_rank"]) for r in rows}
    assert all(r["status"] == "done" for r in rows) and len(rank) == 4
    assert rank[(4, 0.0)] >= 0.97 * MAX_RANK and rank[(64, 0.0)] >= 0.97 * MAX_RANK
    assert rank[(4, 0.01)] < rank[(64, 0.01)] - 1.5
    assert rank[(4, 0.01)] < rank[(4, 0.0)] - 1.5
    assert {int(r["rank_fc1"]) for r in rows} <= set(range(65))  # the 64-pixel input caps fc1
    # Running the same sweep again skips every finished run.
    again = rankbias("run", "--headless", "--devices", "cpu", cwd=tmp_path)
    assert again.returncode == 0 and "4 already finished, 0 to run" in again.stdout
