"""A store's own small files - the scheduler's lock, its state file, its log - opened so that nobody
else can redirect them, and the rule for a results directory a process may write in (stdlib only).

Owns: ``check_directory`` (a store that is written must be this user's and writable by nobody else:
whoever may create files in it can plant a symbolic link named ``scheduler.lock`` whose target a
plain ``open`` would truncate), ``open_private`` (never through a symbolic link, only a regular file
of this user's with one name, and nothing truncated before that is known), ``write_private`` and
``remove_own`` (the state file: written whole; removed only if it is still the very file this
process wrote) and ``read_end`` (the end of a log, for readers: never through a link, never a FIFO
that would block). Does not own: which files a store has (``paths``) or who may hold the lock
(``scheduler.lock``).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .connection import StoreError

SHARE = (
    "to share results, keep one store per user and let the others read it "
    "(chmod -R g+rX DIR: they can list, show, export and plot it, never write it)"
)


class UnsafeStore(StoreError):
    """A store, or one of its files, that another user could have planted or redirected."""


def _owner_name(uid: int) -> str:
    try:
        import pwd  # noqa: PLC0415 - Unix only

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_directory(directory: Path, st: os.stat_result | None = None) -> None:
    """Refuse (``UnsafeStore``) to write a store in ``directory`` (or the directory ``st`` describes)
    unless it belongs to this user and neither its group nor others may create files in it. A
    missing directory passes: the caller creates it owner-only."""
    if st is None:
        try:
            st = os.stat(directory)
        except FileNotFoundError:
            return
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.geteuid():
        problem = f"it belongs to {_owner_name(st.st_uid)}, not to you"
        fix = "pass --store with a directory of your own"
    elif mode & 0o022:
        who = "its group and others" if mode & 0o022 == 0o022 else "others" if mode & 0o002 else "its group"
        problem = f"{who} may create files in it (mode {mode:04o})"
        fix = f"make it yours alone (chmod go-w {directory}), then run the command again"
    else:
        return
    raise UnsafeStore(
        f"refusing to write the store at {directory}: {problem}, so another user could plant files "
        f"in it (a symbolic link named scheduler.lock, say) that rankbias would write through; "
        f"{fix}; {SHARE.replace('DIR', str(directory))}"
    )


def open_private(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` for a store's own file, refusing (``UnsafeStore``) a symbolic link, anything
    but a regular file, another user's file and a file with a second name (a hard link to a file
    elsewhere). Never pass ``O_TRUNC``: truncate the descriptor once this returned."""
    assert not flags & os.O_TRUNC, "truncate after the checks, not before"
    try:  # O_NONBLOCK: a planted FIFO must not hang the open (no effect on a regular file)
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafeStore(
                f"refusing to open {path}: it is a symbolic link, and rankbias never writes through "
                "one (someone may have planted it to make rankbias overwrite its target); remove it "
                "if you did not make it, then run the command again"
            ) from None
        if err.errno == errno.ENXIO:  # a FIFO nobody reads
            raise UnsafeStore(f"refusing to open {path}: it is not a regular file; remove it") from None
        raise
    problem = _not_ours(os.fstat(fd))
    if problem is not None:
        os.close(fd)
        raise UnsafeStore(f"refusing to open {path}: {problem}; remove it, then run the command again")
    os.set_blocking(fd, True)
    return fd


def _not_ours(st: os.stat_result) -> str | None:
    """Why an opened file is not one of the store's own, or None."""
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_uid != os.geteuid():
        return "it belongs to another user"
    if st.st_nlink > 1:
        return "it has another name too (a hard link)"
    return None


def write_private(path: Path, text: str) -> tuple[int, int]:
    """Replace the contents of ``path`` (owner-only, ``open_private``'s checks); return its
    (device, inode), for ``remove_own``."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.ftruncate(fd, 0)
        data = memoryview(text.encode())
        while data:
            data = data[os.write(fd, data) :]
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return st.st_dev, st.st_ino


def remove_own(path: Path, identity: tuple[int, int] | None) -> bool:
    """Delete ``path`` if it is still the regular file ``write_private`` wrote (``identity``), not a
    link or another file put in its place; True if it was deleted."""
    if identity is None:
        return False
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != identity:
        return False
    path.unlink(missing_ok=True)
    return True


def read_end(path: Path, window: int = 256 * 1024) -> bytes:
    """The last ``window`` bytes of the regular file ``path`` (b"" if it is missing, a symbolic link
    or not a regular file): how readers see a store's log and state file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return b""
        return os.pread(fd, window, max(0, st.st_size - window))
    except OSError:
        return b""
    finally:
        os.close(fd)


def read_from(path: Path, offset: int, limit: int = 256 * 1024) -> tuple[bytes, int]:
    """The bytes of the regular file ``path`` after ``offset`` (at most its last ``limit``; all of
    it again if it is shorter than ``offset`` now: replaced) and its size: how the app follows a
    store's log. (b"", 0) if it is missing, a symbolic link or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b"", 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return b"", 0
        start = offset if offset <= st.st_size else 0
        start = max(start, st.st_size - limit)
        data = os.pread(fd, st.st_size - start, start)
        return data, start + len(data)
    except OSError:
        return b"", 0
    finally:
        os.close(fd)


# File systems on which SQLite's locking and WAL (shared memory) are unsafe or unreliable.
NETWORK_FILE_SYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "cifs",
        "smb3",
        "smbfs",
        "gpfs",
        "beegfs",
        "glusterfs",
        "fuse.sshfs",
        "9p",
        "ceph",
        "fuse.ceph",
        "afs",
        "panfs",
        "wekafs",
    }
)


def file_system(path: Path, mounts: str | None = None) -> str | None:
    """The type of the file system ``path`` (or its nearest existing parent) is on, from
    ``/proc/mounts`` (``mounts``: its text, for tests); None where that is not known (not Linux)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = path.resolve()
    while not target.exists() and target != target.parent:
        target = target.parent
    best: tuple[int, str] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if target == Path(point) or Path(point) in target.parents:
            if best is None or len(point) > best[0]:
                best = (len(point), fields[2])
    return best[1] if best else None


def network_warning(path: Path, mounts: str | None = None) -> str | None:
    """What to say when the store at ``path`` is on a network file system, else None."""
    kind = file_system(path, mounts)
    if kind not in NETWORK_FILE_SYSTEMS:
        return None
    return (
        f"the store {path} is on a network file system ({kind}): SQLite's locks and write-ahead log are "
        "not safe there (runs can be lost or the database damaged); put --store on a local disk of the "
        "machine that runs the scheduler, and copy it elsewhere when the sweep is done"
    )
