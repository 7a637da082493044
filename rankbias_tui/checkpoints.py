"""The names of a run's checkpoint files, and which of them to keep (no torch).

Owns: a run's directory under a store's checkpoint root (named by its run id), the file its
checkpoint after step N is written to (``step-%09d.pt``), the temporary name it is written under
before the rename, listing the steps on disk and pruning the older files. Does not own: what a
checkpoint holds (``engine.train``) or where the root is (``store.StorePaths.checkpoints``).
"""

from __future__ import annotations

from pathlib import Path

PREFIX, SUFFIX, PARTIAL = "step-", ".pt", ".tmp"


def run_directory(root: Path, run_id: str) -> Path:
    """A run's checkpoint directory under a store's checkpoint root."""
    return root / run_id


def path(directory: Path, step: int) -> Path:
    """The checkpoint written after ``step`` steps."""
    return directory / f"{PREFIX}{step:09d}{SUFFIX}"


def partial(final: Path) -> Path:
    """Where a checkpoint is written before it is renamed to ``final`` (never read back)."""
    return final.with_suffix(PARTIAL)


def steps(directory: Path) -> list[int]:
    """The steps of the checkpoints on disk, ascending."""
    return sorted(int(p.stem.removeprefix(PREFIX)) for p in directory.glob(f"{PREFIX}*{SUFFIX}"))


def prune(directory: Path, keep: int) -> None:
    """Delete the checkpoints before step ``keep``: a run resumes only from its latest one."""
    for step in steps(directory):
        if step < keep:
            path(directory, step).unlink(missing_ok=True)
