"""CLI commands of the terminal UI: ``run`` with a terminal, ``attach`` and ``stop``.

``rankbias run`` hands over to ``run_with_tui`` when stdout is a terminal and ``--headless`` is
not given: the sweep is queued with the background scheduler (started if none runs on the store)
and the app opens on the store. Quitting the app, closing the terminal or losing the SSH
connection leaves the scheduler running; ``rankbias attach`` reopens the app and ``rankbias stop``
ends the scheduler cleanly (runs in progress resume later). The spec file is read once per command
(by ``cli.run`` or ``attach``) and handed to the app for its launch screen; what is queued is the
runs expanded from that one reading (the scheduler never reads the file), so the count shown is
the count queued. The scheduler is asked through its client API only. Textual is imported only
when the app opens; torch never is.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from .. import scheduler
from ..scheduler import BackendError, DeviceError, SchedulerOptions, check_backend, check_syntax
from ..spec import Spec, SpecError, load_spec
from ..store import StorePaths, read_end
from ..sweep import UnknownSweep, expand
from .common import fail, open_store
from .options import (
    DEFAULT,
    DEFAULT_SPEC,
    DEFAULT_STORE,
    Backend,
    CheckpointDir,
    DataDir,
    Devices,
    KeepCheckpoints,
    NoGraphs,
    PackSize,
    PerDevice,
    RayAddress,
    StallAfter,
    StoreDir,
    scheduler_options,
)

console = Console()


def terminal_attached() -> bool:
    """True when the app can run here: stdin and stdout are a terminal."""
    return sys.stdout.isatty() and sys.stdin.isatty()


def run_with_tui(
    spec_path: Path,
    spec: Spec,
    sweeps: list[str],
    store_dir: Path,
    options: SchedulerOptions,
    detach: bool = False,
) -> None:
    """Queue ``sweeps`` of ``spec`` (read from ``spec_path``) with the background scheduler and open
    the app on the store (``detach``: return once the scheduler holds the store, saying how to watch
    and stop it). The runs counted are the runs asked for: the spec is not read again."""
    names = sweeps or [spec.default_sweep]
    try:
        planned = expand(spec, names)
        check_syntax(options.devices)
        check_backend(options)
    except (UnknownSweep, DeviceError, BackendError) as e:
        raise fail(str(e), 2) from None
    now = scheduler.status(store_dir)
    if now.foreground:  # it takes no launch requests
        raise fail(
            f"a foreground `rankbias run` ({_pid(now.pid)}) is running on {store_dir}; wait for it or stop "
            f"it with `rankbias stop --store {store_dir}`"
        )
    with open_store(store_dir, create=True) as store:
        scheduler.launch(store, planned)
    running, spawned = scheduler.ensure(store_dir, options)
    if running is not None:
        console.print(
            f"queued with the scheduler already running on {store_dir} ({_pid(running)})", markup=False
        )
    if detach:
        pid = running or _started(store_dir, spawned)
        console.print(
            f"{len(planned)} runs in {', '.join(names)} queued with the background scheduler ({_pid(pid)}) "
            f"on {store_dir}; it outlives this terminal. Watch: `rankbias attach --store {store_dir}`; "
            f"stop: `rankbias stop --store {store_dir}`; its log: {StorePaths.of(store_dir).log}",
            markup=False,
        )
        return
    console.print(f"{len(planned)} runs in {', '.join(names)}: opening the terminal UI", markup=False)
    _open(store_dir, spec_path, spec, options, spawned)


def _started(store_dir: Path, spawned: Any, timeout_s: float = 60.0) -> int:
    """The pid of the scheduler just ``spawned`` once it holds the store; exit 1 with the end of its
    log if it exits first (bad devices, no Ray cluster at the address, ...)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = scheduler.scheduler_pid(store_dir)
        if pid is not None:
            return pid
        if spawned is not None and spawned.poll() is not None:
            tail = read_end(StorePaths.of(store_dir).log, 4096).decode(errors="replace").strip()
            last = tail.splitlines()[-1] if tail else "nothing in its log"
            raise fail(f"the background scheduler exited (code {spawned.returncode}): {last}")
        time.sleep(0.1)
    raise fail(f"the background scheduler did not take {store_dir} within {timeout_s:g} s: see its log")


def _open(
    store_dir: Path,
    spec_path: Path | None,
    spec: Spec | SpecError | None,
    options: SchedulerOptions,
    spawned: Any = None,
) -> None:
    """Run the app; ``spec``: the spec read from ``spec_path`` (or why it could not be) for the
    launch screen; ``spawned``: a scheduler process just started, whose early exit (bad devices,
    say) the app reports with the tail of its log."""
    from ..tui import create_app

    app = create_app(store_dir, spec_path, options, spec=spec)
    app.spawned = spawned
    app.run()
    pid = scheduler.scheduler_pid(store_dir)
    if pid is not None:
        console.print(
            f"The scheduler goes on in the background ({_pid(pid)}, log {StorePaths.of(store_dir).log}).\n"
            f"Reopen with `rankbias attach --store {store_dir}`; "
            f"stop it with `rankbias stop --store {store_dir}`.",
            markup=False,
        )


def _read_spec(spec_path: Path) -> Spec | SpecError | None:
    """``attach``'s spec for the launch screen, read once: the spec, why it is not valid, or None
    if there is no such file."""
    if not spec_path.exists():
        return None
    try:
        return load_spec(spec_path)
    except SpecError as err:
        return err


def attach(
    store_dir: StoreDir = DEFAULT_STORE,
    spec: Path = typer.Option(DEFAULT_SPEC, "--spec", help="Spec whose sweeps the launch screen offers."),
    devices: Devices = DEFAULT.devices,
    per_device: PerDevice = DEFAULT.per_device,
    data_dir: DataDir = DEFAULT.data_dir,
    keep_checkpoints: KeepCheckpoints = DEFAULT.keep_checkpoints,
    pack_size: PackSize = DEFAULT.pack_size,
    no_graphs: NoGraphs = not DEFAULT.graphs,
    backend: Backend = DEFAULT.backend,
    ray_address: RayAddress = DEFAULT.ray_address,
    stall_after: StallAfter = DEFAULT.stall_s,
    checkpoint_dir: CheckpointDir = DEFAULT.checkpoint_dir,
) -> None:
    """Open the terminal UI on a store: watch the runs, launch sweeps, cancel and resume runs.

    The scheduler options apply to a scheduler the app starts (one already running keeps its own)."""
    if not terminal_attached():
        raise fail("attach needs a terminal (use `rankbias list` or `rankbias export` in scripts)")
    open_store(store_dir).close()  # there is one, and it opens: else exit as every command does
    loaded = _read_spec(spec)
    options = scheduler_options(
        devices=devices,
        per_device=per_device,
        data_dir=data_dir,
        keep_checkpoints=keep_checkpoints,
        pack_size=pack_size,
        no_graphs=no_graphs,
        backend=backend,
        ray_address=ray_address,
        stall_after=stall_after,
        checkpoint_dir=checkpoint_dir,
    )
    try:
        check_backend(options)
    except BackendError as e:
        raise fail(str(e), 2) from None
    _open(store_dir, spec if loaded is not None else None, loaded, options)


def stop(
    store_dir: StoreDir = DEFAULT_STORE,
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the scheduler to end."),
) -> None:
    """Stop the store's scheduler cleanly: runs in progress are marked stopped and resume later."""
    try:
        pid = scheduler.stop(store_dir, timeout)
    except TimeoutError as e:
        raise fail(str(e)) from None
    if pid is None:
        console.print(f"no scheduler is running on {store_dir}", markup=False)
    else:
        console.print(f"stopped the scheduler ({_pid(pid)}); runs in progress were marked stopped")


def _pid(pid: int | None) -> str:
    """A scheduler's pid for people: -1 is a holder whose lock file was removed while it ran."""
    return f"pid {pid}" if pid is not None and pid > 0 else "pid unknown"


def register(app: typer.Typer) -> None:
    """Add ``attach`` and ``stop`` to the ``rankbias`` command line."""
    app.command()(attach)
    app.command()(stop)
