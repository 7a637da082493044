"""The ``rankbias`` command line: thin Typer commands that hand their work to one function each."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from . import export as export_mod
from . import scheduler
from .cli_common import fail
from .cli_output import Column, check_format, number, print_table, run_quietly
from .measures import ACTIVE, is_vacuous, reason
from .provenance import provenance
from .scheduler import (
    BackendError,
    DeviceError,
    Scheduler,
    SchedulerLock,
    SchedulerOptions,
    StopRequested,
    StoreBusy,
)
from .spec import Spec, SpecError, load_spec
from .store import RunRow, SpectrumRow, Store, StoreError
from .sweep import UnknownSweep, expand

app = typer.Typer(
    help="Run sweeps of training runs and watch the rank of their weight matrices "
    "(Galanti et al., 'SGD and Weight Decay Secretly Minimize the Rank of Your Neural Network').",
    no_args_is_help=True,
    add_completion=False,
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


def open_store(directory: Path, create: bool = False) -> Store:
    try:
        return Store(directory, create=create)
    except StoreError as e:
        raise fail(str(e)) from None


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
) -> None:
    """Run the sweep(s): finished runs are skipped, interrupted ones resume from their last checkpoint."""
    options = SchedulerOptions(
        devices, per_device, data_dir, keep_checkpoints, pack_size, not no_graphs, backend=backend,
        ray_address=ray_address,
    )  # fmt: skip
    parsed = load_or_exit(spec)
    if dry_run:
        return _dry_run(parsed, sweep or [], store_dir, options)
    if not headless:
        from .cli_tui import run_with_tui, terminal_attached

        if terminal_attached():
            return run_with_tui(spec, parsed, sweep or [], store_dir, options)
    _run_headless(parsed, sweep or [], store_dir, options)


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
            todo = store.queue(planned, provenance())
            console.print(
                f"{len(planned)} runs in {', '.join(sweeps or [parsed.default_sweep])}: "
                f"{len(planned) - len(todo)} already finished, {len(todo)} to run on {backend.where}. "
                f"Store: {store_dir}/"
            )
            console.print(_engine_line(backend.slots.devices, options))
            with HeadlessView(todo, console) as view:
                run = Scheduler(store, todo, backend.slots, options, launcher=backend.launcher)
                outcomes = run.run(view.tick)
    except StoreBusy as e:
        raise fail(str(e)) from None
    except (KeyboardInterrupt, StopRequested):
        raise fail(
            "interrupted; runs in progress were requeued - run the same command again to resume", 130
        ) from None
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


LIST_COLUMNS = (
    Column("run_id", "run"),
    Column("sweep", "sweep", drop=3),
    Column("status", "status"),
    Column("device", "device", drop=5),
    Column("model", "model", drop=6),
    Column("dataset", "data", drop=6),
    Column("batch_size", "B", drop=4, right=True),
    Column("lr", "lr", drop=4, right=True),
    Column("weight_decay", "wd", drop=4, right=True),
    Column("seed", "seed", drop=5, right=True),
    Column("epoch", "epoch", drop=2, right=True),
    Column("final_test_acc", "test acc", drop=1, right=True, cell=number(".3f")),
    Column("final_avg_rank", "avg rank", drop=1, right=True, cell=number(".1f")),
    Column("reason", "reason", drop=7, wrap=True),
)
FORMAT_OPT = typer.Option("table", "--format", "-f", help="table (aligned columns), csv or json.")


def list_row(store: Store, run: RunRow) -> dict[str, Any]:
    """One run as ``rankbias list`` prints it: config, progress, final accuracy and rank, reason."""
    summary = export_mod.summary_row(store, run)
    return {key: run.config.get(key) for key in ("model", "dataset", "batch_size", "lr", "weight_decay", "seed")} | {
        "run_id": run.run_id, "sweep": run.sweep, "status": run.status, "device": run.device,
        "epoch": f"{run.epoch:g}/{run.config['epochs']}", "final_test_acc": summary["final_test_acc"],
        "final_avg_rank": summary["final_avg_rank"], "reason": reason(run.status, run.error),
    }  # fmt: skip


@app.command("list")
def list_runs(
    store_dir: Path = STORE_OPT,
    sweep: Optional[str] = typer.Option(None, "--sweep", "-s", help="Only runs of this sweep."),
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status."),
    fmt: str = FORMAT_OPT,
) -> None:
    """List runs in the store with status, device (and node, on a Ray cluster), progress, final accuracy
    and average rank.

    Piped (``rankbias list | grep running``) the table holds whole values in aligned columns; in a
    narrow terminal, low-priority columns are left out rather than cut.
    """
    check_format(fmt)
    with open_store(store_dir) as store:
        rows = [list_row(store, r) for r in store.runs(sweep, [status] if status else None)]
    print_table(rows, LIST_COLUMNS, fmt, footer=f"{len(rows)} runs")


@app.command()
def show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."), store_dir: Path = STORE_OPT
) -> None:
    """Show one run: config, status, error, final metrics and per-layer ranks."""
    with open_store(store_dir) as store:
        r = store.run(run_id)
        if r is None:
            raise fail(f"no single run matches {run_id!r} in {store_dir}")
        row = export_mod.summary_row(store, r)
        _, final = store.init_and_final_spectra(r.run_id)
    console.print(
        f"[bold]{r.run_id}[/bold]  sweep {r.sweep}  status [bold]{r.status}[/bold]  device {r.device}"
    )
    console.print(
        f"epoch {r.epoch:g}/{r.config['epochs']}  step {r.step}/{r.total_steps or '?'}  attempts {r.attempts}"
    )
    why = reason(r.status, r.error)
    if why is not None:
        console.print(f"[red]reason:[/red] {why}", highlight=False)
        if r.error and r.error.strip() != why:
            console.print(r.error, markup=False, highlight=False)
    console.print("config: " + json.dumps(r.config, sort_keys=True), soft_wrap=True, markup=False)
    console.print("provenance: " + json.dumps(r.provenance, sort_keys=True), soft_wrap=True, markup=False)
    console.print(f"training protocol: {r.protocol_version or 'not recorded'}")
    for key in ("final_train_loss", "final_train_acc", "final_test_acc", "init_avg_rank", "final_avg_rank"):
        console.print(f"{key}: {number('.4g')(row[key])}")
    if final:
        console.print(f"spectra at step {final[0].step}:")
        print_table([_layer_row(s) for s in final], LAYER_COLUMNS)


LAYER_COLUMNS = (
    Column("layer", "layer"),
    Column("shape", "shape"),
    Column("rank", "rank", right=True),
    Column("stable_rank", "stable rank", drop=2, right=True, cell=number(".2f")),
    Column("effective_rank", "eff. rank", drop=1, right=True, cell=number(".1f")),
    Column("bound", "bound", right=True),
)


def _layer_row(s: SpectrumRow) -> dict[str, Any]:
    bound = "vacuous" if is_vacuous(s.bound, s.d_out, s.d_in) else f"{s.bound:.1f}"
    return {"layer": s.layer, "shape": f"{s.d_out}x{s.d_in}", "rank": s.rank, "stable_rank": s.stable_rank,
            "effective_rank": s.effective_rank, "bound": bound}  # fmt: skip


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
        console.print(f"wrote {count} rows to {output}")


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


from .cli_analysis import register as _register_analysis  # noqa: E402 - registered after the core commands

_register_analysis(app)

from .cli_tui import register as _register_tui  # noqa: E402 - registered after the core commands

_register_tui(app)


def main() -> None:
    sys.exit(run_quietly(app))
