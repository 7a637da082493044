"""tests/gpu: each check runs on ``cuda:0`` (skipped without CUDA) and, where the logic allows, on
the CPU as its twin (the same step code with capture off; marked slow, run in the full suite).
Every check trains with the precision a worker sets for fp32 runs (TF32 off), as real runs do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from rankbias_tui.engine import loop as loop_mod
from rankbias_tui.engine.train import set_precision
from tests.support.engine_runs import needs_cuda


@pytest.fixture(
    params=[
        pytest.param("cpu", marks=[pytest.mark.slow, pytest.mark.cpu_twin]),
        pytest.param("cuda:0", marks=needs_cuda),
    ]
)
def device(request: pytest.FixtureRequest) -> str:
    """Where the check runs: the GPU (captured graphs) or the CPU twin (capture off)."""
    return request.param


@pytest.fixture(autouse=True)
def epoch_end_logs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running metrics at epoch ends only, so logged values do not depend on timing."""
    monkeypatch.setattr(loop_mod, "LOG_INTERVAL_S", 1e9)


@pytest.fixture(autouse=True)
def fp32_as_a_worker_sets_it() -> Iterator[None]:
    """``engine.train.set_precision("fp32")``, as ``train`` and ``train_pack`` call it for fp32 runs
    (torch's own default lets cuDNN use TF32), so the checks describe real runs; the settings are
    put back afterwards (they are process-wide). A bf16 check sets bf16 itself."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    set_precision("fp32")
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])
