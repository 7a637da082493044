"""``rankbias_tui.claims``: Spearman, effects per slice, a verdict per claim, ``rankbias claims``.

Records are built by hand (no store) where a verdict's boundary matters, and from the fixture
store (tests/fixtures_store.py) for the whole report and the command.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rankbias_tui import claims
from rankbias_tui.claims import FAILS, HOLDS, UNTESTED
from rankbias_tui.cli import app
from tests.fixtures_store import MAX_AVG_RANK, build_store

runner = CliRunner()


def record(batch_size: int = 32, lr: float = 0.1, weight_decay: float = 1e-3, final: float = 80.0,
           init: float = 90.0, top: float = 91.0, acc: float | None = 0.9, seed: int = 0) -> dict:  # fmt: skip
    return {"run_id": f"{batch_size}-{lr}-{weight_decay}-{seed}", "status": "done", "context": "",
            "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed,
            "init_avg_rank": init, "final_avg_rank": final, "max_avg_rank": top, "final_test_acc": acc}  # fmt: skip


def verdicts(records: list[dict]) -> dict[str, str]:
    return {c["claim"]: c["verdict"] for c in claims.check_claims(records)}


# ----- statistics --------------------------------------------------------------------------------
def test_spearman_matches_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 4, 12).astype(float)  # many ties
        y = x * rng.choice([-1, 1]) + rng.normal(0, 1.5, 12)
        assert claims.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_of_constant_or_short_input_is_nan() -> None:
    assert math.isnan(claims.spearman([1, 2, 3], [5, 5, 5]))
    assert math.isnan(claims.spearman([1], [2]))
    assert claims.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_effect_is_computed_per_slice_with_the_others_fixed() -> None:
    # Within each lr slice smaller B means lower rank, but the lr=0.5 slice is lower overall:
    # pooled across slices the correlation would be muddled; per slice it is +1 in both.
    recs = [record(b, 0.1, 1e-3, 80 + b / 8) for b in (8, 16, 32)]
    recs += [record(b, 0.5, 1e-3, 40 + b / 8) for b in (8, 16, 32)]
    eff = claims.effect(recs, "batch_size")
    assert eff is not None and len(eff["slices"]) == 2
    assert [s["rho"] for s in eff["slices"]] == pytest.approx([1.0, 1.0])
    assert eff["direction"] == "larger -> higher rank" and eff["mean_rank_change"] == pytest.approx(3.0)
    assert claims.effect(recs, "weight_decay") is None  # never varied


# ----- verdicts on hand-made records ---------------------------------------------------------------
def test_paper_like_records_hold_and_mirrored_ones_do_not() -> None:
    def rank(b: int, lr: float, wd: float) -> float:
        return 91.0 if wd == 0 else 91.0 - 2e4 * lr * wd / b

    grid = [(b, lr, wd) for b in (8, 32, 128) for lr in (0.05, 0.1) for wd in (0.0, 1e-3, 5e-3)]
    good = [
        record(b, lr, wd, rank(b, lr, wd), init=91.0, acc=0.95 + 0.001 * (i % 3))
        for i, (b, lr, wd) in enumerate(grid)
    ]
    assert set(verdicts(good).values()) == {HOLDS}
    # Mirrored: ranks rise from init and fall with B, wd = 0 ends far below max, accuracy tracks rank.
    bad = [
        record(b, lr, wd, 122.0 - rank(b, lr, wd), init=20.0, acc=0.5 + 0.3 * (91 - rank(b, lr, wd)))
        for b, lr, wd in grid
    ]
    assert set(verdicts(bad).values()) == {FAILS}


def test_claims_a_sweep_does_not_vary_are_not_tested() -> None:
    recs = [record(b, 0.1, 1e-2, 80 + b / 8) for b in (4, 16, 64)]
    got = verdicts(recs)
    assert got["2a"] == HOLDS
    assert got["2b"] == got["2c"] == got["3"] == UNTESTED  # one lr, one wd, no wd = 0 run


def test_batch_size_and_lr_effects_ignore_wd0_slices() -> None:
    # wd = 0: no bias at all, ranks flat (and noisy): these slices must not dilute claim 2a.
    recs = [record(b, 0.1, 1e-2, 80 + b / 8) for b in (4, 16, 64)]
    recs += [record(b, 0.1, 0.0, 91 - (b == 16)) for b in (4, 16, 64)]
    assert verdicts(recs)["2a"] == HOLDS
    assert claims.effect(recs, "batch_size")["agree_up"] == 0.5  # all slices, wd = 0 included


def test_sign_agreement_is_required_across_slices() -> None:
    recs = []
    for lr, sign in ((0.1, 1), (0.2, 1), (0.3, -1), (0.4, -1)):
        recs += [record(b, lr, 1e-3, 80 + sign * b / 8) for b in (8, 16, 32)]
    claim = next(c for c in claims.check_claims(recs) if c["claim"] == "2a")
    assert claim["verdict"] == FAILS and claim["numbers"]["agreement"] == 0.5


@pytest.mark.parametrize(
    ("top", "final", "near"),
    [(91.0, 89.0, True), (91.0, 88.9, False), (228.0, 223.5, True), (228.0, 223.4, False)],
)
def test_near_maximal_is_within_two_ranks_or_two_percent(top: float, final: float, near: bool) -> None:
    # max(2 ranks, 2%): 2 ranks for 91 (2% = 1.82), 4.56 ranks for 228.
    assert claims.near_max(record(weight_decay=0.0, final=final, top=top)) is near


def test_claim_1_needs_most_wd_runs_to_end_below_init() -> None:
    recs = [record(final=80, init=90), record(batch_size=64, final=90, init=90)]
    assert verdicts(recs)["1"] == FAILS  # 1 of 2 is not more than half
    assert verdicts(recs + [record(batch_size=8, final=70)])["1"] == HOLDS


def test_claim_4_accuracy_is_marginal_if_weakly_correlated_or_narrow() -> None:
    ranks = [60.0, 70.0, 80.0, 90.0]
    tracking = [
        record(batch_size=b, final=r, acc=r / 100) for b, r in zip((4, 8, 16, 32), ranks, strict=True)
    ]
    assert verdicts(tracking)["4"] == FAILS
    narrow = [
        record(batch_size=b, final=r, acc=0.9 + r / 1e4) for b, r in zip((4, 8, 16, 32), ranks, strict=True)
    ]
    assert verdicts(narrow)["4"] == HOLDS  # rho = 1 but the accuracies span 0.3 points
    assert verdicts(tracking[:2])["4"] == UNTESTED


# ----- from a store -------------------------------------------------------------------------------
def test_records_from_store_use_done_runs_and_recompute_eps(tmp_path: Path) -> None:
    with build_store(tmp_path) as store:
        recs = claims.records_from_store(store, "trend")
        at_1e2 = claims.records_from_store(store, "trend", eps=1e-2)
        assert claims.records_from_store(store, "pending") == []
        run = store.runs("trend")[0]
        final = store.spectra(run.run_id, store.spectrum_steps(run.run_id)[-1])
    assert len(recs) == 18 and {r["max_avg_rank"] for r in recs} == {MAX_AVG_RANK}
    direct = np.mean([(s.svals > 1e-2).sum() for s in final])
    assert at_1e2[0]["final_avg_rank"] == direct < recs[0]["final_avg_rank"]


@pytest.mark.parametrize(("follows", "verdict"), [(True, HOLDS), (False, FAILS)])
def test_claims_command_json(tmp_path: Path, follows: bool, verdict: str) -> None:
    build_store(tmp_path, follows_paper=follows).close()
    result = runner.invoke(app, ["claims", "--store", str(tmp_path), "--sweep", "trend", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runs"] == 18 and report["sweep"] == "trend"
    assert {c["claim"]: c["verdict"] for c in report["claims"]} == dict.fromkeys(claims.CLAIMS, verdict)
    assert {e["field"] for e in report["effects"]} == set(claims.HPARAMS)


def test_claims_command_table(tmp_path: Path) -> None:
    build_store(tmp_path).close()
    result = runner.invoke(
        app, ["claims", "--store", str(tmp_path), "-s", "trend", "--eps", "0.01"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "eps = 0.01" in result.stdout and "holds" in result.stdout and "2c" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--sweep", "trnd"], 2, "did you mean 'trend'"),
        ([], 2, "several sweeps"),
        (["--sweep", "pending"], 1, "no finished"),
        (["--sweep", "trend", "--eps", "1.5"], 2, "--eps"),
    ],
)
def test_claims_command_errors(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    build_store(tmp_path).close()
    result = runner.invoke(app, ["claims", "--store", str(tmp_path), *args], env={"COLUMNS": "200"})
    assert result.exit_code == code
    assert message in result.output and "Traceback" not in result.output


def test_claims_command_without_a_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["claims", "--store", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no rankbias store" in result.output
