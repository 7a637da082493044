"""``Track``: the hook through which the long loops of the headless core (an export, the claims'
records, a report) let a caller show progress, without knowing how (``cli.progress.Bars`` draws
rich bars on stderr). ``untracked``, the default, shows nothing. Pure Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")
Track = Callable[[Sequence[T], str], Iterable[T]]  # (items, what the loop does) -> the same items


def untracked(items: Sequence[T], description: str) -> Iterable[T]:
    """The ``Track`` that shows nothing."""
    return items
