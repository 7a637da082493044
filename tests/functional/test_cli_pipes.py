"""The command line in a pipe (issue 10, items 14 and 15): whole ids in aligned columns, a quiet
end when the reader closes the pipe, ``--format``, ``--version``, reasons in ``show``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rankbias_tui.store import Store
from tests.support import runs
from tests.support.runs import RANKBIAS
from tests.support.tui_store import make_store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "runs"
    make_store(directory).close()
    return directory


def rankbias(*args: str) -> subprocess.CompletedProcess[str]:
    return runs.rankbias(*args, timeout=60)


def test_piped_list_prints_whole_ids_and_values(store_dir: Path) -> None:
    with Store(store_dir) as store:
        runs = {r.run_id: r.status for r in store.runs()}
    done = rankbias("list", "--store", str(store_dir))
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split()[:3] == ["run", "sweep", "status"]
    assert {line.split()[0]: line.split()[2] for line in lines} == runs  # whole ids, whole statuses
    assert "…" not in done.stdout
    assert "RuntimeError: CUDA error: an illegal memory access was encountered" in done.stdout  # the reason
    assert f"{len(runs)} runs" in done.stderr  # the count stays out of the data
    running = [line for line in lines if " running " in line]
    assert len(running) == list(runs.values()).count("running")  # `| grep running` finds them


@pytest.mark.parametrize(
    "command", [["list"], ["export"], ["export", "--what", "spectra"], ["show", "PREFIX"]]
)
def test_a_closed_pipe_ends_quietly(store_dir: Path, command: list[str]) -> None:
    with Store(store_dir) as store:
        prefix = store.runs()[0].run_id[:6]
    argv = [RANKBIAS, *[prefix if c == "PREFIX" else c for c in command], "--store", str(store_dir)]
    writer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert writer.stdout is not None
    writer.stdout.readline()
    writer.stdout.close()  # `| head -1`
    _, err = writer.communicate(timeout=60)
    assert writer.returncode in (0, 141), err
    said = err.decode().strip()  # nothing, or list's count by status: no 'Broken pipe', no traceback
    assert said == "" or (said.count("\n") == 0 and said.startswith(("10 runs: ", "9 runs: "))), err


def test_formats_csv_and_json(store_dir: Path) -> None:
    as_csv = rankbias("list", "--store", str(store_dir), "--format", "csv").stdout.splitlines()
    as_json = json.loads(rankbias("list", "--store", str(store_dir), "--format", "json").stdout)
    assert as_csv[0].startswith("run_id,sweep,status,")
    assert len(as_csv) - 1 == len(as_json) and {"run_id", "status", "reason"} <= set(as_json[0])
    assert rankbias("list", "--store", str(store_dir), "--format", "xml").returncode == 2


def test_version_prints_what_provenance_records() -> None:
    from rankbias_tui.provenance import provenance

    done = rankbias("--version")
    record = provenance()
    assert done.returncode == 0
    assert record["rankbias"] in done.stdout and (record["git_sha"] or "unknown") in done.stdout


def test_show_gives_the_reason_of_a_failed_run_and_whole_lines(store_dir: Path) -> None:
    with Store(store_dir) as store:
        failed = next(r.run_id for r in store.runs() if r.status == "failed")
    done = rankbias("show", failed, "--store", str(store_dir))
    assert "reason: RuntimeError: CUDA error" in done.stdout
    config = next(line for line in done.stdout.splitlines() if line.startswith("config: "))
    assert json.loads(config.removeprefix("config: "))["dataset"] == "digits"  # not wrapped at 80


def test_claims_piped_keeps_each_claim_on_one_line_and_formats(tmp_path: Path) -> None:
    from tests.support.trend_store import build_store

    build_store(tmp_path / "c", seeds=(0, 1)).close()
    done = rankbias("claims", "--store", str(tmp_path / "c"), "-s", "trend")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.split()[:1] in (["2a"], ["2b"], ["2c"])]
    assert len(rows) == 3 and all("holds" in r and "slices with an effect agree" in r for r in rows)
    as_csv = rankbias("claims", "--store", str(tmp_path / "c"), "-s", "trend", "--format", "csv").stdout
    assert as_csv.splitlines()[0] == "claim,verdict,size,text,evidence" and len(as_csv.splitlines()) == 8
