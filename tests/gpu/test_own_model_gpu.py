"""A user's own model on a GPU (issue 23; skipped without CUDA): its step is captured as a CUDA
graph when capture works, with the numbers of the eager loop; a model whose forward cannot be
captured (it reads a value back to the host) trains eagerly, and the mode says why."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from rankbias_tui.engine.train import train
from rankbias_tui.protocol import Event, Metrics, Started
from rankbias_tui.spec import RunConfig
from tests.support.engine_runs import needs_cuda

CODE = """
import torch
from torch import nn


class HostSync(nn.Module):  # a Python branch on a tensor's value: no CUDA graph can hold it
    def forward(self, x):
        return x if float(x.abs().sum()) >= 0 else -x


def build(input_shape, num_classes, options):
    layers = [nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes)]
    return nn.Sequential(*([HostSync()] if options.get("sync") else []), *layers)


def load(options):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1, 8, 8, generator=gen)
    y = (x.flatten(1) @ torch.randn(64, 3, generator=gen)).argmax(1)
    return x[:384], y[:384], x[384:], y[384:]
"""


@pytest.fixture
def code_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "gpu_user_net.py").write_text(textwrap.dedent(CODE))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "gpu_user_net", raising=False)
    return str(tmp_path)


def config(code_dir: str, **options: object) -> RunConfig:
    return RunConfig(
        model="gpu_user_net:build",
        model_options=options,
        dataset="gpu_user_net:load",
        code_dir=code_dir,
        epochs=2,
        batch_size=32,
        lr=0.05,
        weight_decay=1e-3,
        lr_milestones=(),
        measure_every=1,
    )


def trained(cfg: RunConfig, graphs: bool = True) -> tuple[str, str, list[dict[str, float]]]:
    events: list[Event] = []
    status = train(cfg, "cuda:0", events.append, run_id="r", graphs=graphs)
    mode = next(e.mode for e in events if isinstance(e, Started))
    return status, mode, [e.values for e in events if isinstance(e, Metrics) and "test_acc" in e.values]


@needs_cuda
def test_a_user_model_is_graphed_with_the_eager_numbers(code_dir: str) -> None:
    status, mode, evals = trained(config(code_dir))
    assert (status, mode) == ("done", "graphed")
    eager_status, eager_mode, eager_evals = trained(config(code_dir), graphs=False)
    assert (eager_status, eager_mode) == ("done", "eager (graphs off)")
    for got, want in zip(evals, eager_evals, strict=True):
        assert got == pytest.approx(want, rel=1e-3)


@needs_cuda
def test_a_user_model_that_cannot_be_captured_trains_eagerly_and_says_why(code_dir: str) -> None:
    status, mode, _ = trained(config(code_dir, sync=True))
    assert status == "done" and mode.startswith("eager (graph capture failed"), mode
