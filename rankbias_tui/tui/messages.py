"""Messages from the store poller to the screens (attributes down, messages up)."""

from __future__ import annotations

from collections.abc import Mapping

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
    ):
        super().__init__()
        self.snapshot, self.detail, self.curves, self.poll_ms = snapshot, detail, curves, poll_ms

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StoreRefreshed)


class PollFailed(Message):
    def __init__(self, error: str):
        super().__init__()
        self.error = error
