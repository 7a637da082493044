"""What is stored with every run so it can be reproduced: package version, git SHA, Python."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def provenance() -> dict[str, str]:
    """Package version and git SHA (empty outside a git checkout) of the running rankbias."""
    try:
        pkg = version("rankbias-tui")
    except PackageNotFoundError:
        pkg = "unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return {"rankbias": pkg, "git_sha": sha, "python": platform.python_version()}
