"""What the dashboard and the run detail screen do alike on ``c`` and ``r``: one home for each flow.

``ask_to_cancel``: a run that is queued or running is cancelled after a yes (``ConfirmScreen``),
any other says why there is nothing to cancel; ``cannot_resume``: why a run cannot be resumed
(finished, or running already), or None. The screens post the resulting ``messages``; the app asks
the scheduler.
"""

from __future__ import annotations

from textual.screen import Screen

from ...measures import ACTIVE, FINISHED
from ..messages import CancelRequested
from .confirm import ConfirmScreen


def ask_to_cancel(screen: Screen, run_id: str, status: str, label: str) -> None:
    """Post ``CancelRequested`` for the run after a yes to "Cancel run LABEL (STATUS)?"; a run that
    is not active gets a warning instead."""
    if status not in ACTIVE:
        screen.notify(f"{run_id[:8]} is {status}: nothing to cancel", severity="warning")
        return

    def answer(yes: bool | None) -> None:
        if yes:
            screen.post_message(CancelRequested(run_id))

    screen.app.push_screen(ConfirmScreen(f"Cancel run {label} ({status})?"), answer)


def cannot_resume(run_id: str, status: str) -> str | None:
    """Why the run cannot be resumed (the warning to show), or None if it can."""
    if status not in (*FINISHED, "running"):
        return None
    why = "finished: nothing to resume" if status in FINISHED else "already running"
    return f"{run_id[:8]} is {status}, {why}"
