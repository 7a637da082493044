"""The golden sweep (``tests/data/golden/spec.toml``): train it, read its exports, compare them.

Two kinds of comparison, for two kinds of claim:

- ``assert_portable``: against the CSVs recorded in ``tests/data/golden`` on another machine.
  Float results are bitwise only within one machine and one build of the kernels (AVX-512 and
  AVX2 kernels round differently, and training amplifies a last-digit difference), so floats are
  compared with a tolerance, measured: after the sweep's 4 epochs, this AVX2 machine and the
  recording machine differ by at most 3.3e-4 relative on losses and 1.1e-4 on singular values
  (which are in units of ||W||_F, so at most 1); fused packs drift more than single runs. Ids,
  statuses, steps, shapes and counts are exact; accuracies pass the float tolerance only if no
  test example changes its prediction (one of 360 is 3e-3 at 0.9); a layer's rank is
  exact unless one of its singular values lies within the tolerance of eps, where it may differ
  by the number of such values (summary ranks likewise, for the run's layers).
- ``assert_bitwise``: two sets of exports made by the same test on the same machine (resume
  against uninterrupted, Ray against local): every character equal.

``python -m tests.support.golden`` re-records the CSVs (a deliberate change of the numbers).
"""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
from collections import defaultdict
from pathlib import Path

from tests.support import runs

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
SPEC = GOLDEN / "spec.toml"
MODES = {"packs": [], "single": ["--pack-size", "1"]}
EVAL_METRICS = {"train_loss", "train_acc", "test_loss", "test_acc", "lr"}
DROP_SUMMARY = {"device", "duration_s"}
KINDS = ("summary", "metrics", "spectra")

# Portable tolerance on floats: |a - b| <= RTOL * max(|a|, |b|) + ATOL (see the module docstring
# for the measured differences these leave a margin over).
RTOL = 2e-3
ATOL = 2e-4
# Rows are matched by these columns (exact); every other column is compared by its type.
KEYS = {
    "summary": ("run_id",),
    "metrics": ("run_id", "step", "name"),
    "spectra": ("run_id", "step", "layer", "index"),
}
RANK_COLUMNS = {"rank", "init_avg_rank", "final_avg_rank"}


# ----- making exports ---------------------------------------------------------------------------
def rankbias(*args: str, env: dict[str, str] | None = None) -> str:
    """stdout of the installed ``rankbias`` command (raises with its stderr when it fails); ``env``
    replaces this process's environment (``kernels_env`` makes one)."""
    out = subprocess.run([runs.RANKBIAS, *args], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise AssertionError(f"rankbias {' '.join(args)} exited {out.returncode}:\n{out.stderr[-3000:]}")
    return out.stdout


def kernels_env(capability: str | None) -> dict[str, str]:
    """The environment for torch's ``capability`` kernels (``avx2``...); None: the machine's best."""
    env = dict(os.environ)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    return env


def exports(
    store_root: Path, mode: str, backend: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> dict[str, str]:
    """Train the golden sweep in ``mode`` into a fresh store and return its filtered exports.

    ``backend``: more ``rankbias run`` arguments (``--backend ray --ray-address ADDR``)."""
    store = str(store_root / mode)
    run = ("run", str(SPEC), "--store", store, "--headless", "--devices", "cpu", "--per-device", "2")
    rankbias(*run, *MODES[mode], *backend, env=env)
    return read_exports(store)


def read_exports(store: str) -> dict[str, str]:
    """The deterministic part of a store's exports: eval metrics at epoch ends (running losses are
    logged on a wall-clock cadence), every spectrum row, the summary without device and duration."""
    return {
        "summary": _filtered(rankbias("export", "--store", store), drop=DROP_SUMMARY),
        "metrics": _filtered(
            rankbias("export", "--store", store, "--what", "metrics"),
            keep_row=lambda r: r["name"] in EVAL_METRICS,
        ),
        "spectra": _filtered(rankbias("export", "--store", store, "--what", "spectra")),
    }


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


def recorded(mode: str) -> dict[str, str]:
    return {kind: (GOLDEN / f"{mode}-{kind}.csv").read_text() for kind in KINDS}


# ----- comparing --------------------------------------------------------------------------------
def assert_bitwise(got: dict[str, str], expected: dict[str, str], what: str) -> None:
    """Two exports made on this machine: every line equal."""
    for kind in KINDS:
        assert got[kind].splitlines() == expected[kind].splitlines(), f"{what}: {kind} differs"


def assert_portable(got: dict[str, str], expected: dict[str, str], what: str) -> None:
    """Exports against ones recorded elsewhere: the differences listed, if any (see the module)."""
    rows = {kind: (_rows(got[kind]), _rows(expected[kind])) for kind in KINDS}
    slack = _rank_slack(rows["spectra"][1])
    problems: list[str] = []
    for kind in KINDS:
        problems += _differences(kind, *rows[kind], slack)
    assert not problems, (
        f"{what}: {len(problems)} difference(s) beyond the portable tolerance:\n" + "\n".join(problems[:20])
    )


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _differences(kind: str, got: list[dict], expected: list[dict], slack: dict) -> list[str]:
    if got and expected and list(got[0]) != list(expected[0]):
        return [f"{kind}: columns {list(got[0])} != {list(expected[0])}"]
    keys = KEYS[kind]
    by_key = {tuple(r[k] for k in keys): r for r in got}
    want = {tuple(r[k] for k in keys): r for r in expected}
    if by_key.keys() != want.keys():
        missing, extra = sorted(want.keys() - by_key.keys()), sorted(by_key.keys() - want.keys())
        return [f"{kind}: rows missing {missing[:5]}, unexpected {extra[:5]}"]
    out = []
    for key, row in want.items():
        for column, value in row.items():
            allowed = _allowed_rank_difference(kind, column, row, slack)
            if not _close(by_key[key][column], value, allowed):
                out.append(
                    f"{kind} {dict(zip(keys, key, strict=True))} {column}: {by_key[key][column]} != {value}"
                )
    return out


def _close(a: str, b: str, rank_slack: int | None) -> bool:
    if a == b:
        return True
    if rank_slack is not None:  # a rank: exact, or off by the values that sit on eps
        return (
            _number(a) is not None and _number(b) is not None and abs(_number(a) - _number(b)) <= rank_slack
        )
    if _is_integer(a) or _is_integer(b):
        return False  # steps, shapes, counts: exact
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return False  # ids, statuses, names: exact
    return math.isclose(x, y, rel_tol=RTOL, abs_tol=ATOL)


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _rank_slack(spectra: list[dict[str, str]]) -> dict[tuple[str, str, str], int]:
    """(run_id, step, layer) -> how many singular values lie within the tolerance of that row's eps."""
    slack: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in spectra:
        sigma, eps = float(r["sigma"]), float(r["rank_eps"])
        slack[(r["run_id"], r["step"], r["layer"])] += abs(sigma - eps) <= RTOL * eps + ATOL
    return slack


def _allowed_rank_difference(kind: str, column: str, row: dict[str, str], slack: dict) -> int | None:
    """None: not a rank column. Else how far this rank may move across machines."""
    if column not in RANK_COLUMNS and not column.startswith("rank_"):
        return None
    if column == "rank_eps":
        return None
    if kind == "spectra":
        return slack[(row["run_id"], row["step"], row["layer"])]
    # A summary rank (a layer's final rank or an average over layers): any of the run's layers
    # with values on eps may move it.
    return sum(n for (run_id, _, _), n in slack.items() if run_id == row["run_id"])


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            for kind, text in exports(Path(tmp), mode).items():
                (GOLDEN / f"{mode}-{kind}.csv").write_text(text)
                print(mode, kind, len(text.splitlines()), "lines")
