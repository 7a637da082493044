"""What provenance records of the code that runs: the git SHA of the checkout this package is a file
of, and whether its tracked files had uncommitted changes (rankbias_tui.provenance)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from rankbias_tui import provenance as installed

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def copy_at(folder: Path) -> ModuleType:
    """rankbias_tui/provenance.py copied into ``folder`` and imported from there."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(installed.__file__, folder / "provenance.py")
    spec = importlib.util.spec_from_file_location(f"provenance_at_{folder.name}", folder / "provenance.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_the_sha_and_dirty_flag_of_the_checkout_the_package_is_a_file_of(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    checkout = copy_at(repo / "rankbias_tui")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    clean = checkout.provenance()
    assert clean["git_sha"] == git(repo, "rev-parse", "HEAD") and clean["git_dirty"] is False
    (repo / "rankbias_tui" / "provenance.py").write_text(Path(installed.__file__).read_text() + "\n# edit\n")
    assert checkout.provenance()["git_dirty"] is True  # a tracked file changed since the commit
    elsewhere = copy_at(repo / ".venv" / "site-packages" / "rankbias_tui")  # installed inside a repo
    assert (elsewhere.provenance()["git_sha"], elsewhere.provenance()["git_dirty"]) == ("", None)
