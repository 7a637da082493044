"""What a Ray task does on its node: one worker process, and its events relayed back (no ray here).

Owns: ``Job`` (what a task is given: its runs, each with the checkpoints it may resume from - as
bytes, or where the cluster keeps them - and the SHA-256 the store acknowledged for each, and how
to train them), the one message only this transport adds (``CheckpointFile``: a
``protocol.Checkpoint``, its digest included, with the file's bytes) and ``run_job``, the generator
a Ray task wraps. ``run_job`` writes the resume checkpoints into a private temporary directory
laid out as the store's, starts the very worker process the local backend starts
(``engine.worker``, spawned, the same torch thread count: it verifies each file against its digest
before resuming, and falls back as it does locally), yields its ``protocol`` events as they come
(the paths they name given as on the scheduler's machine), swaps each checkpoint for its bytes,
passes pack cancels on, and always ends its worker process and deletes the directory. So no file
system is shared with the scheduler, and a run can resume on any node.

With a ``--checkpoint-dir`` (``Job.checkpoint_dir``) no checkpoint bytes travel: the worker writes
into a shared directory itself (a plain path), or the task stores each file at the URI
(``scheduler.checkpoint_dir``), and the acknowledgement names where it is; a resume reads its files
on the node from where the store says they are.

Does not own: Ray itself (``scheduler.ray_backend`` makes this a task and relays what it yields)
or the store (the scheduler writes every event and every checkpoint file it receives).
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import checkpoints
from ..measures import Status
from ..protocol import Cancel, Checkpoint, Event, Finished, Placed, RunWarning, WorkerEnded
from .checkpoint_dir import CheckpointDir, fetch, join, prune, upload

POLL_S = 0.2
CANCEL_POLL_S = 0.5  # a pack asks for cancels at most this often (each ask is a remote call)


@dataclass(frozen=True)
class JobRun:
    """One run of a job, and the checkpoint it resumes from (None: from the start)."""

    run_id: str
    config_json: str
    resume_step: int | None = None
    # (step, bytes) of the files the scheduler stored for resume_step and the one before it (to fall
    # back to if the latest is damaged), and (step, SHA-256) of each as the store acknowledged it
    files: tuple[tuple[int, bytes], ...] = ()
    digests: tuple[tuple[int, str], ...] = ()
    # or the directory (a path every node reaches, or a URI) holding them, read on the node
    source: str | None = None


@dataclass(frozen=True)
class Job:
    """What one task trains: a single run, or the members of a fused pack, and how."""

    runs: tuple[JobRun, ...]
    pack: bool
    gpu: bool  # Ray gave the task a GPU (it sees it as cuda:0)
    data_dir: str | None  # on the node; None: the node's RANKBIAS_DATA_DIR or the default cache
    threads: int
    graphs: bool
    # the store's checkpoint root on the scheduler's machine: the paths events name are given as there
    origin: str | None = None
    # ``--checkpoint-dir``: where the node stores checkpoints (None: their bytes go back)
    checkpoint_dir: str | None = None


@dataclass(frozen=True)
class CheckpointFile:
    """A run's checkpoint with the file's bytes: the scheduler stores the file, then acknowledges it."""

    event: Checkpoint
    data: bytes


def run_job(
    job: Job, node: tuple[str, str], poll_cancels: Callable[[], list[str]] = list, gpu_ids: Sequence[Any] = ()
) -> Iterator[Any]:
    """Train ``job`` in a worker process on this node; yield ``protocol.Placed`` (``node``: address
    and id; a GPU job's device named by the node's own numbering of the GPU Ray gave it,
    ``gpu_ids``: ``cuda:3``, while the worker trains on ``cuda:0``, the one it sees), then the
    worker's events in order.

    The last event is always the worker's ``WorkerEnded`` (made here if the process died without
    one). Closing the generator (a cancelled task) ends the worker process."""
    root = Path(tempfile.mkdtemp(prefix="rankbias-job-"))
    device = "cuda:0" if job.gpu else "cpu"
    proc = conn = control = None
    place = CheckpointDir(job.checkpoint_dir) if job.checkpoint_dir else None
    files = place.local if place is not None and place.local is not None else root  # the worker's
    origin = job.checkpoint_dir if place is not None and place.local is None else job.origin
    try:
        if place is not None and place.local is not None and not place.local.is_dir():
            yield WorkerEnded(Status.FAILED, f"--checkpoint-dir {place.uri} is not there on node {node[0]}")
            return
        if missing := _write_resumes(job, files):
            yield WorkerEnded(Status.FAILED, missing)
            return
        proc, conn, control = _spawn(job, device, files)
        shown = f"cuda:{','.join(str(g) for g in gpu_ids)}" if gpu_ids else device  # Ray gave it these
        yield Placed(*node, shown, proc.pid)
        ended = False
        stored = Stored(files, place, {r.run_id: r.resume_step for r in job.runs})
        for event in _relay(conn, control, poll_cancels if job.pack else list):
            ended = ended or isinstance(event, WorkerEnded)
            yield _named_as_there(stored(event), root, origin)
        proc.join()
        if not ended:
            from .hosts import death_reason

            yield WorkerEnded(Status.FAILED, death_reason(proc.exitcode))
    finally:
        _end(proc)
        shutil.rmtree(root, ignore_errors=True)


def _write_resumes(job: Job, root: Path) -> str | None:
    """Put each run's resume checkpoints in its directory under ``root``: the bytes sent, or the
    files read from where the cluster keeps them. Why a run cannot resume (none is there), or None."""
    for run in job.runs:
        directory = checkpoints.run_directory(root, run.run_id)
        found = list(run.files)
        if run.source is not None and run.source != str(directory):
            wanted = _fallbacks(run)
            found += [(s, data) for s in wanted if (data := fetch(join(run.source, _name(s)))) is not None]
            if not found:
                return (
                    f"the checkpoint it must resume from is not there: none of "
                    f"{', '.join(map(_name, wanted))} is in {run.source}. Nothing was trained, truncated "
                    f"or overwritten: make it available and run the same command again to resume from "
                    f"step {run.resume_step}"
                )
        for step, data in found:
            directory.mkdir(parents=True, exist_ok=True)
            checkpoints.write_atomic(data, checkpoints.path(directory, step))
    return None


def _fallbacks(run: JobRun) -> list[int]:
    """The steps a resume may use, best first: the acknowledged one and the earlier one the store keeps."""
    step = run.resume_step or 0
    return sorted({s for s, _ in run.digests if s <= step} | {step}, reverse=True)


def _name(step: int) -> str:
    return checkpoints.path(Path(), step).name


def _spawn(job: Job, device: str, root: Path) -> tuple[Any, Any, Any]:
    """Start the local backend's worker process for ``job``; (process, events pipe, control pipe)."""
    from ..engine.worker import pack_worker_main, worker_main  # noqa: PLC0415 - the child imports torch

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    control_in = control_out = None
    data_dir = job.data_dir or _node_data_dir()
    ckpt = {r.run_id: str(checkpoints.run_directory(root, r.run_id)) for r in job.runs}
    if job.pack:
        control_in, control_out = ctx.Pipe(duplex=False)
        members = [
            (r.run_id, r.config_json, ckpt[r.run_id], r.resume_step, dict(r.digests)) for r in job.runs
        ]
        target, args = (
            pack_worker_main,
            (child, control_in, members, device, data_dir, job.threads, job.graphs),
        )
    else:
        (r,) = job.runs
        target = worker_main
        args = (
            child,
            r.run_id,
            r.config_json,
            device,
            data_dir,
            ckpt[r.run_id],
            r.resume_step,
            job.threads,
            job.graphs,
            dict(r.digests),
        )
    proc = ctx.Process(target=target, args=args, name=f"rankbias-{job.runs[0].run_id}", daemon=True)
    proc.start()
    child.close()
    if control_in is not None:
        control_in.close()
    return proc, parent, control_out


def _node_data_dir() -> str | None:
    import os

    return os.environ.get("RANKBIAS_DATA_DIR") or None


def _relay(conn: Any, control: Any, poll_cancels: Callable[[], list[str]]) -> Iterator[Event]:
    """The worker's events until it closes its pipe; pack cancels passed on in between."""
    last_poll = 0.0
    while True:
        if control is not None and time.monotonic() - last_poll >= CANCEL_POLL_S:
            last_poll = time.monotonic()
            for run_id in poll_cancels():
                control.send(Cancel(run_id))
        if not conn.poll(POLL_S):
            continue
        try:
            yield conn.recv()
        except EOFError:
            return


@dataclass(frozen=True)
class Stored:
    """What a worker's ``Checkpoint`` becomes on its way back (called on each event): with no
    ``place``, a ``CheckpointFile`` carrying the bytes (older files on this node are deleted); in a
    shared directory (the worker wrote it there), the event naming the file; at a URI, the event
    naming it once it is stored there (a ``RunWarning`` if it could not be: not acknowledged).
    In the cluster's directory the checkpoints before the previous one go (``previous``: run id ->
    its last step seen here), so the two the store still acknowledges stay until it takes this one."""

    root: Path  # the worker's checkpoint root on this node
    place: CheckpointDir | None
    previous: dict[str, int | None]

    def __call__(self, event: Event) -> Any:
        if not isinstance(event, Checkpoint):
            return event
        directory = checkpoints.run_directory(self.root, event.run_id)
        file = checkpoints.path(directory, event.step)
        before, self.previous[event.run_id] = self.previous.get(event.run_id), event.step
        if self.place is None or self.place.local is None:
            data = file.read_bytes()
            checkpoints.prune(directory, keep=event.step)
            if self.place is None:
                return CheckpointFile(event, data)
            return self._upload(event, data, before)
        if before is not None:
            checkpoints.prune(directory, keep=before)
        return replace(event, location=str(file))

    def _upload(self, event: Checkpoint, data: bytes, before: int | None) -> Checkpoint | RunWarning:
        assert self.place is not None
        if warning := damaged(CheckpointFile(event, data)):
            return warning
        location = self.place.file(event.run_id, event.step)
        try:
            upload(location, data)
            if before is not None:
                prune(self.place.run(event.run_id), keep=before)
        except (OSError, ValueError) as err:  # pyarrow's errors are these
            return RunWarning(
                event.run_id,
                f"the checkpoint at step {event.step} could not be stored at {location} ({err}): not "
                "acknowledged; the run resumes from its previous checkpoint if it is interrupted",
            )
        return replace(event, location=location)


def _named_as_there(event: Any, root: Path, origin: str | None) -> Any:
    """A warning or an error naming a checkpoint file names it as the scheduler stored it
    (``origin``), not as this node's temporary copy (which is gone once the task ends)."""
    if origin is None:
        return event
    if isinstance(event, RunWarning):
        return replace(event, text=event.text.replace(str(root), origin))
    if isinstance(event, WorkerEnded | Finished) and event.error:
        return replace(event, error=event.error.replace(str(root), origin))
    return event


def damaged(item: CheckpointFile) -> RunWarning | None:
    """The warning for checkpoint bytes that came back other than the worker wrote them (their
    SHA-256 is not the digest it sent): they are neither stored nor acknowledged, and the run keeps
    its previous checkpoint to resume from. None for intact bytes (or a worker that sent no digest)."""
    event = item.event
    if not event.digest or (found := checkpoints.digest(item.data)) == event.digest:
        return None
    return RunWarning(
        event.run_id,
        f"the checkpoint at step {event.step} came back from the node damaged (SHA-256 {found[:16]}..., "
        f"the worker wrote {event.digest[:16]}...): not stored nor acknowledged; the run resumes "
        "from its previous checkpoint if it is interrupted",
    )


def _end(proc: Any) -> None:
    if proc is None or not proc.is_alive():
        return
    proc.terminate()
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
