"""Small text formatters shared by the screens (plain strings: no colour carries meaning)."""

from __future__ import annotations

import math

from ..display import shown
from ..measures import is_vacuous

BLOCKS = " ▏▎▍▌▋▊▉█"


def num(value: float | None, spec: str = ".3f") -> str:
    """A number as the screens show it (3 decimals unless ``spec`` says otherwise); ``-`` when
    missing, by the rule the CLI follows too (``display.shown``)."""
    return shown(value, spec)


def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h10m``, ``1d04h``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def bar(fraction: float, width: int = 6) -> str:
    """A progress bar of eighth-blocks, ``width`` cells wide."""
    eighths = int(round(max(0.0, min(1.0, fraction)) * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


def bound(value: float, d_out: int, d_in: int) -> str:
    """The paper's bound next to a rank, marked ``vacuous`` where ``measures.is_vacuous`` says so."""
    if not math.isfinite(value):
        return "vacuous (wd=0)"
    if is_vacuous(value, d_out, d_in):
        return f"{value:.3g} vacuous"
    return f"{value:.1f}"
