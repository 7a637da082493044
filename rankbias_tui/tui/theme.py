"""The app's colours that carry meaning: run statuses (always next to their word, so they read
without colour too). Kept apart so that a test can compute their contrast against the table."""

from __future__ import annotations

STATUS_STYLE = {
    "running": "bold",
    "failed": "bold red",
    "diverged": "yellow",
    "done": "green",
    "cancelled": "dim",
}
