"""What is recorded so a number can be traced to the code that made it: package version, git SHA
and whether the checkout had uncommitted changes, Python. The store keeps it for each run when it
is queued, and each worker adds what it computes with (``engine.devices.software``) to every
execution segment it trains (``protocol.Started.provenance``): a run resumed by another rankbias,
torch or GPU says so."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def provenance() -> dict[str, Any]:
    """Package version, git SHA (empty unless this package is a file of a git checkout: an installed
    copy inside some other repository is not), ``git_dirty`` (tracked files changed since that
    commit; None when not known) and the Python version of the running rankbias."""
    try:
        pkg = version("rankbias-tui")
    except PackageNotFoundError:
        pkg = "unknown"
    tracked = _git("ls-files", "--error-unmatch", "provenance.py") is not None  # not a venv in some repo
    sha = (_git("rev-parse", "HEAD") or "") if tracked else ""
    changes = _git("status", "--porcelain", "--untracked-files=no") if sha else None
    return {
        "rankbias": pkg,
        "git_sha": sha,
        "git_dirty": None if changes is None else bool(changes),
        "python": platform.python_version(),
    }


def _git(*args: str) -> str | None:
    """What ``git args`` prints in this package's checkout, stripped; None if it fails."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
