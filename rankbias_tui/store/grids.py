"""Which runs make up each sweep now: the grid a sweep was last queued with, and the runs a changed
spec superseded (migration 9). A mixin of ``Store`` (``self.conn`` is its connection)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from ..measures import FINISHED


class Grids:
    """Sweep membership of one store (mixed into ``Store``)."""

    conn: sqlite3.Connection
    version: int  # the store's schema version (a read-only store may be older than 9)

    def current(self, alias: str = "s") -> str:
        """SQL to AND into a query on ``sweep_runs`` (as ``alias``): in the sweep's current grid."""
        return f" AND {alias}.superseded_at IS NULL" if self.version >= 9 else ""

    def transaction(self) -> sqlite3.Connection:  # ``Results.transaction``
        raise NotImplementedError

    def supersede(self, planned: Iterable[Any]) -> list[str]:
        """Record ``planned`` as the whole current grid of each sweep it names: the sweeps' other runs
        (queued with an earlier version of the spec) are superseded there, and a run planned again
        is current again. Return the ids of unfinished runs that no sweep's grid holds any more
        (the caller decides what becomes of them: ``stop_superseded``)."""
        by_sweep: dict[str, list[str]] = {}
        for run in planned:
            for sweep in run.sweeps:
                by_sweep.setdefault(sweep, []).append(run.run_id)
        now = time.time()
        with self.transaction():
            for sweep, ids in by_sweep.items():
                self.conn.execute(
                    "UPDATE sweep_runs SET superseded_at=? WHERE sweep=? AND superseded_at IS NULL",
                    (now, sweep),
                )
                self.conn.executemany(
                    "UPDATE sweep_runs SET superseded_at=NULL WHERE sweep=? AND run_id=?",
                    [(sweep, run_id) for run_id in ids],
                )
        return self.orphaned()

    def orphaned(self) -> list[str]:
        """Unfinished runs that belong to sweeps but to no sweep's current grid (``supersede``)."""
        rows = self.conn.execute(
            "SELECT r.run_id FROM runs r WHERE r.status NOT IN (?, ?) AND EXISTS (SELECT 1 FROM"
            " sweep_runs s WHERE s.run_id=r.run_id) AND NOT EXISTS (SELECT 1 FROM sweep_runs s"
            " WHERE s.run_id=r.run_id AND s.superseded_at IS NULL) ORDER BY r.created_at, r.rowid",
            tuple(FINISHED),
        )
        return [run_id for (run_id,) in rows]

    def sweeps(self) -> dict[str, int]:
        """Each sweep's name and its number of runs in the grid it was last queued with."""
        current = "COUNT(*) - COUNT(superseded_at)" if self.version >= 9 else "COUNT(*)"
        rows = self.conn.execute(
            f"SELECT sweep, {current} FROM sweep_runs GROUP BY sweep ORDER BY MIN(rowid)"
        )
        return {name: n for name, n in rows}

    def superseded(self) -> dict[str, list[str]]:
        """Run id -> the sweeps whose current grid no longer holds it (``supersede``)."""
        out: dict[str, list[str]] = {}
        if self.version < 9:
            return out
        for sweep, run_id in self.conn.execute(
            "SELECT sweep, run_id FROM sweep_runs WHERE superseded_at IS NOT NULL ORDER BY rowid"
        ):
            out.setdefault(run_id, []).append(sweep)
        return out
