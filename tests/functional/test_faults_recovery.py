"""Fault injection with recovery (issue 9): each fault is injected into a real sweep, the sweep is
resumed, and every run is compared with an uninterrupted run of the same configuration - metrics
and singular values bit for bit.

Faults: SIGTERM and SIGHUP to ``rankbias run --headless``; a truncated checkpoint; the scheduler
killed with ``kill -9`` (its runs read as interrupted, the next scheduler adopts them); a pack's
worker killed (its members resume together as the same pack); the disk full mid-run (a small
tmpfs in a private mount namespace, filled once a checkpoint is on disk).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rankbias_tui import checkpoints
from rankbias_tui.store import Store
from tests.support.faults import RANKBIAS, can_mount, checkpointed, gone, results, run, start, wait_for

pytestmark = pytest.mark.slow
DISK_FULL = Path(__file__).resolve().parents[1] / "support" / "disk_full.py"
ROOT = os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The fault sweep, never interrupted."""
    store = tmp_path_factory.mktemp("reference") / "store"
    done = run(store)
    assert done.returncode == 0, done.stderr
    return results(store)


def interrupt(store: Path, how: signal.Signals) -> subprocess.CompletedProcess[str]:
    proc = start(store)
    wait_for(lambda: checkpointed(store, proc), what="a checkpoint")
    proc.send_signal(how)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigterm_stops_and_a_truncated_checkpoint_falls_back(reference: dict, tmp_path: Path) -> None:
    store = tmp_path / "store"
    done = interrupt(store, signal.SIGTERM)
    assert done.returncode == 143
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted by SIGTERM" in lines[0] and "stopped and resume" in lines[0], (
        done.stderr
    )
    with Store(store) as s:
        rows = s.runs()
        assert {r.status for r in rows} <= {"stopped", "done"}
        victim = next(r for r in rows if r.status == "stopped" and r.checkpoint_step is not None)
        damaged = checkpoints.path(
            checkpoints.run_directory(s.paths.checkpoints, victim.run_id), victim.checkpoint_step
        )
    damaged.write_bytes(damaged.read_bytes()[:200])  # a truncated file, as a crash mid-copy leaves

    again = run(store)
    assert again.returncode == 0, again.stderr
    assert results(store) == reference
    with Store(store) as s:
        warnings = " ".join(s.run(victim.run_id).warnings)  # type: ignore[union-attr]
    assert f"checkpoint {damaged} is damaged" in warnings and "earlier checkpoint" in warnings


@pytest.mark.soak  # long; its path is also covered by shorter tests (README: soak)
def test_sighup_is_ctrl_c_too(tmp_path: Path) -> None:
    store = tmp_path / "store"
    done = interrupt(store, signal.SIGHUP)
    assert done.returncode == 129 and "interrupted by SIGHUP" in done.stderr
    with Store(store) as s:
        assert {r.status for r in s.runs()} <= {"stopped", "done"}


def test_a_killed_scheduler_leaves_interrupted_runs_that_the_next_one_adopts(
    reference: dict, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    proc = start(store)
    wait_for(lambda: checkpointed(store, proc), what="a checkpoint")
    with Store(store) as s:
        workers = {r.pid for r in s.runs() if r.pid}
    proc.kill()  # kill -9: no chance to requeue anything
    proc.wait()
    wait_for(lambda: all(gone(pid) for pid in workers), 30, "the workers to die with their scheduler")
    listed = subprocess.run([RANKBIAS, "list", "--store", str(store)], capture_output=True, text=True,
                            env=os.environ | {"COLUMNS": "250"})  # fmt: skip
    assert "interrupted" in listed.stdout and "running" not in listed.stdout

    daemon = subprocess.run(  # a background scheduler (as the app starts) adopts and finishes them
        [sys.executable, "-m", "rankbias_tui.scheduler.daemon", "--store", str(store), "--devices", "cpu",
         "--per-device", "1", "--idle-exit", "1"], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert daemon.returncode == 0, daemon.stderr
    assert "adopted 2 interrupted run(s)" in daemon.stderr
    assert results(store) == reference


@pytest.mark.soak  # long; its path is also covered by shorter tests (README: soak)
def test_a_killed_pack_resumes_as_the_same_pack(reference: dict, tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = start(store)
    wait_for(lambda: checkpointed(store, proc), what="a checkpoint")
    with Store(store) as s:
        (pid,) = {r.pid for r in s.runs() if r.pid}  # one worker trains both: a pack of 2
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "2 failed" in out, out + err

    # Two free slots for two runs: without the pack's record they would resume as single runs.
    again = run(store, "--per-device", "2")
    assert again.returncode == 0, again.stderr
    assert results(store) == reference
    with Store(store) as s:
        rid = s.runs()[0].run_id
        modes = [seg.pack for seg in s.segments(rid)]
        assert len(modes) == 2 and modes[0] == modes[1] and len(modes[0]) == 2
    shown = subprocess.run([RANKBIAS, "show", rid, "--store", str(store)], capture_output=True, text=True)
    assert shown.stdout.count("pack of 2, eager") == 2 and "from step" in shown.stdout


@pytest.mark.skipif(not can_mount(), reason="needs root and unshare -m for a small file system")
def test_a_full_disk_is_one_line_and_the_next_start_resumes(reference: dict, tmp_path: Path) -> None:
    mount, out = tmp_path / "mnt", tmp_path / "out"
    mount.mkdir(), out.mkdir()
    script = 'mount -t tmpfs -o size=64m tmpfs "$0" && exec "$1" "$2" "$0" "$3"'
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, str(mount), sys.executable, str(DISK_FULL), str(out)],
        capture_output=True, text=True, timeout=900, env=os.environ | {"PYTHONPATH": ROOT},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    first = json.loads((out / "first.json").read_text())
    assert first["returncode"] == 1
    lines = first["stderr"].strip().splitlines()
    assert len(lines) == 1 and "the disk is full" in lines[0] and "nothing recorded was lost" in lines[0], (
        lines
    )
    assert "Traceback" not in first["stderr"] and first["partial_files"] == []
    assert set(first["statuses"]) <= {"stopped", "interrupted", "done"}
    second = json.loads((out / "second.json").read_text())
    assert second["returncode"] == 0, second["stderr"]
    assert results(out / "store") == reference
