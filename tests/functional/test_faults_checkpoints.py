"""Fault injection on checkpoints (issue 19): bytes flipped inside the latest checkpoint of a stopped
sweep (``torch.load`` reads such a file without a word: it checks no CRC, so only the digest the
store acknowledged with the checkpoint tells it from the file that was written), and the
checkpoints directory not there when the sweep resumes (an automount not mounted yet). Each test
makes its own uninterrupted reference run, and compares metrics and singular values with it bit for
bit.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from rankbias_tui import checkpoints
from rankbias_tui.store import Store
from tests.support.faults import checkpointed, flip, record_of, results, run, start, wait_for
from tests.support.runs import rankbias

pytestmark = pytest.mark.slow


def stopped(store: Path) -> None:
    """The fault sweep, stopped with SIGTERM once both runs acknowledged a checkpoint after training."""
    proc = start(store)
    wait_for(lambda: checkpointed(store, proc), what="a checkpoint")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 143


@pytest.mark.soak  # long (about 20 s); run with pytest -m soak (README)
def test_flipped_bytes_in_the_latest_checkpoint_warn_fall_back_and_change_no_number(tmp_path: Path) -> None:
    reference = run(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr
    store = tmp_path / "store"
    stopped(store)
    with Store(store) as s:
        victim = next(r for r in s.runs() if r.status == "stopped" and (r.checkpoint_step or 0) > 0)
        digests = s.checkpoint_digests(victim.run_id)
        directory = checkpoints.run_directory(s.paths.checkpoints, victim.run_id)
    latest = checkpoints.path(directory, victim.checkpoint_step)  # type: ignore[arg-type]
    assert set(digests) == set(checkpoints.steps(directory)) and len(digests) == 2  # acknowledged, kept
    assert checkpoints.digest(latest.read_bytes()) == digests[victim.checkpoint_step]  # type: ignore[index]
    flip(latest, record_of(latest, "weights"), at=256)  # 8 bytes inside the first weight matrix
    torch.load(latest, weights_only=True)  # reads without a word: the numbers in it are wrong

    again = run(store)
    assert again.returncode == 0, again.stderr
    assert results(store) == results(tmp_path / "reference")  # bitwise the uninterrupted numbers
    with Store(store) as s:
        warnings = s.run(victim.run_id).warnings  # type: ignore[union-attr]
    assert warnings[0].startswith(f"checkpoint {latest} is damaged (its SHA-256 is "), warnings
    assert warnings[1].startswith("resumed from the earlier checkpoint at step "), warnings
    shown = rankbias("show", victim.run_id, "--store", str(store), env={"COLUMNS": "400"})
    assert f"warning: checkpoint {latest} is damaged" in shown.stdout
    lines = shown.stdout.splitlines()
    by = [lines[i + 1] for i, line in enumerate(lines) if line.startswith("trained ")]  # each attempt's
    assert len(by) == 2 and all(line.startswith("  by rankbias ") for line in by), shown.stdout
    assert all(f"torch {torch.__version__}" in line and ", git " in line for line in by)


@pytest.mark.soak
def test_checkpoints_not_there_at_resume_fail_naming_the_path_and_resume_once_back(tmp_path: Path) -> None:
    """The checkpoints directory unavailable while resuming (an automount not there yet: first no
    directory at all, then an empty mount point): no run starts again from step 0, no row goes,
    nothing is written where the files belong; once they are back, the runs resume from the
    acknowledged step and end with the uninterrupted numbers."""
    reference = run(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr
    store = tmp_path / "store"
    stopped(store)
    with Store(store) as s:
        before = {
            r.run_id: (r.checkpoint_step, len(s.metrics(r.run_id)), len(s.spectra(r.run_id)))
            for r in s.runs()
        }
        root = s.paths.checkpoints
    assert all(step and step > 0 for step, _, _ in before.values())
    files = {p: p.read_bytes() for p in root.rglob("step-*.pt")}
    away = tmp_path / "elsewhere"
    root.rename(away)

    for unavailable in ("no directory", "an empty mount point"):
        if unavailable == "an empty mount point":
            root.mkdir()
        again = run(store)
        assert again.returncode == 1 and "2 failed" in again.stdout, again.stdout + again.stderr
        with Store(store) as s:
            for r in s.runs():
                step = before[r.run_id][0]
                missing = root if unavailable == "no directory" else root / r.run_id
                assert r.status == "failed" and f"{missing} does not exist" in str(r.error), r.error
                assert (
                    f"it needs {root / r.run_id / f'step-{step:09d}.pt'} (acknowledged at step {step})"
                    in str(r.error)
                )
                assert "run the same command again to resume" in str(r.error)
                kept = (r.checkpoint_step, len(s.metrics(r.run_id)), len(s.spectra(r.run_id)))
                assert kept == before[r.run_id]  # not restarted: acknowledged step and rows as they were
        assert not root.exists() or list(root.iterdir()) == []  # nothing written where the files belong

    root.rmdir()
    away.rename(root)  # mounted at last
    assert {p: p.read_bytes() for p in root.rglob("step-*.pt")} == files  # never overwritten
    resumed = run(store)
    assert resumed.returncode == 0, resumed.stderr
    assert results(store) == results(tmp_path / "reference")
    with Store(store) as s:
        for run_id, (step, _, _) in before.items():
            assert [seg.from_step for seg in s.segments(run_id)] == [-1, step]  # from the acknowledged step
