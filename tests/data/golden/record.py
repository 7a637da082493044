"""Run the golden sweep in both execution modes and write (or compare) its exports.

``python tests/data/golden/record.py`` rewrites the recorded CSVs; the test imports ``exports``.
Only what is deterministic is kept: eval metrics at epoch ends (running losses are logged on a
wall-clock cadence), every spectrum row, and the summary without device and duration.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE / "spec.toml"
MODES = {"packs": [], "single": ["--pack-size", "1"]}
EVAL_METRICS = {"train_loss", "train_acc", "test_loss", "test_acc", "lr"}
DROP_SUMMARY = {"device", "duration_s"}


def _rankbias(*args: str) -> str:
    exe = Path(sys.executable).with_name("rankbias")
    out = subprocess.run([str(exe), *args], capture_output=True, text=True, check=True)
    return out.stdout


def _filtered(text: str, keep_row=lambda row: True, drop=frozenset()) -> str:
    rows = [r for r in csv.DictReader(io.StringIO(text)) if keep_row(r)]
    rows.sort(key=lambda r: tuple(r.values()))
    out = io.StringIO()
    if rows:
        fields = [f for f in rows[0] if f not in drop]
        writer = csv.DictWriter(out, fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def exports(store_root: Path, mode: str, backend: tuple[str, ...] = ()) -> dict[str, str]:
    """Train the golden sweep in ``mode`` into a fresh store and return its filtered exports.

    ``backend``: more ``rankbias run`` arguments (``--backend ray --ray-address ADDR``)."""
    store = str(store_root / mode)
    _rankbias("run", str(SPEC), "--store", store, "--headless", "--devices", "cpu", "--per-device", "2",
              *MODES[mode], *backend)  # fmt: skip
    return read_exports(store)


def read_exports(store: str) -> dict[str, str]:
    """The filtered exports of a store that trained the golden sweep."""
    return {
        "summary": _filtered(_rankbias("export", "--store", store), drop=DROP_SUMMARY),
        "metrics": _filtered(
            _rankbias("export", "--store", store, "--what", "metrics"),
            keep_row=lambda r: r["name"] in EVAL_METRICS,
        ),
        "spectra": _filtered(_rankbias("export", "--store", store, "--what", "spectra")),
    }


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            for kind, text in exports(Path(tmp), mode).items():
                (HERE / f"{mode}-{kind}.csv").write_text(text)
                print(mode, kind, len(text.splitlines()), "lines")
