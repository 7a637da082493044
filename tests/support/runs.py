"""Shared helpers for tests that plan runs, start the ``rankbias`` command or wait on a process.

``TINY`` is the smallest sweep-shaped run (a 2x16 MLP on digits, no lr decay): each test file that
needs another base passes its own (``planned(base=...)``), so what differs is visible there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from rankbias_tui.spec import RunConfig
from rankbias_tui.sweep import PlannedRun, run_id

TINY: Mapping[str, object] = dict(
    model="mlp", depth=2, width=16, dataset="digits", lr_milestones=(), measure_every=2
)
DIGITS: Mapping[str, object] = dict(dataset="digits")  # the paper's MLP-BN 10x100, on digits
RANKBIAS = str(Path(sys.executable).with_name("rankbias"))


def planned(sweep: str = "t", base: Mapping[str, object] = TINY, **fields: object) -> PlannedRun:
    """A run of sweep ``sweep``: ``base`` with ``fields`` over it, and its id as rankbias makes it."""
    cfg = RunConfig(**(dict(base) | fields))
    return PlannedRun(run_id(cfg), sweep, cfg)


def rankbias(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The installed ``rankbias`` command, its output captured; ``env`` adds to this environment."""
    return subprocess.run(
        [RANKBIAS, *args],
        cwd=cwd,
        env=os.environ | dict(env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "it") -> None:
    """Poll ``predicate`` every 0.05 s until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
