"""The one home of the project's rules: ``rankbias_tui.measures`` (statuses, metric names, varied
fields, rank at eps, average rank, the vacuous bound), and that it imports neither torch nor textual."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from rankbias_tui import measures
from rankbias_tui.spec import RUN_FIELDS, RunConfig
from rankbias_tui.sweep import EXECUTION_FIELDS


@dataclass(frozen=True)
class Row:
    """A stand-in for ``store.SpectrumRow``: only what the rank rules read."""

    layer: str
    step: int
    rank: int
    svals: tuple[float, ...] = ()
    epoch: float = 0.0
    d_out: int = 4
    d_in: int = 6


# ----- rank at eps ------------------------------------------------------------------------------
def test_rank_at_eps_counts_strictly_greater_values() -> None:
    s = np.array([1.0, 0.5, 1e-3, 0.999e-3, 0.0])
    assert measures.rank_at_eps(s, 1e-3) == 2  # exactly eps does not count
    assert measures.rank_at_eps(s, np.nextafter(1e-3, 0)) == 3  # one ulp below: it does
    assert measures.rank_at_eps(s, 0.0) == 4  # a zero singular value never counts
    assert measures.rank_at_eps(s, 1.0) == 0
    assert measures.rank_at_eps([], 1e-3) == 0


def test_rank_at_eps_accepts_lists_and_read_only_arrays() -> None:
    frozen = np.array([0.9, 0.2, 0.01])
    frozen.flags.writeable = False
    assert measures.rank_at_eps(frozen, 0.1) == measures.rank_at_eps([0.9, 0.2, 0.01], 0.1) == 2


def test_layer_rank_is_stored_or_recounted() -> None:
    row = Row("fc1", 0, rank=7, svals=(0.9, 0.05, 0.002))
    assert measures.layer_rank(row) == 7  # the stored rank, even if it disagrees with svals
    assert measures.layer_rank(row, 0.01) == 2


# ----- average rank ------------------------------------------------------------------------------
def test_avg_rank_of_known_rows() -> None:
    rows = [Row("fc1", 0, 3, (0.9, 0.5, 0.2)), Row("fc2", 0, 4, (0.9, 0.5, 0.05, 0.01))]
    assert measures.avg_rank(rows) == 3.5
    assert measures.avg_rank(rows, eps=0.1) == 2.5  # 3 and 2 above 0.1
    assert measures.avg_rank(rows, layer="fc2") == 4.0
    assert measures.avg_rank(rows, layer="fc9") is None
    assert measures.avg_rank([]) is None


def test_mean_is_python_sum_over_count() -> None:
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.1]
    assert measures.mean(values) == sum(values) / len(values)  # bitwise: the golden exports rely on it
    assert measures.mean(iter([1, 2])) == 1.5 and measures.mean([]) is None


def test_max_avg_rank_is_the_mean_of_the_smaller_sides() -> None:
    rows = [Row("a", 0, 1, d_out=4, d_in=6), Row("b", 0, 1, d_out=10, d_in=3)]
    assert measures.max_avg_rank(rows) == 3.5
    assert measures.max_avg_rank(rows, layer="b") == 3.0
    assert measures.max_avg_rank([]) is None


def test_rank_curve_one_point_per_measurement_in_step_order() -> None:
    rows = [
        Row("fc1", 20, 1, epoch=2.0), Row("fc2", 20, 3, epoch=2.0),
        Row("fc1", 0, 5, epoch=0.0), Row("fc2", 0, 6, epoch=0.0),
    ]  # fmt: skip
    assert measures.rank_curve(rows) == ([0.0, 2.0], [5.5, 2.0])
    assert measures.rank_curve(rows, layer="fc2") == ([0.0, 2.0], [6.0, 3.0])
    epochs, ranks = measures.rank_curve(rows, layer="fc9")
    assert epochs == [0.0, 2.0] and all(math.isnan(r) for r in ranks)
    groups = measures.by_measurement(rows)
    assert [[(r.step, r.layer) for r in g] for g in groups] == [
        [(0, "fc1"), (0, "fc2")],
        [(20, "fc1"), (20, "fc2")],
    ]


# ----- the bound -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bound,d_out,d_in,vacuous",
    [
        (2.99, 3, 10, False),
        (3.0, 3, 10, True),
        (3.0, 10, 3, True),
        (math.inf, 50, 80, True),
        (0.0, 1, 1, False),
    ],
)
def test_vacuous_when_the_bound_reaches_the_smaller_side(
    bound: float, d_out: int, d_in: int, vacuous: bool
) -> None:
    assert measures.is_vacuous(bound, d_out, d_in) is vacuous


# ----- which fields vary ---------------------------------------------------------------------------
def test_varied_fields_in_display_order() -> None:
    configs = [
        {"lr": 0.1, "model": "mlp", "seed": 0, "batch_size": 8, "pack_size": 4},
        {"lr": 0.1, "model": "mlp-bn", "seed": 1, "batch_size": 8, "pack_size": 1},
    ]
    # pack_size is an execution detail: never a distinguishing field.
    assert measures.varied_fields(configs) == ("model", "seed")
    assert measures.varied_fields(configs[:1]) == () and measures.varied_fields([]) == ()


def test_varied_fields_compares_lists_and_missing_values() -> None:
    a = RunConfig().model_dump(mode="json")
    b = a | {"lr_milestones": [60, 100]}
    c = {k: v for k, v in a.items() if k != "train_size"} | {"train_size": 100}
    assert measures.varied_fields([a, b]) == ("lr_milestones",)
    assert measures.varied_fields([a, c]) == ("train_size",)
    assert measures.varied_fields([a, dict(a)]) == ()


def test_fields_cover_every_run_field_but_execution_details() -> None:
    assert len(set(measures.FIELDS)) == len(measures.FIELDS)
    assert set(measures.FIELDS) == set(RUN_FIELDS) - EXECUTION_FIELDS
    assert measures.FIELDS[: len(measures.MAIN_FIELDS)] == measures.MAIN_FIELDS
    assert set(measures.HPARAMS) <= set(measures.MAIN_FIELDS)


# ----- statuses and metric names -------------------------------------------------------------------
def test_statuses() -> None:
    assert set(measures.FINISHED) <= set(measures.STATUSES) and set(measures.ACTIVE) <= set(measures.STATUSES)
    assert not set(measures.FINISHED) & set(measures.ACTIVE)
    assert "cancelled" not in measures.FINISHED  # a cancelled run resumes when its sweep runs again


def test_metric_table_names_every_metric_once() -> None:
    assert set(measures.METRICS) == set(measures.STEP_METRICS) | set(measures.EVAL_METRICS) | set(
        measures.MEASURE_METRICS
    )
    assert not set(measures.STEP_METRICS) & set(measures.EVAL_METRICS)
    assert (
        measures.shown_loss({"loss", "train_loss"}) == "train_loss"
        and measures.shown_loss({"loss"}) == "loss"
    )
    assert measures.shown_acc({"acc", "test_acc"}) == "test_acc" and measures.shown_acc(set()) == "acc"


# ----- import hygiene ------------------------------------------------------------------------------
def test_importing_measures_pulls_in_neither_torch_nor_textual() -> None:
    code = (
        "import sys, rankbias_tui.measures\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'textual', 'matplotlib'))\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_reason_is_the_first_line_of_the_error_or_a_stand_in() -> None:
    from rankbias_tui.measures import reason

    assert reason("failed", "\nRuntimeError: boom\n  File x.py") == "RuntimeError: boom"
    assert reason("diverged", "train accuracy <= 0.15 for 3 epochs") == "train accuracy <= 0.15 for 3 epochs"
    assert reason("diverged", None) == "diverged (no reason recorded)"
    assert reason("done", None) is None and reason("queued", "") is None
    assert reason("queued", "stopped (stop requested); resumable") is None  # stale once requeued
    assert reason("stopped", "stopped (stop requested)\nmore") == "stopped (stop requested)"
    assert "next scheduler" in (reason("interrupted", None) or "")


def test_a_runs_table_shows_an_active_run_s_latest_warning_as_its_reason() -> None:
    from rankbias_tui.measures import shown_reason

    stalled = "worker stalled at step 40: no word from it for 300 s (frozen or hung)"
    assert shown_reason("running", None, stalled) == f"warning: {stalled}"
    assert shown_reason("queued", "stopped (stop requested)", stalled) == f"warning: {stalled}"
    assert shown_reason("running", None, None) is None
    assert shown_reason("failed", "RuntimeError: boom", stalled) == "RuntimeError: boom"  # why it ended
    assert shown_reason("done", None, stalled) is None


def test_the_trend_interval_is_the_least_squares_line_through_every_run() -> None:
    levels = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    exact = [10.0 + 0.5 * x for x in levels]
    change, lo, hi = measures.trend_interval(levels, exact)
    assert change == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
    noisy = [
        v + e for v, e in zip(exact, [0.8, -0.8, -0.2, 0.2, 0.3, -0.3, 0.1, -0.1, -0.8, 0.8], strict=True)
    ]
    change, lo, hi = measures.trend_interval(levels, noisy)
    fit = stats.linregress(levels, noisy)  # scipy's line, its slope's standard error
    half = stats.t.ppf(0.975, len(levels) - 2) * fit.stderr * 4
    assert change == pytest.approx(fit.slope * 4) and (lo, hi) == pytest.approx(
        (change - half, change + half)
    )
    assert all(math.isnan(v) for v in measures.trend_interval([0, 1], [1.0, 2.0]))  # no spread to judge by
    # every run counts: the two ends alone (2 seeds each, 2 df) cannot tell this 2-rank change from noise
    ends_lo, ends_hi = measures.diff_interval(noisy[:2], noisy[-2:])
    assert ends_lo < 0 < ends_hi and lo > 0


def test_a_table_or_list_value_groups_runs_by_its_json_text() -> None:
    """A user's model_options (a TOML table) as a --by, --x or --y field: a dict is no dict key."""
    assert measures.hashable({"hidden": 8, "channels": 4}) == '{"channels": 4, "hidden": 8}'
    assert measures.hashable([60, 100]) == "[60, 100]" and measures.hashable(0.1) == 0.1
    assert measures.shown_config({"model": "mlp", "model_options": {}, "code_dir": None}) == {"model": "mlp"}
