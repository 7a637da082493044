"""What ``rankbias list`` reads of a big store without decoding every run: the most recently active
runs (``recent_runs``) and the count of each status (``status_counts``). A mixin of ``Store``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from ..measures import INTERRUPTED, Status
from .rows import Owners, RunRow, run_row

# Most recently active first: running, then by the latest of start and end (queued: registration).
RECENT = (
    "r.status = 'running' DESC,"
    " MAX(COALESCE(r.finished_at, 0), COALESCE(r.started_at, 0), r.created_at) DESC, r.rowid DESC"
)


class Listing:
    """Reads for lists (mixed into ``Store``)."""

    conn: sqlite3.Connection
    version: int
    _decode: Any
    _config: Any
    current: Callable[..., str]  # ``Grids.current``

    def recent_runs(
        self, limit: int, sweep: str | None = None, status: Iterable[str] | None = None
    ) -> list[RunRow]:
        """The ``limit`` runs most recently active - running first, then by their latest start or
        end - in the order of ``runs``; reads no more rows than it keeps (but for a status that
        depends on the scheduler being alive: running, interrupted)."""
        wanted = set(status) if status is not None else None
        where, args = [], []
        if wanted is not None:  # a stored 'running' reads as running or interrupted (``RunRow.status``)
            stored = {Status.RUNNING if s == INTERRUPTED else s for s in wanted}
            where.append(f"r.status IN ({','.join('?' * len(stored))})")
            args += sorted(stored)
        if sweep is None:
            sql = "SELECT r.*, r.created_at AS o1, r.rowid AS o2 FROM runs r"
        else:
            sql = "SELECT r.*, s.position AS o1, 0 AS o2 FROM runs r JOIN sweep_runs s ON s.run_id=r.run_id"
            where.append("s.sweep=?" + self.current())
            args.append(sweep)
        sql += (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {RECENT}"
        live, kept = Owners(), []
        for r in self.conn.execute(sql, args):
            row = run_row(r, live, self._decode, self._config)
            if wanted is None or row.status in wanted:
                kept.append(((r["o1"], r["o2"]), row))
                if len(kept) >= limit:
                    break
        return [row for _, row in sorted(kept, key=lambda k: k[0])]

    def status_counts(self, sweep: str | None = None) -> dict[str, int]:
        """Status -> runs of the store (of ``sweep``), each run counted once whatever sweeps it is
        in; one grouped read, no run decoded."""
        owner = "r.owner" if self.version >= 5 else "NULL"
        join, where, args = "", "", []
        if sweep is not None:
            join, where = " JOIN sweep_runs s ON s.run_id=r.run_id", " WHERE s.sweep=?" + self.current()
            args = [sweep]
        rows = self.conn.execute(
            f"SELECT r.status, {owner}, COUNT(*) FROM runs r{join}{where} GROUP BY r.status, {owner}", args
        )
        live: Owners = Owners()
        counts: dict[str, int] = {}
        for stored, owner, n in rows:
            status = str(live.status(stored, owner))
            counts[status] = counts.get(status, 0) + n
        return counts
