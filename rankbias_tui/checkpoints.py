"""The files of a run's checkpoints: names, writing, which to keep, and cleaning up (no torch).

Owns: a run's directory under a store's checkpoint root (named by its run id, which must be one
``sweep.run_id`` makes, and confirmed to lie inside the root), the file its checkpoint after step
N is written to (``step-%09d.pt``), the temporary name it is written under before the rename,
writing one atomically (``write_atomic``: never a partial file left behind, and never a directory
made outside an existing store) and its SHA-256 (``digest``: the worker sends it with the
``protocol.Checkpoint`` acknowledgement and the store keeps it), reading one back verified
(``read_verified``: the digest the store acknowledged, else the zip's own CRCs; ``torch.load``
checks neither, so flipped bytes would resume silently into wrong numbers), keeping the latest two
acknowledged checkpoints (so a damaged latest one has a predecessor to fall back to), saying which
path a resume needs when its checkpoints are not there (``available``: an unmounted file system is
not "start again"), and removing temporary files a killed writer left. Does not own: what a
checkpoint holds (``engine.train``), choosing the one to resume from (``engine.resume``) or where
the root is (``store.StorePaths.checkpoints``).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from .sweep import is_run_id

PREFIX, SUFFIX, PARTIAL = "step-", ".pt", ".tmp"


class UnsafeRunId(ValueError):
    """A run id that is not one rankbias makes (it could name a path outside the store)."""


class Damaged(ValueError):
    """A checkpoint file whose bytes are not the ones written (a digest or CRC mismatch)."""


class CheckpointMissing(Exception):
    """The checkpoints a run must resume from are not there (a directory not mounted yet, files
    gone): the run must not start again from the beginning over them. The message names the path."""


def run_directory(root: Path, run_id: str) -> Path:
    """A run's checkpoint directory under a store's checkpoint root; ``UnsafeRunId`` unless the id
    is 12 hex digits and the directory (symbolic links followed) lies inside the root."""
    if not is_run_id(run_id):
        raise UnsafeRunId(f"refusing run id {run_id!r}: not a rankbias run id (12 hex digits)")
    directory = root / run_id
    if not directory.resolve().is_relative_to(root.resolve()):
        raise UnsafeRunId(f"refusing {directory}: it leads outside the store's checkpoints ({root})")
    return directory


def path(directory: Path, step: int) -> Path:
    """The checkpoint written after ``step`` steps."""
    return directory / f"{PREFIX}{step:09d}{SUFFIX}"


def partial(final: Path) -> Path:
    """Where a checkpoint is written before it is renamed to ``final`` (never read back)."""
    return final.with_suffix(PARTIAL)


def steps(directory: Path) -> list[int]:
    """The steps of the checkpoints on disk, ascending."""
    return steps_of(p.name for p in directory.glob(f"{PREFIX}*{SUFFIX}"))


def steps_of(names: Iterable[str]) -> list[int]:
    """The steps of the checkpoint files among ``names`` (file names), ascending."""
    found = (
        n.removeprefix(PREFIX).removesuffix(SUFFIX)
        for n in names
        if n.startswith(PREFIX) and n.endswith(SUFFIX)
    )
    return sorted(int(step) for step in found if step.isdigit())


def digest(data: bytes | memoryview) -> str:
    """The SHA-256 of a checkpoint's bytes, as hex: what the store acknowledges with its step."""
    return hashlib.sha256(data).hexdigest()


def write_atomic(data: bytes | memoryview, final: Path) -> str:
    """Write ``data`` to ``final`` through a temporary file and a rename: a killed writer leaves at
    most a temporary file, a failed write (disk full) none. The run's directory is made if missing,
    but not its parents: a store deleted while a sweep runs is not silently recreated. The
    temporary file is always a new one (``O_EXCL``): a link planted under its name is never
    written through. Return the bytes' ``digest``.
    """
    directory = final.parent
    directory.parent.mkdir(exist_ok=True)  # the store's checkpoint root; the store itself must exist
    directory.mkdir(exist_ok=True)
    tmp = partial(final)
    try:
        tmp.unlink(missing_ok=True)  # a killed writer's leftover (a link in its place goes, not its target)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        return digest(data)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None:  # os.write does not know the file: name it for the user
            raise OSError(err.errno, err.strerror, str(tmp)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prune(directory: Path, keep: int) -> None:
    """Step ``keep`` was acknowledged: delete the checkpoints before it except the latest one
    (the previous acknowledged checkpoint, to fall back to if ``keep`` turns out damaged)."""
    for step in superseded(steps(directory), keep):
        path(directory, step).unlink(missing_ok=True)


def superseded(found: Iterable[int], keep: int) -> list[int]:
    """Of the checkpoint steps ``found``, those ``prune`` deletes once ``keep`` is acknowledged."""
    return sorted(step for step in found if step < keep)[:-1]


def fallbacks(directory: Path, step: int) -> list[int]:
    """The steps to try resuming from, best first: ``step`` (the acknowledged one) and every
    earlier checkpoint on disk. Later files were never acknowledged and are not trusted."""
    return sorted({s for s in steps(directory) if s < step} | {step}, reverse=True)


def read_verified(file: Path, expected: str | None) -> bytes:
    """A checkpoint's bytes, verified: against ``expected`` (the SHA-256 the store acknowledged)
    when it is known, else against the CRCs of the zip archive ``torch.save`` writes (a checkpoint
    acknowledged before digests were recorded). ``Damaged`` if they differ; ``OSError`` (e.g.
    ``FileNotFoundError``) if the file cannot be read."""
    data = file.read_bytes()
    if expected:
        if (found := digest(data)) != expected:
            raise Damaged(f"its SHA-256 is {found[:16]}..., the store acknowledged {expected[:16]}...")
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as err:
        raise Damaged(f"not a checkpoint archive ({err})") from None
    if bad is not None:
        raise Damaged(f"the CRC of {bad} does not match")
    return data


def available(directory: Path, step: int) -> list[int]:
    """The steps a resume from ``step`` may use whose files are on disk, best first
    (``fallbacks``). ``CheckpointMissing``, naming the path it needs, if the run's checkpoint
    directory (or the store's checkpoint root above it) cannot be listed - a file system not
    mounted yet, no permission - or holds none of them: that is not "no checkpoint", and the run
    must not start again over files that may come back."""
    for folder in (directory.parent, directory):
        try:
            os.listdir(folder)
        except OSError as err:
            why = (
                "does not exist" if isinstance(err, FileNotFoundError) else f"cannot be read ({err.strerror})"
            )
            raise CheckpointMissing(missing(directory, step, f"{folder} {why}")) from None
    found = [s for s in fallbacks(directory, step) if path(directory, s).exists()]
    if not found:
        raise CheckpointMissing(missing(directory, step, f"{directory} holds none of its checkpoints"))
    return found


def missing(directory: Path, step: int, why: str) -> str:
    """What a run that cannot find its checkpoints says: the path it needs and what to do."""
    return (
        f"the checkpoint it must resume from is not there: {why}; it needs "
        f"{path(directory, step)} (acknowledged at step {step}). Nothing was trained, truncated or "
        "overwritten: make it available (mount it, restore it) and run the same command again to "
        f"resume from step {step}"
    )


def clean_partial(root: Path) -> list[Path]:
    """Remove the temporary files of checkpoint writes that never finished (a killed worker, a
    full disk) under a store's checkpoint root; return what was removed."""
    removed = []
    for tmp in root.glob(f"*/{PREFIX}*{PARTIAL}"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
