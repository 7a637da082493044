"""The worker-scheduler protocol: small, picklable, torch-free messages and the one spectrum row."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rankbias_tui.protocol import (
    Cancel,
    Checkpoint,
    Finished,
    GpuMemory,
    Metrics,
    OutOfMemory,
    Progress,
    Spectra,
    SpectrumRow,
    Started,
    WorkerEnded,
)


def row(svals: list[float], run_id: str = "r") -> SpectrumRow:
    s = np.array(svals)
    return SpectrumRow(
        run_id, 10, 1.0, 0, "fc1", 4, 3, 1, s, int((s > 1e-3).sum()), 1e-3, 1.5, 2.0, 3.0, 4.0, 5.0
    )


MESSAGES = [
    Started("r", total_steps=100, resumed_from=-1, mode="eager"),
    Metrics("r", 5, 0.5, {"loss": 1.25, "acc": 0.5}),
    Spectra("r", (row([0.8, 0.6, 0.0]), row([0.9, 1e-4, 0.0]))),
    Checkpoint("r", 10),
    Progress("r", 10, 1.0),
    Finished("r", "cancelled", "cancelled by request"),
    OutOfMemory("out of memory on cuda:0 in a pack of 8"),
    GpuMemory(40 << 30),
    WorkerEnded("failed", "ValueError: boom"),
    Cancel("r"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_pickling(message: object) -> None:
    assert pickle.loads(pickle.dumps(message)) == message


def test_messages_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Progress("r", 1, 0.0).step = 2  # type: ignore[misc]


def test_spectrum_rows_compare_their_singular_values_bit_for_bit() -> None:
    assert row([0.8, 0.6]) == row([0.8, 0.6])
    assert row([0.8, 0.6]) != row([0.8, 0.6 + 1e-16])
    assert row([0.8, 0.6]) != row([0.8, 0.6], run_id="other")
    with pytest.raises(TypeError):
        hash(row([0.8]))


def test_importing_the_protocol_loads_neither_torch_nor_textual() -> None:
    code = """
        import sys
        import rankbias_tui.protocol, rankbias_tui.checkpoints, rankbias_tui.engine.loop
        import rankbias_tui.scheduler.hosts
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "textual"))
        assert not loaded, loaded
        print("ok")
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
