"""The paper's claims (PAPER.md), checked from stored runs, read with a noise floor.

Two modules: ``records`` (runs as records, settings and slices, changes over seeds and the noise
floor) and ``verdicts`` (a verdict per claim, the ``claims --json`` report). Does not own: the rank
rules, which fields vary and the bootstrap (``measures.py``), drawing (``figures/``), the command
line (``cli/analysis.py``), the report page (``report/``) or the database (``store/``).
Imports neither torch nor matplotlib, so the terminal UI may use it.

Reading a sweep honestly (PAPER.md; README.md's rules table; every threshold is in ``--json``):
- an *effect* is a change of the mean final average rank over seeds of at least
  ``MIN_RANK_CHANGE`` ranks (one layer's smallest singular value crossing eps moves the average by
  1/layers) whose bootstrap interval over seeds excludes 0 (with one seed: the change itself);
- each claim sorts its slices (or settings) into ``AGREES`` (an effect of the paper's sign),
  ``OPPOSES`` (of the opposite sign) and ``NO_EFFECT``; it *holds* when at least one has an effect
  and at least ``AGREEMENT`` of those agree, *does not hold* otherwise (earned by effects of the
  wrong sign, never by flat slices), and is *not shown by this sweep* when nothing moved;
- claim 1 compares each wd > 0 setting with the wd = 0 setting of its slice, or with its own
  initial rank where the sweep has no such control;
- claim 3 compares each wd = 0 setting's gap to the maximal rank with ``near_max_tolerance``;
- claim 4 reads test accuracy within slices whose rank moved, among trained runs only.
"""

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
    measurable,
    paired_change,
    records_from_store,
    run_record,
    seeds_label,
    settings,
    slices,
)
from .verdicts import (
    ACC_MARGINAL,
    AGREEMENT,
    CLAIMS,
    FAILS,
    HOLDS,
    MIN_ACC_RUNS,
    NEAR_MAX_FRACTION,
    NEAR_MAX_RANKS,
    NOT_SHOWN,
    THRESHOLDS,
    TRAINED_FRACTION,
    UNTESTED,
    VERDICTS,
    check_claims,
    claim_accuracy,
    claim_lowers,
    claim_trend,
    claim_wd0,
    effects,
    near_max,
    near_max_tolerance,
    report,
    tally,
    trained,
    verdict_of,
)

__all__ = [
    "ACC_MARGINAL",
    "AGREEMENT",
    "AGREES",
    "CLAIMS",
    "FAILS",
    "HIGHER",
    "HOLDS",
    "HPARAMS",
    "LOWER",
    "MIN_ACC_RUNS",
    "MIN_RANK_CHANGE",
    "NEAR_MAX_FRACTION",
    "NEAR_MAX_RANKS",
    "NO_EFFECT",
    "NOT_SHOWN",
    "OPPOSES",
    "THRESHOLDS",
    "TRAINED_FRACTION",
    "UNTESTED",
    "VERDICTS",
    "Record",
    "change",
    "check_claims",
    "claim_accuracy",
    "claim_lowers",
    "claim_trend",
    "claim_wd0",
    "context_of",
    "direction",
    "effect",
    "effects",
    "measurable",
    "near_max",
    "near_max_tolerance",
    "paired_change",
    "records_from_store",
    "report",
    "run_record",
    "seeds_label",
    "settings",
    "slices",
    "tally",
    "trained",
    "verdict_of",
]
