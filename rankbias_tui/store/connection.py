"""Opening a store's SQLite database: the connection, its mode, migrations and transactions.

Owns: a writable connection (WAL, busy timeout, owner-only new file, migrated to the current
schema), a read-only one (``mode=ro``, or ``immutable=1`` on a read-only mount; never migrated, so
it accepts every schema from ``OLDEST_READABLE`` on), ``migrate`` (the numbered migrations of
``store.schema``), ``Tx`` (one write transaction), the identity of the database file
(``identity``: its device and inode, so a scheduler notices a deleted or replaced store) and the
one-line wording of SQLite errors (``damaged``). Does not own: what is stored (``store``).
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from pathlib import Path

from .schema import MIGRATIONS, SCHEMA_VERSION

OLDEST_READABLE = 2  # read-only readers cope with the columns and tables added since


class StoreError(Exception):
    """The store cannot be opened or used (e.g. written by a newer rankbias)."""


class NoStore(StoreError):
    """There is no store where one was to be read (no database file in the directory)."""


def open_writable(path: Path) -> sqlite3.Connection:
    """A connection that may write, the database created owner-only and migrated if needed."""
    new = not path.exists()
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    if new:
        os.chmod(path, 0o600)  # owner-only; SQLite gives -wal and -shm the same mode
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=30000")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    migrate(conn)
    return conn


def open_read_only(path: Path) -> tuple[sqlite3.Connection, int]:
    """A connection that never writes, and the schema version it found: ``mode=ro``, or
    ``immutable=1`` where SQLite cannot even create the WAL index beside the file (a read-only
    mount of a cleanly closed store)."""
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    for options in ("mode=ro", "mode=ro&immutable=1"):
        conn = sqlite3.connect(
            f"{uri}?{options}", uri=True, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            break
        except sqlite3.OperationalError:
            conn.close()
            if "immutable" in options:
                raise
    if not OLDEST_READABLE <= version <= SCHEMA_VERSION:
        conn.close()
        newer = "newer" if version > SCHEMA_VERSION else "older"
        raise StoreError(
            f"{path}: schema v{version} was written by a {newer} rankbias (this one: v{SCHEMA_VERSION}) "
            "and the store is read-only here, so it cannot be upgraded"
        )
    return conn, version


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations the database lacks, up to ``target``; return the new version.

    Each step runs in its own write transaction and re-reads the version inside it, so two
    processes opening a new store at once cannot apply a migration twice.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"database schema v{version} is newer than this rankbias (v{SCHEMA_VERSION})")
    for number in range(version + 1, target + 1):
        with Tx(conn):
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                continue
            steps = MIGRATIONS[number - 1]
            for statement in steps.split(";") if isinstance(steps, str) else steps:
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    return max(version, target)


def _enable_wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch to WAL. SQLite answers 'locked' without waiting when another process is creating
    or migrating the same new database at that moment, so retry for a few seconds."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


class Tx:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), for autocommit connections; nested: a no-op."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.nested = conn.in_transaction

    def __enter__(self) -> sqlite3.Connection:
        if not self.nested:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self.nested:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
            self.conn.execute("ROLLBACK")


def make_private_directory(directory: Path) -> None:
    """Create a new results directory owner-only (0700); an existing one keeps its mode, so a
    store shared on purpose (``chmod -R g+rX``) stays shared."""
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)


def writable(directory: Path, path: Path) -> bool:
    """May this process write the store? (access(2) also says no on a read-only mount, even to
    root.) A missing directory counts as writable: creating it tells."""
    if not directory.exists():
        return True
    return os.access(directory, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def identity(path: Path) -> tuple[int, int] | None:
    """The database file's (device, inode); None if it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def is_full(err: BaseException) -> bool:
    """Did SQLite (or a file write) fail because the disk or the quota is full?"""
    if isinstance(err, sqlite3.Error):
        return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(err)
    return isinstance(err, OSError) and err.errno in (28, 122)  # ENOSPC, EDQUOT


def damaged(err: sqlite3.DatabaseError) -> str:
    """What an SQLite error on opening or reading says about the file, in one line."""
    text = str(err)
    if "not a database" in text or "malformed" in text:
        return (
            f"{text} (not a rankbias database, or a damaged one; "
            "restore it from a backup or use another --store)"
        )
    if is_full(err):
        return f"{text}: the file system holding the store is full; free some space and run the command again"
    return text
