"""Checkpoint file names and pruning (rankbias_tui.checkpoints)."""

from __future__ import annotations

from pathlib import Path

from rankbias_tui import checkpoints


def test_names(tmp_path: Path) -> None:
    directory = checkpoints.run_directory(tmp_path, "abc123")
    assert directory == tmp_path / "abc123"
    final = checkpoints.path(directory, 42)
    assert final.name == "step-000000042.pt"
    assert checkpoints.partial(final).name == "step-000000042.tmp"


def test_steps_and_prune(tmp_path: Path) -> None:
    for step in (30, 0, 10):
        checkpoints.path(tmp_path, step).write_bytes(b"x")
    checkpoints.partial(checkpoints.path(tmp_path, 40)).write_bytes(b"half")  # never counted
    (tmp_path / "notes.txt").write_text("kept")
    assert checkpoints.steps(tmp_path) == [0, 10, 30]
    checkpoints.prune(tmp_path, keep=10)
    assert checkpoints.steps(tmp_path) == [10, 30]
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "step-000000040.tmp").exists()
    assert checkpoints.steps(tmp_path / "missing") == []
