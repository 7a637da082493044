"""The figure kinds, one row each: the one list that ``plot --kind``, the drawing and the report read.

Owns: ``FigureKind`` (a kind's name, its title, the ``data`` function that gathers what it shows,
the drawing that draws it, and what a ``--by`` value becomes in it) and ``KINDS``, the table (a new
kind is a row here, a ``*_data`` function and, if none fits, a drawing). The default ``--by`` field
is the one the kind's data function declares (``FigureKind.default_by``), so it is said once.
Imports no matplotlib: ``draw`` is loaded only when a figure is drawn. Does not own choosing runs
(``selection``), the data (``data``) or the drawing itself (``draw``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .data import accuracy_data, contour_data, rank_curve_data, spectrum_data
from .scaling import scaling_data


@dataclass(frozen=True)
class FigureKind:
    """One kind of figure."""

    name: str  # what ``--kind`` says, and the stem of its file name
    title: str  # a heading for it (the report's)
    gather: Callable[..., Any]  # its ``data`` function: (store, **options) -> what it shows
    drawing: str  # which of ``draw.DRAWINGS`` draws it: "curves" (lines, points) or "grid" (contours)
    by_role: str | None = None  # what one value of ``--by`` becomes ("one line"); None: no --by

    @property
    def default_by(self) -> str | None:
        """The run field ``--by`` means when not given: the default of ``gather``'s ``by``."""
        by = inspect.signature(self.gather).parameters.get("by")
        return None if by is None else by.default


KINDS: dict[str, FigureKind] = {
    kind.name: kind
    for kind in (
        FigureKind("rank-curves", "Rank curves", rank_curve_data, "curves", "one line"),
        FigureKind("contour", "Final rank over two hyperparameters", contour_data, "grid"),
        FigureKind("spectrum", "Singular values", spectrum_data, "curves"),
        FigureKind(
            "accuracy-vs-rank", "Test accuracy against rank", accuracy_data, "curves", "one marker colour"
        ),
        FigureKind(
            "scaling",
            "Final rank against B / (lr wd), the bound's variable",
            scaling_data,
            "curves",
            "one marker colour",
        ),
    )
}  # the first is what ``plot`` draws when no kind is asked for
