"""What the dashboard's runs table shows, as plain data (no Textual): its columns, the texts of a
row, the filter and the sort order.

Columns, left to right: the run id (frozen: it never scrolls away), then what a person watches
(status, epoch, progress, loss, test accuracy, average rank: these fit in 80 columns beside the id),
then the sweep when the rows shown come from several, the hyperparameters that vary among the rows
shown (after the filter: ``measures.varied_fields``), the time left, and why a run failed or
diverged (for a running or queued run, its latest warning: ``measures.shown_reason``). The filter's ``key=value`` words match values exactly (``wd=0.0`` is not ``wd=0.01``);
other words match a part of the id, sweep, status, device or reason. The default order puts the
running runs first and keeps the store's order otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..measures import SHORT_NAMES as SHORT
from ..measures import Status, shown_reason
from .format import bar, duration, num
from .model import RunView, varied_fields

FROZEN = "run"
LIVE = ("status", "epoch", "prog", "loss", "acc", "rank")
NUMERIC = {"epoch", "prog", "loss", "acc", "rank", "eta"}
TITLES = {"prog": "progress", "acc": "test acc", "rank": "avg rank", "why": "reason"} | SHORT
HEADER = {"prog": "prog", "acc": "acc", "rank": "rank", "why": "reason"}  # short titles in the header
STATUS_ORDER = {
    s: i
    for i, s in enumerate(
        (
            Status.RUNNING,
            Status.INTERRUPTED,
            Status.QUEUED,
            Status.STOPPED,
            Status.FAILED,
            Status.DIVERGED,
            Status.CANCELLED,
            Status.DONE,
        )
    )
}
PROBLEMS = (Status.FAILED, Status.DIVERGED, Status.INTERRUPTED)
PENDING = {"cancel": "cancelling", "resume": "resuming"}
REASON_WIDTH = 32
LONG = {short.lower(): name for name, short in SHORT.items()} | {
    "bs": "batch_size"
}  # filter words are lower case
ATTRIBUTES = ("status", "sweep", "device")  # key=value words that match the run, not its config


def why(view: RunView) -> str | None:
    """The reason column: why a run ended, or a running or queued run's latest warning."""
    return shown_reason(view.status, view.error, view.warning)


def is_problem(view: RunView) -> bool:
    """A run someone should look at: failed, diverged, interrupted, or warned that it stalled."""
    if view.status in PROBLEMS:
        return True
    return bool(view.warning) and "stall" in (view.warning or "").lower()


def columns_for(
    views: Sequence[RunView],
    etas: Mapping[str, float | None] | None = None,
    varied: tuple[str, ...] | None = None,
) -> tuple[str, ...]:
    """The table's columns for these rows (the ones shown, after the filter); ``varied``: their
    varied fields when the caller knows them already (all runs shown)."""
    several = len({v.sweep for v in views}) > 1
    eta = bool(etas) and any(etas.get(v.run_id) is not None for v in views)
    if varied is None:
        varied = varied_fields(v.config.stored for v in views)
    return columns_of(several, eta, any(why(v) for v in views), varied)


def columns_of(several_sweeps: bool, eta: bool, reason: bool, varied: tuple[str, ...]) -> tuple[str, ...]:
    """The columns of rows from several sweeps (or one), with a time left or a reason (or none)."""
    optional = ("sweep",) * several_sweeps, varied, ("eta",) * eta, ("why",) * reason
    return (FROZEN, *LIVE, *(c for part in optional for c in part))


def title(column: str, sort_column: str | None = None, reverse: bool = False) -> str:
    """A column's title in the table's header, with ^ or v on the sorted one."""
    text = HEADER.get(column, TITLES.get(column, column))
    if column == sort_column:
        text += " v" if reverse else " ^"
    return text


def cells(v: RunView, columns: Iterable[str], pending: str = "", eta: float | None = None) -> tuple[str, ...]:
    """The texts of one row, in ``columns`` order."""
    reason = why(v) or ""
    values = {
        "run": v.run_id[:8],
        "sweep": v.sweep,
        "status": PENDING.get(pending, v.status),
        "epoch": f"{v.epoch:.1f}/{v.epochs}" if v.epoch % 1 else f"{v.epoch:.0f}/{v.epochs}",
        "prog": bar(v.progress, 5),
        "loss": num(v.train_loss, ".3f"),
        "acc": num(v.test_acc, ".3f"),
        "rank": num(v.avg_rank, ".1f"),
        "eta": duration(eta) if eta is not None else "",
        "why": reason if len(reason) <= REASON_WIDTH else reason[: REASON_WIDTH - 1] + "…",
    }
    return tuple(values[c] if c in values else str(v.config.stored.get(c, "")) for c in columns)


# ----- filter ------------------------------------------------------------------------------------
def search_text(view: RunView) -> str:
    """What a plain filter word may be a part of."""
    return " ".join([view.run_id, view.sweep, view.status, view.device or "", why(view) or ""]).lower()


def same_value(value: Any, text: str) -> bool:
    """``text`` names exactly ``value``: as numbers when both are (``0`` is ``0.0``, ``1e-3`` is
    ``0.001``), else as case-insensitive text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).lower() == text.lower()
    try:
        return float(text) == float(value)
    except ValueError:
        return False


Word = tuple[str, str, str]  # (key, operator, value); a plain word is ("", "", word)
COMPARE = re.compile(r"^([a-z_]+)(>=|<=|>|<)(.*)$")


def parse_filter(text: str) -> tuple[Word, ...]:
    """The filter's words: ``key>number`` (``<``, ``>=``, ``<=``), ``key=value``, or plain."""
    out = []
    for word in text.lower().split():
        found = COMPARE.match(word)
        if found:
            out.append((found[1], found[2], found[3]))
            continue
        key, eq, value = word.partition("=")
        out.append((key, "=", value) if eq else ("", "", word))
    return tuple(out)


def number_of(view: RunView, key: str, eta: float | None = None) -> Any:
    """A row's value for a comparison: a shown number (loss, acc, rank, epoch, prog, eta) or a
    config field (by name or short name)."""
    shown = {
        "loss": view.train_loss,
        "acc": view.test_acc,
        "rank": view.avg_rank,
        "epoch": view.epoch,
        "prog": view.progress,
        "progress": view.progress,
        "eta": eta,
    }
    return shown[key] if key in shown else view.config.stored.get(LONG.get(key, key))


def _compare(value: Any, op: str, text: str) -> bool:
    if not text:
        return True  # still being typed: ``acc>`` holds for every row
    try:
        bound = float(text)
    except ValueError:
        return False
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return False  # missing (None), not a number, or NaN
    return {">": value > bound, "<": value < bound, ">=": value >= bound, "<=": value <= bound}[op]


def matches(view: RunView, words: Sequence[Word | str], search: str, eta: float | None = None) -> bool:
    """Every word holds: ``key>number`` and the like on a shown number or a config field,
    ``key=value`` exactly (config fields by name or short name, or the run's status, sweep or
    device), any other word as a part of ``search``."""
    for word in words:
        key, op, value = parse_filter(word)[0] if isinstance(word, str) else word
        if not op:
            if value not in search:
                return False
        elif op != "=":
            if not _compare(number_of(view, key, eta), op, value):
                return False
        elif key in ATTRIBUTES:
            if not same_value(getattr(view, key) or "", value):
                return False
        else:
            field = LONG.get(key, key)
            if field not in view.config.stored or not same_value(view.config.stored[field], value):
                return False
    return True


# ----- sort --------------------------------------------------------------------------------------
def sort_key(v: RunView, column: str | None, reverse: bool, position: int, eta: float | None = None) -> Any:
    """The row's place when sorted by ``column``; None: running runs first, then store order."""
    if column is None:
        return (v.status != Status.RUNNING, position)
    if column == "status":
        return STATUS_ORDER.get(v.status, 99), position
    if column in ("epoch", "prog"):
        return v.progress, position
    numbers = {"loss": v.train_loss, "acc": v.test_acc, "rank": v.avg_rank, "eta": eta}
    if column in numbers:
        value = numbers[column]
        return (value is None) != reverse, value or 0.0, position  # missing values last
    if column in ("run", "sweep", "why"):
        return {"run": v.run_id, "sweep": v.sweep, "why": why(v) or ""}[column], position
    value = v.config.value(column)
    return value is None, value if isinstance(value, (int, float)) else str(value), position
