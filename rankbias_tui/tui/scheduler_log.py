"""What the scheduler's log says went wrong while the app is open (no Textual).

The background scheduler writes its errors to the store's log (``StorePaths.log``): a request it
could not answer, a loop that failed, devices it cannot use. Someone watching the app would not see
them there, so ``LogErrors`` follows the log from where it ended when the app opened and hands over
each new ERROR record as one line: its message, and for a traceback its last line (what was raised).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..store import read_from

# The daemon's format: "2026-12-06 17:30:53,027 ERROR [pid 17246] message"
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) (?:\[pid \d+\] )?(?P<text>.*)$")
SERIOUS = ("ERROR", "CRITICAL")


class LogErrors:
    """The ERROR records written to ``path`` after it was opened (``new``), one line each."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = read_from(path, 0, 0)[1]  # what was logged before the app came is not news
        self._rest = b""  # an unfinished last line, for the next read

    def new(self) -> list[str]:
        data, self.offset = read_from(self.path, self.offset)
        data, self._rest = self._rest + data, b""
        complete, _, self._rest = data.rpartition(b"\n")
        if self._rest and not complete:
            return []
        return errors(complete.decode("utf-8", "replace").splitlines())


def errors(lines: list[str]) -> list[str]:
    """The ERROR records among ``lines``: each record's message, with the last line of what follows
    it before the next record (a traceback's exception) in parentheses."""
    out: list[tuple[str, list[str]]] = []
    serious = False
    for line in lines:
        found = RECORD.match(line)
        if found:
            serious = found["level"] in SERIOUS
            if serious:
                out.append((found["text"], []))
        elif serious and line.strip():
            out[-1][1].append(line.strip())
    return [f"{text} ({more[-1]})" if more else text for text, more in out]
