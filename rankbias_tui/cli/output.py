"""How the command line prints tables and ends on a closed pipe: one home for every table command.

Owns: ``Column`` (a key, a title, how its cells read, and how soon it may be dropped), the three
output formats (``table``: whole values in aligned plain columns, as ``docker ps`` or ``kubectl get``
print them; ``csv``; ``json``: raw values, NaN as null), fitting a table into a terminal by dropping
low-priority columns (ids and statuses are never cut), and ``run_quietly``, which makes every
command end quietly with exit code 141 when its reader closes the pipe (``rankbias list | head -1``).
Does not own: what the rows hold (the command modules of ``cli``) nor the CSV exports of
``export.py``. Imports no textual and no torch.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..display import printable, shown

FORMATS = ("table", "csv", "json")
GAP = "  "  # between columns
SIGPIPE_EXIT = 141  # what a shell reports for a process ended by SIGPIPE (128 + 13)


def text(value: Any) -> str:
    """The default cell text: ``-`` for nothing (None, NaN: ``display.shown``), else ``str``."""
    return shown(value)


def number(spec: str) -> Callable[[Any], str]:
    """A cell formatter for numbers (``-`` for nothing)."""
    return lambda value: shown(value, spec)


@dataclass(frozen=True)
class Column:
    """One column: ``key`` into the row dicts (also the CSV/JSON name), its ``title`` in a table.

    ``drop``: 0 for a column that is always shown (ids, statuses); in a terminal too narrow for all
    columns, the one with the largest ``drop`` goes first. ``wrap``: a long text column whose cells
    may wrap inside the column instead (the last one shown)."""

    key: str
    title: str
    drop: int = 0
    right: bool = False
    wrap: bool = False
    cell: Callable[[Any], str] = text


def terminal_width(out: TextIO) -> int | None:
    """The width to fit into: the terminal's when ``out`` is one, else None (no limit: whole values)."""
    try:
        if not out.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns


def fit(columns: Sequence[Column], widths: dict[str, int], limit: int | None) -> list[Column]:
    """The columns that fit in ``limit`` characters, dropping the highest ``drop`` first (never a
    ``drop=0`` column); a wrapping column counts at a quarter of its width, at least 20."""
    shown = list(columns)

    def width() -> int:
        sizes = [min(widths[c.key], max(20, widths[c.key] // 4)) if c.wrap else widths[c.key] for c in shown]
        return sum(sizes) + len(GAP) * (len(shown) - 1)

    while limit is not None and width() > limit:
        droppable = [c for c in shown if c.drop > 0]
        if not droppable:
            break
        worst = max(droppable, key=lambda c: (c.drop, columns.index(c)))
        shown.remove(worst)
    return shown


def table_lines(
    rows: Sequence[dict[str, Any]], columns: Sequence[Column], limit: int | None
) -> tuple[list[str], list[Column]]:
    """The table as lines (header first) within ``limit`` characters where it can, and the columns
    dropped to get there."""
    cells = [{c.key: printable(c.cell(row.get(c.key))) for c in columns} for row in rows]
    widths = {c.key: max([len(c.title), *(len(r[c.key]) for r in cells)]) for c in columns}
    shown = fit(columns, widths, limit)
    wrap_width = None
    if limit is not None and shown and shown[-1].wrap:
        used = sum(widths[c.key] for c in shown[:-1]) + len(GAP) * (len(shown) - 1)
        wrap_width = max(20, limit - used)
    lines = [_line({c.key: c.title for c in shown}, shown, widths, wrap_width)[0]]
    for row in cells:
        lines += _line(row, shown, widths, wrap_width)
    return lines, [c for c in columns if c not in shown]


def _line(
    cells: dict[str, str], shown: Sequence[Column], widths: dict[str, int], wrap: int | None
) -> list[str]:
    parts = []
    for i, c in enumerate(shown):
        value = cells[c.key]
        last = i == len(shown) - 1
        if last and wrap is not None:
            head, *rest = textwrap.wrap(value, wrap) or [""]
            indent = len(GAP.join(parts)) + (len(GAP) if parts else 0)
            return [GAP.join([*parts, head]), *(" " * indent + more for more in rest)]
        parts.append(value.rjust(widths[c.key]) if c.right else value if last else value.ljust(widths[c.key]))
    return [GAP.join(parts).rstrip()]


def _csv_cell(value: Any) -> Any:
    """A CSV cell: empty for None; text made printable (a CSV is read in terminals too)."""
    return "" if value is None else printable(value) if isinstance(value, str) else value


def jsonable(value: Any) -> Any:
    """NaN/inf -> None, recursively, so JSON output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def print_table(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[Column],
    fmt: str = "table",
    *,
    title: str | None = None,
    footer: str | None = None,
    out: TextIO | None = None,
) -> None:
    """Print ``rows`` in ``fmt`` to ``out`` (stdout). ``title`` and ``footer`` go with a table in a
    terminal; piped, they go to stderr so that stdout holds only the header and the rows."""
    out = out or sys.stdout
    rows = list(rows)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.key for c in columns])
        writer.writerows([[_csv_cell(r.get(c.key)) for c in columns] for r in rows])
        return
    if fmt == "json":
        out.write(
            json.dumps([jsonable({c.key: r.get(c.key) for c in columns}) for r in rows], indent=2) + "\n"
        )
        return
    limit = terminal_width(out)
    notes = sys.stderr if limit is None else out
    lines, dropped = table_lines(rows, columns, limit)
    if title:
        notes.write(printable(title) + "\n")
    out.write("\n".join(lines) + "\n")
    if dropped:
        hidden = ", ".join(c.title for c in dropped)
        notes.write(f"(not shown at this width: {hidden}; widen the terminal or use --format csv)\n")
    if footer:
        notes.write(printable(footer) + "\n")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        from .common import fail

        raise fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}", 2)
    return fmt


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush of a closed pipe is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _stdout_is_devnull() -> bool:
    try:
        return os.path.samestat(os.fstat(1), os.stat(os.devnull))
    except OSError:
        return False


def run_quietly(app: Callable[[], Any]) -> int:
    """Run the Typer ``app``; return its exit code, or 141 without a word when stdout's reader went
    away. Without this, Typer exits 1 on EPIPE, rich exits 1 (having pointed stdout at /dev/null),
    and an unflushed buffer prints 'Exception ignored ... BrokenPipeError' at exit."""
    was_devnull = _stdout_is_devnull()
    try:
        app()
        code: Any = 0
    except BrokenPipeError:
        code = SIGPIPE_EXIT
    except SystemExit as done:
        code = done.code
        swallowed = type(sys.stdout).__name__ == "PacifyFlushWrapper"  # Typer's EPIPE handling
        if swallowed or (not was_devnull and _stdout_is_devnull()):  # rich's on_broken_pipe
            code = SIGPIPE_EXIT
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        code = SIGPIPE_EXIT
    if code == SIGPIPE_EXIT:
        _silence_stdout()
    if isinstance(code, str):  # sys.exit("message")
        sys.stderr.write(code + "\n")
        return 1
    return 0 if code is None else int(code)
