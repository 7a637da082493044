"""What a scheduler does about the past before it starts anything, and which runs it may touch.

Owns: adoption (``adopt``: a scheduler that holds the store's lock takes over every run the store
still calls running - its scheduler was killed, ran out of memory or the machine rebooted; never
one whose scheduler is alive (``refuse_if_trained_elsewhere``) - and
requeues it to resume from its last acknowledged checkpoint; temporary files of checkpoint writes
that never finished are removed first), the runs a changed spec superseded (``stop_superseded``:
stopped, saying so, instead of trained), admission (``admit``: a row read from the database becomes
a ``PlannedRun`` only if its id is one rankbias makes and its config is valid, so a row naming a
path is never used on the file system), and reassembling an interrupted pack (``same_pack``: its
members resume together, in the same order, so the numbers stay those of an uninterrupted run).
Does not own: the loop (``scheduler.service``) or checkpoint file names (``checkpoints``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable

from .. import checkpoints
from ..measures import INTERRUPTED, Status
from ..store import RunRow, Store, owner
from ..sweep import PlannedRun, is_run_id
from .lock import StoreBusy

log = logging.getLogger(__name__)


def admit(store: Store, row: RunRow) -> PlannedRun | None:
    """``row`` as a run to train, or None (logged, and the run marked failed when its id is sound)
    if its id or config is not one rankbias would have written."""
    if not is_run_id(row.run_id):
        log.warning("refusing run id %r from the database: not a rankbias run id (12 hex digits)", row.run_id)
        return None
    if row.config_error is not None:
        store.set_status(
            row.run_id, Status.FAILED, error=f"its stored config is not valid: {row.config_error}"
        )
        return None
    return PlannedRun(row.run_id, row.sweep, row.config)


def adopt(store: Store) -> list[PlannedRun]:
    """Requeue and return the runs the store calls running, then the ones it calls queued: the caller
    holds the store's scheduler lock and runs nothing yet, so whoever ran or queued them is gone.
    Also removes the temporary files of checkpoint writes that never finished.

    Never a run whose owner is alive: if another scheduler process still trains runs here (one
    without the lock: an older rankbias whose lock file was removed), nothing is touched and
    ``StoreBusy`` says so - two schedulers would train the same runs and prune each other's
    checkpoints."""
    refuse_if_trained_elsewhere(store)
    for tmp in checkpoints.clean_partial(store.paths.checkpoints):
        log.info("removed %s (a checkpoint write that never finished)", tmp)
    adopted = []
    for row in store.runs(status=(Status.RUNNING, INTERRUPTED)):
        run = admit(store, row)
        if run is None:
            continue
        who = f"pid {owner.pid_of(row.owner)}" if row.owner else "an older rankbias"
        since = f"step {row.checkpoint_step}" if row.checkpoint_step is not None else "the start"
        store.set_status(
            row.run_id,
            Status.QUEUED,
            error=f"interrupted: its scheduler ({who}) ended without stopping it; resumes from {since}",
            active_until=last_progress(store, row),
        )
        adopted.append(run)
    if adopted:
        log.info("adopted %d interrupted run(s): %s", len(adopted), " ".join(r.run_id for r in adopted))
    # Queued runs were in the queue of a scheduler that is gone too (only one holds the lock): a run
    # that says queued is one a scheduler will start, so this one takes them, in the store's order.
    orphans = [run for row in store.runs(status=(Status.QUEUED,)) if (run := admit(store, row)) is not None]
    orphans = [run for run in orphans if run not in adopted]
    if orphans:
        log.info(
            "took over %d queued run(s) no scheduler held: %s",
            len(orphans),
            " ".join(r.run_id for r in orphans),
        )
    return adopted + orphans


SUPERSEDED = (
    "superseded: the spec of its sweep changed since it was queued and no sweep's grid holds it now; "
    "its data is kept (launching the spec that made it trains it again)"
)


def stop_superseded(store: Store, run_ids: Iterable[str]) -> list[str]:
    """Mark stopped, saying why (``SUPERSEDED``), each of ``run_ids`` (``Store.supersede``) that a
    scheduler would otherwise start (queued or interrupted); return those ids. Runs a live scheduler
    trains, and cancelled, failed or stopped ones, keep their state."""
    stopped = []
    wanted = set(run_ids)
    for row in store.runs(status=(Status.QUEUED, INTERRUPTED)):
        if row.run_id in wanted:
            store.set_status(
                row.run_id, Status.STOPPED, error=SUPERSEDED, active_until=last_progress(store, row)
            )
            stopped.append(row.run_id)
    if stopped:
        log.info("superseded by a changed spec, not trained: %s", " ".join(stopped))
    return stopped


def refuse_if_trained_elsewhere(store: Store) -> None:
    """``StoreBusy`` if a live scheduler process other than this one owns running runs of ``store``
    (a stored "running" reads as such only while its owner is alive: ``store.RunRow.status``)."""
    mine = owner.token()
    live: dict[str, list[str]] = {}
    for row in store.runs(status=(Status.RUNNING,)):
        if row.owner and row.owner != mine:
            live.setdefault(row.owner, []).append(row.run_id)
    if not live:
        return
    who = ", ".join(f"pid {owner.pid_of(token)} trains {len(ids)} run(s)" for token, ids in live.items())
    raise StoreBusy(
        f"another scheduler is still training runs in {store.directory} ({who}) although it does "
        "not hold the store's lock (its lock file was removed, or it is an older rankbias): refusing "
        "to start a second one, which would train them twice; wait for it, or stop it "
        f"(`rankbias stop --store {store.directory}`, or end that process), then run again"
    )


def last_progress(store: Store, row: RunRow) -> float | None:
    """When an interrupted run last made progress that counts: its last acknowledged checkpoint was
    written (what it trained after that is trained again), or it started (none). Its time trained
    stops there, not at the adoption, which may come days after its scheduler died."""
    if row.checkpoint_step is None:
        return row.started_at
    try:
        directory = checkpoints.run_directory(store.paths.checkpoints, row.run_id)
        return checkpoints.path(directory, row.checkpoint_step).stat().st_mtime
    except (OSError, checkpoints.UnsafeRunId):
        return row.started_at


def same_pack(
    store: Store,
    first: PlannedRun,
    queue: deque[PlannedRun],
    resume_of: Callable[[PlannedRun], int | None],
    limit: int | None = None,
) -> list[PlannedRun] | None:
    """The runs ``first`` must resume with, in their pack order (removed from ``queue``, ``first``
    included), if it resumes from a checkpoint that its last segment trained; None if it starts
    afresh or its pack cannot be reassembled (a member finished, was cancelled or is not queued,
    or the pack is larger than ``limit``: ``--pack-size``, or the size left after running out of
    memory): then it continues in whatever mode the scheduler picks, and the change is recorded."""
    segments = store.segments(first.run_id) if resume_of(first) is not None else []
    if not segments or (limit is not None and len(segments[-1].pack) > limit):
        return None
    pack = segments[-1].pack
    queued = {run.run_id: run for run in queue} | {first.run_id: first}
    members = [queued.get(run_id) for run_id in pack]
    if first.run_id not in pack or any(m is None for m in members):
        return None
    # Members may have acknowledged different steps (a stop between two members' checkpoints): the
    # pack resumes from the latest step all of them have on disk (engine.resume), so no equality here.
    for member in members:
        if member is not first:
            queue.remove(member)  # type: ignore[arg-type]
    return members  # type: ignore[return-value]
