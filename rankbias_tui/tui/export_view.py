"""Write what a screen shows to CSV with the same writer and columns as ``rankbias export``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import export
from ..store import Store


def write_view(store: Store, path: Path, kind: str, run_ids: Iterable[str]) -> int:
    """``summary`` (one row per run) or ``metrics`` (long format) of ``run_ids``, in that order."""
    runs = [run for run_id in run_ids if (run := store.run(run_id)) is not None]
    if kind == "summary":
        rows: list[dict[str, Any]] = [export.summary_row(store, run) for run in runs]
        columns: list[str] | tuple[str, ...] = export.summary_columns(rows)
    elif kind == "metrics":
        rows = [
            {"run_id": run.run_id, "step": step, "epoch": epoch, "name": name, "value": value}
            for run in runs
            for step, epoch, name, value in store.metrics(run.run_id)
        ]
        columns = export.METRIC_COLUMNS
    else:
        raise ValueError(f"unknown export kind {kind!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        count = export.write_csv(rows, columns, fh)
    tmp.replace(path)  # a failed export leaves no half file
    return count
