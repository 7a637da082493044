"""The ``rankbias`` command line: thin Typer commands that hand their work to one function each."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NamedTuple, Optional

import typer
from rich.console import Console

from . import export as export_mod
from . import scheduler
from .cli_common import fail, guarded, open_store
from .cli_output import Column, print_table, run_quietly
from .measures import ACTIVE
from .provenance import provenance
from .scheduler import (
    BackendError,
    DeviceError,
    Scheduler,
    SchedulerLock,
    SchedulerOptions,
    Stopped,
    StoreBusy,
    signals_stop,
)
from .spec import Spec, SpecError, load_spec
from .store import Store
from .sweep import PlannedRun, UnknownSweep, expand

app = typer.Typer(
    help="Run sweeps of training runs and watch the rank of their weight matrices "
    "(Galanti et al., 'SGD and Weight Decay Secretly Minimize the Rank of Your Neural Network').",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback must not print the values of variables
)
console = Console()


def _version(value: bool) -> None:
    if value:
        record = provenance()
        sha = record["git_sha"] or "unknown (not a git checkout)"
        typer.echo(f"rankbias {record['rankbias']} (git {sha}, Python {record['python']})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True,
        help="Print the version and git SHA (as recorded with every run) and exit.",
    ),
) -> None:  # fmt: skip
    """Run sweeps of training runs and watch the rank of their weight matrices."""

SPEC_ARG = typer.Argument(Path("experiments.toml"), help="The sweep spec (TOML).", show_default=True)
STORE_OPT = typer.Option(Path("runs"), "--store", help="Results directory (holds rankbias.sqlite).")
CONFIRM_ABOVE = 10_000  # runs; a bigger sweep is queued only when the user says so


def load_or_exit(spec: Path) -> Spec:
    try:
        return load_spec(spec)
    except SpecError as e:
        typer.echo(e.report(), err=True)
        raise typer.Exit(2) from None


@app.command()
def run(
    spec: Path = SPEC_ARG,
    sweep: Optional[list[str]] = typer.Option(
        None, "--sweep", "-s", help="Sweep(s) to run (default: the spec's default_sweep)."
    ),
    store_dir: Path = STORE_OPT,
    headless: bool = typer.Option(
        False, "--headless", help="Print progress with rich instead of opening the terminal UI."
    ),
    devices: str = typer.Option("auto", "--devices", help="auto, cpu, cuda (all GPUs) or cuda:0,1."),
    per_device: Optional[int] = typer.Option(
        None,
        "--per-device",
        min=1,
        help="Concurrent runs per device (default: CPU cores for cpu, 1 per GPU).",
    ),
    data_dir: Optional[Path] = typer.Option(
        None,
        "--data-dir",
        envvar="RANKBIAS_DATA_DIR",
        help="Where data sets are cached/downloaded (default ~/.cache/rankbias/data).",
    ),
    keep_checkpoints: bool = typer.Option(
        False, "--keep-checkpoints", help="Keep the last checkpoint of finished runs."
    ),
    pack_size: Optional[int] = typer.Option(
        None,
        "--pack-size",
        min=1,
        help="Most mlp/mlp-bn runs trained together as one fused pack (default: the spec's pack_size, "
        "else sized from device memory; 1 turns packing off). Results are the same either way.",
    ),
    no_graphs: bool = typer.Option(
        False, "--no-graphs", help="On GPUs, train with the eager loop instead of replaying CUDA graphs."
    ),
    backend: str = typer.Option(
        "local", "--backend", help="local: worker processes on this machine; ray: tasks on a Ray cluster."
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="With --backend ray: auto or ray://host:10001 (default: a private "
        "Ray instance on this machine, on 127.0.0.1 only).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the runs, their packs and where they would go; start nothing."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help=f"Queue more than {CONFIRM_ABOVE:,} runs without asking."
    ),
) -> None:
    """Run the sweep(s): finished runs are skipped, interrupted ones resume from their last checkpoint."""
    options = SchedulerOptions(
        devices, per_device, data_dir, keep_checkpoints, pack_size, not no_graphs, backend=backend,
        ray_address=ray_address,
    )  # fmt: skip
    parsed = load_or_exit(spec)
    if dry_run:
        return _dry_run(parsed, sweep or [], store_dir, options)
    _confirm_size(parsed, sweep or [parsed.default_sweep], yes)
    if not headless:
        from .cli_tui import run_with_tui, terminal_attached

        if terminal_attached():
            return run_with_tui(spec, parsed, sweep or [], store_dir, options)
    _run_headless(parsed, sweep or [], store_dir, options)


def _confirm_size(parsed: Spec, names: list[str], yes: bool) -> None:
    """More than ``CONFIRM_ABOVE`` runs are queued only when the user says so (``--yes``, or yes at
    the prompt); without a terminal to ask on, say how and refuse."""
    count = sum(parsed.sweeps[name].size for name in names if name in parsed.sweeps)
    if count <= CONFIRM_ABOVE or yes:
        return
    if not _interactive():
        raise fail(f"refusing to queue {count:,} runs (more than {CONFIRM_ABOVE:,}) without confirmation: pass --yes", 2)
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
            since = time.time()  # stop requests older than this were meant for another scheduler
            todo = _queue(store, planned)
            console.print(
                f"{len(planned)} runs in {', '.join(sweeps or [parsed.default_sweep])}: "
                f"{len(planned) - len(todo.mine)} already finished, {len(todo.mine)} to run on {backend.where}. "
                f"Store: {store_dir}/",
                markup=False,
            )
            if todo.adopted:
                console.print(
                    f"also running {len(todo.adopted)} interrupted or queued run(s) of other sweeps (their "
                    "scheduler ended without stopping them)", markup=False,
                )  # fmt: skip
            console.print(_engine_line(backend.slots.devices, options))
            runs = todo.mine + todo.adopted
            with signals_stop(), HeadlessView(runs, console) as view:
                run = Scheduler(store, runs, backend.slots, options, launcher=backend.launcher, since=since)
                outcomes = run.run(view.tick)
    except StoreBusy as e:
        raise fail(str(e)) from None
    except Stopped as e:
        raise fail(str(e), e.exit_code) from None
    finally:
        store.close()
    _print_outcomes(outcomes)
    if any(status == "failed" for status in outcomes.values()):
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


def _queue(store: Store, planned: list[PlannedRun]) -> _Todo:
    """Adopt what a killed scheduler left running (this process holds the lock now), then queue the
    sweeps' unfinished runs."""
    adopted = scheduler.adopt(store)
    mine = store.queue(planned, provenance())
    ids = {run.run_id for run in mine}
    return _Todo(mine, [run for run in adopted if run.run_id not in ids])


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


@app.command()
def validate(spec: Path = SPEC_ARG) -> None:
    """Check a spec file and list its sweeps with their run counts."""
    parsed = load_or_exit(spec)
    rows = [
        {"sweep": name + (" (default)" if name == parsed.default_sweep else ""), "runs": f"{s.size:,}",
         "description": s.description}
        for name, s in parsed.sweeps.items()
    ]  # fmt: skip
    columns = (Column("sweep", "sweep"), Column("runs", "runs", right=True),
               Column("description", "description", drop=1, wrap=True))  # fmt: skip
    print_table(rows, columns, title=f"{spec}: valid")


@app.command("export")
def export_cmd(
    store_dir: Path = STORE_OPT,
    sweep: Optional[str] = typer.Option(None, "--sweep", "-s", help="Only runs of this sweep."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="CSV file to write (default: stdout)."
    ),
    what: str = typer.Option(
        "summary", "--what", help="summary (one row per run), metrics or spectra (long format)."
    ),
) -> None:
    """Export runs to CSV."""
    if what not in export_mod.KINDS:
        raise fail(f"--what must be one of {', '.join(export_mod.KINDS)}", 2)
    with open_store(store_dir) as store:
        if sweep is not None and sweep not in store.sweeps():
            raise fail(
                f"no sweep {sweep!r} in {store_dir} (sweeps: {', '.join(store.sweeps()) or 'none'})", 2
            )
        try:
            count = export_mod.export(store, what, output, sweep)
        except BrokenPipeError:
            raise  # the reader went away (`| head`): main() ends quietly
        except OSError as e:
            raise fail(f"cannot write {output}: {e.strerror or e}") from None
    if output is not None:
        console.print(f"wrote {count} rows to {output}", markup=False)


@app.command()
def cancel(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."), store_dir: Path = STORE_OPT
) -> None:
    """Cancel a run: the running scheduler stops it; with none running it is marked at once.

    A cancelled run keeps its last checkpoint and resumes when its sweep is run again.
    """
    with open_store(store_dir) as store:
        r = store.run(run_id)
        if r is None:
            raise fail(f"no single run matches {run_id!r}")
        if r.status not in ACTIVE:
            raise fail(f"run {r.run_id} already ended ({r.status})")
        if scheduler.cancel(store, r.run_id):
            console.print(f"cancelled {r.run_id}")
            return
    console.print(f"cancel requested for {r.run_id}; the scheduler stops it within a second")


from .cli_runs import register as _register_runs  # noqa: E402 - registered after the core commands

_register_runs(app)

from .cli_analysis import register as _register_analysis  # noqa: E402 - registered after the core commands

_register_analysis(app)

from .cli_tui import register as _register_tui  # noqa: E402 - registered after the core commands

_register_tui(app)


def main() -> None:
    """The ``rankbias`` console script: ``--debug`` anywhere (or ``RANKBIAS_DEBUG=1``) shows the
    traceback of an unexpected error instead of its one line (``cli_common.guarded``); a closed
    pipe ends quietly (``cli_output.run_quietly``)."""
    sys.exit(guarded(lambda: sys.exit(run_quietly(app)), sys.argv))
