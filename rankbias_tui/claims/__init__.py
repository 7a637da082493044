"""The paper's claims (PAPER.md), checked from stored runs, read so that noise and selection
cannot decide them.

Four modules: ``records`` (runs as records, settings and slices, changes over seeds with their t
intervals and the noise floor), ``rule`` (the calibrated verdict rule, the statements and the
verdict words), ``verdicts`` (claims 1-3, the ``claims --json`` report) and ``accuracy`` (claim
4). Does not own: the rank rules, which fields vary and the t intervals (``measures.py``), drawing
(``figures/``), the command line (``cli/analysis.py``), the report page (``report/``) or the
database (``store/``). Imports neither torch nor matplotlib, so the terminal UI may use it.

Reading a sweep honestly (PAPER.md; README.md's rules table; every threshold is in ``--json``):
- an *effect* is a change of the final average rank of at least ``MIN_RANK_CHANGE`` ranks whose
  95% Student-t interval excludes 0 (Welch's between two settings; across three or more ordered
  settings, the least-squares line through every run, ``records.trend_change``; paired for a run
  against its own start); with one seed per setting there is no spread to judge it by: the slice
  is *not tested*, only its sign is reported;
- each claim sorts its tested slices into ``AGREES`` (an effect of the paper's sign),
  ``OPPOSES`` and ``NO_EFFECT``; it *holds* with at least ``rule.min_deciding(tested)`` agreeing
  slices (>= 2, and more the more slices are tested, so that at most 2.5% of null sweeps reach
  it) and ``AGREEMENT`` of the effects agreeing, *does not hold* likewise for the opposite sign,
  and is *not shown by this sweep* otherwise; without any tested slice it reads "consistent,
  1 seed: not a test" (or "inconsistent, ..."), never a plain "holds";
- claim 1 compares, per slice, the largest weight decay with the wd = 0 run(s) of the slice; a
  slice without that control is not tested (its change from the initial rank is information);
- claim 3 compares each wd = 0 setting's final rank with its own initial rank at the same eps;
- claim 4 reads test accuracy within slices whose rank moved, with no run dropped; runs with a
  poor fit are listed, diverged runs are listed as excluded;
- claim 5 compares settings of a slice with the same lr x wd and another lr: the same rank within
  the claim-3 tolerance, shown by the t interval.
"""

from .accuracy import ACC_MARGINAL, MIN_ACC_RUNS, TRAINED_FRACTION, accuracy_change, claim_accuracy
from .records import (
    AGREES,
    HIGHER,
    HPARAMS,
    LOWER,
    MIN_RANK_CHANGE,
    NO_EFFECT,
    OPPOSES,
    Record,
    change,
    context_of,
    direction,
    effect,
    excluded_from_store,
    leaning,
    measurable,
    paired_change,
    records_from_store,
    run_record,
    seeds_label,
    settings,
    slices,
)
from .rule import (
    AGREEMENT,
    CLAIMS,
    CONSISTENT,
    DECIDED,
    FAILS,
    HOLDS,
    INCONSISTENT,
    NOT_SHOWN,
    UNTESTED,
    VERDICTS,
    min_deciding,
    tally,
    verdict_of,
)
from .verdicts import (
    NEAR_MAX_FRACTION,
    NEAR_MAX_RANKS,
    THRESHOLDS,
    check_claims,
    claim_lowers,
    claim_product,
    claim_trend,
    claim_wd0,
    effects,
    fall_tolerance,
    report,
)

__all__ = [
    "ACC_MARGINAL",
    "AGREEMENT",
    "AGREES",
    "CLAIMS",
    "CONSISTENT",
    "DECIDED",
    "FAILS",
    "HIGHER",
    "HOLDS",
    "HPARAMS",
    "INCONSISTENT",
    "LOWER",
    "MIN_ACC_RUNS",
    "MIN_RANK_CHANGE",
    "NEAR_MAX_FRACTION",
    "NEAR_MAX_RANKS",
    "NOT_SHOWN",
    "NO_EFFECT",
    "OPPOSES",
    "Record",
    "THRESHOLDS",
    "TRAINED_FRACTION",
    "UNTESTED",
    "VERDICTS",
    "accuracy_change",
    "change",
    "check_claims",
    "claim_accuracy",
    "claim_lowers",
    "claim_product",
    "claim_trend",
    "claim_wd0",
    "context_of",
    "direction",
    "effect",
    "effects",
    "excluded_from_store",
    "fall_tolerance",
    "leaning",
    "measurable",
    "min_deciding",
    "paired_change",
    "records_from_store",
    "report",
    "run_record",
    "seeds_label",
    "settings",
    "slices",
    "tally",
    "verdict_of",
]
