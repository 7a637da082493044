"""Progress bars for the long loops of a command (``export --what spectra``, ``report``): rich, on
stderr, so stdout holds only the data.

A bar shows only when stderr is a terminal, and only once its loop has run for ``delay_s`` (a
second): a quick command prints nothing, a piped or logged one never a bar. Owns no loop: a command
passes ``Bars`` where ``export.Track`` is asked for and closes it when done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

T = TypeVar("T")


class Bars:
    """An ``export.Track``: ``for run in bars(runs, "export spectra")``; one bar per loop."""

    def __init__(self, console: Console | None = None, delay_s: float = 1.0) -> None:
        self.console = console or Console(stderr=True)
        self.delay_s = delay_s
        self.progress: Progress | None = None

    def __call__(self, items: Sequence[T], description: str) -> Iterator[T]:
        started = time.monotonic()
        task: TaskID | None = None
        for done, item in enumerate(items):
            if task is not None:
                self.progress.update(task, completed=done)  # type: ignore[union-attr]
            elif self.console.is_terminal and time.monotonic() - started >= self.delay_s:
                task = self._bar(description, len(items), done)
            yield item
        if task is not None:
            self.progress.update(task, completed=len(items))  # type: ignore[union-attr]

    def _bar(self, description: str, total: int, done: int) -> TaskID:
        if self.progress is None:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            self.progress = Progress(*columns, console=self.console, transient=True)
            self.progress.start()
        return self.progress.add_task(description, total=total, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
