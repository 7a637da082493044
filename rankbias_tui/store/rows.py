"""The rows a store reads and writes, as typed values: one home for each row's shape.

Owns: ``Request`` (what another process asks the scheduler), ``RunRow`` (one run, its config
decoded and its status as a reader should see it: a stored "running" whose scheduler is gone reads
as ``interrupted``), ``Segment`` (one execution mode a run was trained in), and the one place a
spectrum's singular values change shape (a float64 array <-> the little-endian ``svals`` BLOB).
Does not own: the SQL (``database``, ``results``) or opening the database (``connection``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np
from pydantic import ValidationError

from ..measures import INTERRUPTED, Status
from ..protocol import SpectrumRow
from ..spec import RunConfig
from . import owner as owners

SPECTRUM_COLUMNS = tuple(f.name for f in fields(SpectrumRow))  # the columns of ``spectra``


@dataclass(frozen=True)
class Request:
    """One row of ``requests``: what another process asks the store's scheduler to do."""

    kind: str  # one of REQUESTS
    run_id: str | None = None  # the run to launch, cancel or resume
    spec_path: str | None = None  # a launch's spec file (absolute): older rankbias, no longer answered
    sweep: str | None = None  # a launch's sweep (what the scheduler's log names)
    created_at: float = field(default=0.0, compare=False)  # when it was made (set by the store)
    id: int = field(default=0, compare=False)  # the store's order of requests (set by the store)


class LayerRank(NamedTuple):
    """One layer's stored rank at one measurement, without its singular values: what a rank curve
    reads (``measures.rank_curve`` at the run's own eps)."""

    step: int
    epoch: float
    layer: str
    d_out: int
    d_in: int
    rank: int
    svals: None = None  # not read


@dataclass(frozen=True)
class RunRow:
    """One row of ``runs``, with its config read back as the frozen ``RunConfig``. ``device``:
    where it trains or last trained, None while queued (``segments`` keep where each attempt ran)."""

    run_id: str
    sweep: str
    config: RunConfig
    status: Status
    device: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    step: int
    total_steps: int | None
    epoch: float
    checkpoint_step: int | None
    provenance: dict[str, Any]
    attempts: int
    pid: int | None
    protocol_version: int | None = None  # the training protocol it was trained under (None: not yet)
    owner: str | None = None  # the scheduler training it (``owner.token``), while running
    warnings: tuple[str, ...] = ()  # what went wrong without ending it (e.g. a damaged checkpoint)
    active_s: float = 0.0  # seconds trained, over all attempts ended so far (not the running one)
    config_error: str | None = None  # why its stored config is not one this version would write

    def active_seconds(self, now: float) -> float:
        """Seconds trained over all attempts, the running one up to ``now`` included."""
        running = now - self.started_at if self.status == Status.RUNNING and self.started_at else 0.0
        return self.active_s + max(0.0, running)

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


@dataclass(frozen=True)
class Segment:
    """A stretch of a run trained in one execution mode: from ``from_step`` (-1: a fresh start) on
    ``device`` by ``mode`` (``Started.mode``), with ``pack`` the ids trained together, in order,
    by a worker with ``provenance`` (``Started.provenance``; empty: not recorded)."""

    run_id: str
    started_at: float
    from_step: int
    device: str | None
    mode: str
    pack: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def same_mode(self, other: Segment) -> bool:
        """Trained the same way: the same step (mode) on the same kind of device, with the same
        pack members in the same order."""
        return (self.mode, self.pack, _kind(self.device)) == (other.mode, other.pack, _kind(other.device))

    def describe(self) -> str:
        where = f"from step {self.from_step}" if self.from_step >= 0 else "from the start"
        with_ = (
            f" (pack of {len(self.pack)}: {' '.join(r[:8] for r in self.pack)})" if len(self.pack) > 1 else ""
        )
        return f"{where} on {self.device}: {self.mode}{with_}"

    def software(self) -> str:
        """Who trained it, on one line: ``rankbias 0.1.0, git 72eb1b5fa341 (uncommitted changes),
        Python 3.11.7, torch 2.5.1+cu124, CUDA 12.4, cuDNN 90100, GPU NVIDIA H100 80GB HBM3, data
        3f2a9c01d4e7`` (the data set's SHA-256, cut)."""
        p = self.provenance
        if not p:
            return "provenance not recorded (an older rankbias)"
        sha = p.get("git_sha") or ""
        git = f"git {sha[:12]}" if sha else "no git checkout"
        if p.get("git_dirty"):
            git += " (uncommitted changes)"
        named = [
            ("Python", "python"),
            ("torch", "torch"),
            ("CUDA", "cuda"),
            ("cuDNN", "cudnn"),
            ("GPU", "gpu"),
        ]
        rest = [f"{label} {p[key]}" for label, key in named if p.get(key)]
        data = [f"data {p['data_sha256'][:12]}"] if p.get("data_sha256") else []
        return ", ".join([f"rankbias {p.get('rankbias', '?')}", git, *rest, *data])

    def code(self) -> str:
        """A user's model and data set it trained (``references.user_code``), one line: ``model
        tiny_cnn:build (tiny_cnn.py, sha256 1a2b3c4d5e6f), options {"hidden": 64}``; '' for built-ins."""
        p, parts = self.provenance, []
        for kind in ("model", "dataset"):
            ref = p.get(f"{kind}_ref")
            if not ref:
                continue
            sha, file = p.get(f"{kind}_sha256") or "", p.get(f"{kind}_file") or ""
            where = (
                f"{file.rsplit('/', 1)[-1]}, sha256 {sha[:12]}" if sha else p.get(f"{kind}_note", "no file")
            )
            options = json.dumps(p.get(f"{kind}_options") or {}, sort_keys=True)
            parts.append(f"{kind} {ref} ({where}), options {options}")
        return "; ".join(parts)


def _kind(device: str | None) -> str:
    return (device or "").partition(":")[0]  # cuda:0 and cuda:1 compute alike


class Owners:
    """Which owners of running runs are alive, asked once per owner while reading rows."""

    def __init__(self) -> None:
        self.known: dict[str, bool] = {}

    def status(self, stored: str, owner: str | None) -> str:
        """A stored 'running' whose scheduler is gone reads as interrupted (never stored as such)."""
        if stored != Status.RUNNING or not owner:
            return stored
        if owner not in self.known:
            self.known[owner] = owners.alive(owner)
        return stored if self.known[owner] else INTERRUPTED


class JsonCache:
    """A run's JSON config or provenance, decoded (by ``parse``) once per distinct text: a run's
    never changes, and a refresh of the terminal UI reads every run twice a second (most of its
    cost, decoded each time). Callers treat what it returns as read-only."""

    LIMIT = 20_000  # decoded texts kept per open store

    def __init__(self, parse: Callable[[str], Any] = json.loads) -> None:
        self.parse = parse
        self.known: dict[str, Any] = {}

    def __call__(self, text: str) -> Any:
        value = self.known.get(text)
        if value is None:
            if len(self.known) > self.LIMIT:
                self.known.clear()
            value = self.known[text] = self.parse(text)
        return value


def read_config(text: str) -> tuple[RunConfig, str | None]:
    """A stored config as the frozen ``RunConfig``, with None; or, for one this version would not
    have written (a field it lacks, a value out of range), the fields it knows, unvalidated, with
    the first problem (the scheduler then refuses to train it: ``scheduler.recovery``)."""
    try:
        return RunConfig.model_validate_json(text), None
    except ValidationError as err:
        raw = json.loads(text)
        known = {k: v for k, v in raw.items() if k in RunConfig.model_fields} if isinstance(raw, dict) else {}
        return RunConfig.model_construct(**known), str(err.errors()[0]["msg"])


def run_row(
    r: sqlite3.Row,
    live: Owners,
    decode: Callable[[str], Any] = json.loads,
    config: Callable[[str], tuple[RunConfig, str | None]] = read_config,
) -> RunRow:
    """A ``runs`` row as read: ``decode`` parses its provenance JSON and ``config`` its config (the
    store's caches: a run's never changes)."""
    keys = r.keys()
    cfg, config_error = config(r["config"])
    owner = r["owner"] if "owner" in keys else None  # schema v5
    warnings = tuple((r["warnings"] or "").splitlines()) if "warnings" in keys else ()
    status = Status(live.status(r["status"], owner))
    return RunRow(
        run_id=r["run_id"],
        sweep=r["sweep"],
        config=cfg,
        status=status,
        device=None if status == Status.QUEUED else r["device"],  # a requeued run's is its last attempt's
        created_at=r["created_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        error=r["error"],
        step=r["step"],
        total_steps=r["total_steps"],
        epoch=r["epoch"],
        checkpoint_step=r["checkpoint_step"],
        provenance=decode(r["provenance"] or "{}"),
        attempts=r["attempts"],
        pid=r["pid"],
        protocol_version=r["protocol_version"] if "protocol_version" in keys else None,
        owner=owner,
        warnings=warnings,
        active_s=r["active_s"] if "active_s" in keys else 0.0,
        config_error=config_error,
    )


def spectrum_values(row: SpectrumRow) -> tuple[Any, ...]:
    return tuple(_svals_blob(row.svals) if k == "svals" else getattr(row, k) for k in SPECTRUM_COLUMNS)


def spectrum_row(r: sqlite3.Row) -> SpectrumRow:
    return SpectrumRow(**{k: _svals_array(r[k]) if k == "svals" else r[k] for k in r.keys()})


# The one place singular values change shape: a row's float64 array <-> the little-endian BLOB.
def _svals_blob(svals: np.ndarray) -> bytes:
    return np.asarray(svals, dtype="<f8").tobytes()


def _svals_array(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8")  # read-only, like the array the worker measured
