"""The one verdict rule every claim uses, calibrated so that noise does not decide it.

Owns: the statements (``CLAIMS``), the verdict words (``VERDICTS``), ``min_deciding``,
``verdict_of`` and the verdict record every claim returns (``verdict``, ``untested``). Each claim sorts its
slices (or settings) into outcomes: ``AGREES`` (a tested effect of the paper's sign), ``OPPOSES``
(of the opposite sign), ``NO_EFFECT`` (tested, nothing measurable) or untested (one seed on each
side: no spread to judge a difference by). Does not own: the slices and their tests
(``records.py``) or any claim (``verdicts.py``, ``accuracy.py``).

Calibration (PAPER.md, "Reading a sweep honestly"): each slice's test calls a null difference an
effect of a given sign with probability at most a = (1 - INTERVAL_LEVEL) / 2. Over S tested
slices of a sweep without any effect, the count of such slices is at most Binomial(S, a), so a
verdict asks for at least ``min_deciding(S)`` slices of one sign: the smallest k >= 2 with
P(Binomial(S, a) >= k) <= a. "Holds" and "does not hold" then each happen by chance in at most
2.5% of null sweeps, at most 5% together (tests/unit/claims simulates it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from .. import measures
from .records import AGREES, NO_EFFECT, OPPOSES, direction, leaning

AGREEMENT = 2 / 3  # share of the slices with an effect that must have the paper's sign
MIN_DECIDING = 2  # slices of one sign behind any verdict, however few slices were tested

HOLDS, FAILS = "holds", "does not hold"
NOT_SHOWN, UNTESTED = "not shown by this sweep", "not tested by this sweep"
CONSISTENT = "consistent, 1 seed: not a test"
INCONSISTENT = "inconsistent, 1 seed: not a test"
VERDICTS = (HOLDS, FAILS, NOT_SHOWN, UNTESTED, CONSISTENT, INCONSISTENT)
DECIDED = (HOLDS, FAILS)

CLAIMS = {
    "1": "SGD with weight decay lowers the rank (against the wd = 0 runs of the same slice)",
    "2a": "smaller batch size -> lower rank",
    "2b": "larger learning rate -> lower rank",
    "2c": "larger weight decay -> lower rank",
    "3": "with wd = 0 the rank stays where it started (at its maximum, at small eps)",
    "4": "the rank bias has only a marginal effect on test accuracy",
    "5": "the same lr x wd gives the same rank (the bound depends on B / (lr wd) only)",
}


def tally(outcomes: Iterable[str]) -> dict[str, int]:
    outcomes = list(outcomes)
    return {o: outcomes.count(o) for o in (AGREES, OPPOSES, NO_EFFECT)}


ONE_SIDED = (1 - measures.INTERVAL_LEVEL) / 2  # a null slice's chance of an effect of one sign


@lru_cache(maxsize=256)
def min_deciding(tested: int, chance: float = ONE_SIDED) -> int:
    """The slices of one outcome a verdict needs among ``tested`` slices, when a null slice has
    that outcome with probability ``chance`` (see the module)."""
    from scipy.stats import binom

    k = MIN_DECIDING
    while k <= tested and binom.sf(k - 1, tested, chance) > ONE_SIDED:
        k += 1
    return k


def verdict_of(items: Sequence[dict[str, Any]], chance: float = ONE_SIDED) -> dict[str, Any]:
    """The verdict of a claim from its slices' ``outcome`` (tested ones) and ``leans`` (the sign
    of an untested one): the word, the counts behind it and how many slices it needs.

    Tested slices decide: HOLDS with at least ``min_deciding`` agreeing and ``AGREEMENT`` of the
    effects agreeing, FAILS with at least ``min_deciding`` opposing and more than 1 - AGREEMENT of
    the effects opposing (earned by effects of the wrong sign, never by flat slices), else
    NOT_SHOWN. Without a tested slice (one seed per setting) the verdict only says which way the
    changes lean: CONSISTENT or INCONSISTENT, never a plain "holds"."""
    tested = [s for s in items if s.get("tested", True)]
    counts = tally(s["outcome"] for s in tested)
    if not tested:
        leans = tally(s["leans"] for s in items)
        moved = leans[AGREES] + leans[OPPOSES]
        word = NOT_SHOWN if moved == 0 else CONSISTENT if leans[AGREES] / moved >= AGREEMENT else INCONSISTENT
        return {"verdict": word, "counts": counts, "tested": 0, "needed": None, "leans": leans}
    needed = min_deciding(len(tested), chance)
    moved = counts[AGREES] + counts[OPPOSES]
    if counts[AGREES] >= needed and counts[AGREES] / moved >= AGREEMENT:
        word = HOLDS
    elif counts[OPPOSES] >= needed and counts[OPPOSES] / moved > 1 - AGREEMENT:
        word = FAILS
    else:
        word = NOT_SHOWN
    return {"verdict": word, "counts": counts, "tested": len(tested), "needed": needed}


def size(decision: dict[str, Any], items: Sequence[dict[str, Any]], seeds: str, unit: str = "slice") -> str:
    """The evidence behind a verdict, said next to it: "3 of 12 slices, 3 seeds"."""
    if decision["tested"] == 0:
        return f"{len(items)} {unit}{'' if len(items) == 1 else 's'}, {seeds}, none tested"
    c = decision["counts"]
    agreeing = c[AGREES] if decision["verdict"] != FAILS else c[OPPOSES]
    return f"{agreeing} of {decision['tested']} {unit}s (needs {decision['needed']}), {seeds}"


def verdict(
    claim: str,
    items: Sequence[dict[str, Any]],
    evidence: str,
    seeds: str,
    unit: str = "slice",
    chance: float = ONE_SIDED,
    **numbers: Any,
) -> dict[str, Any]:
    """A claim's verdict from its items, with the evidence size said next to the word; ``chance``:
    how often a null slice has a given outcome (``verdict_of``)."""
    decision = verdict_of(items, chance)
    return {
        "claim": claim,
        "text": CLAIMS[claim],
        "verdict": decision["verdict"],
        "size": size(decision, items, seeds, unit),
        "evidence": evidence,
        "numbers": {**decision["counts"], "tested": decision["tested"], "needed": decision["needed"]}
        | numbers,
        "slices": list(items),
    }


def untested(
    claim: str, evidence: str, items: Sequence[dict[str, Any]] = (), **numbers: Any
) -> dict[str, Any]:
    return {
        "claim": claim,
        "text": CLAIMS[claim],
        "verdict": UNTESTED,
        "size": "",
        "evidence": evidence,
        "numbers": numbers,
        "slices": list(items),
    }


def counted(items: Sequence[dict[str, Any]], unit: str) -> str:
    """'2 of 3 tested slices with an effect agree, 1 opposite, 4 without a measurable effect; 2
    slices with one seed (not tested)'."""
    tested = [s for s in items if s["tested"]]
    c = {o: sum(s["outcome"] == o for s in tested) for o in (AGREES, OPPOSES, NO_EFFECT)}
    moved = c[AGREES] + c[OPPOSES]
    text = (
        f"{c[AGREES]} of {moved} tested {unit}s with an effect agree, {c[OPPOSES]} opposite, "
        f"{c[NO_EFFECT]} without a measurable effect"
    )
    if len(tested) < len(items):
        text += f"; {len(items) - len(tested)} {unit}(s) with one seed (not a test)"
    return text


def outcome(ch: dict[str, Any], expected: str) -> tuple[str, str]:
    """(outcome if tested, which way it leans) of a rank change against the paper's direction."""

    def against(d: str) -> str:
        return NO_EFFECT if d == NO_EFFECT else AGREES if d == expected else OPPOSES

    return against(direction(ch)), against(leaning(ch))
