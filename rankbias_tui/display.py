"""How a value reads for people, one rule shared by the command line and the terminal UI.

Owns: ``MISSING`` (``-``, what stands for a value that is not there), ``is_missing`` (None, or a
NaN: a number never measured) and ``shown`` (a value as text: ``-`` when missing, else formatted).
Does not own what a value means (``measures``) nor how a table or a screen lays values out
(``cli/output.py``, ``tui/format.py``). Imports nothing of the package, no torch, no textual.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "-"


def is_missing(value: Any) -> bool:
    """None, or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def shown(value: Any, spec: str | None = None) -> str:
    """``-`` for a missing value; else ``format(value, spec)``, or ``str(value)`` without ``spec``."""
    if is_missing(value):
        return MISSING
    return str(value) if spec is None else format(value, spec)
