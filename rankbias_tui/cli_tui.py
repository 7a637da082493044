"""CLI commands of the terminal UI: ``run`` with a terminal, ``attach`` and ``stop``.

``rankbias run`` hands over to ``run_with_tui`` when stdout is a terminal and ``--headless`` is
not given: the sweep is queued with the background scheduler (started if none runs on the store)
and the app opens on the store. Quitting the app, closing the terminal or losing the SSH
connection leaves the scheduler running; ``rankbias attach`` reopens the app and ``rankbias stop``
ends the scheduler cleanly (runs in progress resume later). Textual is imported only when the app
opens; torch never is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from .cli_common import err, fail
from .scheduler import daemon
from .scheduler.daemon import DaemonOptions
from .scheduler.devices import DeviceError, check_syntax

console = Console()

STORE_OPT = typer.Option(Path("runs"), "--store", help="Results directory (holds rankbias.sqlite).")


def terminal_attached() -> bool:
    """True when the app can run here: stdin and stdout are a terminal."""
    return sys.stdout.isatty() and sys.stdin.isatty()


def _busy_foreground(store_dir: Path) -> int | None:
    """The pid of a foreground ``rankbias run`` holding the store (it takes no launch requests)."""
    pid = daemon.scheduler_pid(store_dir)
    return pid if pid is not None and not daemon.is_daemon(store_dir, pid) else None


def run_with_tui(
    spec: Path,
    sweeps: list[str],
    store_dir: Path,
    devices: str = "auto",
    per_device: Optional[int] = None,
    data_dir: Optional[Path] = None,
    keep_checkpoints: bool = False,
    pack_size: Optional[int] = None,
    graphs: bool = True,
) -> None:
    """Queue ``sweeps`` of ``spec`` with the background scheduler and open the app on the store."""
    from .spec import SpecError, load_spec
    from .store import Store, StoreError
    from .sweep import UnknownSweep, expand

    try:
        parsed = load_spec(spec)
    except SpecError as e:
        err.print(e.report(), highlight=False, markup=False)
        raise typer.Exit(2) from None
    names = sweeps or [parsed.default_sweep]
    try:
        planned = expand(parsed, names)
        check_syntax(devices)
    except (UnknownSweep, DeviceError) as e:
        raise fail(str(e), 2) from None
    pid = _busy_foreground(store_dir)
    if pid is not None:
        raise fail(
            f"a foreground `rankbias run` (pid {pid}) is running on {store_dir}; wait for it or stop it "
            f"with `rankbias stop --store {store_dir}`"
        )
    options = DaemonOptions(
        devices, per_device, data_dir, keep_checkpoints, pack_size=pack_size, graphs=graphs
    )
    try:
        with Store(store_dir, create=True) as store:
            for name in names:
                daemon.request_launch(store, spec, name)
    except StoreError as e:
        raise fail(str(e)) from None
    running, spawned = daemon.ensure(store_dir, options)
    if running is not None:
        console.print(f"queued with the scheduler already running on {store_dir} (pid {running})")
    console.print(f"{len(planned)} runs in {', '.join(names)}: opening the terminal UI")
    _open(store_dir, spec, options, spawned)


def _open(store_dir: Path, spec: Optional[Path], options: DaemonOptions, spawned: Any = None) -> None:
    """Run the app; ``spawned``: a scheduler process just started, whose early exit (bad devices,
    say) the app reports with the tail of its log."""
    from .tui import create_app

    app = create_app(store_dir, spec if spec and spec.exists() else None, options)
    app.spawned = spawned
    app.run()
    pid = daemon.scheduler_pid(store_dir)
    if pid is not None:
        console.print(
            f"The scheduler goes on in the background (pid {pid}, log {store_dir / daemon.LOG_NAME}).\n"
            f"Reopen with `rankbias attach --store {store_dir}`; stop it with `rankbias stop --store {store_dir}`."
        )


def attach(
    store_dir: Path = STORE_OPT,
    spec: Path = typer.Option(
        Path("experiments.toml"), "--spec", help="Spec whose sweeps the launch screen offers."
    ),
    devices: str = typer.Option(
        "auto", "--devices", help="Devices for a scheduler the app starts (auto, cpu, cuda, cuda:0,1)."
    ),
    per_device: Optional[int] = typer.Option(
        None, "--per-device", min=1, help="Concurrent runs per device for a scheduler the app starts."
    ),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", envvar="RANKBIAS_DATA_DIR", help="Data set cache for a scheduler the app starts."
    ),
) -> None:
    """Open the terminal UI on a store: watch the runs, launch sweeps, cancel and resume runs."""
    if not terminal_attached():
        raise fail("attach needs a terminal (use `rankbias list` or `rankbias export` in scripts)")
    if not (store_dir / "rankbias.sqlite").exists():
        raise fail(f"no rankbias store at {store_dir} (run `rankbias run` first or pass --store)")
    _open(store_dir, spec, DaemonOptions(devices, per_device, data_dir))


def stop(
    store_dir: Path = STORE_OPT,
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the scheduler to end."),
) -> None:
    """Stop the store's scheduler cleanly: runs in progress are requeued and resume later."""
    try:
        pid = daemon.stop(store_dir, timeout)
    except TimeoutError as e:
        raise fail(str(e)) from None
    if pid is None:
        console.print(f"no scheduler is running on {store_dir}")
    else:
        console.print(f"stopped the scheduler (pid {pid}); runs in progress were requeued")


def register(app: typer.Typer) -> None:
    """Add ``attach`` and ``stop`` to the ``rankbias`` command line."""
    app.command()(attach)
    app.command()(stop)
