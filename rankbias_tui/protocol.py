"""What a worker tells the scheduler, and what the scheduler tells a pack: the whole protocol.

Owns: one small frozen dataclass per message (plain fields, picklable, no torch), and
``SpectrumRow``, the one shape of a layer's measurement: built once by ``spectral``, sent in a
``Spectra`` event, written and read back by ``store``, written out by ``export``. Every event about
a run carries its ``run_id``, so a pack's members need no envelope; the scheduler dispatches on the
class. Does not own: how messages travel (pipes, ``engine.worker`` and ``scheduler.local``) or what
the scheduler does with them (``scheduler.hosts.record``, ``scheduler.service``). Imports neither
torch nor textual: the same messages are meant to cross machines.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SpectrumRow:
    """One layer of one run at one measurement: ``svals`` of W/||W||_F, descending (float64), the
    measures derived from them, ||W||_2 and ||W||_F of the raw W, and the uncapped rank bound."""

    run_id: str
    step: int
    epoch: float
    layer_index: int
    layer: str
    d_out: int
    d_in: int
    m: int  # times the layer is applied per example
    svals: np.ndarray  # (min(d_out, d_in),) float64
    rank: int  # singular values > rank_eps
    rank_eps: float
    stable_rank: float
    effective_rank: float
    spectral_norm: float
    fro_norm: float
    bound: float

    def __eq__(self, other: object) -> bool:
        """Field by field; the singular values bit for bit (an array has no single truth value)."""
        if not isinstance(other, SpectrumRow):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # equal rows need not hash alike: svals is an array

    def _key(self) -> tuple[object, ...]:
        plain = tuple(getattr(self, f.name) for f in fields(self) if f.name != "svals")
        return (*plain, np.asarray(self.svals, dtype="<f8").tobytes())


# ----- worker -> scheduler: events about one run -------------------------------------------------
@dataclass(frozen=True)
class Started:
    """The run began, or resumed from step ``resumed_from`` (-1: a fresh start), trained by ``mode``
    under training protocol ``protocol_version`` (``engine.loop.PROTOCOL_VERSION``); ``note`` says
    what the start must not do silently (a checkpoint of another protocol, not resumed);
    ``provenance``: what the worker process runs (rankbias version, git SHA and dirty flag, Python,
    torch, CUDA, cuDNN, GPU), stamped by it on the way out, kept with the segment this starts."""

    run_id: str
    total_steps: int
    resumed_from: int
    mode: str
    protocol_version: int = 0  # 0: not said (a worker older than protocol 2)
    note: str | None = None
    provenance: dict[str, Any] | None = None  # None: not said (an older worker; a plain default, so
    # that an older worker's pickled event still reads: a default factory leaves no class attribute)


@dataclass(frozen=True)
class Metrics:
    """Scalar metrics of the run at ``step`` (running loss/acc/lr, or the evaluation at an epoch end)."""

    run_id: str
    step: int
    epoch: float
    values: dict[str, float]


@dataclass(frozen=True)
class Spectra:
    """One measurement of the run: a row per measured layer, all at the same step."""

    run_id: str
    rows: tuple[SpectrumRow, ...]


@dataclass(frozen=True)
class Checkpoint:
    """The run's checkpoint after ``step`` is on disk: it can resume from there. ``digest``: the
    SHA-256 of the file as written (the store keeps it; a resume verifies the file against it).
    ``location``: where the file is, if not in the store's checkpoint directory (a Ray task's
    ``--checkpoint-dir``: a path every node reaches, or a URI); the store keeps it too."""

    run_id: str
    step: int
    digest: str = ""  # "": not said (a worker older than digests); the file is then checked by its CRCs
    location: str = ""


@dataclass(frozen=True)
class Progress:
    """The run completed ``epoch`` epochs (``step`` steps); sent at every epoch end."""

    run_id: str
    step: int
    epoch: float


@dataclass(frozen=True)
class Finished:
    """The run ended with ``status`` (done, diverged, cancelled, failed) and why in ``error``: its
    first line the reason (the guard's accuracies and epochs, the steps of a non-finite loss, a
    failure), then what ``Started.note`` said. The store keeps it in the run's ``error`` column."""

    run_id: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class RunWarning:
    """Something went wrong without ending the run (a damaged checkpoint it fell back from); the
    store keeps it on the run, and ``rankbias show`` and the app show it."""

    run_id: str
    text: str


# ----- worker -> scheduler: events about the worker process --------------------------------------
HEARTBEAT_S = 1.0  # a live worker sends something (a Heartbeat if nothing else) at least this often


@dataclass(frozen=True)
class Heartbeat:
    """The worker process is alive: sent every ``HEARTBEAT_S`` by a thread of its own, so that a
    worker busy loading data, evaluating or measuring is still heard from. A worker silent for
    much longer is stalled (frozen, hung): the scheduler kills it and requeues its runs."""


@dataclass(frozen=True)
class GpuMemory(Heartbeat):
    """A heartbeat that also says the worker, on a GPU, found ``free`` bytes free on it as it started,
    before it allocated anything of its own: the Ray backend sizes that GPU's later packs from it
    (``scheduler.ray_place``); to the scheduler it is a heartbeat."""

    free: int


@dataclass(frozen=True)
class DiskFull:
    """A write of the worker failed for lack of space (or quota) at ``path``: the whole scheduler
    stops (every run would fail the same way), requeueing its runs."""

    path: str
    error: str


@dataclass(frozen=True)
class OutOfMemory:
    """A pack ran out of memory, GPU or CPU (its ``WorkerEnded`` follows): retry its members in
    smaller packs."""

    reason: str


@dataclass(frozen=True)
class WorkerEnded:
    """The worker process's last word: the outcome of each of its runs that sent no ``Finished``."""

    status: str
    error: str | None = None


@dataclass(frozen=True)
class Placed:
    """A remote backend's worker started on ``node`` (its address; ``node_id``: the backend's id of
    it) and trains on that node's ``device`` in the process ``pid`` there."""

    node: str
    node_id: str
    device: str
    pid: int | None

    @property
    def where(self) -> str:
        """How the store and the app name the place: ``cuda:0@10.0.0.7``."""
        return f"{self.device}@{self.node}"


@dataclass(frozen=True)
class WorkerLost:
    """A remote backend lost the worker with its machine (a node gone, a task's worker killed):
    its unfinished runs go back to the queue and resume from their last acknowledged checkpoint."""

    reason: str


RunEvent = Started | Metrics | Spectra | Checkpoint | Progress | Finished | RunWarning
Event = RunEvent | Heartbeat | OutOfMemory | DiskFull | WorkerEnded | WorkerLost | Placed


# ----- scheduler -> pack worker ------------------------------------------------------------------
@dataclass(frozen=True)
class Cancel:
    """Freeze this member of the pack and report it cancelled; the other members go on."""

    run_id: str
