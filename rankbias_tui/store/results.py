"""The store's result tables: metrics, spectra, and the requests other processes leave for the
scheduler. A mixin of ``Store`` (``self.conn`` is its connection); the SQL lives here."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..protocol import SpectrumRow
from .connection import Tx
from .rows import SPECTRUM_COLUMNS, LayerRank, Request, spectrum_row, spectrum_values

REQUESTS = ("launch", "cancel", "resume", "stop")
CHUNK = 500  # runs per query of the ``_many`` reads (older SQLite builds allow 999 parameters)


class Results:
    """Metrics, spectra and requests of one store (mixed into ``Store``)."""

    conn: sqlite3.Connection

    def transaction(self) -> sqlite3.Connection:
        """``with store.transaction():`` groups writes into one commit."""
        return Tx(self.conn)  # type: ignore[return-value]

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
                "SELECT value FROM metrics WHERE run_id=? AND name=? ORDER BY step DESC LIMIT 1",
                (run_id, name),
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

    def latest_many(
        self, run_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, tuple[dict[str, float | None], list[int]]]:
        """``latest_values`` and ``latest_ranks`` (ranks in no set order) of many runs: the same
        index seeks, made inside SQLite in one query per ``CHUNK`` runs (20,000 runs: about 0.2 s,
        where a query per seek from Python takes about 0.7 s). A run the store lacks is left out."""
        values = "".join(  # a stored NULL (a NaN) reads as the text 'null': the name is there
            ", (SELECT COALESCE(value, 'null') FROM metrics WHERE run_id=r.run_id AND name=?"
            " ORDER BY step DESC LIMIT 1)"
            for _ in names
        )
        ranks = (
            ", (SELECT group_concat(rank) FROM spectra WHERE run_id=r.run_id"
            " AND step=(SELECT MAX(step) FROM spectra WHERE run_id=r.run_id))"
        )
        out: dict[str, tuple[dict[str, float | None], list[int]]] = {}
        for chunk in _chunks(run_ids):
            sql = (
                f"SELECT r.run_id{values}{ranks} FROM runs r WHERE r.run_id IN ({','.join('?' * len(chunk))})"
            )
            for row in self.conn.execute(sql, [*names, *chunk]):
                last = {
                    n: None if v == "null" else v
                    for n, v in zip(names, row[1:-1], strict=True)
                    if v is not None
                }
                out[row[0]] = (last, [int(r) for r in row[-1].split(",")] if row[-1] else [])
        return out

    def last_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of each metric of a run: index seeks on the primary key (run_id, name,
        step), two per metric name, whatever the number of rows (a run of 100,000 steps has a
        handful of names; reading its rows took 60 ms a run)."""
        rows = self.conn.execute(
            "WITH RECURSIVE names(name) AS ("
            " SELECT MIN(name) FROM metrics WHERE run_id=:run"
            " UNION ALL SELECT (SELECT MIN(name) FROM metrics WHERE run_id=:run AND name>names.name)"
            " FROM names WHERE names.name IS NOT NULL)"
            " SELECT name, (SELECT value FROM metrics WHERE run_id=:run AND name=names.name"
            " ORDER BY step DESC LIMIT 1) FROM names WHERE name IS NOT NULL",
            {"run": run_id},
        )
        return {name: value for name, value in rows}

    def series_many(self, run_ids: Sequence[str], name: str) -> dict[str, list[tuple[float, float]]]:
        """(epoch, value) of metric ``name`` in step order, for many runs in one query per ``CHUNK``
        runs (a comparison of a whole sweep); a run without it is left out."""
        out: dict[str, list[tuple[float, float]]] = {}
        for chunk in _chunks(run_ids):
            rows = self.conn.execute(
                "SELECT run_id, epoch, value FROM metrics WHERE name=? AND"
                f" run_id IN ({','.join('?' * len(chunk))}) ORDER BY run_id, step",
                [name, *chunk],
            )
            for run_id, epoch, value in rows:
                out.setdefault(run_id, []).append((epoch, value))
        return out

    def ranks_many(self, run_ids: Sequence[str]) -> dict[str, list[LayerRank]]:
        """Every layer's stored rank at every measurement of many runs, in step then layer order,
        without the singular values (most of what ``spectra`` reads); a run without any is left out."""
        out: dict[str, list[LayerRank]] = {}
        for chunk in _chunks(run_ids):
            rows = self.conn.execute(
                "SELECT run_id, step, epoch, layer, d_out, d_in, rank FROM spectra WHERE"
                f" run_id IN ({','.join('?' * len(chunk))}) ORDER BY run_id, step, layer_index",
                chunk,
            )
            for run_id, *rest in rows:
                out.setdefault(run_id, []).append(LayerRank(*rest))
        return out

    def add_spectra(self, rows: Iterable[SpectrumRow]) -> None:
        self.conn.executemany(
            f"INSERT OR REPLACE INTO spectra ({', '.join(SPECTRUM_COLUMNS)})"
            f" VALUES ({','.join('?' * len(SPECTRUM_COLUMNS))})",
            [spectrum_values(r) for r in rows],
        )

    def spectra(self, run_id: str, step: int | None = None) -> list[SpectrumRow]:
        sql = "SELECT * FROM spectra WHERE run_id=?"
        args: list[Any] = [run_id]
        if step is not None:
            sql += " AND step=?"
            args.append(step)
        return [spectrum_row(r) for r in self.conn.execute(sql + " ORDER BY step, layer_index", args)]

    def init_and_final_spectra(self, run_id: str) -> tuple[list[SpectrumRow], list[SpectrumRow]]:
        """A run's first and latest measurements (both empty before the first one)."""
        first, last = self.conn.execute(
            "SELECT MIN(step), MAX(step) FROM spectra WHERE run_id=?", (run_id,)
        ).fetchone()  # two seeks on the primary key (run_id, step, layer_index)
        if first is None:
            return [], []
        return self.spectra(run_id, first), self.spectra(run_id, last)

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
        sql, args = (
            "SELECT id, kind, run_id, spec_path, sweep, created_at FROM requests WHERE done_at IS NULL",
            [],
        )
        if kinds is not None:
            kinds = list(kinds)
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args = kinds
        with self.transaction():
            rows = self.conn.execute(sql + " ORDER BY id", args).fetchall()
            self.conn.executemany(
                "UPDATE requests SET done_at=? WHERE id=?", [(time.time(), r["id"]) for r in rows]
            )
        return [
            Request(r["kind"], r["run_id"], r["spec_path"], r["sweep"], r["created_at"], r["id"])
            for r in rows
        ]

    def last_request_id(self) -> int:
        """The id of the latest request made so far (0: none): a later request has a higher id
        (AUTOINCREMENT never reuses one), whatever the clock of the process that made it says."""
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM requests").fetchone()[0]


def _chunks(run_ids: Sequence[str]) -> Iterable[Sequence[str]]:
    return (run_ids[start : start + CHUNK] for start in range(0, len(run_ids), CHUNK))
