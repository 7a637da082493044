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
from rankbias_tui.claims import AGREES, FAILS, HOLDS, NO_EFFECT, NOT_SHOWN, OPPOSES, UNTESTED
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


# ----- the noise floor ---------------------------------------------------------------------------
@pytest.mark.parametrize(("before", "after", "effect"), [
    ([91.0], [90.25], False),  # one seed: a quarter rank (one layer of four) is noise
    ([91.0], [90.0], True),  # one seed: one rank is an effect
    ([91.0, 91.0, 91.0], [90.75, 90.75, 90.75], False),  # consistent over seeds, but under one rank
    ([91.0, 86.0, 96.0], [88.0, 83.0, 93.0], False),  # 3 ranks, but the seeds spread over 10
    ([91.0, 90.5, 91.5], [88.0, 87.5, 88.5], True),  # 3 ranks, seeds within one
])  # fmt: skip
def test_an_effect_clears_one_rank_and_the_seeds_spread(before: list, after: list, effect: bool) -> None:
    ch = claims.change(before, after)
    assert claims.measurable(ch) is effect
    assert ch["seeds"] == [len(before), len(after)]
    assert ch["interval"][0] <= ch["change"] <= ch["interval"][1]


def test_the_seed_interval_is_deterministic_and_a_point_for_one_seed() -> None:
    from rankbias_tui import measures

    values = [3.0, 5.0, 4.0, 7.0]
    assert measures.mean_interval(values) == measures.mean_interval(values)
    lo, hi = measures.mean_interval(values)
    assert 3.0 <= lo < sum(values) / 4 < hi <= 7.0
    assert measures.mean_interval([2.5]) == (2.5, 2.5)
    assert claims.change([1.0], [4.0])["interval"] == [3.0, 3.0]


# ----- trends: flat slices are no evidence, wrong-sign effects are ------------------------------
def slice_of(lr: float, ranks: tuple[float, float, float]) -> list[dict]:
    return [record(b, lr, 1e-3, r) for b, r in zip((8, 32, 128), ranks, strict=True)]


def test_ten_slices_with_an_effect_and_fifteen_flat_ones_hold() -> None:
    # The low-lr regime where the paper itself reports no movement must not count against it.
    recs = [r for i in range(10) for r in slice_of(0.1 + i, (80.0, 85.0, 90.0))]
    recs += [r for i in range(15) for r in slice_of(0.001 * (i + 1), (91.0, 91.0, 91.0))]
    c = claim(recs, "2a")
    assert c["verdict"] == HOLDS
    assert (c["numbers"][AGREES], c["numbers"][OPPOSES], c["numbers"][NO_EFFECT]) == (10, 0, 15)
    assert {s["outcome"] for s in c["slices"]} == {AGREES, NO_EFFECT}


def test_effects_of_the_wrong_sign_do_not_hold() -> None:
    recs = [r for i in range(4) for r in slice_of(0.1 + i, (90.0, 85.0, 80.0))]
    recs += slice_of(0.05, (80.0, 85.0, 90.0))  # one agreeing slice of five: 20% < 2/3
    c = claim(recs, "2a")
    assert c["verdict"] == FAILS and (c["numbers"][AGREES], c["numbers"][OPPOSES]) == (1, 4)


def test_a_third_of_a_rank_is_no_effect() -> None:
    # One layer's smallest singular value crossing eps: a third of a rank, one seed.
    recs = [r for i in range(6) for r in slice_of(0.1 + i, (90.0, 90.0, 90.0 + 1 / 3))]
    recs += [r for i in range(6) for r in slice_of(10.1 + i, (90.0 + 1 / 3, 90.0, 90.0))]
    c = claim(recs, "2a")
    assert c["verdict"] == NOT_SHOWN and c["numbers"][NO_EFFECT] == 12
    assert "0 of 0 slices with an effect" in c["evidence"]


def test_two_thirds_of_the_slices_with_an_effect_must_agree() -> None:
    agree = [r for i in range(2) for r in slice_of(0.1 + i, (80.0, 85.0, 90.0))]
    oppose = slice_of(5.0, (90.0, 85.0, 80.0))
    assert claim(agree + oppose, "2a")["verdict"] == HOLDS  # 2 of 3
    assert claim(agree + oppose + slice_of(6.0, (90.0, 85.0, 80.0)), "2a")["verdict"] == FAILS  # 2 of 4


def test_claims_a_sweep_does_not_vary_are_not_tested() -> None:
    recs = [record(b, 0.1, 1e-2, 80 + b / 8) for b in (4, 16, 64)]
    got = verdicts(recs)
    assert got["2a"] == HOLDS
    assert got["2b"] == got["2c"] == UNTESTED and got["3"] == UNTESTED  # one lr, one wd, no wd = 0


def test_batch_size_and_lr_trends_ignore_wd0_slices() -> None:
    recs = [record(b, 0.1, 1e-2, 80 + b / 8) for b in (4, 16, 64)]
    recs += [record(b, 0.1, 0.0, 91 - 2 * (b == 64)) for b in (4, 16, 64)]  # wd = 0: no bias at all
    assert claim(recs, "2a")["numbers"]["slices"] == 1 and verdicts(recs)["2a"] == HOLDS
    assert claims.effect(recs, "batch_size")["counts"] == {"higher": 1, "lower": 1, "no effect": 0}


# ----- claim 1: against the wd = 0 run of the same slice --------------------------------------------
def test_claim_1_compares_with_the_wd0_control_of_the_slice() -> None:
    # Both end two ranks below init: training alone did it, weight decay added nothing.
    recs = [record(b, 0.1, wd, 89.0, init=91.0) for b in (8, 32) for wd in (0.0, 1e-2)]
    c = claim(recs, "1")
    assert c["verdict"] == NOT_SHOWN and c["numbers"]["against_wd0"] == 2
    assert all(s["against"] == "wd = 0" and s["change"] == 0 for s in c["slices"])
    # Without the control the same wd > 0 runs are compared with their initial rank.
    alone = claim([r for r in recs if r["weight_decay"] > 0], "1")
    assert alone["verdict"] == HOLDS and alone["numbers"]["against_wd0"] == 0
    # Now weight decay lowers the rank against its control in one slice, not in the other.
    recs[1]["final_avg_rank"] = 84.0  # B = 8, wd = 1e-2
    c = claim(recs, "1")
    assert c["verdict"] == HOLDS and (c["numbers"][AGREES], c["numbers"][NO_EFFECT]) == (1, 1)


def test_claim_1_one_rank_in_one_layer_is_not_evidence() -> None:
    # 4 layers: one layer losing one rank moves the average by a quarter.
    recs = [record(b, 0.1, 1e-2, 90.75, init=91.0, seed=s) for b in (8, 32) for s in (0, 1, 2)]
    c = claim(recs, "1")
    assert c["verdict"] == NOT_SHOWN and c["numbers"][NO_EFFECT] == 2
    assert c["slices"][0]["against"] == "init" and c["slices"][0]["seeds"] == [3, 3]


# ----- claim 3 ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("top", "final", "near"),
    [(91.0, 89.0, True), (91.0, 88.9, False), (228.0, 223.5, True), (228.0, 223.4, False)],
)
def test_near_maximal_is_within_two_ranks_or_two_percent(top: float, final: float, near: bool) -> None:
    assert claims.near_max(record(weight_decay=0.0, final=final, top=top)) is near
    assert verdicts([record(weight_decay=0.0, final=final, top=top)])["3"] == (HOLDS if near else FAILS)


def test_claim_3_with_seeds_that_straddle_the_tolerance_is_undecided() -> None:
    recs = [record(8, 0.1, 0.0, f, seed=s) for s, f in enumerate((90.0, 87.0, 90.5))]  # gaps 1, 4, 0.5
    c = claim(recs, "3")
    assert c["slices"][0]["outcome"] == NO_EFFECT and c["verdict"] == NOT_SHOWN
    assert c["slices"][0]["seeds"] == [3]


# ----- claim 4: accuracy within slices, trained runs ---------------------------------------------
def grid4(acc_of, lrs=(0.05, 0.1), seeds=(0,)) -> list[dict]:  # noqa: ANN001 - (b, lr, rank) -> acc
    recs = []
    for b in (8, 32, 128):
        for lr in lrs:
            for s in seeds:
                rank = 91.0 - 800 * lr / b - 0.25 * s
                recs.append(record(b, lr, 1e-2, rank, acc=acc_of(b, lr, rank), seed=s))
    return recs


def test_claim_4_reads_accuracy_within_slices_not_pooled_over_undertrained_runs() -> None:
    recs = grid4(lambda b, lr, rank: 0.95 + 0.001 * (b == 32))
    # Tiny lr: the rank stays high and the runs never fit (train acc 0.5, test acc 0.4). Pooled,
    # rank and accuracy would correlate strongly; within slices of trained runs they do not.
    recs += [record(b, 1e-4, 1e-2, 91.0, acc=0.4, train_acc=0.5) for b in (8, 32, 128)]
    c = claim(recs, "4")
    assert c["verdict"] == HOLDS and c["numbers"]["left_out"] == 3
    assert {s["outcome"] for s in c["slices"]} == {AGREES}
    lo, hi = c["numbers"]["acc_per_rank_interval"]
    assert lo <= c["numbers"]["acc_per_rank"] <= hi and abs(c["numbers"]["acc_per_rank"]) < 1e-3


def test_claim_4_does_not_hold_when_accuracy_tracks_the_rank_within_slices() -> None:
    c = claim(grid4(lambda b, lr, rank: rank / 100), "4")
    assert c["verdict"] == FAILS and c["numbers"][OPPOSES] >= 1


def test_claim_4_no_correlation_over_three_runs_is_not_support() -> None:
    recs = [record(b, 0.1, 1e-2, 91.0 - 100 / b, acc=0.9) for b in (8, 32, 128)]
    c = claim(recs, "4")
    assert c["verdict"] == NOT_SHOWN and c["numbers"]["decided_runs"] < claims.MIN_ACC_RUNS
    flat = [record(b, lr, 1e-2, 91.0, acc=0.9) for b in (8, 32) for lr in (0.1, 0.2)]
    assert claim(flat, "4")["verdict"] == NOT_SHOWN  # the rank never moved: nothing to read


def test_claim_4_with_seeds_wide_accuracy_spread_is_undecided() -> None:
    recs = grid4(lambda b, lr, rank: 0.9, seeds=(0, 1, 2))
    for r in recs:  # +-0.05 between seeds: the accuracy change cannot be shown to be within 0.02
        r["final_test_acc"] += 0.05 * (r["seed"] - 1) * (1 if r["batch_size"] == 8 else -1)
    c = claim(recs, "4")
    assert c["numbers"][NO_EFFECT] >= 1 and "3 seeds per setting" in c["evidence"]


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


@pytest.mark.parametrize(("follows", "verdict"), [(True, HOLDS), (False, FAILS)])
def test_claims_command_json(tmp_path: Path, follows: bool, verdict: str) -> None:
    build_store(tmp_path, follows_paper=follows).close()
    result = runner.invoke(app, ["claims", "--store", str(tmp_path), "--sweep", "trend", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runs"] == 18 and report["sweep"] == "trend" and report["seeds"] == "1 seed"
    got = {c["claim"]: c["verdict"] for c in report["claims"]}
    # Mirrored, accuracy tracks the rank but most runs do not fit (train acc < 95% of the best).
    expected = dict.fromkeys(claims.CLAIMS, verdict) | ({} if follows else {"4": NOT_SHOWN})
    assert got == expected
    assert {e["field"] for e in report["effects"]} == set(claims.HPARAMS)
    assert report["thresholds"]["min_rank_change"] == 1.0 and report["thresholds"]["agreement"] == 2 / 3


def test_claims_with_three_seeds_say_so(tmp_path: Path) -> None:
    build_store(tmp_path, seeds=(0, 1, 2)).close()
    result = runner.invoke(app, ["claims", "--store", str(tmp_path), "--sweep", "trend", "--json"])
    report = json.loads(result.stdout)
    assert report["runs"] == 54 and report["seeds"] == "3 seeds"
    assert {c["claim"]: c["verdict"] for c in report["claims"]} == dict.fromkeys(claims.CLAIMS, HOLDS)
    trend = next(c for c in report["claims"] if c["claim"] == "2c")
    assert all(s["seeds"] == [3, 3] for s in trend["slices"]) and "3 seeds per setting" in trend["evidence"]


def test_claims_command_table(tmp_path: Path) -> None:
    build_store(tmp_path).close()
    result = runner.invoke(
        app, ["claims", "--store", str(tmp_path), "-s", "trend", "--eps", "0.01"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "eps = 0.01" in result.stdout and "holds" in result.stdout and "2c" in result.stdout
    assert "1 seed per setting" in result.stdout


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
