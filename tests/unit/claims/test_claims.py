"""``rankbias_tui.claims``: the noise floor, slices that agree/oppose/do not move, a verdict per
claim, and ``rankbias claims``.

Records are built by hand (no store) where a rule's boundary matters, and from the fixture store
(tests/support/trend_store.py) for the whole report and the command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankbias_tui import claims
from rankbias_tui.claims import (
    AGREES,
    CONSISTENT,
    FAILS,
    HOLDS,
    INCONSISTENT,
    NO_EFFECT,
    NOT_SHOWN,
    OPPOSES,
    UNTESTED,
)
from rankbias_tui.cli import app
from tests.support.trend_store import MAX_AVG_RANK, build_store

runner = CliRunner()


def record(batch_size: int = 32, lr: float = 0.1, weight_decay: float = 1e-3, final: float = 80.0,
           init: float = 91.0, top: float = 91.0, acc: float | None = 0.9, seed: int = 0,
           train_acc: float | None = 1.0) -> dict:  # fmt: skip
    return {"run_id": f"{batch_size}-{lr}-{weight_decay}-{seed}", "status": "done", "context": "",
            "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed,
            "init_avg_rank": init, "final_avg_rank": final, "max_avg_rank": top, "final_test_acc": acc,
            "final_train_acc": train_acc}  # fmt: skip


def verdicts(records: list[dict]) -> dict[str, str]:
    return {c["claim"]: c["verdict"] for c in claims.check_claims(records)}


def claim(records: list[dict], name: str) -> dict:
    return next(c for c in claims.check_claims(records) if c["claim"] == name)


def seeded(batch_size: int, lr: float, weight_decay: float, finals: tuple[float, ...], **kw) -> list[dict]:
    """One setting, one record per seed with these final ranks."""
    return [record(batch_size, lr, weight_decay, f, seed=s, **kw) for s, f in enumerate(finals)]


def spread(center: float) -> tuple[float, float, float]:
    """Three seeds within half a rank of ``center``."""
    return (center - 0.5, center, center + 0.5)


# ----- the noise floor: t intervals, and no test with one seed ------------------------------------
@pytest.mark.parametrize(("before", "after", "effect"), [
    ([91.0], [90.0], False),  # one seed a side: no spread to judge it by, not a test
    ([91.0, 91.0, 91.0], [90.75, 90.75, 90.75], False),  # consistent over seeds, but under one rank
    ([91.0, 86.0, 96.0], [88.0, 83.0, 93.0], False),  # 3 ranks, but the seeds spread over 10
    ([91.0, 90.5, 91.5], [88.0, 87.5, 88.5], True),  # 3 ranks, seeds within one
    ([91.0, 90.0], [88.0, 87.0], False),  # 3 ranks, 2 seeds a side 1 apart: t(2) is wide
    ([91.0, 90.8], [88.0, 87.8], True),  # ... 0.2 apart
])  # fmt: skip
def test_an_effect_clears_one_rank_and_a_t_interval(before: list, after: list, effect: bool) -> None:
    ch = claims.change(before, after)
    assert claims.measurable(ch) is effect
    assert ch["seeds"] == [len(before), len(after)] and ch["tested"] is (len(before) > 1 or len(after) > 1)
    assert ch["interval"][0] <= ch["change"] <= ch["interval"][1]


def test_t_intervals_are_student_t_and_a_point_for_one_seed() -> None:
    from rankbias_tui import measures

    values = [3.0, 5.0, 4.0, 7.0]  # mean 4.75, sd 1.708, t(3) = 3.182
    lo, hi = measures.mean_interval(values)
    assert (hi - lo) / 2 == pytest.approx(3.182 * 1.708 / 2, rel=1e-3)
    assert measures.mean_interval([2.5]) == (2.5, 2.5)
    assert claims.change([1.0], [4.0])["interval"] == [3.0, 3.0]
    # Welch: 2 and 3 seeds with different spreads
    lo, hi = measures.diff_interval([1.0, 3.0], [5.0, 6.0, 7.0])
    assert lo < 4.0 < hi and hi - lo > 2 * 4.3 * 0.7  # df < 2: wider than t(2) * se alone


def test_the_rule_needs_more_agreeing_slices_the_more_slices_are_tested() -> None:
    assert claims.min_deciding(1) == 2 > 1  # one tested slice never decides
    assert claims.min_deciding(6) == 2 and claims.min_deciding(18) == 3
    assert claims.min_deciding(60) > claims.min_deciding(18)


# ----- trends: flat slices are no evidence, wrong-sign effects are ------------------------------
def slice_of(lr: float, ranks: tuple[float, float, float]) -> list[dict]:
    return [r for b, c in zip((8, 32, 128), ranks, strict=True) for r in seeded(b, lr, 1e-3, spread(c))]


def test_ten_slices_with_an_effect_and_fifteen_flat_ones_hold() -> None:
    # The low-lr regime where the paper itself reports no movement must not count against it.
    recs = [r for i in range(10) for r in slice_of(0.1 + i, (80.0, 85.0, 90.0))]
    recs += [r for i in range(15) for r in slice_of(0.001 * (i + 1), (91.0, 91.0, 91.0))]
    c = claim(recs, "2a")
    assert c["verdict"] == HOLDS and c["size"].startswith("10 of 25 slices")
    assert (c["numbers"][AGREES], c["numbers"][OPPOSES], c["numbers"][NO_EFFECT]) == (10, 0, 15)
    assert {s["outcome"] for s in c["slices"]} == {AGREES, NO_EFFECT}


def test_effects_of_the_wrong_sign_do_not_hold() -> None:
    recs = [r for i in range(4) for r in slice_of(0.1 + i, (90.0, 85.0, 80.0))]
    recs += slice_of(0.05, (80.0, 85.0, 90.0))  # one agreeing slice of five: 20% < 2/3
    c = claim(recs, "2a")
    assert c["verdict"] == FAILS and (c["numbers"][AGREES], c["numbers"][OPPOSES]) == (1, 4)


def test_one_slice_with_an_effect_decides_nothing() -> None:
    c = claim(slice_of(0.1, (80.0, 85.0, 90.0)) + slice_of(0.2, (91.0, 91.0, 91.0)), "2a")
    assert c["numbers"][AGREES] == 1 and c["verdict"] == NOT_SHOWN  # needs 2


def test_a_third_of_a_rank_is_no_effect() -> None:
    # One layer's smallest singular value crossing eps: a third of a rank.
    recs = [r for i in range(6) for r in slice_of(0.1 + i, (90.0, 90.0, 90.0 + 1 / 3))]
    c = claim(recs, "2a")
    assert c["verdict"] == NOT_SHOWN and c["numbers"][NO_EFFECT] == 6
    assert "0 of 0 tested slices with an effect" in c["evidence"]


def test_two_thirds_of_the_slices_with_an_effect_must_agree() -> None:
    agree = [r for i in range(4) for r in slice_of(0.1 + i, (80.0, 85.0, 90.0))]
    oppose = [r for i in range(2) for r in slice_of(5.0 + i, (90.0, 85.0, 80.0))]
    assert claim(agree + oppose, "2a")["verdict"] == HOLDS  # 4 of 6
    more = [r for i in range(2) for r in slice_of(7.0 + i, (90.0, 85.0, 80.0))]
    assert claim(agree + oppose + more, "2a")["verdict"] == FAILS  # half the effects oppose


def test_one_seed_per_setting_is_never_a_plain_verdict() -> None:
    recs = [record(b, 0.1 + i, 1e-3, 80 + b / 8) for i in range(10) for b in (8, 32, 128)]
    c = claim(recs, "2a")
    assert c["verdict"] == CONSISTENT == "consistent, 1 seed: not a test"
    assert "none tested" in c["size"] and "(not a test)" in c["evidence"]
    mirrored = [record(b, 0.1 + i, 1e-3, 90 - b / 8) for i in range(10) for b in (8, 32, 128)]
    assert claim(mirrored, "2a")["verdict"] == INCONSISTENT


def test_claims_a_sweep_does_not_vary_are_not_tested() -> None:
    recs = [r for b in (4, 16, 64) for r in seeded(b, 0.1, 1e-2, spread(80 + b / 8))]
    got = verdicts(recs)
    assert got["2b"] == got["2c"] == UNTESTED and got["3"] == UNTESTED  # one lr, one wd, no wd = 0
    assert got["2a"] == NOT_SHOWN  # one slice: an effect, but one slice decides nothing


def test_batch_size_and_lr_trends_ignore_wd0_slices() -> None:
    recs = [r for b in (4, 16, 64) for r in seeded(b, 0.1, 1e-2, spread(80 + b / 8))]
    recs += [r for b in (4, 16, 64) for r in seeded(b, 0.1, 0.0, spread(91 - 2 * (b == 64)))]
    assert claim(recs, "2a")["numbers"]["slices"] == 1
    assert claims.effect(recs, "batch_size")["counts"] == {"higher": 1, "lower": 1, "no effect": 0}


# ----- claim 1: against the wd = 0 run of the same slice --------------------------------------------
def test_claim_1_compares_the_largest_wd_with_the_wd0_control_of_the_slice() -> None:
    # Every run ends two ranks below init: training alone did it, weight decay added nothing.
    recs = [r for b in (8, 32) for wd in (0.0, 1e-3, 1e-2) for r in seeded(b, 0.1, wd, spread(89.0))]
    c = claim(recs, "1")
    assert c["verdict"] == NOT_SHOWN and c["numbers"]["tested"] == 2  # one test per slice
    assert all(s["against"] == "wd = 0" and s["slice"]["weight_decay"] == 1e-2 for s in c["slices"])
    # Now weight decay lowers the rank against its control in both slices.
    for r in recs:
        r["final_avg_rank"] -= 5.0 * (r["weight_decay"] == 1e-2)
    assert claim(recs, "1")["verdict"] == HOLDS


def test_claim_1_without_a_control_is_not_tested() -> None:
    # Lower than at initialisation, but nothing says weight decay did it.
    recs = [r for b in (8, 32) for r in seeded(b, 0.1, 1e-2, spread(80.0))]
    c = claim(recs, "1")
    assert c["verdict"] == UNTESTED and "no wd = 0 control" in c["evidence"]
    assert "2 of them end lower than their initial rank" in c["evidence"]
    assert all("information only" in s["against"] for s in c["slices"])


# ----- claim 3: from the start -------------------------------------------------------------------
def test_claim_3_is_the_change_from_the_initial_rank_not_the_gap_to_the_maximum() -> None:
    # At a large eps even the initial rank is far below the maximum (181.5 of 227.5 for ResNet-18
    # at eps 0.04): runs that never moved must not refute the claim.
    recs = [r for b in (8, 32, 128) for r in seeded(b, 0.1, 0.0, spread(181.5), init=181.5, top=227.5)]
    c = claim(recs, "3")
    assert c["verdict"] == HOLDS and c["numbers"][AGREES] == 3
    assert all(s["gap_to_max"] > 40 for s in c["slices"])  # shown, for information
    for r in recs:
        r["final_avg_rank"] -= 20.0
    assert claim(recs, "3")["verdict"] == FAILS


def test_claim_3_with_seeds_that_straddle_the_tolerance_is_undecided() -> None:
    recs = [record(8, 0.1, 0.0, f, seed=s) for s, f in enumerate((90.0, 87.0, 90.5))]  # falls 1, 4, 0.5
    c = claim(recs, "3")
    assert c["slices"][0]["outcome"] == NO_EFFECT and c["verdict"] == NOT_SHOWN
    assert c["slices"][0]["seeds"] == [3, 3]


# ----- claim 4: accuracy within slices, no run dropped -------------------------------------------
def grid4(acc_of, lrs=(0.05, 0.1), seeds=(0, 1, 2)) -> list[dict]:  # noqa: ANN001 - (b, lr, rank) -> acc
    recs = []
    for b in (8, 32, 128):
        for lr in lrs:
            for s in seeds:
                rank = 91.0 - 800 * lr / b - 0.25 * s
                recs.append(record(b, lr, 1e-2, rank, acc=acc_of(b, lr, rank) + 0.001 * s, seed=s))
    return recs


def test_claim_4_keeps_and_lists_the_runs_that_fit_poorly() -> None:
    recs = grid4(lambda b, lr, rank: 0.95)
    # Where the rank fell most, the runs fit worst: they are evidence, not noise to drop.
    weak = [
        record(4, lr, 1e-2, 60.0, acc=0.80, train_acc=0.85, seed=s) for lr in (0.05, 0.1) for s in (0, 1, 2)
    ]
    c = claim(recs + weak, "4")
    assert len(c["numbers"]["undertrained"]) == 6 and "kept" in c["evidence"]
    assert c["numbers"][OPPOSES] >= 1  # B = 4 against B = 128: accuracy 0.15 lower


def test_claim_4_lists_the_diverged_runs_it_excludes() -> None:
    diverged = [record(4, 0.1, 1e-2, 30.0, acc=0.1) | {"status": "diverged", "run_id": "deadbeef0000"}]
    c = next(c for c in claims.check_claims(grid4(lambda b, lr, rank: 0.95), diverged) if c["claim"] == "4")
    assert "1 diverged run(s) excluded: deadbeef (rank 30.0" in c["evidence"]
    assert c["numbers"]["left_out"][0]["run_id"] == "deadbeef0000"


def test_claim_4_does_not_hold_when_accuracy_tracks_the_rank_within_slices() -> None:
    c = claim(grid4(lambda b, lr, rank: rank / 100), "4")
    assert c["verdict"] == FAILS and c["numbers"][OPPOSES] >= 2
    assert "higher accuracy with higher rank" in c["evidence"]


def test_claim_4_holds_when_accuracy_stays_put_where_the_rank_moved() -> None:
    c = claim(grid4(lambda b, lr, rank: 0.95), "4")
    assert c["verdict"] == HOLDS and c["numbers"]["decided_runs"] >= claims.MIN_ACC_RUNS


def test_claim_4_the_rank_never_moving_is_not_support() -> None:
    flat = [r for b in (8, 32) for lr in (0.1, 0.2) for r in seeded(b, lr, 1e-2, spread(91.0), acc=0.9)]
    assert claim(flat, "4")["verdict"] == UNTESTED


def test_claim_4_with_seeds_wide_accuracy_spread_is_undecided() -> None:
    recs = grid4(lambda b, lr, rank: 0.9)
    for r in recs:  # +-0.05 between seeds: the accuracy change cannot be shown to be within 0.02
        r["final_test_acc"] += 0.05 * (r["seed"] - 1) * (1 if r["batch_size"] == 8 else -1)
    c = claim(recs, "4")
    assert c["numbers"][NO_EFFECT] >= 1 and "3 seeds per setting" in c["evidence"]


# ----- claim 5: the same lr x wd, the same rank ------------------------------------------------------
def test_claim_5_same_product_same_rank() -> None:
    recs = [
        r for b in (8, 32) for lr, wd in ((0.1, 1e-2), (0.2, 5e-3)) for r in seeded(b, lr, wd, spread(80.0))
    ]
    c = claim(recs, "5")
    assert c["verdict"] == HOLDS and c["numbers"][AGREES] == 2 and c["size"].startswith("2 of 2 pairs")
    for r in recs:
        r["final_avg_rank"] -= 10.0 * (r["lr"] == 0.2)
    assert claim(recs, "5")["verdict"] == FAILS
    assert claim([r for r in recs if r["lr"] == 0.1], "5")["verdict"] == UNTESTED


# ----- from a store -------------------------------------------------------------------------------
def test_records_from_store_use_done_runs_and_recompute_eps(tmp_path: Path) -> None:
    import numpy as np

    with build_store(tmp_path) as store:
        recs = claims.records_from_store(store, "trend")
        at_1e2 = claims.records_from_store(store, "trend", eps=1e-2)
        assert claims.records_from_store(store, "pending") == []
        run = store.runs("trend")[0]
        final = store.spectra(run.run_id, store.spectrum_steps(run.run_id)[-1])
    assert len(recs) == 18 and {r["max_avg_rank"] for r in recs} == {MAX_AVG_RANK}
    assert all(r["final_train_acc"] is not None for r in recs)
    direct = np.mean([(s.svals > 1e-2).sum() for s in final])
    assert at_1e2[0]["final_avg_rank"] == direct < recs[0]["final_avg_rank"]


@pytest.mark.parametrize(("follows", "leaning"), [(True, CONSISTENT), (False, INCONSISTENT)])
def test_claims_command_json_with_one_seed_tests_nothing(tmp_path: Path, follows: bool, leaning: str) -> None:
    build_store(tmp_path, follows_paper=follows).close()
    result = runner.invoke(app, ["claims", "--store", str(tmp_path), "--sweep", "trend", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runs"] == 18 and report["sweep"] == "trend" and report["seeds"] == "1 seed"
    got = {c["claim"]: c["verdict"] for c in report["claims"]}
    # Mirrored, wd = 0 runs still stay where they started (at half the maximum): claim 3 leans yes.
    assert got == dict.fromkeys(claims.CLAIMS, leaning) | {"3": CONSISTENT, "5": UNTESTED}
    assert {e["field"] for e in report["effects"]} == set(claims.HPARAMS)
    assert report["thresholds"]["min_rank_change"] == 1.0 and report["thresholds"]["agreement"] == 2 / 3


@pytest.mark.parametrize(("follows", "verdict"), [(True, HOLDS), (False, FAILS)])
def test_claims_with_three_seeds_decide_and_say_on_what(tmp_path: Path, follows: bool, verdict: str) -> None:
    build_store(tmp_path, follows_paper=follows, seeds=(0, 1, 2)).close()
    result = runner.invoke(app, ["claims", "--store", str(tmp_path), "--sweep", "trend", "--json"])
    report = json.loads(result.stdout)
    assert report["runs"] == 54 and report["seeds"] == "3 seeds"
    got = {c["claim"]: c["verdict"] for c in report["claims"]}
    assert got == dict.fromkeys(claims.CLAIMS, verdict) | {"3": HOLDS, "5": UNTESTED}
    trend = next(c for c in report["claims"] if c["claim"] == "2c")
    assert all(s["seeds"] == [3, 3] for s in trend["slices"]) and "3 seeds per setting" in trend["evidence"]
    assert trend["size"] == "6 of 6 slices (needs 2), 3 seeds"


def test_claims_command_table(tmp_path: Path) -> None:
    build_store(tmp_path, seeds=(0, 1)).close()
    result = runner.invoke(
        app, ["claims", "--store", str(tmp_path), "-s", "trend", "--eps", "0.01"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "eps = 0.01" in result.stdout and "holds" in result.stdout and "2c" in result.stdout
    assert "2 seeds per setting" in result.stdout and "slices (needs" in result.stdout


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
