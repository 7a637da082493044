"""Which runs a figure shows and the options that choose them (no matplotlib, no torch).

Owns: the errors a figure request may raise (``FigureError``, ``NoData``), checking run fields and
``--fix FIELD=VALUE`` options, selecting runs by sweep, fixed values and status, the checks that a
field varies and a layer exists, facets (one panel per combination of the other varied fields) and
the labels and sort order of values. Does not own: what each figure computes (``data.py``) or
drawing (``draw.py``). Which fields vary is ``measures.varied_fields``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from ..measures import varied_fields
from ..spec import RUN_FIELDS, suggest
from ..store import RunRow, Store


class FigureError(ValueError):
    """A figure was asked for with options that do not fit the store (bad field, layer, run...)."""


class NoData(FigureError):
    """The selection holds no run with the data the figure needs."""


def check_field(name: str) -> str:
    if name not in RUN_FIELDS:
        hint = suggest(name, RUN_FIELDS)
        raise FigureError(f"unknown run field {name!r}" + (f"; {hint}" if hint else ""))
    return name


def parse_fixed(items: Sequence[str]) -> dict[str, Any]:
    """``["lr=0.1", "model=mlp-bn"]`` -> {"lr": 0.1, "model": "mlp-bn"} (values read as JSON if they can)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not text:
            raise FigureError(f"--fix expects FIELD=VALUE, got {item!r}")
        try:
            out[check_field(name.strip())] = json.loads(text)
        except json.JSONDecodeError:
            out[name.strip()] = text
    return out


def matches(value: Any, wanted: Any) -> bool:
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(wanted, numbers) and not isinstance(value, bool):
        return math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-15)
    if isinstance(value, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return list(value) == list(wanted)
    return value == wanted or str(value) == str(wanted)


def sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def select_runs(
    store: Store, sweep: str | None, fixed: dict[str, Any] | None, statuses: Sequence[str] | None = None
) -> list[RunRow]:
    """Runs of ``sweep`` whose config matches every ``fixed`` value (and has one of ``statuses``)."""
    fixed = fixed or {}
    for name in fixed:
        check_field(name)
    runs = [r for r in store.runs(sweep) if statuses is None or r.status in statuses]
    picked = [r for r in runs if all(matches(r.config.value(k), v) for k, v in fixed.items())]
    if not picked:
        what = f"sweep {sweep!r}" if sweep else "the store"
        detail = f" matching {', '.join(f'{k}={fmt(v)}' for k, v in fixed.items())}" if fixed else ""
        state = f" with status {'/'.join(statuses)}" if statuses else ""
        raise NoData(f"no runs{state} in {what}{detail}")
    return picked


def require_varies(configs: Sequence[dict[str, Any]], name: str, option: str) -> None:
    varying = [f for f in varied_fields(configs) if f != "seed"]
    if varying and name not in varying:
        values = sorted({fmt(c.get(name)) for c in configs})
        raise FigureError(
            f"{option} {name}: it does not vary among the selected runs ({', '.join(values)}); "
            f"fields that vary: {', '.join(varying)}"
        )


def facets_of(configs: Sequence[dict[str, Any]], exclude: Sequence[str]) -> list[str]:
    return [f for f in varied_fields(configs) if f not in {*exclude, "seed"}]


def facet_title(config: dict[str, Any], facets: Sequence[str]) -> str:
    return ", ".join(f"{f}={fmt(config.get(f))}" for f in facets)


def check_layer(store: Store, runs: Sequence[RunRow], layer: str | None) -> None:
    if layer is None:
        return
    names: list[str] = []
    for r in runs:
        steps = store.spectrum_steps(r.run_id)
        names += [s.layer for s in store.spectra(r.run_id, steps[0])] if steps else []
    if layer not in names:
        hint = suggest(layer, set(names))
        raise FigureError(
            f"no measured layer {layer!r}"
            + (f"; {hint}" if hint else "")
            + f" (layers: {', '.join(dict.fromkeys(names))})"
        )


def rank_label(eps: float | None, layer: str | None, configs: Sequence[dict[str, Any]]) -> str:
    stored = sorted({c.get("rank_eps") for c in configs}, key=sort_key)
    shown = fmt(eps) if eps is not None else "/".join(fmt(e) for e in stored)
    return f"rank of {layer} (eps={shown})" if layer else f"average rank (eps={shown})"
