"""The project's vocabulary and the arithmetic on stored measurements: one home for each rule.

Owns: run statuses and which of them are finished; metric names (one table, as the engine logs
them and the store keeps them); the run fields that tell runs apart and ``varied_fields``; the
rank rules: rank at eps (the count of singular values of W/||W||_F strictly above eps), the average
rank over layers, the largest possible average rank, a run's rank curve, when the paper's bound
is vacuous, and the spread over seeds (a Student-t interval of a mean or of a difference of
means, shared by the claims and the figures). Does not own: computing singular values
(``engine/spectral.py``, torch), reading the store
(``store/``), how numbers are printed (``tui/format.py``, the CLI) or the claims' rules
(``claims/``).

Imports numpy only (no torch, no textual, nothing else of this package), so every process may use
it: the engine, the scheduler, the CLI and the terminal UI.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any, Protocol

import numpy as np


# ----- statuses ----------------------------------------------------------------------------------
class Status(str, Enum):
    """A run's status: the closed vocabulary, stored as its value (``"done"``...) and equal to it.

    stopped: the scheduler stopped (``rankbias stop``, Ctrl-C, a signal) before the run ended, so no
    scheduler will start it on its own; it resumes from its last checkpoint when resumed or
    relaunched. interrupted: a running run whose scheduler is gone (killed, out of memory,
    rebooted): derived when the store is read, never stored. Any scheduler that starts adopts it;
    it resumes from its last checkpoint."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DIVERGED = "diverged"
    CANCELLED = "cancelled"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:  # "done", not "Status.DONE", in f-strings and prints
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


STATUSES = tuple(Status)
INTERRUPTED = Status.INTERRUPTED
FINISHED = (Status.DONE, Status.DIVERGED)  # ended by the training itself: never re-run, nothing to resume
ACTIVE = (Status.QUEUED, Status.RUNNING)  # waiting for or holding a device: what a cancel acts on
NO_REASON = {
    Status.DIVERGED: "diverged (no reason recorded)",
    Status.FAILED: "failed (no error recorded)",
    Status.INTERRUPTED: "its scheduler ended without stopping it; the next scheduler to start resumes it",
}
UNEXPLAINED = (
    Status.QUEUED,
    Status.RUNNING,
    Status.DONE,
)  # their state needs no reason (an old one is stale)


def reason(status: str, error: str | None) -> str | None:
    """Why a run is where it is, in one line: the first line of its error (the engine records why a
    run diverged there too) for a run that failed, diverged, was cancelled, stopped or interrupted;
    a stand-in where none was recorded; None for queued, running and done runs (an error kept from
    an earlier attempt does not explain them)."""
    if status in UNEXPLAINED:
        return None
    first = next((line.strip() for line in (error or "").splitlines() if line.strip()), None)
    return first or NO_REASON.get(status)


def shown_reason(status: str, error: str | None, warning: str | None = None) -> str | None:
    """A runs table's reason column (``rankbias list``, the app's dashboard): ``reason``, or for a
    queued or running run, which has none, its latest ``warning`` (a worker that stalled and was
    killed, a pack retried in smaller packs) as ``warning: ...``."""
    why = reason(status, error)
    if why is None and warning and status in (Status.QUEUED, Status.RUNNING):
        return f"warning: {warning}"
    return why


# ----- metric names ------------------------------------------------------------------------------
LOSS, ACC, LR = "loss", "acc", "lr"
TRAIN_LOSS, TRAIN_ACC, TEST_LOSS, TEST_ACC = "train_loss", "train_acc", "test_loss", "test_acc"
MEASURE_SHARE = "measure_share"
METRICS: Mapping[str, str] = {
    LOSS: "loss of the last training batch (logged every few steps)",
    ACC: "accuracy of the last training batch (logged every few steps)",
    LR: "learning rate at that step",
    TRAIN_LOSS: "loss over the training set, eval mode (at each evaluation)",
    TRAIN_ACC: "accuracy over the training set, eval mode (at each evaluation)",
    TEST_LOSS: "loss over the test set, eval mode (at each evaluation)",
    TEST_ACC: "accuracy over the test set, eval mode (at each evaluation)",
    MEASURE_SHARE: "fraction of a pack's wall time spent measuring spectra (packs, at each measurement)",
}
STEP_METRICS = (LOSS, ACC, LR)
EVAL_METRICS = (TRAIN_LOSS, TRAIN_ACC, TEST_LOSS, TEST_ACC)
MEASURE_METRICS = (MEASURE_SHARE,)  # about the measurement itself


def shown_loss(names: Collection[str]) -> str:
    """The loss a person sees: the eval-mode training loss once there is one, else the batch loss."""
    return TRAIN_LOSS if TRAIN_LOSS in names else LOSS


def shown_acc(names: Collection[str]) -> str:
    """The accuracy a person sees: test accuracy once evaluated, else the batch accuracy."""
    return TEST_ACC if TEST_ACC in names else ACC


# ----- naming a run ------------------------------------------------------------------------------
SHORT_NAMES = {"batch_size": "B", "weight_decay": "wd", "momentum": "mom", "dataset": "data", "epochs": "ep"}


def run_label(run_id: str, values: Mapping[str, Any], varied: Iterable[str]) -> str:
    """``a1b2c3d4 B=8 wd=0.01``: the id's first 8 digits and the stored values of the fields that
    distinguish the run in its sweep; the one rule (headless progress, dry run, app, compare)."""
    return " ".join([run_id[:8], *(f"{SHORT_NAMES.get(k, k)}={values.get(k)}" for k in varied)])


# ----- which fields vary -------------------------------------------------------------------------
HPARAMS = ("batch_size", "lr", "weight_decay")  # the three the paper's bound depends on
# Every run field that can tell two runs apart, in the order columns and labels show them: first
# what a sweep usually varies (what is trained, on what, the paper's hyperparameters, how long, the
# seed: also what the dashboard's filter searches), then the rest. tests/unit/test_measures.py
# checks that this covers spec.RUN_FIELDS but pack_size, an execution detail and not an identity.
MAIN_FIELDS = (
    "model",
    "dataset",
    "depth",
    "width",
    "batch_size",
    "lr",
    "weight_decay",
    "momentum",
    "epochs",
    "seed",
)
FIELDS = MAIN_FIELDS + (
    "model_options",
    "dataset_options",
    "activation",
    "train_size",
    "drop_last",
    "lr_milestones",
    "lr_gamma",
    "loss",
    "rank_eps",
    "measure_every",
    "measured_layers",
    "eval_every",
    "diverge_after",
    "diverge_acc",
    "precision",
    "deterministic",
)


# A user's model and data set's fields: empty (or None) on every run of a built-in one.
USER_CODE_FIELDS = ("model_options", "dataset_options", "code_dir")


def hashable(value: Any) -> Any:
    """A stored config value as a key to group runs by: a table (a user's options) or a list as its
    JSON text, anything else as it is."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def shown_config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config as ``show`` and the app list it: the user-code fields only where they are
    set, so a built-in run reads as it always did."""
    return {k: v for k, v in stored.items() if v or k not in USER_CODE_FIELDS}


def varied_fields(configs: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The fields of ``FIELDS`` whose values differ between ``configs``, in ``FIELDS`` order.

    Values are compared by ``repr`` so lists (lr_milestones) count too; a missing field is None."""
    configs = list(configs)
    return tuple(k for k in FIELDS if len({repr(c.get(k)) for c in configs}) > 1)


# ----- ranks -------------------------------------------------------------------------------------
class Spectrum(Protocol):
    """What the rank rules read of one layer's stored measurement (``store.SpectrumRow``)."""

    layer: str
    step: int
    epoch: float
    d_out: int
    d_in: int
    rank: int  # rank at the run's own eps, counted when measured
    svals: Any  # (min(d_out, d_in),) singular values of W/||W||_F, descending


def rank_at_eps(svals: Any, eps: float) -> int:
    """rank_eps: how many singular values of W/||W||_F are strictly greater than ``eps``.

    ``svals``: any array-like of floats (numpy array, list, CPU tensor)."""
    return int(np.count_nonzero(np.asarray(svals, dtype=np.float64) > eps))


def layer_rank(s: Spectrum, eps: float | None = None) -> int:
    """One layer's rank: the stored one (counted at the run's eps), or recounted at ``eps``."""
    return int(s.rank) if eps is None else rank_at_eps(s.svals, eps)


def mean(values: Iterable[float]) -> float | None:
    """sum / count in Python floats, None when empty.

    The exported averages are this exact arithmetic (tests/data/golden), so keep it: numpy's
    pairwise summation may differ in the last bit for non-integer values."""
    values = list(values)
    return sum(values) / len(values) if values else None


def avg_rank(spectra: Iterable[Spectrum], eps: float | None = None, layer: str | None = None) -> float | None:
    """The average rank: mean over the measured layers of one measurement (or ``layer``'s rank),
    at the stored eps or recounted at ``eps``; None when there is no such layer."""
    return mean(layer_rank(s, eps) for s in spectra if layer is None or s.layer == layer)


def max_avg_rank(spectra: Iterable[Spectrum], layer: str | None = None) -> float | None:
    """The largest possible average rank: mean over layers of min(d_out, d_in); None if none."""
    return mean(min(s.d_out, s.d_in) for s in spectra if layer is None or s.layer == layer)


def by_measurement(spectra: Iterable[Spectrum]) -> list[list[Spectrum]]:
    """A run's spectra grouped per measurement (step), in step order, layers in stored order."""
    by_step: dict[int, list[Spectrum]] = defaultdict(list)
    for s in spectra:
        by_step[s.step].append(s)
    return [by_step[k] for k in sorted(by_step)]


def rank_curve(
    spectra: Iterable[Spectrum], eps: float | None = None, layer: str | None = None
) -> tuple[list[float], list[float]]:
    """(epochs, average ranks) of one run, one point per measurement in step order; NaN where a
    measurement lacks ``layer``."""
    rows = by_measurement(spectra)
    ranks = [avg_rank(group, eps, layer) for group in rows]
    return [group[0].epoch for group in rows], [math.nan if r is None else r for r in ranks]


# ----- the paper's bound -------------------------------------------------------------------------
def is_vacuous(bound: float, d_out: int, d_in: int) -> bool:
    """The bound says nothing when it reaches the largest possible rank, min(d_out, d_in); an
    infinite bound (weight_decay = 0) is vacuous too."""
    return bound >= min(d_out, d_in)


# ----- spread over seeds -------------------------------------------------------------------------
# Student-t intervals: right at the 2-5 seeds a sweep has (a percentile bootstrap over 3 values is
# far too narrow: it called 18% of null differences an effect at a nominal 5%). Deterministic.
INTERVAL_LEVEL = 0.95


def t_quantile(df: float) -> float:
    """The two-sided ``INTERVAL_LEVEL`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t  # scipy comes with scikit-learn; imported when an interval is made

    return float(t.ppf(0.5 + INTERVAL_LEVEL / 2, df))


def mean_interval(values: Iterable[float]) -> tuple[float, float]:
    """The t interval of the mean of ``values`` (one per seed, or per slice); the value itself
    when there is one (no spread to judge it by: callers treat that as "no test")."""
    v = np.asarray(list(values), dtype=np.float64)
    if len(v) < 2:
        return (float(v[0]), float(v[0])) if len(v) else (math.nan, math.nan)
    half = t_quantile(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def diff_interval(before: Iterable[float], after: Iterable[float]) -> tuple[float, float]:
    """The t interval of mean(after) - mean(before) over the seeds of each side: Welch's with two
    or more seeds on each side, the pooled-variance one when a side has a single seed, and the
    difference itself when both have one (no test)."""
    a = np.asarray(list(before), dtype=np.float64)
    b = np.asarray(list(after), dtype=np.float64)
    diff = float(b.mean() - a.mean())
    if len(a) < 2 and len(b) < 2:
        return diff, diff
    if len(a) >= 2 and len(b) >= 2:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else 1.0
    else:  # one side has one seed: its spread is taken to be the other side's
        df = len(a) + len(b) - 2
        pooled = ((len(a) - 1) * _var(a) + (len(b) - 1) * _var(b)) / df
        se = math.sqrt(pooled * (1 / len(a) + 1 / len(b)))
    half = t_quantile(df) * se
    return diff - half, diff + half


def trend_interval(levels: Sequence[int], values: Sequence[float]) -> tuple[float, float, float]:
    """A least-squares line through ``values`` against their ``levels`` (0, 1, ... k-1: the order
    of a hyperparameter's settings, every seed a point): the change it predicts from the first level
    to the last, and that change's t interval (n - 2 degrees of freedom). Every run of a slice
    counts, not only the two ends: with k settings of s seeds the test has k*s - 2 degrees of
    freedom instead of about 2(s - 1). NaN bounds with fewer than three points."""
    x = np.asarray(levels, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    span = float(x.max() - x.min()) if len(x) else 0.0
    sxx = float(((x - x.mean()) ** 2).sum())
    if len(x) < 3 or sxx == 0:
        return math.nan, math.nan, math.nan
    slope = float(((x - x.mean()) * (y - y.mean())).sum()) / sxx
    residual = y - (y.mean() + slope * (x - x.mean()))
    se = math.sqrt(float((residual**2).sum()) / (len(x) - 2) / sxx)
    half = t_quantile(len(x) - 2) * se * span
    return slope * span, slope * span - half, slope * span + half


def _var(v: np.ndarray) -> float:
    return float(v.var(ddof=1)) if len(v) > 1 else 0.0


def testable(*sides: Sequence[float]) -> bool:
    """Whether a difference between these groups of seeds can be tested at all: a spread to judge
    it by needs two seeds on at least one side (one seed per setting is "not a test")."""
    return any(len(side) >= 2 for side in sides)
