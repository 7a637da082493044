"""What the scheduler does with each worker event (scheduler.hosts.record), against a real store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from rankbias_tui import checkpoints
from rankbias_tui.protocol import (
    Checkpoint,
    Finished,
    Metrics,
    Progress,
    RunWarning,
    Spectra,
    SpectrumRow,
    Started,
)
from rankbias_tui.scheduler.hosts import Host, Live, Worker, death_reason, record
from rankbias_tui.spec import RunConfig
from rankbias_tui.store import Store
from rankbias_tui.sweep import PlannedRun, run_id


def spectrum(rid: str, step: int, index: int, svals: list[float]) -> SpectrumRow:
    s = np.array(svals)
    s.flags.writeable = False  # as the worker builds it
    return SpectrumRow(
        rid, step, 2.0, index, f"fc{index + 1}", 4, 5, 1, s, 2, 1e-3, 1.5, 2.5, 3.5, 4.5, np.inf
    )


def test_events_reach_the_store_and_the_live_view(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="digits")
    run = PlannedRun(run_id(cfg), "s", cfg)
    later: list[Callable[[], None]] = []
    with Store(tmp_path) as store:
        store.add_runs([run], {})
        worker = Worker(run, None, None, Live(run.run_id, "cpu"))  # type: ignore[arg-type]
        rows = (spectrum(run.run_id, 20, 0, [0.9, 0.4, 1e-5, 0.0]), spectrum(run.run_id, 20, 1, [1.0, 0.0]))
        ckpt = checkpoints.run_directory(store.paths.checkpoints, run.run_id)
        ckpt.mkdir(parents=True)
        for step in (0, 10, 20):
            checkpoints.path(ckpt, step).write_bytes(b"x")
        for event in (
            Started(run.run_id, 100, -1, "pack of 2, eager", 2, "old checkpoint not used"),
            Metrics(run.run_id, 20, 2.0, {"loss": 0.5, "test_acc": 0.75}),
            Spectra(run.run_id, rows),
            Checkpoint(run.run_id, 20, "ab" * 32),
            Progress(run.run_id, 20, 2.0),
            Finished(run.run_id, "diverged"),
        ):
            record(store, worker, event, later.append)
        assert store.spectra(run.run_id) == list(rows)  # the same row type, singular values bit for bit
        assert store.metrics(run.run_id) == [(20, 2.0, "loss", 0.5), (20, 2.0, "test_acc", 0.75)]
        stored = store.run(run.run_id)
        assert stored is not None and (stored.step, stored.total_steps, stored.checkpoint_step) == (
            20,
            100,
            20,
        )
        assert (stored.protocol_version, stored.error) == (2, "old checkpoint not used")  # said at the start
        assert [s.mode for s in store.segments(run.run_id)] == ["pack of 2, eager"]
        assert store.checkpoint_digests(run.run_id) == {20: "ab" * 32}  # kept with the acknowledgement
    live = worker.live
    assert (live.mode, live.step, live.epoch, live.avg_rank) == ("pack of 2, eager", 20, 2.0, 2.0)
    assert worker.finished == ("diverged", None)
    assert checkpoints.steps(ckpt) == [0, 10, 20] and len(later) == 1  # pruned only once committed
    later[0]()
    assert checkpoints.steps(ckpt) == [10, 20]  # the latest two: 10 is the fallback if 20 is damaged


def test_death_reasons() -> None:
    assert "SIGKILL (the system may have run out of memory)" in death_reason(-9)
    assert death_reason(3) == "worker exited with code 3 without reporting a result"


def test_a_resume_in_another_mode_and_a_run_warning_are_recorded(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="digits")
    run = PlannedRun(run_id(cfg), "s", cfg)
    with Store(tmp_path) as store:
        store.add_runs([run], {})
        for pack in ((run.run_id, "0123456789ab"), (run.run_id,)):
            host = Host(None, None, "cpu", pack=pack)  # type: ignore[arg-type]
            worker = Worker(run, None, None, Live(run.run_id, "cpu"), host=host)  # type: ignore[arg-type]
            record(store, worker, Started(run.run_id, 100, -1 if len(pack) > 1 else 40, "eager"), print)
        record(store, worker, RunWarning(run.run_id, "checkpoint /x/step-1.pt is unreadable"), print)
        segments = store.segments(run.run_id)
        assert [(s.from_step, s.pack) for s in segments] == [
            (-1, (run.run_id, "0123456789ab")),
            (40, (run.run_id,)),
        ]
        warnings = store.run(run.run_id).warnings  # type: ignore[union-attr]
        assert len(warnings) == 2 and "was trained from the start on cpu: eager (pack of 2" in warnings[0]
        assert "may differ" in warnings[0] and warnings[1] == "checkpoint /x/step-1.pt is unreadable"


def test_a_resumed_run_shows_its_checkpoint_epoch_not_zero(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="digits", epochs=10)
    run = PlannedRun(run_id(cfg), "s", cfg)
    with Store(tmp_path) as store:
        store.add_runs([run], {})
        worker = Worker(run, None, None, Live(run.run_id, "cpu"))  # type: ignore[arg-type]
        record(store, worker, Started(run.run_id, 100, 40, "eager"), lambda f: None)  # resumed at step 40
        stored = store.run(run.run_id)
        assert stored is not None and (stored.step, stored.epoch) == (40, 4.0)


def test_each_attempt_records_the_provenance_its_worker_sent(tmp_path: Path) -> None:
    """Provenance per segment: a run queued by one rankbias and resumed by a newer one, on a GPU,
    from a checkout with uncommitted changes, says so for each stretch; what was recorded when it
    was queued stays as it was."""
    cfg = RunConfig(dataset="digits")
    run = PlannedRun(run_id(cfg), "s", cfg)
    queued = {"rankbias": "0.1.0", "git_sha": "a" * 40, "python": "3.11.7"}
    first = queued | {"git_dirty": False, "torch": "2.4.0+cpu", "cuda": None, "cudnn": None, "gpu": None}
    later = dict(rankbias="0.2.0", git_sha="b" * 40, git_dirty=True, python="3.12.1", torch="2.5.1+cu124")
    later |= dict(cuda="12.4", cudnn="90100", gpu="NVIDIA H100 80GB HBM3")
    with Store(tmp_path) as store:
        store.add_runs([run], queued)
        worker = Worker(run, None, None, Live(run.run_id, "cpu"))  # type: ignore[arg-type]
        record(store, worker, Started(run.run_id, 100, -1, "eager", 2, None, first), print)
        record(store, worker, Started(run.run_id, 100, 40, "eager", 2, None, later), print)
        record(store, worker, Started(run.run_id, 100, 60, "eager"), print)  # a worker that says nothing
        segments = store.segments(run.run_id)
        assert [s.provenance for s in segments] == [first, later, {}]
        assert [s.software() for s in segments] == [
            "rankbias 0.1.0, git aaaaaaaaaaaa, Python 3.11.7, torch 2.4.0+cpu",
            "rankbias 0.2.0, git bbbbbbbbbbbb (uncommitted changes), Python 3.12.1, torch 2.5.1+cu124, "
            "CUDA 12.4, cuDNN 90100, GPU NVIDIA H100 80GB HBM3",
            "provenance not recorded (an older rankbias)",
        ]
        assert store.run(run.run_id).provenance == queued  # type: ignore[union-attr]


def test_a_resume_from_the_initial_checkpoint_in_another_mode_is_not_warned(tmp_path: Path) -> None:
    # cancelled before its first epoch ended: the only checkpoint is step 0's, nothing to differ from
    cfg = RunConfig(dataset="digits")
    run = PlannedRun(run_id(cfg), "s", cfg)
    with Store(tmp_path) as store:
        store.add_runs([run], {})
        for pack, resumed in (((run.run_id, "0123456789ab"), -1), ((run.run_id,), 0)):
            host = Host(None, None, "cpu", pack=pack)  # type: ignore[arg-type]
            worker = Worker(run, None, None, Live(run.run_id, "cpu"), host=host)  # type: ignore[arg-type]
            record(store, worker, Started(run.run_id, 100, resumed, "eager"), print)
        assert len(store.segments(run.run_id)) == 2
        assert store.run(run.run_id).warnings == ()  # type: ignore[union-attr]
