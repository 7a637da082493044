"""Claim 4, "the rank bias has only a marginal effect on test accuracy", read without selection.

Owns: ``claim_accuracy``. Within each slice (the other hyperparameters fixed) whose rank moved
measurably from the smallest to the largest value of a hyperparameter, the change of mean test
accuracy over seeds, its t interval, and the change per rank. No run is dropped because of its
accuracy or its rank: the runs where the rank fell most (large lr x wd, small B) are also the ones
that train worst, and leaving them out removes the evidence against the claim (PAPER.md). Runs
that fit their training data poorly are kept and listed; diverged runs (no final measurement to
compare) are listed as excluded. A change of accuracy across a slice is credited to the rank,
although the hyperparameter may move accuracy directly: the evidence says so.
Does not own: slices and tests (``records.py``) or the verdict rule (``rule.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import measures
from ..measures import HPARAMS
from .records import (
    AGREES,
    MIN_RANK_CHANGE,
    NO_EFFECT,
    OPPOSES,
    Record,
    change,
    final_ranks,
    measurable,
    seeds_label,
    slices,
)
from .rule import NOT_SHOWN, ONE_SIDED, untested, verdict

ACC_MARGINAL = 0.02  # test accuracy moving by less than 2 points across a slice is marginal
TRAINED_FRACTION = 0.95  # runs under 95% of the best train accuracy are listed as undertrained
MIN_ACC_RUNS = 6  # runs behind the slices that decide it; fewer is "not shown"


def accuracy_change(before: Sequence[Record], after: Sequence[Record]) -> dict[str, Any]:
    """The rank and test accuracy changes across a slice. Where the rank moved measurably, agrees
    when the accuracy interval lies within +-``ACC_MARGINAL`` (shown to be small), opposes when it
    lies beyond, undecided otherwise; where it did not move, no effect (the slice still counts as
    tested: how many slices were looked at sets how many must agree). With one seed a side, only
    the sign of the point values (``leans``)."""
    rank = change(final_ranks(before), final_ranks(after))
    acc = change([r["final_test_acc"] for r in before], [r["final_test_acc"] for r in after])
    moved = measurable(rank) if rank["tested"] else abs(rank["change"]) >= MIN_RANK_CHANGE
    lo, hi = acc["interval"]

    def judged(low: float, high: float) -> str:
        if -ACC_MARGINAL <= low and high <= ACC_MARGINAL:
            return AGREES
        return OPPOSES if low > ACC_MARGINAL or high < -ACC_MARGINAL else NO_EFFECT

    return {
        "rank_change": rank["change"],
        "rank_interval": rank["interval"],
        "acc_change": acc["change"],
        "interval": [lo, hi],
        "acc_per_rank": acc["change"] / rank["change"] if rank["change"] else math.nan,
        "seeds": rank["seeds"],
        "tested": rank["tested"] and acc["tested"],
        "rank_moved": moved,
        # a slice where the rank did not move says nothing about its effect on accuracy
        "outcome": judged(lo, hi) if moved else NO_EFFECT,
        "leans": judged(acc["change"], acc["change"]) if moved else NO_EFFECT,
        "runs": [r["run_id"] for r in (*before, *after)],
    }


def accuracy_slices(pool: Sequence[Record]) -> list[dict[str, Any]]:
    """``accuracy_change`` from the smallest to the largest value of each hyperparameter, per slice."""
    items = []
    for field in HPARAMS:
        others = [h for h in HPARAMS if h != field]
        for key, group in slices(pool, field).items():
            values = sorted({r[field] for r in group})
            if len(values) < 2:
                continue
            item = accuracy_change(
                [r for r in group if r[field] == values[0]], [r for r in group if r[field] == values[-1]]
            )
            fixed = dict(zip(others, key[1:], strict=True)) | ({"context": key[0]} if key[0] else {})
            items.append({"slice": fixed, "field": field, "from": values[0], "to": values[-1], **item})
    return items


def listed(runs: Sequence[Record]) -> list[dict[str, Any]]:
    """Runs named in the evidence, with their rank and accuracies."""
    keys = ("run_id", "status", *HPARAMS, "final_avg_rank", "final_train_acc", "final_test_acc")
    return [{k: r.get(k) for k in keys} for r in runs]


def _named(runs: Sequence[Record], what: str) -> str:
    if not runs:
        return ""
    shown = ", ".join(
        f"{r['run_id'][:8]} (rank {r['final_avg_rank']:.1f}, "
        f"test acc {r.get('final_test_acc') or float('nan'):.3f})"
        for r in runs[:4]
    )
    return f"; {len(runs)} {what}: {shown}{', ...' if len(runs) > 4 else ''}"


def claim_accuracy(records: Sequence[Record], excluded: Sequence[Record] = ()) -> dict[str, Any]:
    """Claim 4 within slices of every finished run (none dropped), with the undertrained runs
    listed (kept) and the diverged ones listed (excluded: no final measurement). A verdict needs
    ``MIN_ACC_RUNS`` runs behind the tested slices that decide it."""
    with_acc = [r for r in records if r.get("final_test_acc") is not None]
    if not with_acc:
        return untested("4", "no finished run with a test accuracy")
    accs = [r["final_train_acc"] for r in with_acc if r.get("final_train_acc") is not None]
    floor = TRAINED_FRACTION * max(accs) if accs else -np.inf
    weak = [r for r in with_acc if r.get("final_train_acc") is not None and r["final_train_acc"] < floor]
    notes = _named(weak, f"run(s) under {TRAINED_FRACTION:.0%} of the best train accuracy, kept")
    notes += _named(list(excluded), "diverged run(s) excluded")
    items = accuracy_slices(with_acc)
    if not any(s["rank_moved"] for s in items):
        return untested(
            "4", "the rank never moved measurably within a slice" + notes, left_out=listed(excluded)
        )
    decided = {run for s in items if s["tested"] and s["outcome"] != NO_EFFECT for run in s["runs"]}
    looked = [{k: v for k, v in s.items() if k != "runs"} for s in items]
    items = [s for s in looked if s["rank_moved"]]
    slopes = [s["acc_per_rank"] for s in items]
    lo, hi = measures.mean_interval(slopes)
    sign = "higher" if lo > 0 else "lower" if hi < 0 else "no clear"
    seeds = seeds_label(n for s in items for n in s["seeds"])
    tested = [s for s in items if s["tested"]]
    c = {o: sum(s["outcome"] == o for s in tested) for o in (AGREES, OPPOSES, NO_EFFECT)}
    evidence = (
        f"{c[AGREES]} of {len(tested)} tested slices where the rank moved (of {len(looked)}) "
        "keep test accuracy within "
        f"+-{ACC_MARGINAL:g}, {c[OPPOSES]} beyond, {c[NO_EFFECT]} undecided; test acc "
        f"{np.mean(slopes):+.4f} [{lo:+.4f}, {hi:+.4f}] per rank ({sign} accuracy with higher rank, "
        f"within slices; a hyperparameter's direct effect on accuracy is counted as the rank's); "
        f"{len(decided)} runs decide it{notes} ({seeds} per setting)"
    )
    result = verdict(
        "4",
        looked,
        evidence,
        seeds,
        chance=2 * ONE_SIDED,  # a null slice's rank moves either way, then its accuracy may agree
        decided_runs=len(decided),
        acc_per_rank=float(np.mean(slopes)),
        acc_per_rank_interval=[lo, hi],
        undertrained=listed(weak),
        left_out=listed(excluded),
    )
    if len(decided) < MIN_ACC_RUNS and result["numbers"]["tested"]:
        result["verdict"] = NOT_SHOWN
        result["size"] += f"; {len(decided)} runs decide it (< {MIN_ACC_RUNS})"
    return result
