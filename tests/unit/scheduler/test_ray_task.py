"""The node side of the Ray backend, without Ray: a job trains in a local worker process, its
checkpoints come back as bytes, and a job given those bytes resumes exactly where the first left off."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rankbias_tui.protocol import Checkpoint, Finished, Metrics, Placed, RunWarning, Started, WorkerEnded
from rankbias_tui.scheduler.ray_task import CheckpointFile, Job, JobRun, run_job
from rankbias_tui.spec import RunConfig

CFG = RunConfig(model="mlp", depth=2, width=16, dataset="digits", epochs=4, lr_milestones=(), measure_every=2)


def job(*runs: JobRun, pack: bool = False) -> Job:
    return Job(runs, pack=pack, gpu=False, data_dir=None, threads=1, graphs=False)


def evals(events: list) -> list[tuple]:
    return [
        (e.step, tuple(sorted(e.values.items())))
        for e in events
        if isinstance(e, Metrics) and "test_acc" in e.values
    ]


R1, A, B = "0000000000a1", "00000000000a", "00000000000b"  # run ids as sweep.run_id makes them


@pytest.mark.soak  # long; its path is also covered by shorter tests (README: soak)
@pytest.mark.slow
def test_a_job_streams_its_events_and_checkpoint_bytes_then_resumes_from_them() -> None:
    events = list(run_job(job(JobRun(R1, CFG.model_dump_json())), node=("here", "n1")))
    assert isinstance(events[0], Placed) and events[0].node == "here" and events[0].device == "cpu"
    assert events[-1] == WorkerEnded("done", None)
    files = [e for e in events if isinstance(e, CheckpointFile)]
    steps = [f.event.step for f in files]
    assert len(steps) == 3 and steps == sorted(steps) and steps[0] == 0  # at init, epoch 2 and epoch 4
    assert all(isinstance(f.event, Checkpoint) and f.data[:2] == b"PK" for f in files)  # torch.save zips
    middle = files[1]
    step, digest = middle.event.step, middle.event.digest
    assert digest == hashlib.sha256(middle.data).hexdigest()  # the digest travels with the bytes
    back = JobRun(R1, CFG.model_dump_json(), step, ((step, middle.data),), ((step, digest),))
    resumed = list(run_job(job(back), ("there", "n2")))
    started = next(e for e in resumed if isinstance(e, Started))
    assert started.resumed_from == middle.event.step
    after = [m for m in evals(events) if m[0] > middle.event.step]
    assert after and evals(resumed) == after  # bitwise the same numbers as the uninterrupted job

    # The latest file damaged on the scheduler's disk: the node's worker verifies it against its
    # digest, falls back to the one before, and names the file as the scheduler stored it.
    first, flipped = files[0], bytearray(middle.data)
    flipped[len(flipped) // 2 : len(flipped) // 2 + 8] = bytes(8)
    sent = ((step, digest), (first.event.step, first.event.digest))
    back = JobRun(R1, CFG.model_dump_json(), step, ((step, bytes(flipped)), (0, first.data)), sent)
    origin = "/srv/lab/store/checkpoints"
    fallen = list(run_job(Job((back,), False, False, None, 1, False, origin), ("there", "n2")))
    warned = [e.text for e in fallen if isinstance(e, RunWarning)]
    assert warned[0].startswith(f"checkpoint {origin}/{R1}/step-{step:09d}.pt is damaged (its SHA-256")
    assert warned[1] == "resumed from the earlier checkpoint at step 0 instead"
    assert next(e for e in fallen if isinstance(e, Started)).resumed_from == 0
    assert evals(fallen) == [m for m in evals(events) if m[0] > 0]


@pytest.mark.slow
def test_a_pack_job_passes_cancels_on_to_its_worker() -> None:
    asked = iter([[B]])
    runs = (
        JobRun(A, CFG.model_dump_json()),
        JobRun(B, CFG.model_copy(update={"seed": 1}).model_dump_json()),
    )
    events = list(run_job(job(*runs, pack=True), ("here", "n1"), lambda: next(asked, [])))
    finished = {e.run_id: e.status for e in events if isinstance(e, Finished)}
    assert finished.get(B) == "cancelled" and finished.get(A) in (None, "done")
    assert events[-1] == WorkerEnded("done", None)  # a ran to its end


def test_a_gpu_task_is_named_by_the_gpu_ray_gave_it() -> None:
    """Issue 22, 4: every task reported ``cuda:0`` (the one GPU it sees); the store and the app now
    name the node's own index of the GPU Ray assigned (``ray.get_gpu_ids()``)."""
    gpu_job = Job(
        (JobRun(R1, CFG.model_dump_json()),), pack=False, gpu=True, data_dir=None, threads=1, graphs=False
    )
    events = run_job(gpu_job, ("10.0.0.7", "n1"), gpu_ids=[3])
    placed = next(events)
    events.close()  # ends the worker before it trains (there is no GPU here)
    assert isinstance(placed, Placed) and placed.where == "cuda:3@10.0.0.7"


@pytest.fixture(scope="module")
def stored_at_a_uri(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, list]:
    """A job with a ``--checkpoint-dir`` URI (``file://``: pyarrow's path to object storage): its
    URI, its run's config and its events."""
    uri = f"file://{tmp_path_factory.mktemp('shared')}/ckpt"
    cfg = CFG.model_copy(update={"epochs": 2, "measure_every": 1}).model_dump_json()
    first = Job((JobRun(R1, cfg),), False, False, None, 1, False, "/store", uri)
    return uri, cfg, list(run_job(first, ("here", "n1")))


@pytest.mark.slow
def test_with_a_checkpoint_dir_the_node_stores_checkpoints_and_sends_back_where(stored_at_a_uri) -> None:
    uri, cfg, events = stored_at_a_uri
    assert not [e for e in events if isinstance(e, CheckpointFile)] and events[-1] == WorkerEnded(
        "done", None
    )
    sent = [e for e in events if isinstance(e, Checkpoint)]
    assert [e.location for e in sent] == [f"{uri}/{R1}/step-{e.step:09d}.pt" for e in sent] and len(sent) == 3
    for e in sent:
        data = Path(e.location.removeprefix("file://")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e.digest
    gone = JobRun(R1, cfg, 999, digests=((999, "0" * 64),), source=f"{uri}/{R1}")
    (ended,) = run_job(job(gone), ("there", "n2"))  # nothing there: fails before training, saying so
    assert ended.status == "failed" and f"none of step-000000999.pt is in {uri}/{R1}" in ended.error


@pytest.mark.slow
def test_a_job_told_where_its_checkpoints_are_resumes_from_there(stored_at_a_uri) -> None:
    """No bytes sent: the node reads the files at the URI, verified, and continues with bitwise
    the numbers of the uninterrupted job."""
    uri, cfg, events = stored_at_a_uri
    middle = [e for e in events if isinstance(e, Checkpoint)][1]
    back = JobRun(R1, cfg, middle.step, digests=((middle.step, middle.digest),), source=f"{uri}/{R1}")
    resumed = list(run_job(job(back), ("there", "n2")))  # its new checkpoints come back as bytes
    assert next(e for e in resumed if isinstance(e, Started)).resumed_from == middle.step
    assert evals(resumed) == [m for m in evals(events) if m[0] > middle.step] != []
    assert [f.event.step for f in resumed if isinstance(f, CheckpointFile)] == [middle.step * 2]
