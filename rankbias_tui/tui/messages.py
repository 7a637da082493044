"""What crosses between the app and its screens: attributes down, messages up.

Down: ``AppState``, which the app writes and its screens read (the latest picture of the store and
the requests not yet visible in it), and the store poller's ``StoreRefreshed`` and ``PollFailed``.
Up: what a screen wants, for the app to do: open another screen, watch a run or a comparison (what
the poller reads besides the dashboard), cancel, resume or launch, export. So no screen imports the
app module, and only the app imports the screens it opens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from textual.message import Message

from .model import RunDetail, Snapshot


class StoreRefreshed(Message):
    """A full, immutable picture of the store; a newer one replaces an older one still queued."""

    def __init__(
        self,
        snapshot: Snapshot,
        detail: RunDetail | None = None,
        curves: Mapping[str, tuple[tuple[float, float], ...]] | None = None,
        poll_ms: float = 0.0,
        layers: tuple[str, ...] = (),
        errors: tuple[str, ...] = (),
    ):
        super().__init__()
        self.snapshot, self.detail, self.curves, self.poll_ms = snapshot, detail, curves, poll_ms
        self.layers = layers  # the compared runs' measured layers
        self.errors = errors  # what the scheduler logged as errors since the last picture

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StoreRefreshed) and not message.errors  # errors are said once


class PollFailed(Message):
    """The store could not be read this time (locked, missing); the poller tries again."""

    def __init__(self, error: str):
        super().__init__()
        self.error = error


@dataclass
class AppState:
    """What the app knows that its screens read; only the app writes it."""

    latest: StoreRefreshed | None = None
    pending: dict[str, str] = field(default_factory=dict)  # run_id -> request not yet in its status


# ----- up: from the screens to the app ----------------------------------------------------------
@dataclass
class OpenRun(Message):
    """Show one run's detail screen."""

    run_id: str


@dataclass
class OpenCompare(Message):
    """Show the average-rank curves of these runs side by side."""

    run_ids: list[str]
    title: str


@dataclass
class OpenLaunch(Message):
    """Show the spec's sweeps, to launch one."""


@dataclass
class WatchRun(Message):
    """The detail screen of ``run_id`` opened (``on``) or closed: read its metrics and spectra."""

    run_id: str
    on: bool


@dataclass
class WatchCompare(Message):
    """The compare screen opened on these runs (None: it closed): read their curves of ``measure``
    (``model.AVG_RANK``, ``rank:LAYER`` or a metric name)."""

    run_ids: tuple[str, ...] | None
    measure: str = "rank"


@dataclass
class CancelRequested(Message):
    """Cancel this run (the user confirmed)."""

    run_id: str


@dataclass
class ResumeRequested(Message):
    """Requeue this cancelled, failed or interrupted run."""

    run_id: str


@dataclass
class LaunchRequested(Message):
    """Queue this sweep of the spec with the background scheduler."""

    sweep: str


@dataclass
class ExportRequested(Message):
    """Write ``kind`` (summary, metrics) of these runs to a CSV file named after ``label``."""

    kind: str
    run_ids: list[str]
    label: str
    what: str  # for the notice: "6 runs", "metrics of a1b2c3d4"
