"""``rankbias export``, ``cancel``, ``list`` and ``show``: the runs of a store, one run in full.

Tables go through ``output.print_table`` (whole values in aligned columns when piped, columns
dropped rather than cut in a narrow terminal); text from the store is printed literally, never as
markup. Registered on the main app by ``register`` (called by ``app.py``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .. import export as export_mod
from .. import scheduler
from ..measures import ACTIVE, STATUSES, is_vacuous, reason, shown_config, shown_reason
from ..store import RunRow, SpectrumRow, Store
from .common import fail, open_store
from .options import DEFAULT_STORE, Format, StoreDir, SweepFilter
from .output import Column, check_format, number, print_table
from .progress import Bars

console = Console()


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


def list_row(store: Store, run: RunRow) -> dict[str, Any]:
    """One run as ``rankbias list`` prints it: config, progress, final accuracy and rank, reason."""
    summary = export_mod.summary_row(store, run)
    return {
        key: run.config.value(key) for key in ("model", "dataset", "batch_size", "lr", "weight_decay", "seed")
    } | {
        "run_id": run.run_id,
        "sweep": run.sweep,
        "status": run.status,
        "device": run.device,
        "epoch": f"{run.epoch:g}/{run.config.epochs}",
        "final_test_acc": summary["final_test_acc"],
        "final_avg_rank": summary["final_avg_rank"],
        "reason": shown_reason(run.status, run.error, run.warnings[-1] if run.warnings else None),
    }


TABLE_LIMIT = 50  # runs a table shows unless --limit says otherwise


def list_runs(
    store_dir: StoreDir = DEFAULT_STORE,
    sweep: SweepFilter = None,
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status."),
    limit: Optional[int] = typer.Option(
        None,
        "--limit",
        min=0,
        help=f"Show the N most recently active runs (running first, then by their latest start or end), "
        f"in sweep order; 0: all. Default: {TABLE_LIMIT} in a table, all with --format csv or json.",
    ),
    fmt: Format = "table",
) -> None:
    """List runs: status, device (and node, on a Ray cluster), progress, final accuracy and rank.

    Piped (``rankbias list | grep running``) the table holds whole values in aligned columns; in a
    narrow terminal, low-priority columns are left out rather than cut, but not the reason of a run
    that failed. A count of the runs by status goes to stderr.
    """
    check_format(fmt)
    if limit is None:
        limit = TABLE_LIMIT if fmt == "table" else 0
    statuses = [status] if status else None
    with open_store(store_dir) as store:
        counts = store.status_counts(sweep)
        runs = store.recent_runs(limit, sweep, statuses) if limit else store.runs(sweep, statuses)
        rows = [list_row(store, r) for r in runs]
    print_table(rows, list_columns(rows), fmt)
    sys.stderr.write(count_line(counts, len(rows), status) + "\n")


def list_columns(rows: list[dict[str, Any]]) -> tuple[Column, ...]:
    """``LIST_COLUMNS``; when a run has a reason (why it failed), that column is kept in a narrow
    terminal (wrapped) and the hyperparameters go first."""
    if not any(row["reason"] for row in rows):
        return LIST_COLUMNS
    return tuple(replace(c, drop=0) if c.key == "reason" else c for c in LIST_COLUMNS)


def count_line(counts: dict[str, int], shown: int, status: str | None = None) -> str:
    """``20000 runs: 19950 done, 34 queued, 16 interrupted (showing 50 ...)``: by status, most first."""
    total = sum(counts.values())
    order = sorted(counts, key=lambda s: (-counts[s], STATUSES.index(s) if s in STATUSES else len(STATUSES)))
    by_status = ", ".join(f"{counts[s]} {s}" for s in order if counts[s])
    line = f"{total} runs" + (f": {by_status}" if by_status else "")
    matching = counts.get(status, 0) if status else total
    if shown < matching:
        line += f" (showing the {shown} most recently active; --limit 0 shows all)"
    return line


def show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    store_dir: StoreDir = DEFAULT_STORE,
) -> None:
    """Show one run: config, status, error, final metrics and per-layer ranks."""
    with open_store(store_dir) as store:
        r = store.run(run_id)
        if r is None:
            raise fail(f"no single run matches {run_id!r} in {store_dir}")
        row = export_mod.summary_row(store, r)
        _, final = store.init_and_final_spectra(r.run_id)
        segments = store.segments(r.run_id)
    console.print(
        f"[bold]{r.run_id}[/bold]  sweep {escape(r.sweep)}  status [bold]{r.status}[/bold]  "
        f"device {escape(r.device or '-')}"
    )
    console.print(
        f"epoch {r.epoch:g}/{r.config.epochs}  step {r.step}/{r.total_steps or '?'}  attempts {r.attempts}"
    )
    why = reason(r.status, r.error)
    if why is not None:
        console.print("[red]reason:[/red] ", end="", highlight=False)
        console.print(why, markup=False, highlight=False)
        if r.error and r.error.strip() != why:
            console.print(r.error, markup=False, highlight=False)
    elif r.error:  # e.g. why an adopted run was requeued
        console.print(f"note: {r.error}", markup=False, highlight=False)
    for warning in r.warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False)
    for segment in segments:  # how each stretch (attempt) of the run was trained, and by what
        console.print(f"trained {segment.describe()}", markup=False, highlight=False)
        console.print(f"  by {segment.software()}", markup=False, highlight=False)
        if segment.code():  # a user's model or data set, with the digest of the file it ran
            console.print(f"  code {segment.code()}", markup=False, highlight=False)
    console.print(
        "config: " + json.dumps(shown_config(r.config.stored), sort_keys=True), soft_wrap=True, markup=False
    )
    queued = "provenance when queued: " + json.dumps(r.provenance, sort_keys=True)
    console.print(queued, soft_wrap=True, markup=False)
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
    return {
        "layer": s.layer,
        "shape": f"{s.d_out}x{s.d_in}",
        "rank": s.rank,
        "stable_rank": s.stable_rank,
        "effective_rank": s.effective_rank,
        "bound": bound,
    }


def export_cmd(
    store_dir: StoreDir = DEFAULT_STORE,
    sweep: SweepFilter = None,
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
            with Bars() as bars:
                count = export_mod.export(store, what, output, sweep, track=bars)
        except BrokenPipeError:
            raise  # the reader went away (`| head`): main() ends quietly
        except OSError as e:
            raise fail(f"cannot write {output}: {e.strerror or e}") from None
    if output is not None:
        console.print(f"wrote {count} rows to {output}", markup=False)


def cancel(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    store_dir: StoreDir = DEFAULT_STORE,
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
    console.print(f"cancel requested for {r.run_id}; the scheduler stops it within seconds")


def register(app: typer.Typer) -> None:
    """Add ``export``, ``cancel``, ``list`` and ``show`` to the ``rankbias`` app."""
    app.command("export")(export_cmd)
    app.command()(cancel)
    app.command("list")(list_runs)
    app.command("show")(show)
