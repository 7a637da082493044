"""One scheduler per store: an exclusive lock file next to the database (``StorePaths.lock``).

The store's directory must be this user's alone, and the lock file is never opened through a
symbolic link (``store.files``): someone who planted one would have the lock's truncation overwrite
its target. Taking the lock is the service's business; reading who holds it is the client's
(``client.scheduler_pid``).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..store import StorePaths, check_directory, make_private_directory, open_private


class StoreBusy(RuntimeError):
    """Another scheduler already runs on this store."""


class SchedulerLock:
    """``with SchedulerLock(dir):`` holds the store's lock file (owner-only) for this process;
    ``store.UnsafeStore`` if the directory is not this user's alone or the file is a link."""

    def __init__(self, directory: str | Path):
        self.path = StorePaths.of(directory).lock
        self.fd: int | None = None

    def __enter__(self) -> SchedulerLock:
        make_private_directory(self.path.parent)
        check_directory(self.path.parent)
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreBusy(
                f"a scheduler (pid {owner}) is already running on {self.path.parent}; "
                "wait for it, or cancel its runs with `rankbias cancel`"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
