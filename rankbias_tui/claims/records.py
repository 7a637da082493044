"""The evidence behind the claims: records of runs, settings, slices, and changes above the noise.

Owns: turning a store's runs into plain *records* (one dict per run: batch_size, lr, weight_decay,
seed, initial/final/maximal average rank at a chosen eps, final train and test accuracy), grouping
them into *settings* (the runs of one configuration, one per seed) and *slices* (the settings that
hold all but one hyperparameter fixed), the change of a mean over seeds with its interval, and the
noise floor (``measurable``). Does not own: the t intervals (``measures.py``) or the verdicts
(``verdicts.py``). Imports neither torch nor matplotlib.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .. import measures
from ..measures import HPARAMS, Status
from ..store import RunRow, Store
from ..track import Track, untracked

MIN_RANK_CHANGE = 1.0  # ranks of the average: the measure's resolution with one seed

AGREES, OPPOSES, NO_EFFECT = "agrees", "opposes", "no effect"  # a slice against a claim
HIGHER, LOWER = "higher", "lower"  # what larger values of a hyperparameter do to the rank
# Config fields that never define a slice: the three hyperparameters, the seed, bookkeeping.
_NOT_CONTEXT = set(HPARAMS) | {"seed", "rank_eps", "measure_every", "eval_every"}

Record = dict[str, Any]


# ----- records -----------------------------------------------------------------------------------
def _nan(value: float | None) -> float:
    """Records hold NaN for "no measurement", so the statistics below can stay plain floats."""
    return math.nan if value is None else value


def context_of(config: dict[str, Any], varying: Iterable[str]) -> str:
    """A label of the non-hyperparameter fields that vary in a sweep (model, depth, ...), or ''."""
    return ", ".join(f"{k}={config.get(k)}" for k in sorted(varying) if k not in _NOT_CONTEXT)


def run_record(
    store: Store, run: RunRow, eps: float | None = None, context: str = "", layer: str | None = None
) -> Record:
    """One run as a record: its hyperparameters and its ranks at ``eps`` (None: stored eps),
    averaged over the measured layers (or of one ``layer``); ``config`` is the whole config."""
    init, final = store.init_and_final_spectra(run.run_id)
    last = store.last_metrics(run.run_id)
    return {
        "run_id": run.run_id,
        "status": run.status,
        "context": context,
        **{k: run.config.value(k) for k in (*HPARAMS, "seed")},
        "init_avg_rank": _nan(measures.avg_rank(init, eps, layer)),
        "final_avg_rank": _nan(measures.avg_rank(final, eps, layer)),
        "max_avg_rank": _nan(measures.max_avg_rank(final, layer)),
        "final_test_acc": last.get(measures.TEST_ACC),
        "final_train_acc": last.get(measures.TRAIN_ACC),
        "config": run.config.stored,
    }


def records_from_store(
    store: Store,
    sweep: str | None = None,
    eps: float | None = None,
    statuses: Iterable[str] = (Status.DONE,),
    layer: str | None = None,
    track: Track[RunRow] = untracked,
) -> list[Record]:
    """Records of a sweep's runs with one of ``statuses`` (default: done; diverged runs excluded),
    skipping runs without any measurement; read through ``track`` (a progress bar)."""
    wanted = set(statuses)
    runs = [r for r in store.runs(sweep) if r.status in wanted]
    varying = measures.varied_fields(r.config.stored for r in runs)
    out = [
        run_record(store, r, eps, context_of(r.config.stored, varying), layer) for r in track(runs, "claims")
    ]
    return [r for r in out if not math.isnan(r["final_avg_rank"])]


def excluded_from_store(store: Store, sweep: str | None = None, eps: float | None = None) -> list[Record]:
    """The sweep's diverged runs as records (their last measurement), which the claims leave out
    and say so."""
    return records_from_store(store, sweep, eps, statuses=(Status.DIVERGED,))


# ----- settings, slices and changes --------------------------------------------------------------
def settings(records: Sequence[Record]) -> dict[tuple[Any, ...], list[Record]]:
    """Records grouped by everything but the seed: (context, batch_size, lr, weight_decay)."""
    groups: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    for r in records:
        groups[(r.get("context", ""), *(r[h] for h in HPARAMS))].append(r)
    return dict(groups)


def slices(records: Sequence[Record], field: str) -> dict[tuple[Any, ...], list[Record]]:
    """Group records by everything but ``field`` (and the seed): the other hyperparameters, context."""
    groups: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    others = [h for h in HPARAMS if h != field]
    for r in records:
        groups[(r.get("context", ""), *(r[h] for h in others))].append(r)
    return dict(groups)


def seeds_label(counts: Iterable[int]) -> str:
    """How many seeds stand behind each number: "3 seeds" or "1-3 seeds"."""
    counts = sorted(set(counts))
    if not counts:
        return "no seeds"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{span} seed" + ("" if span == "1" else "s")


def change(before: Sequence[float], after: Sequence[float]) -> dict[str, Any]:
    """mean(after) - mean(before) over seeds, its t interval, the seeds behind each side and
    whether it can be tested at all (a spread to judge it by: two seeds on a side)."""
    diff = float(np.mean(after) - np.mean(before))
    lo, hi = measures.diff_interval(before, after)
    return {
        "change": diff,
        "interval": [lo, hi],
        "seeds": [len(before), len(after)],
        "tested": measures.testable(before, after),
    }


def paired_change(before: Sequence[float], after: Sequence[float]) -> dict[str, Any]:
    """The mean over seeds of after - before of the same runs (e.g. final - initial rank)."""
    diffs = [b - a for a, b in zip(before, after, strict=True)]
    lo, hi = measures.mean_interval(diffs)
    return {
        "change": float(np.mean(diffs)),
        "interval": [lo, hi],
        "seeds": [len(diffs), len(diffs)],
        "tested": len(diffs) >= 2,
    }


def measurable(ch: dict[str, Any]) -> bool:
    """The noise floor: a tested change (seeds to judge it by) of at least ``MIN_RANK_CHANGE``
    ranks whose t interval over seeds excludes 0."""
    lo, hi = ch["interval"]
    return ch["tested"] and abs(ch["change"]) >= MIN_RANK_CHANGE and (lo > 0 or hi < 0)


def direction(ch: dict[str, Any]) -> str:
    """HIGHER, LOWER, or NO_EFFECT when the change is under the noise floor (or untested)."""
    return NO_EFFECT if not measurable(ch) else HIGHER if ch["change"] > 0 else LOWER


def leaning(ch: dict[str, Any]) -> str:
    """Which way a change points, tested or not (for one seed: a sign, not a test): HIGHER or
    LOWER by at least ``MIN_RANK_CHANGE`` ranks, else NO_EFFECT."""
    if abs(ch["change"]) < MIN_RANK_CHANGE:
        return NO_EFFECT
    return HIGHER if ch["change"] > 0 else LOWER


def final_ranks(runs: Sequence[Record]) -> list[float]:
    """The final average ranks of ``runs``, one per seed."""
    return [r["final_avg_rank"] for r in runs]


def effect(records: Sequence[Record], field: str, only_wd_positive: bool = False) -> dict[str, Any] | None:
    """How ``field`` moves the final average rank with the others fixed; None if never varied.

    Per slice with >= 2 values of ``field``: the change of the mean final rank over seeds from its
    smallest to its largest value, with its interval, and its direction (HIGHER, LOWER, NO_EFFECT)."""
    pool = [r for r in records if not only_wd_positive or r["weight_decay"] > 0]
    others = [h for h in HPARAMS if h != field]
    per_slice = []
    for key, group in slices(pool, field).items():
        values = sorted({r[field] for r in group})
        if len(values) < 2:
            continue
        ch = change(
            final_ranks([r for r in group if r[field] == values[0]]),
            final_ranks([r for r in group if r[field] == values[-1]]),
        )
        fixed = dict(zip(others, key[1:], strict=True)) | ({"context": key[0]} if key[0] else {})
        per_slice.append(
            {
                "slice": fixed,
                "from": values[0],
                "to": values[-1],
                "runs": len(group),
                **ch,
                "direction": direction(ch),
                "leans": leaning(ch),
            }
        )
    if not per_slice:
        return None
    moved = [s["change"] for s in per_slice if s["direction"] != NO_EFFECT]
    return {
        "field": field,
        "values": sorted({r[field] for r in pool}),
        "slices": per_slice,
        "counts": {d: sum(s["direction"] == d for s in per_slice) for d in (HIGHER, LOWER, NO_EFFECT)},
        "mean_change_where_moved": float(np.mean(moved)) if moved else None,
        "seeds": seeds_label(n for s in per_slice for n in s["seeds"]),
    }
