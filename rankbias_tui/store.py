"""The SQLite store: the only code that reads or writes a results database, and the owner of the
names of every file in a results directory (``StorePaths``).

One database per results directory (``DIR/rankbias.sqlite``), WAL mode with a busy timeout so
readers (CLI, terminal UI) never block the writer. The scheduler is the one writer of runs,
metrics and spectra; other processes add ``Request`` rows (launch, cancel, resume, stop), which the
scheduler takes (and, holding the scheduler lock when none runs, mark a run cancelled). The schema
is the numbered migrations of ``rankbias_tui.schema``, applied on open (``PRAGMA user_version``).
What a request means and who answers it is ``rankbias_tui.scheduler``'s business, not this module's.
Spectra are written and read as ``protocol.SpectrumRow`` (re-exported here); their singular values
become the ``svals`` BLOB and back in one place (``_svals_blob``, ``_svals_array``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .measures import FINISHED, STATUSES
from .protocol import SpectrumRow
from .schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "rankbias.sqlite"
SPECTRUM_COLUMNS = tuple(f.name for f in fields(SpectrumRow))  # the columns of ``spectra``
REQUESTS = ("launch", "cancel", "resume", "stop")
JSON_CACHE = 20_000  # decoded configs kept per open store


@dataclass(frozen=True)
class StorePaths:
    """Every file of a results directory, named in this one place: the CLI, the app, the background
    scheduler and its clients all ask here."""

    directory: Path
    database: Path
    lock: Path  # held by the store's one scheduler; holds its pid
    state: Path  # a background scheduler's pid and devices, while it runs
    log: Path  # a background scheduler's output
    checkpoints: Path  # one folder per run
    exports: Path  # the CSV files the terminal UI writes

    @classmethod
    def of(cls, directory: str | Path) -> StorePaths:
        d = Path(directory)
        names = ("scheduler.lock", "scheduler.json", "scheduler.log", "checkpoints", "exports")
        return cls(d, d / DB_NAME, *(d / name for name in names))


@dataclass(frozen=True)
class Request:
    """One row of ``requests``: what another process asks the store's scheduler to do."""

    kind: str  # one of REQUESTS
    run_id: str | None = None  # the run to cancel or resume
    spec_path: str | None = None  # a launch's spec file (absolute)
    sweep: str | None = None  # a launch's sweep


class StoreError(Exception):
    """The store cannot be opened or used (e.g. written by a newer rankbias)."""


@dataclass(frozen=True)
class RunRow:
    """One row of ``runs``, with its config decoded."""

    run_id: str
    sweep: str
    config: dict[str, Any]
    status: str
    device: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    step: int
    total_steps: int | None
    epoch: float
    checkpoint_step: int | None
    provenance: dict[str, Any]
    attempts: int
    pid: int | None
    protocol_version: int | None = None  # the training protocol it was trained under (None: not yet)
    active_s: float = 0.0  # seconds trained, over all attempts ended so far (not the running one)

    def active_seconds(self, now: float) -> float:
        """Seconds trained over all attempts, the running one up to ``now`` included."""
        running = now - self.started_at if self.status == "running" and self.started_at else 0.0
        return self.active_s + max(0.0, running)

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations the database lacks, up to ``target``; return the new version.

    Each step runs in its own write transaction and re-reads the version inside it, so two
    processes opening a new store at once cannot apply a migration twice.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"database schema v{version} is newer than this rankbias (v{SCHEMA_VERSION})")
    for number in range(version + 1, target + 1):
        with _Tx(conn):
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                continue
            for statement in MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    return max(version, target)


class Store:
    """A results directory's database. Cheap to open; safe to open from several processes."""

    def __init__(self, directory: str | Path, *, create: bool = True):
        """Open (``create``: and make if missing) the store in ``directory``.

        A store this process may not write (a read-only mount, another user's results) opens
        read-only for readers (``create=False``): no WAL switch, no migration. A writer gets a
        ``StoreError`` saying why. A file that is not an SQLite database, or a damaged one, is a
        ``StoreError`` naming the file, never a traceback."""
        self.directory = Path(directory)
        self.paths = StorePaths.of(self.directory)
        self.path = path = self.paths.database
        self._json: dict[str, Any] = {}
        if not create and not path.exists():
            raise StoreError(
                f"no rankbias store at {self.directory} (run `rankbias run` first or pass --store)"
            )
        if create:
            _make_private_directory(self.directory)
        self.read_only = not _writable(self.directory, path)
        if self.read_only and create:
            raise StoreError(
                f"cannot write to the store at {self.directory} (read-only file system or no write "
                "permission): running needs a writable results directory; pass --store DIR"
            )
        try:
            self.conn = _open_read_only(path) if self.read_only else self._open_writable(path)
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{path}: {damaged(err)}") from None

    def _open_writable(self, path: Path) -> sqlite3.Connection:
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

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> sqlite3.Connection:
        """``with store.transaction():`` groups writes into one commit."""
        return _Tx(self.conn)  # type: ignore[return-value]

    # ----- runs -------------------------------------------------------------------------------
    def add_runs(self, planned: Iterable[Any], provenance: dict[str, Any]) -> int:
        """Register planned runs (``sweep.PlannedRun``); existing ids keep their state. Return new."""
        now = time.time()
        added = 0
        with self.transaction():
            for position, run in enumerate(planned):
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO runs (run_id, sweep, config, created_at, provenance)"
                    " VALUES (?,?,?,?,?)",
                    (run.run_id, run.sweep, run.config.model_dump_json(), now, json.dumps(provenance)),
                )
                added += cur.rowcount
                self.conn.execute(
                    "INSERT OR IGNORE INTO sweep_runs (sweep, run_id, position) VALUES (?,?,?)",
                    (run.sweep, run.run_id, position),
                )
        return added

    def queue(self, planned: list[Any], provenance: dict[str, Any], active: Iterable[str] = ()) -> list[Any]:
        """Register planned runs and return those still to run (not done/diverged), requeued.

        ``active``: ids a live scheduler is training right now; they keep their status."""
        self.add_runs(planned, provenance)
        busy = set(active)
        todo = set(self.requeue([p.run_id for p in planned if p.run_id not in busy]))
        return [p for p in planned if p.run_id in todo]

    def requeue(self, run_ids: Iterable[str]) -> list[str]:
        """Mark runs that are not finished as queued (resumable); return the ids requeued."""
        ids = [r for r in run_ids]
        out = []
        with self.transaction():
            for run_id in ids:
                cur = self.conn.execute(
                    f"UPDATE runs SET status='queued' WHERE run_id=? AND status NOT IN {FINISHED}", (run_id,)
                )
                if cur.rowcount:
                    out.append(run_id)
        return out

    def set_status(self, run_id: str, status: str, *, error: str | None = None, **fields: Any) -> None:
        """Set a run's status; an attempt that ends (running -> anything else) adds its time to
        ``active_s``."""
        assert status in STATUSES, status
        now = time.time()
        extra = dict(fields)
        if status == "running":
            extra.setdefault("started_at", now)
        elif status != "queued":
            extra.setdefault("finished_at", now)
        ended, began = extra.get("finished_at", now), extra.get("started_at")
        sets = ", ".join(f"{k}=?" for k in ["status", "error", *extra])
        with self.transaction():
            if status != "running":
                self.conn.execute(
                    "UPDATE runs SET active_s = active_s + MAX(0, ? - COALESCE(?, started_at))"
                    " WHERE run_id=? AND status='running' AND COALESCE(?, started_at) IS NOT NULL",
                    (ended, began, run_id, began),
                )
            self.conn.execute(f"UPDATE runs SET {sets} WHERE run_id=?", (status, error, *extra.values(), run_id))

    def start_attempt(self, run_id: str, device: str, pid: int | None) -> None:
        self.conn.execute(
            "UPDATE runs SET status='running', device=?, pid=?, started_at=?, finished_at=NULL, error=NULL,"
            " attempts=attempts+1 WHERE run_id=?",
            (device, pid, time.time(), run_id),
        )

    def set_placement(self, run_id: str, device: str, pid: int | None) -> None:
        """Where a remote backend's worker of the run started (``cuda:0@10.0.0.7``)."""
        self.conn.execute("UPDATE runs SET device=?, pid=? WHERE run_id=?", (device, pid, run_id))

    def set_progress(self, run_id: str, step: int, epoch: float, total_steps: int | None = None) -> None:
        self.conn.execute(
            "UPDATE runs SET step=?, epoch=?, total_steps=COALESCE(?, total_steps) WHERE run_id=?",
            (step, epoch, total_steps, run_id),
        )

    def set_protocol(self, run_id: str, version: int, note: str | None) -> None:
        """The training protocol a run (re)started under, and what its start said (a checkpoint it
        did not resume), kept as its error until it ends."""
        self.conn.execute(
            "UPDATE runs SET protocol_version=?, error=COALESCE(?, error) WHERE run_id=?",
            (version or None, note, run_id),
        )

    def set_checkpoint(self, run_id: str, step: int) -> None:
        self.conn.execute("UPDATE runs SET checkpoint_step=? WHERE run_id=?", (step, run_id))

    def truncate_after(self, run_id: str, step: int) -> None:
        """Drop metric and spectrum rows after ``step``: a resumed run will write them again."""
        with self.transaction():
            self.conn.execute("DELETE FROM metrics WHERE run_id=? AND step>?", (run_id, step))
            self.conn.execute("DELETE FROM spectra WHERE run_id=? AND step>?", (run_id, step))

    def runs(self, sweep: str | None = None, status: Iterable[str] | None = None) -> list[RunRow]:
        """Runs in sweep order (all sweeps: creation order), optionally filtered."""
        if sweep is None:
            sql, args = "SELECT r.* FROM runs r ORDER BY r.created_at, r.rowid", []
        else:
            sql = (
                "SELECT r.* FROM runs r JOIN sweep_runs s ON s.run_id=r.run_id WHERE s.sweep=?"
                " ORDER BY s.position"
            )
            args = [sweep]
        rows = [self._run_row(r) for r in self.conn.execute(sql, args)]
        wanted = set(status) if status is not None else None
        return [r for r in rows if wanted is None or r.status in wanted]

    def _run_row(self, r: sqlite3.Row) -> RunRow:
        return _run_row(r, self._decode)

    def _decode(self, text: str) -> Any:
        """JSON config and provenance, decoded once per distinct text: a run's never changes, and
        a refresh of the terminal UI reads every run twice a second (most of its cost, decoded
        each time). Callers treat the dicts as read-only."""
        value = self._json.get(text)
        if value is None:
            if len(self._json) > JSON_CACHE:
                self._json.clear()
            value = self._json[text] = json.loads(text)
        return value

    def run(self, run_id: str) -> RunRow | None:
        """One run by id or unique id prefix."""
        rows = self.conn.execute("SELECT * FROM runs WHERE run_id LIKE ?", (run_id + "%",)).fetchall()
        return self._run_row(rows[0]) if len(rows) == 1 else None

    def sweeps(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT sweep, COUNT(*) FROM sweep_runs GROUP BY sweep ORDER BY MIN(rowid)")
        return {name: n for name, n in rows}

    # ----- metrics and spectra ----------------------------------------------------------------
    def add_metrics(self, run_id: str, rows: Iterable[tuple[int, float, str, float]]) -> None:
        """rows: (step, epoch, name, value). Replaces a row written before for the same step."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO metrics (run_id, step, epoch, name, value) VALUES (?,?,?,?,?)",
            [(run_id, *row) for row in rows],
        )

    def metrics(self, run_id: str, name: str | None = None) -> list[tuple[int, float, str, float]]:
        sql = "SELECT step, epoch, name, value FROM metrics WHERE run_id=?"
        args: list[Any] = [run_id]
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        return [tuple(r) for r in self.conn.execute(sql + " ORDER BY step, name", args)]  # type: ignore[misc]

    def latest_values(self, run_id: str, names: Iterable[str]) -> dict[str, float]:
        """The latest value of each of ``names`` the run has: one index seek per name (cheap at
        any number of rows, unlike ``last_metrics``)."""
        out = {}
        for name in names:
            row = self.conn.execute(
                "SELECT value FROM metrics WHERE run_id=? AND name=? ORDER BY step DESC LIMIT 1", (run_id, name)
            ).fetchone()
            if row is not None:
                out[name] = row[0]
        return out

    def latest_ranks(self, run_id: str) -> list[int]:
        """The rank of each layer at the run's latest measurement, without its singular values."""
        rows = self.conn.execute(
            "SELECT rank FROM spectra WHERE run_id=? AND step=(SELECT MAX(step) FROM spectra WHERE run_id=?)"
            " ORDER BY layer_index",
            (run_id, run_id),
        )
        return [r[0] for r in rows]

    def last_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of each metric of a run."""
        rows = self.conn.execute(
            "SELECT name, value FROM metrics m WHERE run_id=? AND step="
            "(SELECT MAX(step) FROM metrics WHERE run_id=m.run_id AND name=m.name)",
            (run_id,),
        )
        return {name: value for name, value in rows}

    def add_spectra(self, rows: Iterable[SpectrumRow]) -> None:
        self.conn.executemany(
            f"INSERT OR REPLACE INTO spectra ({', '.join(SPECTRUM_COLUMNS)})"
            f" VALUES ({','.join('?' * len(SPECTRUM_COLUMNS))})",
            [_spectrum_values(r) for r in rows],
        )

    def spectra(self, run_id: str, step: int | None = None) -> list[SpectrumRow]:
        sql = "SELECT * FROM spectra WHERE run_id=?"
        args: list[Any] = [run_id]
        if step is not None:
            sql += " AND step=?"
            args.append(step)
        return [_spectrum_row(r) for r in self.conn.execute(sql + " ORDER BY step, layer_index", args)]

    def init_and_final_spectra(self, run_id: str) -> tuple[list[SpectrumRow], list[SpectrumRow]]:
        """A run's first and latest measurements (both empty before the first one)."""
        steps = self.spectrum_steps(run_id)
        if not steps:
            return [], []
        return self.spectra(run_id, steps[0]), self.spectra(run_id, steps[-1])

    def spectrum_steps(self, run_id: str) -> list[int]:
        rows = self.conn.execute("SELECT DISTINCT step FROM spectra WHERE run_id=? ORDER BY step", (run_id,))
        return [r[0] for r in rows]

    # ----- requests from other processes ------------------------------------------------------
    def request(self, request: Request) -> None:
        assert request.kind in REQUESTS, request.kind
        self.conn.execute(
            "INSERT INTO requests (kind, run_id, spec_path, sweep, created_at) VALUES (?,?,?,?,?)",
            (request.kind, request.run_id, request.spec_path, request.sweep, time.time()),
        )

    def take_requests(self, kinds: Iterable[str] | None = None) -> list[Request]:
        """Pending requests (of ``kinds``, default all), oldest first, marked as taken."""
        sql, args = "SELECT id, kind, run_id, spec_path, sweep FROM requests WHERE done_at IS NULL", []
        if kinds is not None:
            kinds = list(kinds)
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args = kinds
        with self.transaction():
            rows = self.conn.execute(sql + " ORDER BY id", args).fetchall()
            self.conn.executemany(
                "UPDATE requests SET done_at=? WHERE id=?", [(time.time(), r["id"]) for r in rows]
            )
        return [Request(r["kind"], r["run_id"], r["spec_path"], r["sweep"]) for r in rows]


def damaged(err: sqlite3.DatabaseError) -> str:
    """What an SQLite error on opening or reading says about the file, in one line."""
    text = str(err)
    if "not a database" in text or "malformed" in text:
        return f"{text} (not a rankbias database, or a damaged one; restore it from a backup or use another --store)"
    return text


def _make_private_directory(directory: Path) -> None:
    """Create a new results directory owner-only (0700); an existing one keeps its mode, so a
    store shared on purpose (``chmod -R g+rX``) stays shared."""
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)


def _writable(directory: Path, path: Path) -> bool:
    """May this process write the store? (access(2) also says no on a read-only mount, even to
    root.) A missing directory counts as writable: creating it tells."""
    if not directory.exists():
        return True
    return os.access(directory, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes: ``mode=ro``, or ``immutable=1`` where SQLite cannot even
    create the WAL index beside the file (a read-only mount of a cleanly closed store)."""
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    for options in ("mode=ro", "mode=ro&immutable=1"):
        conn = sqlite3.connect(f"{uri}?{options}", uri=True, timeout=30.0, isolation_level=None,
                               check_same_thread=False)  # fmt: skip
        conn.row_factory = sqlite3.Row
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            break
        except sqlite3.OperationalError:
            conn.close()
            if "immutable" in options:
                raise
    if version != SCHEMA_VERSION:
        conn.close()
        newer = "newer" if version > SCHEMA_VERSION else "older"
        raise StoreError(
            f"{path}: schema v{version} was written by a {newer} rankbias (this one: v{SCHEMA_VERSION}) "
            "and the store is read-only here, so it cannot be upgraded"
        )
    return conn


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


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), for autocommit connections."""

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
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _run_row(r: sqlite3.Row, decode: Any = json.loads) -> RunRow:
    return RunRow(
        run_id=r["run_id"], sweep=r["sweep"], config=decode(r["config"]), status=r["status"],
        device=r["device"], created_at=r["created_at"], started_at=r["started_at"],
        finished_at=r["finished_at"], error=r["error"], step=r["step"], total_steps=r["total_steps"],
        epoch=r["epoch"], checkpoint_step=r["checkpoint_step"],
        provenance=decode(r["provenance"] or "{}"), attempts=r["attempts"], pid=r["pid"],
        protocol_version=r["protocol_version"],
        active_s=r["active_s"],
    )  # fmt: skip


def _spectrum_values(row: SpectrumRow) -> tuple[Any, ...]:
    return tuple(_svals_blob(row.svals) if k == "svals" else getattr(row, k) for k in SPECTRUM_COLUMNS)


def _spectrum_row(r: sqlite3.Row) -> SpectrumRow:
    return SpectrumRow(**{k: _svals_array(r[k]) if k == "svals" else r[k] for k in r.keys()})


# The one place singular values change shape: a row's float64 array <-> the little-endian BLOB.
def _svals_blob(svals: np.ndarray) -> bytes:
    return np.asarray(svals, dtype="<f8").tobytes()


def _svals_array(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8")  # read-only, like the array the worker measured
