"""The theory's scaling on one figure: every finished run at x = m B / (lr wd) against its final rank.

The paper's bound r <= m B ln(2/eps) / (lr wd) (PAPER.md) names one variable, B / (lr wd), times m
(the output positions per example) for a conv layer. If the bound captures the mechanism, not
just the sign of each trend, runs of different B, lr and wd collapse onto one curve; the bound
itself is the line y = ln(2/eps) x. Owns ``scaling_data``. wd = 0 runs have x = infinity and are
left out (said in the title), as are diverged ones (no final rank; said too). Does not own
choosing runs (``selection``) or drawing (``draw``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from .. import claims
from ..measures import Status, hashable
from ..store import Store
from .data import CurveData, Panel, Series
from .selection import NoData, check_field, check_layer, fmt, rank_label, select_runs, sort_key


def scaling_data(
    store: Store,
    sweep: str | None = None,
    by: str = "model",
    *,
    layer: str | None = None,
    eps: float | None = None,
    fixed: dict[str, Any] | None = None,
) -> CurveData:
    """Final average rank (or ``layer``'s) of every finished wd > 0 run against m B / (lr wd),
    one marker colour per value of ``by``, with the bound's line (m = 1 for the average)."""
    check_field(by)
    runs = select_runs(store, sweep, fixed, statuses=(Status.DONE,))
    check_layer(store, runs, layer)
    ids = {r.run_id for r in runs}
    records = [r for r in claims.records_from_store(store, sweep, eps, layer=layer) if r["run_id"] in ids]
    usable = [r for r in records if r["weight_decay"] > 0 and r["lr"] > 0]
    if not usable:
        raise NoData("no finished run with weight_decay > 0 has a measurement (x = B / (lr wd) needs wd > 0)")
    groups: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    for r in usable:
        m = _positions(store, r["run_id"], layer)
        groups[hashable(r["config"].get(by))].append(
            (m * r["batch_size"] / (r["lr"] * r["weight_decay"]), r["final_avg_rank"])
        )
    series = [
        Series(fmt(value), tuple(x for x, _ in sorted(points)), tuple(y for _, y in sorted(points)))
        for value, points in sorted(groups.items(), key=lambda kv: sort_key(kv[0]))
    ]
    used_eps = eps if eps is not None else usable[0]["config"]["rank_eps"]
    xs = [x for s in series for x in s.x]
    bound = Series(
        "_bound", (min(xs), max(xs)), tuple(math.log(2 / used_eps) * x for x in (min(xs), max(xs)))
    )
    top = max(r["max_avg_rank"] for r in usable)
    left = len(records) - len(usable)
    gone = len(claims.excluded_from_store(store, sweep, eps))
    notes = [f"{len(usable)} runs"]
    notes += [f"{left} wd = 0 run(s) left out (x infinite)"] if left else []
    notes += [f"{gone} diverged run(s) excluded"] if gone else []
    label = "final " + rank_label(eps, layer, [r["config"] for r in usable])
    m_note = f"m B / (lr wd), m of {layer}" if layer else "B / (lr wd) (m = 1)"
    title = f"{sweep or 'all runs'}: {', '.join(notes)}\nbound: rank <= ln(2/eps) x (dashed)"
    return CurveData("scaling", (Panel("", (*series, bound), ceiling=top),), m_note, label, title, by)


def _positions(store: Store, run_id: str, layer: str | None) -> int:
    """m of ``layer`` in the run's last measurement (output positions per example; 1 for Linear)."""
    if layer is None:
        return 1
    _, final = store.init_and_final_spectra(run_id)
    return next((s.m for s in final if s.layer == layer), 1)
