"""Import hygiene, one fresh interpreter per headless module (harlequin's habit): importing a module
that must stay light pulls in neither torch nor Textual. The app's own torch-free test is in
``test_no_torch_in_tui.py``; the package's import graph (no cycles) is in ``test_imports.py``."""

from __future__ import annotations

import subprocess
import sys

import pytest

# module -> heavy packages it must not import (the CLI imports Textual only to open the app).
LIGHT = {
    "rankbias_tui.spec": ("torch", "textual"),
    "rankbias_tui.catalog": ("torch", "textual"),
    "rankbias_tui.references": ("torch", "textual", "pydantic", "numpy"),  # the standard library only
    "rankbias_tui.sweep": ("torch", "textual"),
    "rankbias_tui.store": ("torch", "textual"),
    "rankbias_tui.store.schema": ("torch", "textual"),
    "rankbias_tui.store.owner": ("torch", "textual"),  # stdlib itself; the store package brings numpy
    "rankbias_tui.checkpoints": ("torch", "textual"),
    "rankbias_tui.measures": ("torch", "textual", "matplotlib"),
    "rankbias_tui.display": ("torch", "textual", "matplotlib", "numpy"),
    "rankbias_tui.protocol": ("torch", "textual"),
    "rankbias_tui.export": ("torch", "textual"),
    "rankbias_tui.claims": ("torch", "textual"),
    "rankbias_tui.report": ("torch", "textual"),
    "rankbias_tui.figures": ("torch", "textual"),
    "rankbias_tui.scheduler": ("torch", "textual", "ray", "pyarrow"),
    "rankbias_tui.scheduler.client": ("torch", "textual", "ray"),
    # Ray is imported when a Ray backend connects, not with the module that uses it
    "rankbias_tui.scheduler.ray_backend": ("torch", "textual", "ray"),
    "rankbias_tui.scheduler.ray_task": ("torch", "textual", "ray"),
    # pyarrow only when a --checkpoint-dir URI is used
    "rankbias_tui.scheduler.checkpoint_dir": ("torch", "textual", "ray", "pyarrow"),
    "rankbias_tui.cli": ("torch", "textual", "ray"),
    "rankbias_tui.cli.output": ("torch", "textual", "matplotlib", "ray"),
    "rankbias_tui.cli.runs": ("torch", "textual", "matplotlib", "ray"),
}


@pytest.mark.parametrize("module", sorted(LIGHT))
def test_a_headless_module_stays_light(module: str) -> None:
    forbidden = LIGHT[module]
    code = (
        f"import sys, {module}\n"
        f"bad = sorted({{m.partition('.')[0] for m in sys.modules}} & set({forbidden!r}))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"importing {module} imported {done.stdout.strip()}"
