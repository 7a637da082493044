"""The verdict rule against simulated sweeps (PAPER.md, "Reading a sweep honestly").

Null sweeps: no hyperparameter moves the rank or the accuracy; seeds spread 0.3-3 ranks; 1-5
seeds per setting; 18 slices for claim 2a. At most 5% of the verdicts of claims 1, 2a-2c and 4
may be decided ("holds" or "does not hold") by noise. Planted effects of 2 ranks with 3 seeds are
found. The simulations are seeded: the same records every run.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rankbias_tui import claims

BATCHES = (4, 16, 64)
LRS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)  # 9 lrs x 2 wd > 0: 18 slices for claim 2a
WDS = (0.0, 1e-3, 1e-2)
EFFECT_CLAIMS = ("1", "2a", "2b", "2c", "4")


def sweep(rng: np.random.Generator, spread: float, seeds: int, effect: float = 0.0) -> list[dict]:
    """Records of one simulated sweep. ``effect``: ranks that each step down the grid moves the
    final rank the paper's way (larger wd, smaller B, larger lr: lower), with weight decay only."""
    out = []
    for b, lr, wd in itertools.product(BATCHES, LRS, WDS):
        shift = 0.0
        if wd > 0:
            steps = WDS.index(wd) + (len(BATCHES) - 1 - BATCHES.index(b)) + LRS.index(lr) / (len(LRS) - 1)
            shift = -effect * steps
        for s in range(seeds):
            out.append(
                {"run_id": f"{b}-{lr}-{wd}-{s}", "status": "done", "context": "", "batch_size": b,
                 "lr": lr, "weight_decay": wd, "seed": s, "init_avg_rank": 90 + rng.normal(0, spread),
                 "final_avg_rank": 88 + shift + rng.normal(0, spread), "max_avg_rank": 91.0,
                 "final_test_acc": 0.9 + rng.normal(0, 0.01), "final_train_acc": 0.99}
            )  # fmt: skip
    return out


@pytest.mark.parametrize("spread", [0.3, 1.0, 3.0])
def test_null_sweeps_decide_at_most_5_percent_of_verdicts(spread: float) -> None:
    rng = np.random.default_rng(20261206)
    decided, total = dict.fromkeys(EFFECT_CLAIMS, 0), 0
    for seeds in (1, 2, 3, 5):
        for _ in range(12):
            verdicts = {c["claim"]: c["verdict"] for c in claims.check_claims(sweep(rng, spread, seeds))}
            total += 1
            for name in EFFECT_CLAIMS:
                decided[name] += verdicts[name] in claims.DECIDED
                if seeds == 1:  # one seed: never a plain verdict
                    assert verdicts[name] not in claims.DECIDED
    rates = {name: k / total for name, k in decided.items()}
    assert max(rates.values()) <= 0.05, rates
    assert sum(decided.values()) / (total * len(EFFECT_CLAIMS)) <= 0.05


def test_the_null_sweep_has_the_slices_it_says() -> None:
    c = next(c for c in claims.check_claims(sweep(np.random.default_rng(0), 1.0, 3)) if c["claim"] == "2a")
    assert c["numbers"]["tested"] == 18


def test_planted_effects_of_two_ranks_with_three_seeds_are_found() -> None:
    rng = np.random.default_rng(7)
    found = dict.fromkeys(("1", "2a", "2b", "2c"), 0)
    for _ in range(10):
        verdicts = {c["claim"]: c["verdict"] for c in claims.check_claims(sweep(rng, 0.5, 3, effect=2.0))}
        for name in found:
            found[name] += verdicts[name] == claims.HOLDS
    assert all(k >= 9 for k in found.values()), found


def test_planted_effects_with_one_seed_are_consistent_not_held() -> None:
    verdicts = {
        c["claim"]: c["verdict"] for c in claims.check_claims(sweep(np.random.default_rng(3), 0.5, 1, 2.0))
    }
    assert {verdicts[c] for c in ("1", "2a", "2b", "2c")} == {claims.CONSISTENT}
