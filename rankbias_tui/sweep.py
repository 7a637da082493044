"""Spec -> ordered, frozen run configs with stable ids. Pure: no torch, no I/O.

A run's id is a hash of the fields whose values differ from ``RunConfig``'s defaults, so adding
a new field with a default later keeps every existing id (and its stored results) valid, while
changing any value that shapes the run gives a new id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass

from .spec import RunConfig, Spec, suggest

# Fields that change how a run executes but not what it computes.
EXECUTION_FIELDS: frozenset[str] = frozenset({"pack_size"})


@dataclass(frozen=True)
class PlannedRun:
    """One run of one sweep: where it came from and what it is."""

    run_id: str
    sweep: str
    config: RunConfig


def run_id(config: RunConfig) -> str:
    """Stable 12-hex id of a resolved configuration."""
    defaults = RunConfig().model_dump(mode="json")
    identity = {
        name: value
        for name, value in config.model_dump(mode="json").items()
        if name not in EXECUTION_FIELDS and value != defaults[name]
    }
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def expand_sweep(spec: Spec, name: str) -> list[PlannedRun]:
    """The runs of one sweep in grid order (axes as written, seeds innermost)."""
    sweep = spec.sweeps[name]
    base = spec.defaults | sweep.base
    axes = list(sweep.grid)
    runs = []
    for combo in itertools.product(*(sweep.grid[a] for a in axes)):
        for seed in sweep.seeds:
            config = RunConfig(**(base | dict(zip(axes, combo, strict=False)) | {"seed": seed}))
            runs.append(PlannedRun(run_id(config), name, config))
    return runs


class UnknownSweep(KeyError):
    def __init__(self, name: str, choices: Iterable[str]):
        choices = list(choices)
        self.name = name
        hint = suggest(name, choices)
        super().__init__(
            f"no sweep named {name!r}" + (f"; {hint}" if hint else "") + f" (sweeps: {', '.join(choices)})"
        )

    def __str__(self) -> str:
        return str(self.args[0])


def expand(spec: Spec, names: Iterable[str] = ()) -> list[PlannedRun]:
    """Runs of the named sweeps (default: the spec's default sweep), each id once, in order."""
    names = list(names) or [spec.default_sweep]
    for name in names:
        if name not in spec.sweeps:
            raise UnknownSweep(name, spec.sweeps)
    seen: set[str] = set()
    out = []
    for name in names:
        for run in expand_sweep(spec, name):
            if run.run_id not in seen:
                seen.add(run.run_id)
                out.append(run)
    return out
