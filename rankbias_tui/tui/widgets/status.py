"""The dashboard's header: store, sweeps, run counts, ETA, scheduler and device use."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...measures import Status
from ..format import duration
from ..model import Snapshot

ORDER = (
    Status.DONE,
    Status.RUNNING,
    Status.QUEUED,
    Status.FAILED,
    Status.DIVERGED,
    Status.CANCELLED,
    Status.STOPPED,
    Status.INTERRUPTED,
)


def header_lines(snap: Snapshot) -> list[str]:
    sweeps = ", ".join(f"{name} ({n})" for name, n in snap.sweeps.items()) or "none yet"
    counts = ", ".join(f"{snap.counts.get(s, 0)} {s}" for s in ORDER if snap.counts.get(s) or s in ORDER[:4])
    sched = snap.scheduler
    if sched.pid is None:
        who = "no scheduler"
    elif sched.background:
        who = f"scheduler {sched.pid}"
    else:
        who = f"foreground run {sched.pid}"
    eta = f"ETA {duration(snap.eta_s)}" if sched.pid is not None else "ETA -"
    devices = "  ".join(d.describe() for d in snap.devices) or "no device in use"
    return [f"{snap.store} · sweeps: {sweeps}", f"{counts} · {eta} · {who}", devices]


class StatusHeader(Static):
    """Three lines, re-rendered only when their text changes."""

    def show(self, snap: Snapshot) -> None:
        lines = header_lines(snap)
        if not snap.runs:
            lines[2] = "no runs yet: press l to launch a sweep"
        text = "\n".join(lines)
        if text != getattr(self, "_text", None):
            self._text = text
            self.update(Text(text, no_wrap=True, overflow="ellipsis"))
