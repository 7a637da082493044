"""The names of every file in a results directory (``StorePaths``), in this one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DB_NAME = "rankbias.sqlite"


@dataclass(frozen=True)
class StorePaths:
    """Every file of a results directory, named in this one place: the CLI, the app, the background
    scheduler and its clients all ask here."""

    directory: Path
    database: Path
    lock: Path  # held by the store's one scheduler; holds its pid
    state: Path  # a background scheduler's pid and devices, while it runs
    log: Path  # a background scheduler's output
    checkpoints: Path  # one folder per run
    exports: Path  # the CSV files the terminal UI writes
    view: Path  # the terminal UI's filter and sort, remembered from one attach to the next

    @classmethod
    def of(cls, directory: str | Path) -> StorePaths:
        d = Path(directory)
        names = (
            "scheduler.lock",
            "scheduler.json",
            "scheduler.log",
            "checkpoints",
            "exports",
            "tui-view.json",
        )
        return cls(d, d / DB_NAME, *(d / name for name in names))
