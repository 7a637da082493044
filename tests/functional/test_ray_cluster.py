"""Runs the Ray backend tests (``tests/ray``) in a loopback-only network namespace.

Ray listens on several ports per node and, left alone, picks the machine's network address and
probes an outside one to find it. Its tests therefore run in a new network namespace that has only
``lo`` (``unshare -n``, then ``ip link set lo up``): nothing they start can be reached from, or
reach, any other machine. Skipped where Ray is not installed or namespaces cannot be made (not root).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _namespace_problem() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'rankbias-tui[ray]')"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip not found"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace: {probe.stderr.strip()[:200]}"
    return None


@pytest.mark.slow
def test_ray_backend_in_a_loopback_namespace(tmp_path: Path) -> None:
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    pytest_cmd = f"exec {sys.executable} -m pytest -q -x -p no:cacheprovider --show-capture=no tests/ray"
    env = os.environ | {
        "RANKBIAS_RAY_NETNS": "1",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && {pytest_cmd}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    print(proc.stdout[-8000:])
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
