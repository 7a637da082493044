"""The dashboard's header: store, sweeps, run counts, ETA, scheduler and device use.

Three lines, each fitted to the width by dropping its least important parts first (the store's
path before the sweeps, the scheduler before the ETA before the counts), and each redrawn only when
its text changes: an idle dashboard writes nothing to the terminal. Device figures (load, GPU use)
move all the time, so their line is redrawn at most every ``FIGURES_EVERY_S`` seconds unless what it
says (which runs hold which device) changed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from rich.segment import Segment
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

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
FIGURES_EVERY_S = 5.0
SEP = " · "
Part = tuple[int, str, str]  # (priority: higher stays longer, text, shorter text or "" to drop)


def header_lines(snap: Snapshot) -> list[str]:
    """The three lines in full (what a wide terminal shows)."""
    return [SEP.join(text for _, text, _ in parts) for parts in header_parts(snap)]


def header_parts(snap: Snapshot) -> list[list[Part]]:
    sweeps = ", ".join(f"{name} ({n})" for name, n in snap.sweeps.items()) or "none yet"
    shown = [s for s in ORDER if snap.counts.get(s) or s in ORDER[:4]]
    counts = ", ".join(f"{snap.counts.get(s, 0)} {s}" for s in shown)
    short_counts = " ".join(f"{snap.counts.get(s, 0)} {s}" for s in shown if snap.counts.get(s))
    sched = snap.scheduler
    if sched.pid is None:
        who, short_who = "no scheduler", ""
    elif sched.background and sched.capacity == 0 and snap.counts.get("queued"):
        who, short_who = f"scheduler {sched.pid}: waiting for nodes", "waiting for nodes"
    elif sched.background:
        who, short_who = f"scheduler {sched.pid}", "sched"
    else:
        who, short_who = f"foreground run {sched.pid}", "fg run"
    eta = f"ETA {duration(snap.eta_s)}" if sched.pid is not None else "ETA -"
    devices = "  ".join(d.describe() for d in snap.devices) or "no device in use"
    if not snap.runs:
        devices = "no runs yet: press l to launch a sweep"
    return [
        [(1, snap.store, ""), (2, f"sweeps: {sweeps}", f"{len(snap.sweeps)} sweeps")],
        [(3, counts, short_counts), (2, eta, ""), (1, who, short_who)],
        [(1, devices, "")],
    ]


def fit(parts: Sequence[Part], width: int) -> str:
    """The parts joined, the least important shortened (or dropped) first until the line fits;
    the most important part is never dropped, only cut with an ellipsis if still too long."""
    texts = [text for _, text, _ in parts]

    def joined() -> str:
        return SEP.join(t for t in texts if t)

    order = sorted(range(len(parts)), key=lambda i: parts[i][0])
    for index in order:
        if len(joined()) <= width:
            break
        short = parts[index][2]
        if short and len(short) < len(texts[index]):
            texts[index] = short
            if len(joined()) <= width:
                break
        if index != order[-1]:
            texts[index] = ""
    line = joined()
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


class StatusHeader(Widget):
    """Three lines, each re-rendered only when its text changes."""

    DEFAULT_CSS = "StatusHeader { height: 3; }"

    def __init__(self, *, id: str | None = None, clock: Callable[[], float] = time.monotonic):  # noqa: A002
        super().__init__(id=id)
        self.clock = clock
        self._parts: list[list[Part]] = [[], [], []]
        self._lines = ["", "", ""]
        self._figures_at = -FIGURES_EVERY_S

    @property
    def text(self) -> str:
        return "\n".join(self._lines)

    def show(self, snap: Snapshot) -> None:
        parts = header_parts(snap)
        now = self.clock()
        old_devices = re.sub(r"[\d.]+", "#", fit(self._parts[2], 10_000))
        same_shape = old_devices == re.sub(r"[\d.]+", "#", fit(parts[2], 10_000))
        if same_shape and now - self._figures_at < FIGURES_EVERY_S:
            parts[2] = self._parts[2]  # only figures moved, and lately: keep the line as drawn
        elif fit(parts[2], 10_000) != fit(self._parts[2], 10_000):
            self._figures_at = now
        self._parts = parts
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        width = max(1, self.content_size.width or self.size.width or 80)
        for y, parts in enumerate(self._parts):
            line = fit(parts, width) if parts else ""
            if line != self._lines[y]:
                self._lines[y] = line
                self.refresh(Region(0, y, self.size.width, 1))

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        text = self._lines[y] if 0 <= y < len(self._lines) else ""
        return Strip([Segment(text, self.rich_style)]).crop_extend(0, width, self.rich_style)
