"""tests/gpu: each check runs on ``cuda:0`` (skipped without CUDA) and, where the logic allows, on
the CPU as its twin (the same step code with capture off; marked slow, run in the full suite)."""

from __future__ import annotations

import pytest

from rankbias_tui.engine import loop as loop_mod
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
