"""Checkpoints where the cluster keeps files (``--checkpoint-dir``): a directory every node reaches,
so that a Ray task's checkpoints never travel through the driver (no ray here; pyarrow only when a
URI asks for it, and only then imported).

Owns: what ``--checkpoint-dir`` may name (``parse``: a plain path, made absolute, that every node
and the driver reach at the same path - a shared file system - or a URI with a scheme, ``s3://``,
``gs://``, ``hdfs://``, ``abfs://`` or ``file://``, reached through ``pyarrow.fs``), checking it
once on the driver (``prepare``), and the file operations both ends need, laid out as a store's
checkpoint directory (``checkpoints.run_directory``: ``<dir>/<run id>/step-000000100.pt``): where a
run's file lives (``CheckpointDir.file``), storing one (``upload``), reading one (``fetch``),
keeping the latest three (``prune``) and removing a finished run's files (``discard``). Each
location the store records is such a file's path or URI.

Does not own: what a task does with them (``scheduler.ray_task``), the store's own checkpoint
directory and its digests (``checkpoints``, ``store``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import checkpoints
from ..sweep import is_run_id
from .devices import BackendError

log = logging.getLogger(__name__)
SCHEME = re.compile(r"([a-z][a-z0-9+.-]+)://", re.IGNORECASE)  # two letters at least: not C:\
PYARROW = "pip install pyarrow"


class CheckpointDirError(BackendError):
    """A ``--checkpoint-dir`` that cannot be used (exit status 2 at the command line)."""


@dataclass(frozen=True)
class CheckpointDir:
    """Where a sweep's checkpoints go: ``uri`` is an absolute path or a URI with a scheme."""

    uri: str

    @property
    def local(self) -> Path | None:
        """The directory, if it is a plain path (the worker writes there directly); None for a URI."""
        return None if is_uri(self.uri) else Path(self.uri)

    def run(self, run_id: str) -> str:
        """A run's directory (a path or a URI); ``checkpoints.UnsafeRunId`` for an id rankbias never makes."""
        if self.local is not None:
            return str(checkpoints.run_directory(self.local, run_id))
        if not is_run_id(run_id):
            raise checkpoints.UnsafeRunId(
                f"refusing run id {run_id!r}: not a rankbias run id (12 hex digits)"
            )
        return f"{self.uri.rstrip('/')}/{run_id}"

    def file(self, run_id: str, step: int) -> str:
        """The checkpoint of ``run_id`` after ``step``: what the store records as its location."""
        return join(self.run(run_id), checkpoints.path(Path(), step).name)


def is_uri(text: str) -> bool:
    return SCHEME.match(text) is not None


def join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


def parse(text: str) -> CheckpointDir:
    """``--checkpoint-dir`` as given: a URI (pyarrow must be importable), else a path made absolute
    here (a relative one would name another directory on each node). ``CheckpointDirError`` if unusable."""
    text = text.strip()
    if not text:
        raise CheckpointDirError("--checkpoint-dir: empty; give a shared directory or a URI (s3://...)")
    if (scheme := SCHEME.match(text)) is None:
        return CheckpointDir(os.path.abspath(os.path.expanduser(text)))
    if not require_pyarrow(raise_=False):
        raise CheckpointDirError(
            f"--checkpoint-dir {text}: a {scheme.group(1)}:// URI is reached through pyarrow.fs, which is "
            f"not installed here: {PYARROW} (here and on every node), or give a shared directory's path"
        )
    return CheckpointDir(text)


def require_pyarrow(raise_: bool = True) -> bool:
    try:
        found = importlib.util.find_spec("pyarrow") is not None
    except ValueError:
        found = False
    if not found and raise_:
        raise CheckpointDirError(f"this --checkpoint-dir needs pyarrow, which is not installed: {PYARROW}")
    return found


def prepare(place: CheckpointDir) -> str:
    """Make the directory (or check the URI) from the driver, before any task needs it; return how
    it reads for people. ``CheckpointDirError`` saying why it cannot be used."""
    try:
        if (local := place.local) is not None:
            local.mkdir(parents=True, exist_ok=True)
            probe = local / f".rankbias-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return f"checkpoints in {local} (nodes write there directly: each must reach it at that path)"
        fs, path = _filesystem(place.uri)
        fs.create_dir(path, recursive=True)
    except (OSError, ValueError) as err:  # pyarrow raises OSError (ArrowIOError) and ValueError (a bad URI)
        raise CheckpointDirError(f"--checkpoint-dir {place.uri} cannot be used: {err}") from None
    return f"checkpoints in {place.uri} (through pyarrow.fs)"


def _filesystem(uri: str) -> tuple[Any, str]:
    require_pyarrow()
    from pyarrow import fs  # noqa: PLC0415 - only for a URI, and only where one is used

    return fs.FileSystem.from_uri(uri)


def upload(location: str, data: bytes) -> None:
    """Store a checkpoint's bytes at the URI ``location`` (object storage writes an object whole on
    close; elsewhere a cut-short file fails its digest when read, and the run falls back)."""
    fs, path = _filesystem(location)
    fs.create_dir(path.rpartition("/")[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(data)


def fetch(location: str) -> bytes | None:
    """A checkpoint's bytes from a path or a URI; None if it is not there."""
    try:
        if not is_uri(location):
            return Path(location).read_bytes()
        fs, path = _filesystem(location)
        with fs.open_input_stream(path) as stream:
            return stream.readall()
    except FileNotFoundError:
        return None


def prune(directory: str, keep: int) -> None:
    """``checkpoints.prune`` for a run's directory here or at a URI: the checkpoints before ``keep``
    go but the latest of them."""
    if not is_uri(directory):
        checkpoints.prune(Path(directory), keep)
        return
    fs, path = _filesystem(directory)
    for step in checkpoints.superseded(_steps(fs, path), keep):
        fs.delete_file(join(path, checkpoints.path(Path(), step).name))


def _steps(fs: Any, path: str) -> list[int]:
    return checkpoints.steps_of(info.base_name for info in fs.get_file_info(_selector(path)))


def _selector(path: str) -> Any:
    from pyarrow.fs import FileSelector  # noqa: PLC0415

    return FileSelector(path, allow_not_found=True)


def discard(directory: str, run_id: str) -> None:
    """Remove a finished run's checkpoint files from ``directory`` (a location the store recorded,
    less its file name): only a directory named by the run's id, and only checkpoint files in it
    (a store's row names it, and anyone who can write the store could have written that row)."""
    if not is_run_id(run_id) or directory.rstrip("/").rpartition("/")[2] != run_id:
        log.warning("not removing %s: it is not run %s's checkpoint directory", directory, run_id)
        return
    try:
        if not is_uri(directory):
            for file in Path(directory).glob(f"{checkpoints.PREFIX}*"):
                file.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: something else lives there, left alone
                Path(directory).rmdir()
            return
        fs, path = _filesystem(directory)
        for step in _steps(fs, path):
            fs.delete_file(join(path, checkpoints.path(Path(), step).name))
        from pyarrow.fs import FileType  # noqa: PLC0415

        # a file system's directory, now empty (object storage has none left by now)
        if fs.get_file_info(path).type == FileType.Directory and not fs.get_file_info(_selector(path)):
            fs.delete_dir(path)
    except (OSError, ValueError) as err:
        log.warning("could not remove the checkpoints of run %s in %s: %s", run_id, directory, err)
