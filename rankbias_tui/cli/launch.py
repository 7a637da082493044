"""The ``rankbias`` command line: thin Typer commands that hand their work to one function each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple, Optional

import typer
from rich.console import Console

from .. import scheduler
from ..measures import Status
from ..provenance import provenance
from ..scheduler import (
    BackendError,
    DeviceError,
    Scheduler,
    SchedulerLock,
    SchedulerOptions,
    Stopped,
    StoreBusy,
    signals_stop,
)
from ..spec import Spec, SpecError, load_spec
from ..store import Store, network_warning
from ..sweep import PlannedRun, UnknownSweep, expand
from .common import err, fail, hard_exit, open_store
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
    SpecFile,
    StallAfter,
    StoreDir,
    scheduler_options,
)
from .output import Column, print_table

console = Console()
CONFIRM_ABOVE = 10_000  # runs; a bigger sweep is queued only when the user says so


def load_or_exit(spec: Path) -> Spec:
    try:
        return load_spec(spec)
    except SpecError as e:
        typer.echo(e.report(), err=True)
        raise typer.Exit(2) from None


def run(
    spec: SpecFile = DEFAULT_SPEC,
    sweep: Optional[list[str]] = typer.Option(
        None, "--sweep", "-s", help="Sweep(s) to run (default: the spec's default_sweep)."
    ),
    store_dir: StoreDir = DEFAULT_STORE,
    headless: bool = typer.Option(
        False, "--headless", help="Print progress with rich instead of opening the terminal UI."
    ),
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
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the runs, their packs and where they would go; start nothing."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help=f"Queue more than {CONFIRM_ABOVE:,} runs without asking."
    ),
    detach: bool = typer.Option(
        False,
        "--detach",
        help="Queue the runs with a background scheduler that outlives this terminal (an SSH session, "
        "tmux, a job script), say how to watch and stop it, and return; no terminal UI.",
    ),
) -> None:
    """Run the sweep(s): finished runs are skipped, interrupted ones resume from their last checkpoint."""
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
    parsed = load_or_exit(spec)
    if dry_run:
        return _dry_run(parsed, sweep or [], store_dir, options)
    if detach and headless:
        raise fail("--detach and --headless exclude each other: --headless trains in this process", 2)
    _confirm_size(parsed, sweep or [parsed.default_sweep], yes)
    if (warning := network_warning(store_dir)) is not None:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    if not headless:
        from .attach import run_with_tui, terminal_attached

        if detach or terminal_attached():
            return run_with_tui(spec, parsed, sweep or [], store_dir, options, detach=detach)
    _run_headless(parsed, sweep or [], store_dir, options)


def _confirm_size(parsed: Spec, names: list[str], yes: bool) -> None:
    """More than ``CONFIRM_ABOVE`` runs are queued only when the user says so (``--yes``, or yes at
    the prompt); without a terminal to ask on, say how and refuse."""
    count = sum(parsed.sweeps[name].size for name in names if name in parsed.sweeps)
    if count <= CONFIRM_ABOVE or yes:
        return
    if not _interactive():
        raise fail(
            f"refusing to queue {count:,} runs (more than {CONFIRM_ABOVE:,}) without confirmation: "
            "pass --yes",
            2,
        )
    if not typer.confirm(f"Queue {count:,} runs?", default=False):
        raise fail("nothing queued")


def _interactive() -> bool:
    return sys.stdin.isatty()


def _run_headless(parsed: Spec, sweeps: list[str], store_dir: Path, options: SchedulerOptions) -> None:
    """``rankbias run --headless``: a foreground scheduler in this process, rich progress lines."""
    from .headless import HeadlessView

    try:
        planned = expand(parsed, sweeps)
        backend = scheduler.prepare(options)
    except (UnknownSweep, DeviceError, BackendError) as e:
        raise fail(str(e), 2) from None
    store = open_store(store_dir, create=True)
    try:
        with SchedulerLock(store_dir):
            after = store.last_request_id()  # stop requests up to this were meant for another scheduler
            todo = _queue(store, planned)
            console.print(
                f"{len(planned)} runs in {', '.join(sweeps or [parsed.default_sweep])}: "
                f"{len(planned) - len(todo.mine)} already finished, "
                f"{len(todo.mine)} to run on {backend.where}. "
                f"Store: {store_dir}/",
                markup=False,
            )
            if todo.superseded:
                console.print(
                    f"not running {len(todo.superseded)} unfinished run(s) of these sweeps that the spec no "
                    "longer holds (it changed since they were queued; marked stopped, data kept): "
                    + " ".join(todo.superseded[:8])
                    + (" ..." if len(todo.superseded) > 8 else ""),
                    markup=False,
                )
            if todo.adopted:
                console.print(
                    f"also running {len(todo.adopted)} interrupted or queued run(s) of other sweeps (their "
                    "scheduler ended without stopping them)",
                    markup=False,
                )
            console.print(_engine_line(backend.slots.devices, options))
            runs = todo.mine + todo.adopted
            with signals_stop(), HeadlessView(runs, console) as view:
                run = Scheduler(
                    store, runs, backend.slots, options, launcher=backend.launcher, requests_after=after
                )
                outcomes = run.run(view.tick)
    except StoreBusy as e:
        raise fail(str(e)) from None
    except Stopped as e:
        if e.hard_exit:  # Ray's threads would hold the exit, then abort: end once it is said
            store.close()
            fail(str(e), e.exit_code)
            hard_exit(e.exit_code)
        raise fail(str(e), e.exit_code) from None
    finally:
        store.close()
    _print_outcomes(outcomes)
    if any(status == Status.FAILED for status in outcomes.values()):
        raise typer.Exit(1)


def _dry_run(parsed: Spec, sweeps: list[str], store_dir: Path, options: SchedulerOptions) -> None:
    """``rankbias run --dry-run``: the plan of ``scheduler.dry_run``, printed; nothing starts."""
    from .headless import run_label, varied_fields

    try:
        planned = expand(parsed, sweeps)
        varied = varied_fields(planned)
        lines = scheduler.dry_run(planned, store_dir, options, lambda run: run_label(run, varied))
    except (UnknownSweep, DeviceError, BackendError) as e:
        raise fail(str(e), 2) from None
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


class _Todo(NamedTuple):
    mine: list[PlannedRun]  # the sweeps' unfinished runs
    adopted: list[PlannedRun]  # interrupted or queued runs of other sweeps (their scheduler is gone)
    superseded: list[str]  # unfinished runs of these sweeps that their current grid no longer holds


def _queue(store: Store, planned: list[PlannedRun]) -> _Todo:
    """Adopt what a killed scheduler left running (this process holds the lock now), then queue the
    sweeps' unfinished runs."""
    adopted = scheduler.adopt(store)
    mine = store.queue(planned, provenance())
    superseded = scheduler.stop_superseded(store, store.supersede(planned))
    ids = {run.run_id for run in mine} | set(superseded)
    return _Todo(mine, [run for run in adopted if run.run_id not in ids], superseded)


def _engine_line(devices: tuple[str, ...], options: SchedulerOptions) -> str:
    """Which training modes this sweep uses, and how to turn them off."""
    size = options.pack_size
    packs = "off" if size == 1 else f"up to {size}" if size else "sized automatically"
    on_gpu = any(d.startswith("cuda") for d in devices)
    replay = options.graphs and on_gpu
    steps = "each step one CUDA graph replay (--no-graphs: eager)" if replay else "eager steps"
    return f"engine: fused packs of mlp/mlp-bn runs {packs} (--pack-size 1: off), {steps}"


def _print_outcomes(outcomes: dict[str, str]) -> None:
    counts: dict[str, int] = {}
    for status in outcomes.values():
        counts[status] = counts.get(status, 0) + 1
    text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to do"
    console.print(f"Finished: {text}. Export with `rankbias export`, inspect with `rankbias list`.")


def validate(spec: SpecFile = DEFAULT_SPEC) -> None:
    """Check a spec file and list its sweeps with their run counts."""
    parsed = load_or_exit(spec)
    rows = [
        {
            "sweep": name + (" (default)" if name == parsed.default_sweep else ""),
            "runs": f"{s.size:,}",
            "description": s.description,
        }
        for name, s in parsed.sweeps.items()
    ]
    columns = (
        Column("sweep", "sweep"),
        Column("runs", "runs", right=True),
        Column("description", "description", drop=1, wrap=True),
    )
    print_table(rows, columns, title=f"{spec}: valid")


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``validate`` to the ``rankbias`` command line."""
    app.command()(run)
    app.command()(validate)
