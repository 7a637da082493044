"""End to end on GPUs: ``rankbias run --devices cuda --headless`` through the scheduler's spawned
workers, with a fused pack and a graphed single run (skipped without CUDA; on the CPU the same
path is tests/functional/test_scheduler.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rankbias_tui.store import Store
from tests.support.engine_runs import needs_cuda, needs_two_gpus

SPEC = """
default_sweep = "gpu-pack"

[sweeps.gpu-pack]
model = "mlp-bn"
depth = 3
width = 32
dataset = "digits"
epochs = 2
batch_size = 16
lr_milestones = []
measure_every = 1
pack_size = 4
grid.lr = [0.05, 0.1]
seeds = [0, 1]

[sweeps.gpu-conv]
model = "resnet18"
dataset = "synthetic"
train_size = 256
epochs = 1
batch_size = 32
lr = 0.01
lr_milestones = []
measure_every = 1
"""


def rankbias(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from rankbias_tui.cli import main; sys.argv[0] = 'rankbias'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def run_sweeps(tmp_path: Path, devices: str) -> dict[str, str]:
    (tmp_path / "spec.toml").write_text(SPEC)
    done = rankbias(
        "run", "spec.toml", "--sweep", "gpu-pack", "--sweep", "gpu-conv", "--devices", devices,
        "--headless", "--store", "runs", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with Store(tmp_path / "runs") as store:
        rows = store.runs()
        assert all(store.spectrum_steps(r.run_id) for r in rows)
        return {r.run_id: r.status for r in rows}


@needs_cuda
@pytest.mark.slow
def test_run_headless_on_cuda(tmp_path: Path) -> None:
    statuses = run_sweeps(tmp_path, "cuda")
    assert len(statuses) == 5 and set(statuses.values()) == {"done"}


@needs_two_gpus
@pytest.mark.slow
def test_run_headless_on_the_second_gpu(tmp_path: Path) -> None:
    statuses = run_sweeps(tmp_path, "cuda:1")
    assert len(statuses) == 5 and set(statuses.values()) == {"done"}
