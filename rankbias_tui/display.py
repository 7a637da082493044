"""How a value reads for people, one rule shared by the command line and the terminal UI.

Owns: ``MISSING`` (``-``, what stands for a value that is not there), ``is_missing`` (None, or a
NaN: a number never measured), ``shown`` (a value as text: ``-`` when missing, else formatted) and
``printable`` (text from a spec, a store or a worker made inert for a terminal: every control
character and bidirectional override written as its escape, so a shared spec cannot retitle or
clear a terminal, write its clipboard or reorder what it shows).
Does not own what a value means (``measures``) nor how a table or a screen lays values out
(``cli/output.py``, ``tui/format.py``). Imports nothing of the package, no torch, no textual.
"""

from __future__ import annotations

import math
import re
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


# C0 and C1 controls and DEL except newline and tab; the bidirectional embeddings, overrides and
# isolates (text that displays in another order than it reads: "Trojan Source").
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with each control character (newline and tab excepted) and each bidirectional
    control written as its Python escape (ESC -> ``\\x1b``): visible, and inert in a terminal."""
    return _UNPRINTABLE.sub(_escape, text)
