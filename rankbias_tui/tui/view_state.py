"""What the dashboard remembers of a store from one attach to the next: the filter, the sort and
the problems-first order, in the store's ``tui-view.json`` (``StorePaths.view``), plain data, no
Textual.

Written like the store's own small files (``store.write_private``: never through a symbolic link,
never another user's file) and read never through a link (``store.read_end``). A store this user
may not write (another user's, a read-only mount) simply forgets: the dashboard works the same.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..store import StoreError, read_end, write_private


@dataclass(frozen=True)
class ViewState:
    filter_text: str = ""
    sort_column: str | None = None
    sort_reverse: bool = False
    problems_first: bool = False


def load(path: Path) -> ViewState:
    """The view last saved in ``path``; the default one if there is none or it does not parse."""
    try:
        raw = json.loads(read_end(path, 64 * 1024) or b"{}")
        return ViewState(
            filter_text=str(raw.get("filter_text", "")),
            sort_column=raw["sort_column"] if isinstance(raw.get("sort_column"), str) else None,
            sort_reverse=bool(raw.get("sort_reverse", False)),
            problems_first=bool(raw.get("problems_first", False)),
        )
    except (ValueError, AttributeError):
        return ViewState()


def save(path: Path, view: ViewState) -> bool:
    """Remember ``view``; False if this store cannot keep it (not ours to write, read-only)."""
    try:
        write_private(path, json.dumps(asdict(view), sort_keys=True))
    except (StoreError, OSError):
        return False
    return True
