"""``Store``: one results database, opened (read-only or writable, migrated) and its runs table:
queueing, statuses, attempts, placements, warnings, execution-mode segments and progress.

The result tables (metrics, spectra, requests) are ``results.Results``, mixed in. A stored
"running" whose scheduler process is gone reads as ``interrupted`` (``RunRow.status``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..display import printable
from ..measures import FINISHED, Status
from . import owner as owners
from .connection import (
    NoStore,
    StoreError,
    damaged,
    identity,
    make_private_directory,
    open_read_only,
    open_writable,
    writable,
)
from .files import check_directory
from .grids import Grids
from .listing import Listing
from .paths import StorePaths
from .results import Results
from .rows import JsonCache, Owners, RunRow, Segment, read_config, run_row
from .schema import SCHEMA_VERSION


class Store(Results, Grids, Listing):
    """A results directory's database. Cheap to open; safe to open from several processes."""

    def __init__(self, directory: str | Path, *, create: bool = True):
        """Open (``create``: and make if missing) the store in ``directory``.

        A store this process may not write (a read-only mount, another user's results) opens
        read-only for readers (``create=False``): no WAL switch, no migration. A writer gets a
        ``StoreError`` saying why, and so does one in a directory another user could plant files in
        (``files.UnsafeStore``: not this user's, or group- or world-writable). A file that is not
        an SQLite database, or a damaged one, is a ``StoreError`` naming the file, never a
        traceback."""
        self.directory = Path(directory)
        self.paths = StorePaths.of(self.directory)
        self.path = path = self.paths.database
        self._decode = JsonCache()  # a refresh of the app reads every run twice a second
        self._config = JsonCache(read_config)
        if not create and not path.exists():
            raise NoStore(f"no rankbias store at {self.directory} (run `rankbias run` first or pass --store)")
        if create:  # a writer: the directory must be this user's alone (``files.check_directory``)
            make_private_directory(self.directory)
            check_directory(self.directory)
        self.read_only = not writable(self.directory, path)
        if self.read_only and create:
            raise StoreError(
                f"cannot write to the store at {self.directory} (read-only file system or no write "
                "permission): running needs a writable results directory; pass --store DIR"
            )
        try:
            if self.read_only:
                self.conn, self.version = open_read_only(path)
            else:
                self.conn, self.version = open_writable(path), SCHEMA_VERSION
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{path}: {damaged(err)}") from None
        self.identity = identity(path)
        self._wal: tuple[int, int] | None = None  # the write-ahead log beside our file, last seen

    def still_there(self) -> bool:
        """False once the database file was deleted, or replaced by another file (the writes of
        this connection would then go nowhere anyone can read)."""
        if identity(self.path) != self.identity:
            return False
        self._wal = identity(self._wal_path)
        return True

    def abandon(self) -> None:
        """Close a connection whose database file was replaced, first removing the write-ahead log
        it wrote (if it is still the one beside the path): SQLite would otherwise replay our pages
        into the file that took its place."""
        wal = self._wal_path
        if self._wal is not None and identity(wal) == self._wal:
            wal.unlink(missing_ok=True)
            wal.with_name(self.path.name + "-shm").unlink(missing_ok=True)
        self.close()

    @property
    def _wal_path(self) -> Path:
        return self.path.with_name(self.path.name + "-wal")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- runs -------------------------------------------------------------------------------
    def add_runs(self, planned: Iterable[Any], provenance: dict[str, Any]) -> int:
        """Register planned runs (``sweep.PlannedRun``); existing ids keep their state. Return new.

        An existing run of a user's model or data set takes the planned ``code_dir`` (not part of
        its id): a project moved, or its spec run from elsewhere, resumes from where it is now."""
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
                if not cur.rowcount and run.config.code_dir:  # a moved project: import from here now
                    self.conn.execute(
                        "UPDATE runs SET config = json_set(config, '$.code_dir', ?) WHERE run_id = ?",
                        (run.config.code_dir, run.run_id),
                    )
                self.conn.executemany(
                    "INSERT OR IGNORE INTO sweep_runs (sweep, run_id, position) VALUES (?,?,?)",
                    [(sweep, run.run_id, position) for sweep in run.sweeps],
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
                    "UPDATE runs SET status=? WHERE run_id=? AND status NOT IN (?, ?)",
                    (Status.QUEUED, run_id, *FINISHED),
                )
                if cur.rowcount:
                    out.append(run_id)
        return out

    def set_status(
        self,
        run_id: str,
        status: Status | str,
        *,
        error: str | None = None,
        active_until: float | None = None,
        **fields: Any,
    ) -> None:
        """Set a run's status; an attempt that ends (running -> anything else) adds its time to
        ``active_s``, up to ``active_until`` if given (an adopted run: its last checkpoint, not now)."""
        status = Status(status)  # ValueError for a word that is not a status
        now = time.time()
        extra = dict(fields)
        if status == Status.RUNNING:
            extra.setdefault("started_at", now)
        elif status != Status.QUEUED:
            extra.setdefault("finished_at", now)
        ended = active_until if active_until is not None else extra.get("finished_at", now)
        began = extra.get("started_at")
        sets = ", ".join(f"{k}=?" for k in ["status", "error", *extra])
        with self.transaction():
            if status != Status.RUNNING:
                self.conn.execute(
                    "UPDATE runs SET active_s = active_s + MAX(0, ? - COALESCE(?, started_at))"
                    " WHERE run_id=? AND status='running' AND COALESCE(?, started_at) IS NOT NULL",
                    (ended, began, run_id, began),
                )
            self.conn.execute(
                f"UPDATE runs SET {sets} WHERE run_id=?",
                (status, None if error is None else printable(error), *extra.values(), run_id),
            )

    def start_attempt(self, run_id: str, device: str, pid: int | None, owner: str | None = None) -> None:
        """The run starts on ``device`` in worker ``pid``, owned by the scheduler ``owner``
        (``owner.token``; default: this process)."""
        self.conn.execute(
            "UPDATE runs SET status='running', device=?, pid=?, owner=?, started_at=?, finished_at=NULL,"
            " error=NULL, attempts=attempts+1 WHERE run_id=?",
            (device, pid, owner or owners.token(), time.time(), run_id),
        )

    def set_placement(self, run_id: str, device: str, pid: int | None) -> None:
        """Where a remote backend's worker of the run started (``cuda:0@10.0.0.7``)."""
        self.conn.execute("UPDATE runs SET device=?, pid=? WHERE run_id=?", (device, pid, run_id))

    def add_warning(self, run_id: str, text: str) -> None:
        """Record something that went wrong on a run without ending it (kept across attempts)."""
        self.conn.execute(
            "UPDATE runs SET warnings = COALESCE(warnings || char(10), '') || ? WHERE run_id=?",
            (printable(" ".join(text.split())), run_id),
        )

    # ----- execution modes ---------------------------------------------------------------------
    def add_segment(
        self,
        run_id: str,
        from_step: int,
        device: str,
        mode: str,
        pack: Iterable[str],
        provenance: dict[str, Any] | None = None,
    ) -> Segment | None:
        """Record that ``run_id`` (re)starts at ``from_step`` in ``mode``, run by a worker with
        ``provenance`` (``protocol.Started``); return its previous segment."""
        previous = self.segments(run_id)
        self.conn.execute(
            "INSERT INTO segments (run_id, started_at, from_step, device, mode, pack, provenance)"
            " VALUES (?,?,?,?,?,?,?)",
            (run_id, time.time(), from_step, device, mode, json.dumps(list(pack)), _json_or_null(provenance)),
        )
        return previous[-1] if previous else None

    def segments(self, run_id: str) -> list[Segment]:
        """The execution modes a run was trained in, oldest first (none before schema v5)."""
        if self.version < 5:
            return []
        provenance = "provenance" if self.version >= 8 else "NULL"
        rows = self.conn.execute(
            f"SELECT run_id, started_at, from_step, device, mode, pack, {provenance} FROM segments"
            " WHERE run_id=? ORDER BY rowid",
            (run_id,),
        )
        return [Segment(*r[:5], tuple(json.loads(r[5])), json.loads(r[6] or "{}")) for r in rows]

    def packs(self) -> dict[str, tuple[str, ...]]:
        """Run id -> the ids trained together in its latest segment (its own included; the ETA's
        pack sizes): one read of ``segments``, none before schema v5."""
        if self.version < 5:
            return {}
        rows = self.conn.execute(
            "SELECT run_id, pack FROM segments WHERE rowid IN (SELECT MAX(rowid) FROM segments GROUP BY run_id)"
        )
        return {run_id: tuple(json.loads(pack)) for run_id, pack in rows}

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

    def set_checkpoint(self, run_id: str, step: int, digest: str = "", location: str = "") -> None:
        """Acknowledge the run's checkpoint after ``step``, with the SHA-256 of its file (""
        from a worker that did not say: none is kept, and a resume checks the file's CRCs) and where
        the file is ("": in the store's checkpoint directory; kept with the digest only). The
        digests of the acknowledged checkpoint before it stay (its file is kept to fall back to);
        older ones go, as their files do (``checkpoints.prune``)."""
        with self.transaction():
            self.conn.execute("UPDATE runs SET checkpoint_step=? WHERE run_id=?", (step, run_id))
            if digest:
                self.conn.execute(
                    "INSERT OR REPLACE INTO checkpoint_digests (run_id, step, digest, location)"
                    " VALUES (?,?,?,?)",
                    (run_id, step, digest, location or None),
                )
            else:  # a digest of an earlier attempt at this step would not be this file's
                self.conn.execute("DELETE FROM checkpoint_digests WHERE run_id=? AND step=?", (run_id, step))
            self.conn.execute(
                "DELETE FROM checkpoint_digests WHERE run_id=? AND step < (SELECT MAX(step) FROM"
                " checkpoint_digests WHERE run_id=? AND step < ?)",
                (run_id, run_id, step),
            )

    def checkpoint_digests(self, run_id: str) -> dict[int, str]:
        """Step -> the SHA-256 of each checkpoint of the run the store acknowledged and keeps."""
        if self.version < 7:
            return {}
        rows = self.conn.execute("SELECT step, digest FROM checkpoint_digests WHERE run_id=?", (run_id,))
        return {step: digest for step, digest in rows}

    def checkpoint_locations(self, run_id: str) -> dict[int, str]:
        """Step -> where each acknowledged checkpoint of the run is, for those not in the store's
        checkpoint directory (a path or a URI: ``Checkpoint.location``)."""
        if self.version < 11:
            return {}
        sql = "SELECT step, location FROM checkpoint_digests WHERE run_id=? AND location IS NOT NULL"
        return dict(self.conn.execute(sql, (run_id,)).fetchall())

    def truncate_after(self, run_id: str, step: int) -> None:
        """Drop metric and spectrum rows after ``step``: a resumed run will write them again."""
        with self.transaction():
            self.conn.execute("DELETE FROM metrics WHERE run_id=? AND step>?", (run_id, step))
            self.conn.execute("DELETE FROM spectra WHERE run_id=? AND step>?", (run_id, step))

    def runs(
        self, sweep: str | None = None, status: Iterable[str] | None = None, *, superseded: bool = False
    ) -> list[RunRow]:
        """Runs in sweep order (all sweeps: creation order), optionally filtered. A sweep's runs are
        those of the grid it was last queued with, unless ``superseded`` (then all it ever had)."""
        if sweep is None:
            sql, args = "SELECT r.* FROM runs r ORDER BY r.created_at, r.rowid", []
        else:
            current = "" if superseded else self.current()
            sql = (
                "SELECT r.* FROM runs r JOIN sweep_runs s ON s.run_id=r.run_id WHERE s.sweep=?"
                f"{current} ORDER BY s.position"
            )
            args = [sweep]
        live = Owners()
        rows = [run_row(r, live, self._decode, self._config) for r in self.conn.execute(sql, args)]
        wanted = set(status) if status is not None else None
        return [r for r in rows if wanted is None or r.status in wanted]

    def runs_changed(self, since: int) -> tuple[list[RunRow], int, int]:
        """The runs inserted or updated after change number ``since``, and every stored-running run
        (its scheduler may have died since: it then reads as interrupted), in store order; with the
        latest change number and the number of runs (a reader that sees it differ from what it
        knows reads ``runs()`` again). Before schema v10 there is no change number: every run, and 0."""
        if self.version < 10:
            rows = self.runs()
            return rows, 0, len(rows)
        # the number first: a run written between the two reads is read now and again next time
        latest, count = self.conn.execute("SELECT COALESCE(MAX(changed), 0), COUNT(*) FROM runs").fetchone()
        found = self.conn.execute(
            "SELECT * FROM runs WHERE changed > ? OR status = 'running' ORDER BY created_at, rowid", (since,)
        ).fetchall()
        live = Owners()
        return [run_row(r, live, self._decode, self._config) for r in found], latest, count

    def runs_head(self, limit: int) -> tuple[list[RunRow], int]:
        """The first ``limit`` runs in store order and every stored-running one, with the number of
        runs: what a reader shows first of a big store while it reads the rest."""
        (count,) = self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()
        found = self.conn.execute(
            "SELECT * FROM runs WHERE rowid IN (SELECT rowid FROM runs ORDER BY created_at, rowid LIMIT ?)"
            " OR status = 'running' ORDER BY created_at, rowid",
            (limit,),
        ).fetchall()
        live = Owners()
        return [run_row(r, live, self._decode, self._config) for r in found], count

    def run_exact(self, run_id: str) -> RunRow | None:
        """One run by its whole id: an index seek (``run`` matches a prefix, which scans)."""
        found = self.conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return run_row(found, Owners(), self._decode, self._config) if found is not None else None

    def run(self, run_id: str) -> RunRow | None:
        """One run by id or unique id prefix."""
        rows = self.conn.execute("SELECT * FROM runs WHERE run_id LIKE ?", (run_id + "%",)).fetchall()
        return run_row(rows[0], Owners(), self._decode, self._config) if len(rows) == 1 else None


def _json_or_null(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value, sort_keys=True) if value else None
