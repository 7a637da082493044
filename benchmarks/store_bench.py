"""What ``list``, ``export`` and ``claims`` pay per run when runs have many metric rows (issue 19).

Two stores of 100 finished runs each, the same but for the metric rows: a small one (one row per
epoch and metric) and a big one (``--rows-per-run`` rows, default 10,000: 1M in all; 100,000 gives
the issue's 10M). Each command reads every run's summary (``export.summary_row``: the latest
metrics, the first and last spectra) or its claims record (``claims.records.run_record``).

Printed, per reader: the median seconds over both stores and the ratio big / small (what the issue
asks to stay under 2x), then the same for the full scan of a run's metrics that ``last_metrics``
did before (the baseline, measured in this process on the same stores).

    .venv/bin/python benchmarks/store_bench.py [--rows-per-run 10000] [--runs 100]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rankbias_tui import export
from rankbias_tui.claims.records import run_record
from rankbias_tui.spec import parse_spec
from rankbias_tui.store import SpectrumRow, Store
from rankbias_tui.sweep import expand

EPOCHS = 40
EVAL = ("train_loss", "train_acc", "test_loss", "test_acc")
FULL_SCAN = (  # last_metrics before issue 19: every row of the run, a subquery per row
    "SELECT name, value FROM metrics m WHERE run_id=? AND step="
    "(SELECT MAX(step) FROM metrics WHERE run_id=m.run_id AND name=m.name)"
)


def build(directory: Path, n_runs: int, rows_per_run: int) -> None:
    """``n_runs`` finished runs: eval metrics at each epoch end, running loss/acc rows up to
    ``rows_per_run`` in all, a spectral measurement every 10 epochs."""
    defaults = {"model": "mlp-bn", "depth": 4, "width": 100, "dataset": "digits", "epochs": EPOCHS}
    sweep = {"grid": {"lr": [0.01, 0.1]}, "seeds": list(range(math.ceil(n_runs / 2)))}
    spec = parse_spec({"defaults": defaults, "sweeps": {"bench": sweep}}, directory / "spec.toml")
    planned = expand(spec, ["bench"])[:n_runs]
    running = max(0, rows_per_run - len(EVAL) * (EPOCHS + 1)) // 2  # steps of (loss, acc) rows
    s = np.exp(-0.05 * np.arange(64))
    with Store(directory) as store:
        store.add_runs(planned, {})
        for run in planned:
            with store.transaction():
                store.start_attempt(run.run_id, "cpu", 1)
                rows = [(e * 100, float(e), k, 1.0 / (e + 1)) for e in range(EPOCHS + 1) for k in EVAL]
                rows += [
                    (i, i * EPOCHS / max(1, running), k, 0.5) for i in range(running) for k in ("loss", "acc")
                ]
                store.add_metrics(run.run_id, rows)
                store.add_spectra(
                    measurement(run.run_id, e, i, s) for e in range(0, EPOCHS + 1, 10) for i in range(4)
                )
                store.set_progress(run.run_id, EPOCHS * 100, float(EPOCHS), EPOCHS * 100)
                store.set_status(run.run_id, "done")


def measurement(run_id: str, epoch: int, index: int, svals: np.ndarray) -> SpectrumRow:
    return SpectrumRow(
        run_id,
        epoch * 100,
        float(epoch),
        index,
        f"fc{index + 1}",
        100,
        100,
        1,
        svals,
        60,
        1e-3,
        1.5,
        40.0,
        3.0,
        1.0,
        1e5,
    )


def seconds(store: Store, read: Callable[[Store, object], object], repeats: int = 3) -> float:
    runs = store.runs()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for run in runs:
            read(store, run)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


READERS: dict[str, Callable[[Store, object], object]] = {
    "summary (list, export)": lambda store, run: export.summary_row(store, run),  # type: ignore[arg-type]
    "claims record": lambda store, run: run_record(store, run),  # type: ignore[arg-type]
    "full scan (before)": lambda store, run: store.conn.execute(FULL_SCAN, (run.run_id,)).fetchall(),  # type: ignore[attr-defined]
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-run", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp, "small"), Path(tmp, "big")
        started = time.perf_counter()
        build(small, args.runs, 0)
        build(big, args.runs, args.rows_per_run)
        total = args.runs * args.rows_per_run
        built = time.perf_counter() - started
        print(f"stores: {args.runs} runs, {total:,} metric rows in the big one, built in {built:.1f} s")
        with Store(small, create=False) as s, Store(big, create=False) as b:
            for name, read in READERS.items():
                t_small, t_big = seconds(s, read), seconds(b, read)
                ratio = t_big / t_small
                print(
                    f"{name:<24} small {t_small * 1e3:8.1f} ms   big {t_big * 1e3:8.1f} ms   big / small = {ratio:6.2f}x"
                )


if __name__ == "__main__":
    main()
