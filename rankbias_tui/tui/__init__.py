"""The terminal UI (Textual lives only in this package): a client of the store.

It reads the store and asks the background scheduler for actions through the scheduler's client API
(``rankbias_tui.scheduler``); it never imports torch and never trains. ``create_app`` builds the app for
the CLI and for tests alike.
"""

from .app import RankbiasApp, create_app

__all__ = ["RankbiasApp", "create_app"]
