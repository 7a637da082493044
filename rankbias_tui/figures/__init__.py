"""Matplotlib figures from the store, shared by the CLI and the terminal UI.

``kinds`` is the table of figure kinds (one row each: name, title, data function, drawing). Three
modules, in the order a figure is made:
- ``selection``: which runs a figure shows and the options that choose them (fields, ``--fix``,
  statuses, layers, facets); raises ``FigureError`` / ``NoData`` for requests that do not fit;
- ``data``: what each kind shows (``*_data`` functions returning plain dataclasses), with ranks
  recounted at another eps from the stored singular values when asked (``measures``);
- ``draw``: matplotlib drawing (``*_figure``, ``make_figure``) and ``save`` (PNG and/or SVG).
``selection`` and ``data`` import neither matplotlib nor torch; ``draw`` imports matplotlib, and
this package loads it only when one of its names is first used. Does not own: the database (``store/``),
the claims (``claims/``) or the command line (``cli/analysis.py``).
"""

from __future__ import annotations

from typing import Any

from .data import (
    SIGMA_FLOOR,
    CurveData,
    GridData,
    GridPanel,
    Panel,
    Series,
    accuracy_data,
    contour_data,
    rank_curve_data,
    spectrum_data,
)
from .kinds import KINDS, FigureKind
from .scaling import scaling_data
from .selection import FigureError, NoData, check_field, matches, parse_fixed, select_runs

_DRAWING = ("DRAWINGS", "contour_figure", "curves_figure", "make_figure", "save")


def __getattr__(name: str) -> Any:
    """The drawing names, imported on first use: gathering data must not pay for matplotlib."""
    if name in _DRAWING:
        from . import draw

        return getattr(draw, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DRAWINGS",
    "KINDS",
    "SIGMA_FLOOR",
    "CurveData",
    "FigureError",
    "FigureKind",
    "GridData",
    "GridPanel",
    "NoData",
    "Panel",
    "Series",
    "accuracy_data",
    "check_field",
    "contour_data",
    "contour_figure",
    "curves_figure",
    "make_figure",
    "matches",
    "parse_fixed",
    "rank_curve_data",
    "save",
    "scaling_data",
    "select_runs",
    "spectrum_data",
]
