"""The paper's claims (PAPER.md), checked from stored runs: records, effects and verdicts.

Owns: turning a store's runs into plain *records* (one dict per run: batch_size, lr, weight_decay,
seed, initial/final/maximal average rank at a chosen eps, final test accuracy) and the pure
analysis of records: the effect of each hyperparameter on the final average rank with the others
held fixed (Spearman correlation per slice, sign agreement across slices) and a verdict per claim.
Does not own: the rank rules and which fields vary (``measures.py``), drawing (``figures/``), the
command line (``cli_analysis.py``), or the database (``store.py``).
Imports neither torch nor matplotlib, so the terminal UI may use it.

Thresholds (also in README.md, "Figures and claims"):
- an effect *holds* when the mean Spearman rho over slices has the paper's sign with
  |mean rho| >= ``RHO_STRONG`` and at least ``AGREEMENT`` of the slices have that sign;
- claims 2a and 2b (batch size, learning rate) use only slices with weight_decay > 0 (without
  weight decay the paper predicts no bias at all); claim 2c includes wd = 0 as a value;
- claim 1 holds when more than half of the wd > 0 runs end with a lower average rank than at init;
- claim 3: a wd = 0 run is *near maximal* when max - final <= max(``NEAR_MAX_RANKS``,
  ``NEAR_MAX_FRACTION`` * max), max = mean over layers of min(d_out, d_in); holds when all are;
- claim 4: the effect on test accuracy is *marginal* when |Spearman(final rank, test acc)| <
  ``RHO_STRONG`` across the sweep's runs, or the test accuracies span at most ``ACC_SPREAD``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import measures
from .measures import HPARAMS
from .store import RunRow, Store

RHO_STRONG = 0.5
AGREEMENT = 2 / 3
NEAR_MAX_RANKS = 2.0
NEAR_MAX_FRACTION = 0.02
ACC_SPREAD = 0.02
HOLDS, FAILS, UNTESTED = "holds", "does not hold", "not tested by this sweep"
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
    return {
        "run_id": run.run_id,
        "status": run.status,
        "context": context,
        **{k: run.config.get(k) for k in (*HPARAMS, "seed")},
        "init_avg_rank": _nan(measures.avg_rank(init, eps, layer)),
        "final_avg_rank": _nan(measures.avg_rank(final, eps, layer)),
        "max_avg_rank": _nan(measures.max_avg_rank(final, layer)),
        "final_test_acc": store.last_metrics(run.run_id).get(measures.TEST_ACC),
        "config": run.config,
    }


def records_from_store(
    store: Store,
    sweep: str | None = None,
    eps: float | None = None,
    statuses: Iterable[str] = ("done",),
    layer: str | None = None,
) -> list[Record]:
    """Records of a sweep's runs with one of ``statuses`` (default: done; diverged runs excluded),
    skipping runs without any measurement."""
    wanted = set(statuses)
    runs = [r for r in store.runs(sweep) if r.status in wanted]
    varying = measures.varied_fields(r.config for r in runs)
    out = [run_record(store, r, eps, context_of(r.config, varying), layer) for r in runs]
    return [r for r in out if not math.isnan(r["final_avg_rank"])]


# ----- statistics ------------------------------------------------------------------------------
def _ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing their average rank (as scipy.stats.rankdata)."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson of tie-averaged ranks); NaN if either side is constant."""
    if len(x) != len(y) or len(x) < 2:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((dx**2).sum() * (dy**2).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else math.nan


def slices(records: Sequence[Record], field: str) -> dict[tuple[Any, ...], list[Record]]:
    """Group records by everything but ``field`` (and the seed): the other hyperparameters, context."""
    groups: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    others = [h for h in HPARAMS if h != field]
    for r in records:
        groups[(r.get("context", ""), *(r[h] for h in others))].append(r)
    return dict(groups)


def effect(records: Sequence[Record], field: str, only_wd_positive: bool = False) -> dict[str, Any] | None:
    """How ``field`` moves the final average rank with the others fixed; None if never varied.

    Per slice with >= 2 values of ``field``: Spearman rho of (field, final rank) over its runs
    (a slice whose ranks do not move at all counts as rho = 0) and the rank change (mean final
    rank at the largest value minus at the smallest: negative when larger values lower the rank)."""
    pool = [r for r in records if not only_wd_positive or r["weight_decay"] > 0]
    per_slice = []
    for key, group in slices(pool, field).items():
        values = sorted({r[field] for r in group})
        if len(values) < 2:
            continue
        rho = spearman([r[field] for r in group], [r["final_avg_rank"] for r in group])
        lo = np.mean([r["final_avg_rank"] for r in group if r[field] == values[0]])
        hi = np.mean([r["final_avg_rank"] for r in group if r[field] == values[-1]])
        fixed = dict(zip([h for h in HPARAMS if h != field], key[1:], strict=True))
        fixed |= {"context": key[0]} if key[0] else {}
        per_slice.append({"slice": fixed, "n": len(group), "rho": 0.0 if math.isnan(rho) else rho,
                          "rank_change": float(hi - lo)})  # fmt: skip
    if not per_slice:
        return None
    rhos = [s["rho"] for s in per_slice]
    mean_rho = float(np.mean(rhos))
    return {
        "field": field,
        "values": sorted({r[field] for r in pool}),
        "slices": per_slice,
        "mean_rho": mean_rho,
        "direction": "larger -> higher rank" if mean_rho > 0 else "larger -> lower rank" if mean_rho < 0
        else "no effect",
        "agree_up": sum(r > 0 for r in rhos) / len(rhos),
        "agree_down": sum(r < 0 for r in rhos) / len(rhos),
        "mean_rank_change": float(np.mean([s["rank_change"] for s in per_slice])),
    }  # fmt: skip


# ----- verdicts ------------------------------------------------------------------------------------
CLAIMS = {
    "1": "SGD with weight decay lowers the rank (final < init for wd > 0 runs)",
    "2a": "smaller batch size -> lower rank",
    "2b": "larger learning rate -> lower rank",
    "2c": "larger weight decay -> lower rank",
    "3": "with wd = 0 the rank stays near its maximum",
    "4": "the rank bias has only a marginal effect on test accuracy",
}
# claim -> (hyperparameter, sign of Spearman(field, rank) the paper predicts, wd > 0 slices only)
_TRENDS = {"2a": ("batch_size", +1, True), "2b": ("lr", -1, True), "2c": ("weight_decay", -1, False)}


def _verdict(claim: str, verdict: str, evidence: str, **numbers: Any) -> dict[str, Any]:
    return {"claim": claim, "text": CLAIMS[claim], "verdict": verdict, "evidence": evidence,
            "numbers": numbers}  # fmt: skip


def claim_trend(records: Sequence[Record], claim: str) -> dict[str, Any]:
    field, sign, wd_only = _TRENDS[claim]
    eff = effect(records, field, only_wd_positive=wd_only)
    if eff is None:
        where = " among wd > 0 runs" if wd_only else ""
        return _verdict(claim, UNTESTED, f"{field} is never varied with the others fixed{where}")
    agree = eff["agree_up"] if sign > 0 else eff["agree_down"]
    ok = sign * eff["mean_rho"] >= RHO_STRONG and agree >= AGREEMENT
    evidence = (
        f"rho = {eff['mean_rho']:+.2f} over {len(eff['slices'])} slice(s), {agree:.0%} with the "
        f"paper's sign; rank {eff['mean_rank_change']:+.1f} from smallest to largest {field}"
    )
    return _verdict(claim, HOLDS if ok else FAILS, evidence, mean_rho=eff["mean_rho"], agreement=agree,
                    slices=len(eff["slices"]), mean_rank_change=eff["mean_rank_change"])  # fmt: skip


def claim_lowers(records: Sequence[Record]) -> dict[str, Any]:
    runs = [r for r in records if r["weight_decay"] > 0 and not math.isnan(r["init_avg_rank"])]
    if not runs:
        return _verdict("1", UNTESTED, "no finished run with weight_decay > 0")
    lower = [r for r in runs if r["final_avg_rank"] < r["init_avg_rank"]]
    drop = float(np.mean([r["init_avg_rank"] - r["final_avg_rank"] for r in runs]))
    evidence = f"{len(lower)}/{len(runs)} wd > 0 runs end below their initial rank; mean drop {drop:.1f}"
    verdict = HOLDS if len(lower) > len(runs) / 2 else FAILS
    return _verdict("1", verdict, evidence, lower=len(lower), runs=len(runs), mean_drop=drop)


def near_max(record: Record) -> bool:
    top = record["max_avg_rank"]
    return top - record["final_avg_rank"] <= max(NEAR_MAX_RANKS, NEAR_MAX_FRACTION * top)


def claim_wd0(records: Sequence[Record]) -> dict[str, Any]:
    runs = [r for r in records if r["weight_decay"] == 0]
    if not runs:
        return _verdict("3", UNTESTED, "no finished run with weight_decay = 0")
    near = [r for r in runs if near_max(r)]
    gap = max(r["max_avg_rank"] - r["final_avg_rank"] for r in runs)
    # At a large eps even a random initial matrix is below the maximum; say so next to the gap.
    init_gap = max(r["max_avg_rank"] - r["init_avg_rank"] for r in runs)
    evidence = (
        f"{len(near)}/{len(runs)} wd = 0 runs near the maximal rank {runs[0]['max_avg_rank']:g}; "
        f"largest gap {gap:.1f} (at init {init_gap:.1f})"
    )
    return _verdict("3", HOLDS if len(near) == len(runs) else FAILS, evidence, near=len(near),
                    runs=len(runs), largest_gap=gap, largest_init_gap=init_gap)  # fmt: skip


def claim_accuracy(records: Sequence[Record]) -> dict[str, Any]:
    runs = [r for r in records if r.get("final_test_acc") is not None]
    ranks = [r["final_avg_rank"] for r in runs]
    if len(runs) < 3 or len(set(ranks)) < 2:
        return _verdict("4", UNTESTED, "needs >= 3 runs with test accuracy and differing final ranks")
    accs = [r["final_test_acc"] for r in runs]
    rho = spearman(ranks, accs)
    rho = 0.0 if math.isnan(rho) else rho
    spread = max(accs) - min(accs)
    ok = abs(rho) < RHO_STRONG or spread <= ACC_SPREAD
    evidence = f"rho(final rank, test acc) = {rho:+.2f} over {len(runs)} runs; test acc spread {spread:.3f}"
    return _verdict("4", HOLDS if ok else FAILS, evidence, rho=rho, acc_spread=spread, runs=len(runs))


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


def report(records: Sequence[Record], sweep: str | None = None, eps: float | None = None) -> dict[str, Any]:
    """Everything ``rankbias claims --json`` prints."""
    return {
        "sweep": sweep,
        "eps": eps,
        "runs": len(records),
        "thresholds": {
            "rho_strong": RHO_STRONG, "agreement": AGREEMENT, "near_max_ranks": NEAR_MAX_RANKS,
            "near_max_fraction": NEAR_MAX_FRACTION, "acc_spread": ACC_SPREAD,
        },
        "effects": effects(records),
        "claims": check_claims(records),
    }  # fmt: skip
