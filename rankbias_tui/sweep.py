"""Spec -> ordered, frozen run configs with stable ids. Pure: no torch, no I/O.

A run's id is a hash of the fields whose values differ from ``RunConfig``'s defaults, so adding
a new field with a default later keeps every existing id (and its stored results) valid, while
changing any value that shapes the run gives a new id.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .spec import RunConfig, Spec, suggest

# Fields that change how a run executes but not what it computes.
# ``code_dir`` (where a user's module is imported from) is one: moving a project keeps its ids;
# ``checkpoint_every`` another (a resume continues bitwise from any epoch end).
EXECUTION_FIELDS: frozenset[str] = frozenset({"pack_size", "code_dir", "checkpoint_every"})


@dataclass(frozen=True)
class PlannedRun:
    """One run of one sweep: where it came from and what it is."""

    run_id: str
    sweep: str
    config: RunConfig
    also: tuple[str, ...] = ()  # the other sweeps of one expansion that hold the same run

    @property
    def sweeps(self) -> tuple[str, ...]:
        """Every sweep this run belongs to (``sweep`` first)."""
        return (self.sweep, *self.also)


RUN_ID = re.compile(r"[0-9a-f]{12}")  # what ``run_id`` makes, and all a run id may be


def run_id(config: RunConfig) -> str:
    """Stable 12-hex id of a resolved configuration."""
    return _id_of(config.model_dump(mode="json"))


def is_run_id(text: object) -> bool:
    """Is ``text`` a run id as ``run_id`` makes them? Ids read from a database are checked with
    this before any file-system use: a row may have been written by anyone who can write the file."""
    return isinstance(text, str) and RUN_ID.fullmatch(text) is not None


def _id_of(dumped: dict[str, Any]) -> str:
    """The id of a configuration given as its JSON-mode dump: the hash of its non-default values."""
    defaults = _json_defaults()
    identity = {
        name: value
        for name, value in dumped.items()
        if name not in EXECUTION_FIELDS and value != defaults[name]
    }
    return _hash(identity)


def _hash(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@functools.cache
def _json_defaults() -> dict[str, Any]:
    return RunConfig().model_dump(mode="json")


def expand_sweep(spec: Spec, name: str) -> list[PlannedRun]:
    """The runs of one sweep in grid order (axes as written, seeds innermost).

    Each grid value is validated once against the sweep's base, not once per run: a grid of
    100,000 runs expands in about a second. ``load_spec`` has already checked every value."""
    sweep = spec.sweeps[name]
    base = RunConfig(**(spec.defaults | sweep.base))
    defaults, varied = _json_defaults(), {*sweep.grid, "seed"}
    base_identity = {
        k: v
        for k, v in base.model_dump(mode="json").items()
        if k not in varied and k not in EXECUTION_FIELDS and v != defaults[k]
    }
    axes = [[_field_value(base, axis, value) for value in sweep.grid[axis]] for axis in sweep.grid]
    code_dir = str(spec.file.resolve().parent)  # a user's model or data set is imported from here
    runs = []
    for combo in itertools.product(*axes):
        update, identity = {}, dict(base_identity)
        for field, value, dumped in combo:
            update[field] = value
            if dumped != defaults[field] and field not in EXECUTION_FIELDS:
                identity[field] = dumped
        for seed in sweep.seeds:
            ident = identity | {"seed": seed} if seed != defaults["seed"] else identity
            config = base.model_copy(update=update | {"seed": seed})
            if config.user_code:
                config = config.model_copy(update={"code_dir": code_dir})
            runs.append(PlannedRun(_hash(ident), name, config))
    return runs


def _field_value(base: RunConfig, field: str, value: Any) -> tuple[str, Any, Any]:
    """One grid value, validated with the base: (field, python value, JSON-mode value)."""
    config = RunConfig(**(dict(base) | {field: value}))
    return field, getattr(config, field), config.model_dump(mode="json")[field]


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
    """Runs of the named sweeps (default: the spec's default sweep), each id once, in order; a run
    that several of them hold is planned once, with the later sweeps in its ``also``."""
    names = list(names) or [spec.default_sweep]
    for name in names:
        if name not in spec.sweeps:
            raise UnknownSweep(name, spec.sweeps)
    seen: dict[str, int] = {}
    out: list[PlannedRun] = []
    for name in names:
        for run in expand_sweep(spec, name):
            at = seen.get(run.run_id)
            if at is None:
                seen[run.run_id] = len(out)
                out.append(run)
            elif name not in out[at].sweeps:
                out[at] = replace(out[at], also=(*out[at].also, name))
    return out
