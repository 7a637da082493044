"""A verdict per claim of the paper (PAPER.md) from records, and the report ``claims --json`` prints.

Owns: the statements (``CLAIMS``), one function per claim 1-3 (claim 4: ``accuracy.py``) and
``report``. Does not own: records, slices and their tests (``records.py``), the verdict rule and
its calibration (``rule.py``), the t intervals (``measures.py``), printing (``cli/analysis.py``,
``report/``). The rules are summarised in this package's docstring and README.md's rules table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import measures
from ..measures import HPARAMS
from .accuracy import ACC_MARGINAL, MIN_ACC_RUNS, TRAINED_FRACTION, claim_accuracy
from .records import (
    AGREES,
    HIGHER,
    LOWER,
    MIN_RANK_CHANGE,
    NO_EFFECT,
    OPPOSES,
    Record,
    change,
    effect,
    final_ranks,
    paired_change,
    seeds_label,
    settings,
)
from .rule import AGREEMENT, counted, outcome, untested, verdict

NEAR_MAX_RANKS = 2.0  # claim 3: a fall of at most max(2 ranks, 2% of the initial rank)
NEAR_MAX_FRACTION = 0.02
# claim -> (hyperparameter, what its larger values do to the rank per the paper, wd > 0 slices only)
_TRENDS = {
    "2a": ("batch_size", HIGHER, True),
    "2b": ("lr", LOWER, True),
    "2c": ("weight_decay", LOWER, False),
}


def claim_trend(records: Sequence[Record], claim: str) -> dict[str, Any]:
    """Claims 2a-2c: per slice, the change from the smallest to the largest value of a
    hyperparameter, against the direction the paper says."""
    field, expected, wd_only = _TRENDS[claim]
    eff = effect(records, field, only_wd_positive=wd_only)
    if eff is None:
        where = " among wd > 0 runs" if wd_only else ""
        return untested(claim, f"{field} is never varied with the others fixed{where}")
    items = []
    for s in eff["slices"]:
        result, leans = outcome(s, expected)
        items.append(s | {"outcome": result, "leans": leans})
    moved = eff["mean_change_where_moved"]
    shift = (
        ""
        if moved is None
        else f"; where it moved, rank {moved:+.1f} on average from smallest to largest {field}"
    )
    evidence = f"{counted(items, 'slice')}{shift} ({eff['seeds']} per setting)"
    return verdict(claim, items, evidence, eff["seeds"], mean_change_where_moved=moved, slices=len(items))


def claim_lowers(records: Sequence[Record]) -> dict[str, Any]:
    """Claim 1: in each slice (same context, batch size and lr) the largest weight decay against
    the wd = 0 run(s) of the slice, its control (one test per slice, so slices stay independent).
    A slice without a wd = 0 run is not tested; its change from the initial rank is information."""
    groups = settings(records)
    items, uncontrolled = [], []
    by_slice: dict[tuple[Any, ...], list[float]] = {}
    for ctx, batch, lr, wd in groups:
        by_slice.setdefault((ctx, batch, lr), []).append(wd)
    for (ctx, batch, lr), wds in by_slice.items():
        top = max(wds)
        if top <= 0:
            continue
        runs = groups[(ctx, batch, lr, top)]
        setting = {"batch_size": batch, "lr": lr, "weight_decay": top} | ({"context": ctx} if ctx else {})
        control = groups.get((ctx, batch, lr, 0.0))
        if control:
            ch = change(final_ranks(control), final_ranks(runs))
            result, leans = outcome(ch, LOWER)
            items.append({"slice": setting, "against": "wd = 0", **ch, "outcome": result, "leans": leans})
        elif all(not math.isnan(r["init_avg_rank"]) for r in runs):
            ch = paired_change([r["init_avg_rank"] for r in runs], final_ranks(runs))
            uncontrolled.append({"slice": setting, "against": "its initial rank (information only)", **ch})
    info = ""
    if uncontrolled:
        fell = sum(s["change"] <= -MIN_RANK_CHANGE for s in uncontrolled)
        info = (
            f"; {len(uncontrolled)} slice(s) without a wd = 0 control not tested "
            f"(information: {fell} of them end lower than their initial rank)"
        )
    if not items:
        if not uncontrolled:
            return untested("1", "no finished run with weight_decay > 0")
        return untested("1", f"no wd = 0 control in any slice{info}", uncontrolled)
    seeds = seeds_label(n for s in items for n in s["seeds"])
    evidence = f"{counted(items, 'slice')}, largest wd against wd = 0{info} ({seeds} per setting)"
    return verdict(
        "1", items + uncontrolled, evidence, seeds, slices=len(items), uncontrolled=len(uncontrolled)
    )


def fall_tolerance(start: float) -> float:
    """How far a wd = 0 run's rank may fall and still count as staying where it started."""
    return max(NEAR_MAX_RANKS, NEAR_MAX_FRACTION * start)


def claim_wd0(records: Sequence[Record]) -> dict[str, Any]:
    """Claim 3, from the start: each wd = 0 setting's change from its initial to its final rank (at
    the same eps, seed by seed). Agrees when the whole interval lies above -tolerance (shown not to
    fall), opposes when it lies below (shown to fall); the gap to the maximal rank is information
    only (at larger eps even the initial rank is far below min(d_out, d_in))."""
    items = []
    for (ctx, batch, lr, wd), runs in settings(records).items():
        if wd != 0 or any(math.isnan(r["init_avg_rank"]) for r in runs):
            continue
        start = float(np.mean([r["init_avg_rank"] for r in runs]))
        ch = paired_change([r["init_avg_rank"] for r in runs], final_ranks(runs))
        tol = fall_tolerance(start)
        lo, hi = ch["interval"]
        result = AGREES if lo >= -tol else OPPOSES if hi < -tol else NO_EFFECT
        leans = AGREES if ch["change"] >= -tol else OPPOSES
        setting = {"batch_size": batch, "lr": lr, "weight_decay": wd} | ({"context": ctx} if ctx else {})
        top = runs[0]["max_avg_rank"]
        gap = float(np.mean([top - r["final_avg_rank"] for r in runs]))
        items.append(
            {"slice": setting, **ch, "initial": start, "tolerance": tol, "outcome": result, "leans": leans}
            | {"max_avg_rank": top, "gap_to_max": gap}
        )
    if not items:
        return untested("3", "no finished run with weight_decay = 0 (and an initial measurement)")
    worst = min(items, key=lambda s: s["change"])
    seeds = seeds_label(s["seeds"][0] for s in items)
    tested = [s for s in items if s["tested"]]
    c = {o: sum(s["outcome"] == o for s in tested) for o in (AGREES, OPPOSES, NO_EFFECT)}
    untested_note = (
        f", {len(items) - len(tested)} with one seed (not a test)" if len(tested) < len(items) else ""
    )
    evidence = (
        f"{c[AGREES]} of {len(tested)} tested wd = 0 settings shown not to fall by more than the "
        f"tolerance, {c[OPPOSES]} shown to fall, {c[NO_EFFECT]} undecided{untested_note}; "
        f"largest fall {-worst['change']:.1f} ranks from "
        f"{worst['initial']:.1f} (tolerance {worst['tolerance']:g}); for information, final gap to "
        f"the maximal rank {worst['max_avg_rank']:g}: {worst['gap_to_max']:.1f} ({seeds} per setting)"
    )
    return verdict("3", items, evidence, seeds, unit="setting", largest_fall=-worst["change"])


def claim_product(records: Sequence[Record]) -> dict[str, Any]:
    """Claim 5: within a slice (same context and batch size), settings with the same lr x wd > 0
    but another lr give the same final rank: per pair, agrees when the t interval of the rank
    difference lies within +-tolerance (shown to be the same), opposes when it lies beyond."""
    groups = settings(records)
    by_product: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for key in groups:
        ctx, batch, lr, wd = key
        if wd > 0:
            by_product.setdefault((ctx, batch, float(f"{lr * wd:.12g}")), []).append(key)
    items = []
    for (ctx, batch, product), keys in by_product.items():
        keys = sorted(keys, key=lambda k: k[2])
        for a, b in zip(keys, keys[1:], strict=False):  # neighbours in lr: independent pairs
            ch = change(final_ranks(groups[a]), final_ranks(groups[b]))
            tol = fall_tolerance(float(np.mean(final_ranks(groups[a]))))
            lo, hi = ch["interval"]
            result = AGREES if -tol <= lo and hi <= tol else OPPOSES if lo > tol or hi < -tol else NO_EFFECT
            setting = {"batch_size": batch, "lr x wd": product} | ({"context": ctx} if ctx else {})
            pair = f"lr {a[2]:g}, wd {a[3]:g} -> lr {b[2]:g}, wd {b[3]:g}"
            leans = AGREES if abs(ch["change"]) <= tol else OPPOSES
            items.append(
                {"slice": setting, "pair": pair, **ch, "tolerance": tol, "outcome": result, "leans": leans}
            )
    if not items:
        return untested("5", "no two settings of a slice share lr x wd with different lr")
    seeds = seeds_label(n for s in items for n in s["seeds"])
    tested = [s for s in items if s["tested"]]
    c = {o: sum(s["outcome"] == o for s in tested) for o in (AGREES, OPPOSES, NO_EFFECT)}
    worst = max(items, key=lambda s: abs(s["change"]))
    evidence = (
        f"{c[AGREES]} of {len(tested)} tested pairs shown to have the same rank (within the "
        f"tolerance), {c[OPPOSES]} shown to differ, {c[NO_EFFECT]} undecided; largest difference "
        f"{worst['change']:+.1f} ranks ({worst['pair']}) ({seeds} per setting)"
    )
    return verdict("5", items, evidence, seeds, unit="pair")


def check_claims(records: Sequence[Record], excluded: Sequence[Record] = ()) -> list[dict[str, Any]]:
    """A verdict for each claim of PAPER.md, in order 1, 2a, 2b, 2c, 3, 4, 5; ``excluded``: the
    runs left out of the records (diverged), which claim 4 lists."""
    return [
        claim_lowers(records),
        *(claim_trend(records, c) for c in ("2a", "2b", "2c")),
        claim_wd0(records),
        claim_accuracy(records, excluded),
        claim_product(records),
    ]


def effects(records: Sequence[Record]) -> list[dict[str, Any]]:
    """The effect of every hyperparameter the records vary (all slices, wd = 0 included)."""
    return [e for e in (effect(records, h) for h in HPARAMS) if e is not None]


THRESHOLDS = {
    "min_rank_change": MIN_RANK_CHANGE,
    "interval_level": measures.INTERVAL_LEVEL,
    "interval": "Student t (Welch between settings; paired within runs)",
    "agreement": AGREEMENT,
    "near_max_ranks": NEAR_MAX_RANKS,
    "near_max_fraction": NEAR_MAX_FRACTION,
    "acc_marginal": ACC_MARGINAL,
    "trained_fraction": TRAINED_FRACTION,
    "min_acc_runs": MIN_ACC_RUNS,
}


def report(
    records: Sequence[Record],
    sweep: str | None = None,
    eps: float | None = None,
    excluded: Sequence[Record] = (),
) -> dict[str, Any]:
    """Everything ``rankbias claims --json`` prints; ``excluded``: diverged runs left out."""
    return {
        "sweep": sweep,
        "eps": eps,
        "runs": len(records),
        "excluded": [{k: r.get(k) for k in ("run_id", "status", "final_avg_rank")} for r in excluded],
        "seeds": seeds_label(len(g) for g in settings(records).values()),
        "thresholds": THRESHOLDS,
        "effects": effects(records),
        "claims": check_claims(records, excluded),
    }
