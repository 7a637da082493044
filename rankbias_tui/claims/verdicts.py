"""A verdict per claim of the paper (PAPER.md) from records, and the report ``claims --json`` prints.

Owns: the statements (``CLAIMS``), the verdict rule shared by all claims (``verdict_of``), one
function per claim, and ``report``. Does not own: records, slices and the noise floor
(``records.py``), the bootstrap (``measures.py``), printing (``cli/analysis.py``, ``report/``).
The rules are summarised in this package's docstring and README.md's rules table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .. import measures
from ..measures import HPARAMS
from .records import (
    AGREES,
    HIGHER,
    LOWER,
    MIN_RANK_CHANGE,
    NO_EFFECT,
    OPPOSES,
    Record,
    change,
    direction,
    effect,
    final_ranks,
    measurable,
    paired_change,
    seeds_label,
    settings,
    slices,
)

AGREEMENT = 2 / 3  # share of the slices with an effect that must have the paper's sign
NEAR_MAX_RANKS = 2.0  # claim 3: within max(2 ranks, 2% of the maximum) of the maximal rank
NEAR_MAX_FRACTION = 0.02
ACC_MARGINAL = 0.02  # claim 4: test accuracy moves by less than 2 points across a slice
TRAINED_FRACTION = 0.95  # claim 4: final train accuracy >= 95% of the sweep's best
MIN_ACC_RUNS = 6  # claim 4: runs behind the slices that decide it, fewer is "not shown"

HOLDS, FAILS = "holds", "does not hold"
NOT_SHOWN, UNTESTED = "not shown by this sweep", "not tested by this sweep"
VERDICTS = (HOLDS, FAILS, NOT_SHOWN, UNTESTED)


CLAIMS = {
    "1": "SGD with weight decay lowers the rank (against wd = 0, or else the initial rank)",
    "2a": "smaller batch size -> lower rank",
    "2b": "larger learning rate -> lower rank",
    "2c": "larger weight decay -> lower rank",
    "3": "with wd = 0 the rank stays near its maximum",
    "4": "the rank bias has only a marginal effect on test accuracy",
}
# claim -> (hyperparameter, what its larger values do to the rank per the paper, wd > 0 slices only)
_TRENDS = {
    "2a": ("batch_size", HIGHER, True),
    "2b": ("lr", LOWER, True),
    "2c": ("weight_decay", LOWER, False),
}


def tally(outcomes: Iterable[str]) -> dict[str, int]:
    outcomes = list(outcomes)
    return {o: outcomes.count(o) for o in (AGREES, OPPOSES, NO_EFFECT)}


def verdict_of(counts: dict[str, int]) -> str:
    """HOLDS with >= 1 effect and >= ``AGREEMENT`` of the effects agreeing; FAILS when the
    effects of the wrong sign are more than that allows; NOT_SHOWN when nothing moved."""
    moved = counts[AGREES] + counts[OPPOSES]
    if moved == 0:
        return NOT_SHOWN
    return HOLDS if counts[AGREES] / moved >= AGREEMENT else FAILS


def _verdict(
    claim: str, verdict: str, evidence: str, items: Sequence[dict[str, Any]] = (), **numbers: Any
) -> dict[str, Any]:
    return {
        "claim": claim,
        "text": CLAIMS[claim],
        "verdict": verdict,
        "evidence": evidence,
        "numbers": numbers,
        "slices": list(items),
    }


def _counted(counts: dict[str, int], unit: str) -> str:
    moved = counts[AGREES] + counts[OPPOSES]
    return (
        f"{counts[AGREES]} of {moved} {unit}s with an effect agree, {counts[OPPOSES]} opposite, "
        f"{counts[NO_EFFECT]} without a measurable effect"
    )


def claim_trend(records: Sequence[Record], claim: str) -> dict[str, Any]:
    field, expected, wd_only = _TRENDS[claim]
    eff = effect(records, field, only_wd_positive=wd_only)
    if eff is None:
        where = " among wd > 0 runs" if wd_only else ""
        return _verdict(claim, UNTESTED, f"{field} is never varied with the others fixed{where}")
    items = [
        s
        | {
            "outcome": NO_EFFECT
            if s["direction"] == NO_EFFECT
            else AGREES
            if s["direction"] == expected
            else OPPOSES
        }
        for s in eff["slices"]
    ]
    counts = tally(s["outcome"] for s in items)
    moved = eff["mean_change_where_moved"]
    shift = (
        ""
        if moved is None
        else f"; where it moved, rank {moved:+.1f} on average from smallest to largest {field}"
    )
    evidence = f"{_counted(counts, 'slice')}{shift} ({eff['seeds']} per setting)"
    return _verdict(
        claim,
        verdict_of(counts),
        evidence,
        items,
        **counts,
        slices=len(items),
        mean_change_where_moved=moved,
        seeds=eff["seeds"],
    )


def claim_lowers(records: Sequence[Record]) -> dict[str, Any]:
    """Claim 1: each wd > 0 setting against the wd = 0 setting of its slice (same context, batch
    size and lr) where the sweep has one, else against its own initial rank (seed by seed)."""
    groups = settings(records)
    items = []
    for (ctx, batch, lr, wd), runs in groups.items():
        if wd <= 0:
            continue
        control = groups.get((ctx, batch, lr, 0.0))
        if control:
            ch, basis = change(final_ranks(control), final_ranks(runs)), "wd = 0"
        elif all(not math.isnan(r["init_avg_rank"]) for r in runs):
            ch, basis = paired_change([r["init_avg_rank"] for r in runs], final_ranks(runs)), "init"
        else:
            continue
        outcome = {LOWER: AGREES, HIGHER: OPPOSES, NO_EFFECT: NO_EFFECT}[direction(ch)]
        setting = {"batch_size": batch, "lr": lr, "weight_decay": wd} | ({"context": ctx} if ctx else {})
        items.append({"slice": setting, "against": basis, **ch, "outcome": outcome})
    if not items:
        return _verdict("1", UNTESTED, "no finished run with weight_decay > 0")
    counts = tally(s["outcome"] for s in items)
    controlled = sum(s["against"] == "wd = 0" for s in items)
    seeds = seeds_label(n for s in items for n in s["seeds"])
    evidence = (
        f"{_counted(counts, 'wd > 0 setting')}; {controlled} compared with the wd = 0 run of "
        f"their slice, {len(items) - controlled} with their initial rank ({seeds} per setting)"
    )
    return _verdict(
        "1",
        verdict_of(counts),
        evidence,
        items,
        **counts,
        settings=len(items),
        against_wd0=controlled,
        seeds=seeds,
    )


def near_max(record: Record) -> bool:
    """One run's final rank within max(``NEAR_MAX_RANKS``, ``NEAR_MAX_FRACTION`` * max) of the max."""
    top = record["max_avg_rank"]
    return top - record["final_avg_rank"] <= near_max_tolerance(top)


def near_max_tolerance(top: float) -> float:
    return max(NEAR_MAX_RANKS, NEAR_MAX_FRACTION * top)


def claim_wd0(records: Sequence[Record]) -> dict[str, Any]:
    """Claim 3: each wd = 0 setting's gap to the maximal rank (mean over seeds, with its interval):
    agrees when the whole interval is within the tolerance, opposes when it is all beyond."""
    items = []
    for (ctx, batch, lr, wd), runs in settings(records).items():
        if wd != 0:
            continue
        top = runs[0]["max_avg_rank"]
        gaps = [top - r["final_avg_rank"] for r in runs]
        lo, hi = measures.mean_interval(gaps)
        tol = near_max_tolerance(top)
        outcome = AGREES if hi <= tol else OPPOSES if lo > tol else NO_EFFECT
        setting = {"batch_size": batch, "lr": lr, "weight_decay": wd} | ({"context": ctx} if ctx else {})
        items.append(
            {
                "slice": setting,
                "max_avg_rank": top,
                "gap": float(np.mean(gaps)),
                "interval": [lo, hi],
                "tolerance": tol,
                "seeds": [len(runs)],
                "outcome": outcome,
                "init_gap": float(np.mean([top - r["init_avg_rank"] for r in runs])),
            }
        )
    if not items:
        return _verdict("3", UNTESTED, "no finished run with weight_decay = 0")
    counts = tally(s["outcome"] for s in items)
    gap = max(items, key=lambda s: s["gap"])
    seeds = seeds_label(s["seeds"][0] for s in items)
    evidence = (
        f"{counts[AGREES]} of {len(items)} wd = 0 settings within {gap['tolerance']:g} ranks of the "
        f"maximal rank {gap['max_avg_rank']:g}, {counts[OPPOSES]} beyond, {counts[NO_EFFECT]} "
        f"undecided; largest gap {gap['gap']:.1f} (at init {gap['init_gap']:.1f}) ({seeds} per setting)"
    )
    return _verdict(
        "3",
        verdict_of(counts),
        evidence,
        items,
        **counts,
        settings=len(items),
        largest_gap=gap["gap"],
        largest_init_gap=gap["init_gap"],
        seeds=seeds,
    )


def trained(records: Sequence[Record]) -> list[Record]:
    """The runs that fit their training data: final train accuracy at least ``TRAINED_FRACTION``
    of the best in ``records`` (runs without a train accuracy are kept). Undertrained runs (a tiny
    lr) have both a high rank and a low accuracy, which says nothing about the rank bias."""
    accs = [r["final_train_acc"] for r in records if r.get("final_train_acc") is not None]
    floor = TRAINED_FRACTION * max(accs) if accs else -math.inf
    return [r for r in records if r.get("final_train_acc") is None or r["final_train_acc"] >= floor]


def _accuracy_change(before: Sequence[Record], after: Sequence[Record]) -> dict[str, Any] | None:
    """Test accuracy change and change per rank across a slice whose rank moved; None if it did not.
    Agrees when the accuracy interval lies within +-``ACC_MARGINAL``, opposes when it lies beyond."""
    rank = change(final_ranks(before), final_ranks(after))
    if not measurable(rank):
        return None
    samples = measures.bootstrap_diffs(
        [[r["final_avg_rank"], r["final_test_acc"]] for r in before],
        [[r["final_avg_rank"], r["final_test_acc"]] for r in after],
    )
    lo, hi = measures.percentile_interval(samples[:, 1])
    steps = samples[:, 0] != 0  # a resample may draw the same ranks on both sides
    acc = float(
        np.mean([r["final_test_acc"] for r in after]) - np.mean([r["final_test_acc"] for r in before])
    )
    outcome = (
        AGREES
        if -ACC_MARGINAL <= lo and hi <= ACC_MARGINAL
        else (OPPOSES if lo > ACC_MARGINAL or hi < -ACC_MARGINAL else NO_EFFECT)
    )
    return {
        "rank_change": rank["change"],
        "rank_interval": rank["interval"],
        "acc_change": acc,
        "interval": [lo, hi],
        "acc_per_rank": acc / rank["change"],
        "seeds": rank["seeds"],
        "acc_per_rank_interval": list(measures.percentile_interval(samples[steps, 1] / samples[steps, 0])),
        "outcome": outcome,
        "runs": [r["run_id"] for r in (*before, *after)],
    }


def _accuracy_slices(pool: Sequence[Record]) -> list[dict[str, Any]]:
    """``_accuracy_change`` from the smallest to the largest value of each hyperparameter, per slice."""
    items = []
    for field in HPARAMS:
        others = [h for h in HPARAMS if h != field]
        for key, group in slices(pool, field).items():
            values = sorted({r[field] for r in group})
            if len(values) < 2:
                continue
            item = _accuracy_change(
                [r for r in group if r[field] == values[0]], [r for r in group if r[field] == values[-1]]
            )
            fixed = dict(zip(others, key[1:], strict=True)) | ({"context": key[0]} if key[0] else {})
            if item is not None:
                items.append({"slice": fixed, "field": field, "from": values[0], "to": values[-1], **item})
    return items


def claim_accuracy(records: Sequence[Record]) -> dict[str, Any]:
    """Claim 4 within slices (the other hyperparameters fixed) of trained runs whose rank moved:
    how much test accuracy changed across the slice, and per rank. "No correlation" is not support:
    a slice agrees only when its accuracy change is shown to be small, and a verdict needs
    ``MIN_ACC_RUNS`` runs behind the slices that decide it."""
    with_acc = [r for r in records if r.get("final_test_acc") is not None]
    if not with_acc:
        return _verdict("4", UNTESTED, "no finished run with a test accuracy")
    pool = trained(with_acc)
    left_out = len(with_acc) - len(pool)
    items = _accuracy_slices(pool)
    note = f"; {left_out} undertrained run(s) left out (train acc < {TRAINED_FRACTION:.0%} of the best)"
    if not items:
        return _verdict(
            "4", NOT_SHOWN, "the rank never moved measurably within a slice of trained runs" + note
        )
    counts = tally(s["outcome"] for s in items)
    decided = {run for s in items if s["outcome"] != NO_EFFECT for run in s["runs"]}
    items = [{k: v for k, v in s.items() if k != "runs"} for s in items]
    verdict = verdict_of(counts) if len(decided) >= MIN_ACC_RUNS else NOT_SHOWN
    slopes = [s["acc_per_rank"] for s in items]
    lo, hi = measures.mean_interval(slopes) if len(items) > 1 else items[0]["acc_per_rank_interval"]
    seeds = seeds_label(n for s in items for n in s["seeds"])
    evidence = (
        f"{counts[AGREES]} of {len(items)} slices where the rank moved keep test accuracy within "
        f"+-{ACC_MARGINAL:g}, {counts[OPPOSES]} beyond, {counts[NO_EFFECT]} undecided; test acc "
        f"{np.mean(slopes):+.4f} [{lo:+.4f}, {hi:+.4f}] per rank; {len(decided)} runs decide it"
        f"{'' if len(decided) >= MIN_ACC_RUNS else f' (< {MIN_ACC_RUNS})'}{note} ({seeds} per setting)"
    )
    return _verdict(
        "4",
        verdict,
        evidence,
        items,
        **counts,
        decided_runs=len(decided),
        left_out=left_out,
        acc_per_rank=float(np.mean(slopes)),
        acc_per_rank_interval=[lo, hi],
        seeds=seeds,
    )


def check_claims(records: Sequence[Record]) -> list[dict[str, Any]]:
    """A verdict for each claim of PAPER.md, in order 1, 2a, 2b, 2c, 3, 4."""
    return [
        claim_lowers(records),
        *(claim_trend(records, c) for c in ("2a", "2b", "2c")),
        claim_wd0(records),
        claim_accuracy(records),
    ]


def effects(records: Sequence[Record]) -> list[dict[str, Any]]:
    """The effect of every hyperparameter the records vary (all slices, wd = 0 included)."""
    return [e for e in (effect(records, h) for h in HPARAMS) if e is not None]


THRESHOLDS = {
    "min_rank_change": MIN_RANK_CHANGE,
    "interval_level": measures.INTERVAL_LEVEL,
    "bootstrap_resamples": measures.BOOTSTRAP_RESAMPLES,
    "bootstrap_seed": measures.BOOTSTRAP_SEED,
    "agreement": AGREEMENT,
    "near_max_ranks": NEAR_MAX_RANKS,
    "near_max_fraction": NEAR_MAX_FRACTION,
    "acc_marginal": ACC_MARGINAL,
    "trained_fraction": TRAINED_FRACTION,
    "min_acc_runs": MIN_ACC_RUNS,
}


def report(records: Sequence[Record], sweep: str | None = None, eps: float | None = None) -> dict[str, Any]:
    """Everything ``rankbias claims --json`` prints."""
    return {
        "sweep": sweep,
        "eps": eps,
        "runs": len(records),
        "seeds": seeds_label(len(g) for g in settings(records).values()),
        "thresholds": THRESHOLDS,
        "effects": effects(records),
        "claims": check_claims(records),
    }
