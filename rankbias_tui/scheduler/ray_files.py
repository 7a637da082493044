"""The files the Ray driver writes on its own machine: each checkpoint a task sends back, stored as a
local worker stores its own (``store_file``; ``write_failed`` when that fails), and Ray's token
file kept private (``private_token_file``). No ray here."""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import Any

from .. import checkpoints
from ..measures import Status
from ..protocol import Checkpoint, DiskFull, RunWarning, WorkerEnded, WorkerLost
from .ray_task import CheckpointFile, damaged

log = logging.getLogger(__name__)


def private_token_file() -> Path | None:
    """Ray's token file for an existing cluster (``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``)
    made readable by its owner only, when this user owns it and others could read it (``ray start``
    writes it 0644): whoever reads the token can submit jobs as its owner. Return the file fixed."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or not info.st_mode & 0o077:
        return None
    path.chmod(0o600)
    log.warning(
        "made %s readable by its owner only (it was %o): its token lets anyone run jobs",
        path,
        stat.S_IMODE(info.st_mode),
    )
    return path


def write_failed(writer: Any, root: Path, err: OSError) -> None:
    """A checkpoint the relay could not store here (its task is cancelled) ends the task as a local worker's failed write
    ends it: a full disk sends ``DiskFull`` (the scheduler stops everything, the runs requeued, as
    every run would hit the same wall); a store deleted under it loses the task (its runs requeue,
    and the scheduler stops on the deleted store); anything else fails the runs, with the reason."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        writer.send(DiskFull(str(err.filename or root), os.strerror(err.errno)))
        writer.send(WorkerEnded(Status.FAILED, f"no space left on the device holding {err.filename or root}"))
    elif isinstance(err, FileNotFoundError) and not root.parent.exists():
        writer.send(WorkerLost(f"the store's directory {root.parent} is gone: nothing was written there"))
    else:
        writer.send(WorkerEnded(Status.FAILED, f"storing a checkpoint of the Ray task failed: {err}"))


def store_file(root: Path, item: CheckpointFile) -> Checkpoint | RunWarning:
    """Write a checkpoint the way a local worker does: a temporary name, then a rename; return its
    acknowledgement, or the warning that its bytes came back damaged (``ray_task.damaged``)."""
    event = item.event
    if warning := damaged(item):
        return warning
    final = checkpoints.path(checkpoints.run_directory(root, event.run_id), event.step)
    root.mkdir(exist_ok=True)  # never its parents: a deleted store stays deleted (FileNotFoundError)
    final.parent.mkdir(exist_ok=True)
    partial = checkpoints.partial(final)
    try:
        partial.write_bytes(item.data)
        os.replace(partial, final)
    except OSError:
        partial.unlink(missing_ok=True)  # no *.tmp left behind, whatever the error
        raise
    return event
