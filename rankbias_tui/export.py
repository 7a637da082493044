"""The CSV writer shared by the CLI and the terminal UI: summary, metrics and spectra.

- summary: one row per run (config, status, final metrics, ranks at init and at the end, and one
  ``rank_<layer>`` column per measured layer);
- metrics: long format, one row per (run, step, metric);
- spectra: long format, one row per singular value (run, measurement, layer, index, sigma).
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from .measures import TEST_ACC, TRAIN_ACC, TRAIN_LOSS, avg_rank, mean, reason
from .protocol import SpectrumRow
from .store import RunRow, Store
from .track import Track, untracked

CONFIG_COLUMNS = (
    "model",
    "dataset",
    "depth",
    "width",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "epochs",
    "seed",
    "rank_eps",
)
SUMMARY_COLUMNS = (
    ("run_id", "sweep", "status")
    + CONFIG_COLUMNS
    + (
        "final_epoch",
        "final_train_loss",
        "final_train_acc",
        "final_test_acc",
        "init_avg_rank",
        "final_avg_rank",
        "final_avg_stable_rank",
        "device",
        "duration_s",
        "error",
    )
)
METRIC_COLUMNS = ("run_id", "step", "epoch", "name", "value")
SPECTRA_COLUMNS = (
    "run_id",
    "step",
    "epoch",
    "layer",
    "d_out",
    "d_in",
    "m",
    "rank",
    "rank_eps",
    "stable_rank",
    "effective_rank",
    "spectral_norm",
    "fro_norm",
    "bound",
    "index",
    "sigma",
)


def summary_row(store: Store, run: RunRow, sweep: str | None = None) -> dict[str, Any]:
    """One run's summary: config, final eval metrics, average and per-layer ranks."""
    last = store.last_metrics(run.run_id)
    init, final = store.init_and_final_spectra(run.run_id)
    duration = run.active_s if run.finished_at and run.active_s else None  # over every attempt
    row: dict[str, Any] = {"run_id": run.run_id, "sweep": sweep or run.sweep, "status": run.status}
    row |= {key: run.config.value(key) for key in CONFIG_COLUMNS}
    row |= {
        "final_epoch": run.epoch,
        "final_train_loss": last.get(TRAIN_LOSS),
        "final_train_acc": last.get(TRAIN_ACC),
        "final_test_acc": last.get(TEST_ACC),
        "init_avg_rank": avg_rank(init),
        "final_avg_rank": avg_rank(final),
        "final_avg_stable_rank": mean(s.stable_rank for s in final),
        "device": run.device,
        "duration_s": round(duration, 2) if duration is not None else None,
        "error": reason(run.status, run.error),
    }
    row |= {f"rank_{s.layer}": s.rank for s in final}
    return row


def summary_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Fixed columns, then every ``rank_<layer>`` column in first-seen order."""
    columns = list(SUMMARY_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


class Lines(NamedTuple):
    """``count`` rows already written as CSV ``text``: a measurement's cells repeated on each of its
    singular values' rows are formatted once (most of the time of a spectra export otherwise)."""

    text: str
    count: int


Row = dict[str, Any] | tuple[Any, ...] | Lines  # a tuple holds the columns in order
Table = tuple[Iterable[Row], Sequence[str]]  # rows, columns


def summary_table(store: Store, runs: Iterable[RunRow], sweep: str | None = None) -> Table:
    rows = [summary_row(store, run, sweep) for run in runs]
    return rows, summary_columns(rows)


def metrics_table(store: Store, runs: Iterable[RunRow], sweep: str | None = None) -> Table:
    rows = ((run.run_id, *row) for run in runs for row in store.metrics(run.run_id))
    return rows, METRIC_COLUMNS


def spectra_table(store: Store, runs: Iterable[RunRow], sweep: str | None = None) -> Table:
    """One run's measurements in memory at a time (a 20,000-run export streams)."""
    return (row for run in runs for s in store.spectra(run.run_id) for row in _sigma_rows(s)), SPECTRA_COLUMNS


# One row per export kind: a new kind is a function here, not a new writer.
KINDS: dict[str, Callable[[Store, Iterable[RunRow], str | None], Table]] = {
    "summary": summary_table,
    "metrics": metrics_table,
    "spectra": spectra_table,
}


def _sigma_rows(s: SpectrumRow) -> Iterator[Lines]:
    """A measurement's rows, one per singular value: the text ``csv.writer`` writes for them."""
    head = io.StringIO()
    csv.writer(head, lineterminator="").writerow([getattr(s, k) for k in SPECTRA_COLUMNS[:-2]])
    base = head.getvalue()
    sigmas = s.svals.tolist()  # Python floats, written as their repr (as csv writes a float)
    yield Lines("".join(f"{base},{index},{sigma!r}\n" for index, sigma in enumerate(sigmas)), len(sigmas))


def write_csv(rows: Iterable[Row], columns: Sequence[str], out: TextIO) -> int:
    """Write a header and ``rows`` (a dict's missing columns empty, its extra keys left out)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        if isinstance(row, Lines):
            out.write(row.text)
            count += row.count
            continue
        writer.writerow(row if isinstance(row, tuple) else [row.get(c, "") for c in columns])
        count += 1
    return count


def export(
    store: Store,
    what: str,
    output: Path | None,
    sweep: str | None = None,
    run_ids: Iterable[str] | None = None,
    track: Track[RunRow] = untracked,
) -> int:
    """Write one kind of CSV to ``output`` (stdout when None); return the number of data rows.

    The runs: ``run_ids`` in that order (unknown ids skipped; the terminal UI exports what it
    shows), else every run of ``sweep`` (of the store when None), read one at a time through
    ``track`` (a progress bar). A file is written to a temporary name and renamed, so a failed
    export leaves no half file.
    """
    if what not in KINDS:
        raise ValueError(f"unknown export kind {what!r}; choose from {', '.join(KINDS)}")
    if run_ids is None:
        runs = store.runs(sweep)
    else:
        runs = [run for run_id in run_ids if (run := store.run(run_id)) is not None]
    rows, columns = KINDS[what](store, track(runs, f"export {what}"), sweep)
    if output is None:
        return write_csv(rows, columns, sys.stdout)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        count = write_csv(rows, columns, fh)
    tmp.replace(output)
    return count
