"""One scheduler per store: an exclusive lock on the store's directory itself, and on the lock file
next to the database (``StorePaths.lock``), which also holds the holder's pid.

The directory lock is the one that counts: a file can be deleted while it is locked (someone
"clearing a stale lock"), and the next process would lock a new file of the same name and train
what the first one trains; a directory cannot go while its store is in use. The file lock stays
for older rankbias versions, which lock only the file, and for the pid. The directory must be
this user's alone and the lock file is never opened through a symbolic link (``store.files``).

Taking the lock is the service's business; reading who holds it is the client's
(``client.scheduler_pid``, with ``held`` and ``holder_pid``).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ..store import StorePaths, check_directory, make_private_directory, open_private, read_end


class StoreBusy(RuntimeError):
    """Another scheduler already runs on this store."""


def holder_pid(directory: str | Path) -> int | None:
    """The pid the lock's holder wrote into the lock file (None if the file is gone or empty)."""
    text = read_end(StorePaths.of(directory).lock, 32).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _lock_directory(directory: Path, shared: bool = False) -> int | None:
    """A descriptor of ``directory`` holding an flock on it (None: this file system has no locks on
    directories: the lock file alone counts there); ``BlockingIOError`` if another holds one."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if not shared:
            check_directory(directory, os.fstat(fd))
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:  # e.g. NFS, where an flock of a read-only descriptor is refused
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def held(directory: str | Path) -> bool:
    """True while a scheduler holds the lock on ``directory`` itself (its lock file may be gone)."""
    try:
        fd = _lock_directory(Path(directory), shared=True)
    except BlockingIOError:
        return True
    except OSError:  # no such directory
        return False
    if fd is not None:
        os.close(fd)  # closing releases the shared lock
    return False


class SchedulerLock:
    """``with SchedulerLock(dir):`` holds the store's locks (the directory, the owner-only lock
    file) for this process; ``StoreBusy`` if another process holds them, ``store.UnsafeStore`` if
    the directory is not this user's alone or the lock file is a symbolic link."""

    def __init__(self, directory: str | Path, attempts: int = 3):
        """``attempts``: tries, 20 ms apart (a client asking whether the store is locked holds a
        shared lock for microseconds)."""
        self.attempts = attempts
        self.directory = Path(directory)
        self.path = StorePaths.of(directory).lock
        self.fd: int | None = None
        self.dir_fd: int | None = None

    def __enter__(self) -> SchedulerLock:
        make_private_directory(self.directory)
        for attempt in range(self.attempts):
            try:
                self._take()
                return self
            except BlockingIOError:
                if attempt == self.attempts - 1:
                    raise self._busy() from None
                time.sleep(0.02)
        raise AssertionError("unreachable")

    def _take(self) -> None:
        """Lock the directory, then the lock file (``BlockingIOError``: another holds either)."""
        self.dir_fd = _lock_directory(self.directory)
        try:
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # an older rankbias locks only this
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._release_directory()
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def _busy(self) -> StoreBusy:
        pid = holder_pid(self.directory)
        where = f"a scheduler (pid {pid}) is already running on {self.directory}"
        if pid is None:
            where = (
                f"a scheduler is already running on {self.directory} (its lock file scheduler.lock "
                "was removed while it ran, so its pid is unknown, but the store stays locked until "
                "it ends: a second scheduler would train the same runs)"
            )
        return StoreBusy(f"{where}; wait for it, or cancel its runs with `rankbias cancel`")

    def _release_directory(self) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)  # closing releases the flock
            self.dir_fd = None

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        self._release_directory()
