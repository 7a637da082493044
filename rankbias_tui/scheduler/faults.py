"""Why a scheduler stopped before its queue was done, and the one line each reason gives a person.

Owns: the exceptions that end a scheduler's loop early (``Stopped``: a stop request, a signal, the
store deleted or replaced under it, a full disk), the exit status each means, the wording of the
line a person reads (cause; what happened to the runs in progress; what to do), and
``signals_stop``, which makes SIGTERM and SIGHUP end a foreground scheduler as Ctrl-C does.
Does not own: stopping the workers and requeueing their runs (``scheduler.service.shutdown``).
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..store import Request, is_full

log = logging.getLogger(__name__)


class Stopped(Exception):
    """The scheduler ended early; ``outcome`` (set once it has shut down) says what became of the
    runs in progress, ``advice`` what to do next."""

    exit_code = 1
    advice = "run the same command again to resume"
    hard_exit = False  # end the process at once once it is said (``ray_cluster.ClusterLost``)

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause
        self.outcome = ""

    def __str__(self) -> str:
        return "; ".join(part for part in (self.cause, self.outcome, self.advice) if part)


class StopRequested(Stopped):
    """``rankbias stop`` asked this scheduler to end; runs in progress go back to the queue."""

    exit_code = 130


class Interrupted(Stopped):
    """A signal (SIGTERM, SIGHUP) asked the scheduler to end, as Ctrl-C does."""

    def __init__(self, signum: int):
        self.signal = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal}")
        self.exit_code = 128 + signum


class StoreGone(Stopped):
    """The store's database was deleted or replaced while the scheduler ran: nothing more can be
    recorded, and nothing is written anywhere else (no new store is made)."""

    advice = "restore the store or start again with `rankbias run` (a new store)"

    def __init__(self, database: Path, replaced: bool):
        what = "replaced by another file" if replaced else "deleted"
        super().__init__(f"the store's database {database} was {what} while the scheduler ran")


class DiskFull(Stopped):
    """A write failed for lack of space (database, checkpoint or data set)."""

    def __init__(self, where: str, error: str):
        super().__init__(f"the disk is full: writing {where} failed ({error})")
        self.advice = "free some space (or pass --store on a larger disk), then run the same command again"


def as_stopped(err: BaseException, database: Path) -> BaseException:
    """``err`` as the ``Stopped`` it amounts to: Ctrl-C is said like any other signal, and a write
    that failed for lack of space (SQLite's "database or disk is full", ENOSPC) is a full disk."""
    if isinstance(err, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    if isinstance(err, sqlite3.Error | OSError) and is_full(err):
        return DiskFull(str(getattr(err, "filename", None) or database), str(err))
    return err


def expired(request: Request, after: int) -> bool:
    """A stop request made before this scheduler took the store - its id is not above ``after``,
    the store's latest request id then - was meant for one that has gone since (a ``rankbias
    stop`` that timed out): it expires, unanswered. The store's ids order requests whatever the
    clocks of the processes that made them say."""
    if request.id > after:
        return False
    log.info("ignoring a %s request made before this scheduler started (it has expired)", request.kind)
    return True


def stopped_outcome(count: int, recorded: bool) -> str:
    """What became of the runs in progress, for ``Stopped.outcome``."""
    if count == 0:
        return "nothing recorded was lost"
    runs = f"{count} run{'s' if count != 1 else ''} in progress"
    if recorded:
        return f"nothing recorded was lost: {runs} stopped and resume from their last checkpoint"
    return (
        f"nothing recorded was lost: {runs} could not be marked stopped, so they show as interrupted "
        "and the next scheduler resumes them from their last checkpoint"
    )


@contextmanager
def signals_stop() -> Iterator[None]:
    """Within this block (main thread only), SIGTERM and SIGHUP raise ``Interrupted`` and SIGINT
    raises ``KeyboardInterrupt`` - once: a second signal while shutting down is ignored, so the
    shutdown that requeues the runs is not cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signum)

    wanted = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    old = {signum: signal.signal(signum, handler) for signum in wanted}
    try:
        yield
    finally:
        for signum, previous in old.items():
            signal.signal(signum, previous)
