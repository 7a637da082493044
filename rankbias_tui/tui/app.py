"""The Textual app: screens over one store, fed by a background poller, asking the scheduler for
actions through the store's requests table.

The poller (a thread worker) reads the store at most ``interval`` seconds apart and posts one
``StoreRefreshed`` message with the whole picture; it waits until the screens applied it before
reading again, so a slow terminal slows the polling instead of queueing snapshots. With
``live=False`` (tests, screenshots) nothing polls on its own: ``refresh_data()`` reads once.
"""

from __future__ import annotations

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

from ..export import export
from ..measures import ACTIVE, FINISHED
from ..scheduler import SchedulerLock, StoreBusy, daemon
from ..scheduler.daemon import DaemonOptions
from ..store import Store
from .messages import PollFailed, StoreRefreshed
from .model import RunDetail, StoreFeed
from .usage import SystemProbe, UsageProbe

Spawner = Callable[[Path, DaemonOptions], Any]


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
        options: DaemonOptions | None = None,
        spawn: Spawner | None = daemon.spawn,
        live: bool = True,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        probe: UsageProbe | None = None,
    ):
        super().__init__()
        self.store_dir = Path(store_dir)
        self.spec_path = Path(spec_path) if spec_path else None
        self.options = options or DaemonOptions()
        self.spawn, self.live, self.interval, self.clock = spawn, live, interval, clock
        self.feed = StoreFeed(
            self.store_dir, clock=clock, probe=probe if probe is not None else SystemProbe()
        )
        self.requests = Store(self.store_dir, create=False)  # this thread's connection, for requests
        self.latest: StoreRefreshed | None = None
        self.focus_run: str | None = None  # the run detail screen's run, read by the poller
        self.compare_ids: tuple[str, ...] | None = None  # the compare screen's runs
        self.pending: dict[str, str] = {}  # run_id -> request not yet visible in its status
        self.spawned: subprocess.Popen[bytes] | None = None
        self.apply_ms: list[float] = []  # per refresh, for the benchmark
        self.poll_ms: list[float] = []
        self._wake = threading.Event()
        self._applied = threading.Event()

    # ----- lifecycle --------------------------------------------------------------------------
    def on_mount(self) -> None:
        from .screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen())
        if self.live:
            self._poll_loop()
        else:
            self.refresh_data()

    def on_unmount(self) -> None:
        self._wake.set()
        self._applied.set()

    # ----- reading the store ------------------------------------------------------------------
    def _collect(self) -> StoreRefreshed:
        started = time.perf_counter()
        snapshot = self.feed.poll()
        focus, compare = self.focus_run, self.compare_ids
        detail: RunDetail | None = self.feed.detail(focus) if focus else None
        curves = None
        if compare is not None:
            views = snapshot.by_id()
            curves = self.feed.rank_curves(views[i] for i in compare if i in views)
        return StoreRefreshed(snapshot, detail, curves, (time.perf_counter() - started) * 1000)

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
            self._wake.wait(max(0.0, self.interval - (time.monotonic() - started)))
            self._wake.clear()

    def on_store_refreshed(self, message: StoreRefreshed) -> None:
        started = time.perf_counter()
        self.latest = message
        by_id = message.snapshot.by_id()
        for run_id, kind in list(self.pending.items()):
            view = by_id.get(run_id)
            if view is None or (kind == "cancel" and view.status not in ACTIVE):
                del self.pending[run_id]
            elif kind == "resume" and view.status in (*ACTIVE, *FINISHED):
                del self.pending[run_id]
        apply = getattr(self.screen, "apply", None)
        if apply is not None:
            apply(message)
        self._check_spawned()
        self.poll_ms.append(message.poll_ms)
        self.apply_ms.append((time.perf_counter() - started) * 1000)
        self._applied.set()

    def on_poll_failed(self, message: PollFailed) -> None:
        self.notify(message.error, title="cannot read the store", severity="error", timeout=4)

    # ----- asking the scheduler ---------------------------------------------------------------
    def ask(self, kind: str, run_id: str) -> None:
        """Cancel or resume a run: a request for the scheduler, which is started if none runs.

        With no scheduler, a cancel is recorded at once (as ``rankbias cancel`` does): holding the
        lock, nobody else can be running the run.
        """
        if kind == "cancel":
            try:
                with SchedulerLock(self.store_dir):
                    self.requests.set_status(run_id, "cancelled", error="cancelled by request")
                self.notify(f"cancelled {run_id[:8]}")
                self.wake()
                return
            except StoreBusy:
                pass
        self.requests.request(kind, run_id)
        self.pending[run_id] = kind
        self.notify(f"{kind} requested for {run_id[:8]}" + self._ensure_scheduler(kind))
        self.wake()

    def launch(self, sweep: str) -> None:
        assert self.spec_path is not None
        daemon.request_launch(self.requests, self.spec_path, sweep)
        self.notify(f"launch requested: {sweep}" + self._ensure_scheduler("launch"))
        self.wake()

    def _ensure_scheduler(self, kind: str) -> str:
        pid = daemon.scheduler_pid(self.store_dir)
        if pid is not None and not daemon.is_daemon(self.store_dir, pid) and kind != "cancel":
            return f"; but a foreground `rankbias run` (pid {pid}) holds this store and only answers cancel and stop"
        if pid is not None or self.spawn is None:
            return ""
        if self.spawned is not None and self.spawned.poll() is None:
            return ""  # started a moment ago, not holding the lock yet
        self.spawned = self.spawn(self.store_dir, self.options)
        return f"; started the background scheduler (log: {self.store_dir / daemon.LOG_NAME})"

    def _check_spawned(self) -> None:
        proc = self.spawned
        if proc is None or not hasattr(proc, "poll") or proc.poll() in (None, 0):
            return
        self.spawned = None
        if daemon.scheduler_pid(self.store_dir) is not None:
            return  # another scheduler won the race to the lock; it answers the requests
        tail = _tail(self.store_dir / daemon.LOG_NAME)
        self.notify(tail or f"exit code {proc.returncode}", title="the scheduler exited", severity="error")

    # ----- export -----------------------------------------------------------------------------
    def export_csv(self, kind: str, run_ids: list[str], label: str) -> Path:
        stamp = datetime.fromtimestamp(self.clock()).strftime("%Y%m%d-%H%M%S")
        path = self.store_dir / "exports" / f"{label}-{stamp}.csv"
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
        from .screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen())


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def create_app(
    store_dir: str | Path,
    spec_path: str | Path | None = None,
    options: DaemonOptions | None = None,
    **kwargs: Any,
) -> RankbiasApp:
    """The one factory, for the CLI and for tests (which pass ``live=False``, a fixed ``clock``)."""
    return RankbiasApp(store_dir, spec_path=spec_path, options=options, **kwargs)
