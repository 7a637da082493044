"""The Textual app: screens over one store, fed by a background poller, asking the scheduler for
actions through the scheduler's client API (``rankbias_tui.scheduler``).

The poller (a thread worker) reads the store at most ``interval`` seconds apart and posts one
``StoreRefreshed`` message with the whole picture; it waits until the screens applied it before
reading again, so a slow terminal slows the polling instead of queueing snapshots. With
``live=False`` (tests, screenshots) nothing polls on its own: ``refresh_data()`` reads once.

The app is the only module that imports the screens: it opens them with what they need (the
``AppState`` they read, the sweep menu) and handles the messages they post (``messages``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import get_current_worker

from .. import scheduler
from ..export import export
from ..measures import ACTIVE, FINISHED, Status, reason
from ..scheduler import SchedulerOptions
from ..spec import Spec, SpecError
from ..store import Store, StoreError, StorePaths, read_end
from .messages import (
    AppState,
    CancelRequested,
    ExportRequested,
    LaunchRequested,
    OpenCompare,
    OpenLaunch,
    OpenRun,
    PollFailed,
    ResumeRequested,
    StoreRefreshed,
    WatchCompare,
    WatchRun,
)
from .model import RunDetail, Snapshot, StoreFeed
from .scheduler_log import LogErrors
from .screens.dashboard import DashboardScreen
from .screens.help import HelpScreen
from .screens.launch import LaunchScreen, SweepMenu
from .usage import SystemProbe, UsageProbe

Spawner = scheduler.Spawner
HANGUP_GRACE_S = 5.0
HEAD_PAUSE_S = 0.1  # after the first runs of a big store, time to draw them before reading the rest
PROBLEMS = (Status.FAILED, Status.DIVERGED, Status.INTERRUPTED)  # a notice when a run gets there


class RankbiasApp(App[None]):
    """Watch, launch and steer the sweeps of one results directory."""

    CSS_PATH = "app.tcss"
    TITLE = "rankbias"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(
        self,
        store_dir: str | Path,
        *,
        spec_path: str | Path | None = None,
        spec: Spec | SpecError | None = None,
        options: SchedulerOptions | None = None,
        spawn: Spawner | None = scheduler.spawn,
        live: bool = True,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        probe: UsageProbe | None = None,
    ):
        super().__init__()
        self.paths = StorePaths.of(store_dir)
        self.store_dir = self.paths.directory
        self.options = options or SchedulerOptions()
        menu = SweepMenu.of(Path(spec_path) if spec_path else None, spec)  # the spec, read once
        self.menu = menu.refusing(menu.problem or _options_problem(self.options))
        self.spawn, self.live, self.interval, self.clock = spawn, live, interval, clock
        self.feed = StoreFeed(
            self.store_dir, clock=clock, probe=probe if probe is not None else SystemProbe()
        )
        self.requests = Store(self.store_dir, create=False)  # this thread's connection, for requests
        self.log_errors = LogErrors(self.paths.log)  # read by the poller
        self.state = AppState()  # what the screens read
        self.focus_run: str | None = None  # the run detail screen's run, read by the poller
        self.compare_ids: tuple[str, ...] | None = None  # the compare screen's runs
        self.compare_measure = "rank"  # and what it compares
        self.spawned: subprocess.Popen[bytes] | None = None
        self.apply_ms: list[float] = []  # per refresh, for the benchmark
        self.poll_ms: list[float] = []
        self._wake = threading.Event()
        self._applied = threading.Event()

    @property
    def latest(self) -> StoreRefreshed | None:
        return self.state.latest

    @property
    def pending(self) -> dict[str, str]:
        """run_id -> request not yet visible in its status."""
        return self.state.pending

    # ----- lifecycle --------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._on_hangup()
        view = None if self.requests.read_only else self.paths.view  # nothing written beside a shared store
        self.push_screen(DashboardScreen(self.state, view_file=view))
        if self.live:
            self._poll_loop()
        else:
            self.refresh_data()

    def _on_hangup(self) -> None:
        """On SIGHUP (the terminal or SSH session went away, ``kill -HUP``) leave as on ``q``, so the
        terminal gets its normal screen, cursor and mouse back; the scheduler goes on either way.
        Should restoring block on a terminal that is gone, the process ends after a few seconds."""
        if threading.current_thread() is not threading.main_thread():
            return  # tests run the app off the main thread: no signal handlers there

        def hangup() -> None:
            last_resort = threading.Timer(HANGUP_GRACE_S, os._exit, (128 + signal.SIGHUP,))
            last_resort.daemon = True  # a clean exit does not wait for it
            last_resort.start()
            self.exit(return_code=128 + signal.SIGHUP)

        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hangup)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # no SIGHUP here (Windows) or no loop signals: the default applies

    def on_unmount(self) -> None:
        self._wake.set()
        self._applied.set()

    # ----- reading the store ------------------------------------------------------------------
    def _collect(self) -> StoreRefreshed:
        started = time.perf_counter()
        snapshot = self.feed.poll()
        focus, compare, measure = self.focus_run, self.compare_ids, self.compare_measure
        detail: RunDetail | None = self.feed.detail(focus) if focus else None
        curves, layers = None, ()
        if compare is not None:
            views = snapshot.by_id()
            curves = self.feed.rank_curves((views[i] for i in compare if i in views), measure)
            layers = next((found for i in compare if (found := self.feed.layers(i))), ())
        errors = tuple(self.log_errors.new())
        return StoreRefreshed(
            snapshot, detail, curves, (time.perf_counter() - started) * 1000, layers, errors
        )

    def refresh_data(self) -> None:
        """Read the store now, in this thread (used when ``live`` is off, and by tests)."""
        self.post_message(self._collect())

    def wake(self) -> None:
        """Read again soon: the screen wants something new (another run, another comparison)."""
        if self.live:
            self._wake.set()
        else:
            self.refresh_data()

    @work(thread=True, exclusive=True, group="store", name="store poller")
    def _poll_loop(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            started = time.monotonic()
            self._applied.clear()
            try:
                self.post_message(self._collect())
            except Exception as err:  # noqa: BLE001 - a locked or missing store is shown, not fatal
                self.post_message(PollFailed(f"{type(err).__name__}: {err}"))
                self._applied.set()
            self._applied.wait(5.0)  # back-pressure: the screens have drawn the last picture
            latest = self.state.latest
            if latest is not None and latest.snapshot.total is not None:  # the first runs of many:
                started = time.monotonic() - self.interval + HEAD_PAUSE_S  # the rest right after
            self._wake.wait(max(0.0, self.interval - (time.monotonic() - started)))
            self._wake.clear()

    def on_store_refreshed(self, message: StoreRefreshed) -> None:
        started = time.perf_counter()
        if self.state.latest is not None:
            self._notify_problems(self.state.latest.snapshot, message.snapshot)
        self.state.latest = message
        self._notify_errors(message.errors)
        by_id = message.snapshot.by_id()
        for run_id, kind in list(self.pending.items()):
            view = by_id.get(run_id)
            if view is None or (kind == "cancel" and view.status not in ACTIVE):
                del self.pending[run_id]
            elif kind == "resume" and view.status in (*ACTIVE, *FINISHED):
                del self.pending[run_id]
        self._redraw()
        self._check_spawned()
        self.poll_ms.append(message.poll_ms)
        self.apply_ms.append((time.perf_counter() - started) * 1000)
        self._applied.set()

    def _notify_problems(self, before: Snapshot, now: Snapshot) -> None:
        """A notice for each run that failed, diverged or was interrupted since the last picture
        (the store is scanned only when one of those counts grew)."""
        if all(now.counts.get(s, 0) <= before.counts.get(s, 0) for s in PROBLEMS):
            return
        old = before.by_id()
        ended = [
            v
            for v in now.runs
            if v.status in PROBLEMS and (was := old.get(v.run_id)) is not None and was.status != v.status
        ]
        for v in ended[:3]:
            why = reason(v.status, v.error) or ""
            self.notify(
                f"{v.run_id[:8]} {v.status}: {why}", title="run ended", severity="error", markup=False
            )
        if len(ended) > 3:
            self.notify(f"and {len(ended) - 3} more (p: next problem run)", severity="error")

    def _notify_errors(self, errors: tuple[str, ...]) -> None:
        """What the scheduler logged as errors, said here too (its log is not where one looks)."""
        for error in errors[:3]:
            self.notify(error, title="the scheduler reports", severity="error", timeout=20, markup=False)
        if len(errors) > 3:
            self.notify(f"and {len(errors) - 3} more: see {self.paths.log}", severity="error", timeout=20)

    def on_poll_failed(self, message: PollFailed) -> None:
        self.notify(message.error, title="cannot read the store", severity="error", timeout=4, markup=False)

    def _redraw(self) -> None:
        """Show the latest picture (and the pending requests) on the screen in front."""
        if not self.screen_stack:
            return  # quitting: the screens went before a last picture came
        apply = getattr(self.screen, "apply", None)
        if apply is not None and self.state.latest is not None:
            apply(self.state.latest)

    # ----- the screens' messages --------------------------------------------------------------
    def on_open_run(self, message: OpenRun) -> None:
        from .screens.detail import RunDetailScreen  # its charts (plotext) wait until one opens

        self.push_screen(RunDetailScreen(message.run_id, self.state))

    def on_open_compare(self, message: OpenCompare) -> None:
        from .screens.compare import CompareScreen  # its charts (plotext) wait until one opens

        self.push_screen(CompareScreen(message.run_ids, message.title, self.state))

    def on_open_launch(self, message: OpenLaunch) -> None:
        self.push_screen(LaunchScreen(self.menu, self.state))

    def on_watch_run(self, message: WatchRun) -> None:
        if message.on:
            self.focus_run = message.run_id
            self.wake()
        elif self.focus_run == message.run_id:
            self.focus_run = None

    def on_watch_compare(self, message: WatchCompare) -> None:
        self.compare_ids, self.compare_measure = message.run_ids, message.measure
        if message.run_ids is not None:
            self.wake()

    def on_cancel_requested(self, message: CancelRequested) -> None:
        self.ask("cancel", message.run_id)

    def on_resume_requested(self, message: ResumeRequested) -> None:
        self.ask("resume", message.run_id)

    def on_launch_requested(self, message: LaunchRequested) -> None:
        self.launch(message.sweep)

    def on_export_requested(self, message: ExportRequested) -> None:
        path = self.export_csv(message.kind, message.run_ids, message.label)
        self.notify(f"exporting {message.what} to {path}", timeout=2, markup=False)

    # ----- asking the scheduler ---------------------------------------------------------------
    def ask(self, kind: str, run_id: str) -> None:
        """Cancel or resume a run: a request for the scheduler, which is started if none runs
        (with no scheduler, a cancel is recorded at once)."""
        if kind == "cancel" and scheduler.cancel(self.requests, run_id):
            self.notify(f"cancelled {run_id[:8]}")
            self.wake()
            return
        if kind == "resume":
            scheduler.resume(self.requests, run_id)
        self.pending[run_id] = kind
        self.notify(f"{kind} requested for {run_id[:8]}" + self._ensure_scheduler(kind), markup=False)
        self._redraw()
        self.wake()

    def launch(self, sweep: str) -> None:
        """Queue the runs of ``sweep`` the launch screen counted (the spec is not read again)."""
        scheduler.launch(self.requests, self.menu.sweeps[sweep][1])
        self.notify(f"launch requested: {sweep}" + self._ensure_scheduler("launch"), markup=False)
        self.wake()

    def _ensure_scheduler(self, kind: str) -> str:
        now = scheduler.status(self.store_dir)
        if now.foreground and kind != "cancel":
            return (
                f"; but a foreground `rankbias run` (pid {now.pid}) holds this store "
                "and only answers cancel and stop"
            )
        if self.spawn is None:
            return ""
        try:
            pid, proc = scheduler.ensure(self.store_dir, self.options, self.spawn, self.spawned)
        except StoreError as err:  # a store others may write in, a link planted as the log
            return f"; but the background scheduler cannot start: {err}"
        if pid is not None or (proc is not None and proc is self.spawned):
            return ""  # one runs, or the one started a moment ago does not hold the lock yet
        self.spawned = proc
        return f"; started the background scheduler (log: {self.paths.log})"

    def _check_spawned(self) -> None:
        proc = self.spawned
        if proc is None or not hasattr(proc, "poll") or proc.poll() in (None, 0):
            return
        self.spawned = None
        if scheduler.scheduler_pid(self.store_dir) is not None:
            return  # another scheduler won the race to the lock; it answers the requests
        tail = _tail(self.paths.log)
        self.notify(
            tail or f"exit code {proc.returncode}",
            title="the scheduler exited",
            severity="error",
            markup=False,
        )  # user text (paths, spec values) is never markup

    # ----- export -----------------------------------------------------------------------------
    def export_csv(self, kind: str, run_ids: list[str], label: str) -> Path:
        stamp = datetime.fromtimestamp(self.clock()).strftime("%Y%m%d-%H%M%S")
        path = self.paths.exports / f"{label}-{stamp}.csv"
        self._export(kind, list(run_ids), path)
        return path

    @work(thread=True, group="export", name="export csv")
    def _export(self, kind: str, run_ids: list[str], path: Path) -> None:
        try:
            with Store(self.store_dir, create=False) as store:
                count = export(store, kind, path, run_ids=run_ids)
        except Exception as err:  # noqa: BLE001 - reported to the user
            self.call_from_thread(self.notify, str(err), title="export failed", severity="error")
            return
        self.call_from_thread(self.notify, f"wrote {count} rows to {path}", title="export")

    # ----- actions ----------------------------------------------------------------------------
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen())


def _options_problem(options: SchedulerOptions) -> str:
    """Why a scheduler started with ``options`` could not run, as far as is known without starting
    one (what ``rankbias run`` checks before it queues): bad ``--devices``, an unusable backend."""
    try:
        scheduler.check_syntax(options.devices)
        scheduler.check_backend(options)
    except (scheduler.DeviceError, scheduler.BackendError) as err:
        return str(err)
    return ""


def _tail(path: Path, lines: int = 3) -> str:
    """The last lines of the scheduler's log (never read through a symbolic link)."""
    return "\n".join(read_end(path, 64 * 1024).decode(errors="replace").splitlines()[-lines:])


def create_app(
    store_dir: str | Path,
    spec_path: str | Path | None = None,
    options: SchedulerOptions | None = None,
    **kwargs: Any,
) -> RankbiasApp:
    """The one factory, for the CLI and for tests (which pass ``live=False``, a fixed ``clock``).

    ``spec``: the spec the command already read from ``spec_path`` (or why it is invalid), so that
    it is read once; without it the app reads ``spec_path`` itself, once.
    """
    return RankbiasApp(store_dir, spec_path=spec_path, options=options, **kwargs)
