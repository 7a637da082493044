"""The store's schema: numbered migrations, applied in order by ``store.migrate`` on open.

A database records the number of migrations it has had in ``PRAGMA user_version``. A change to the
schema is a new entry at the end of ``MIGRATIONS``, never an edit of an old one, so that every
database written by an older rankbias stays readable. Statements are separated by ``;`` and hold none; a migration that needs a ``;``
inside a statement (a trigger's body) is a tuple of whole statements instead.
"""

from __future__ import annotations

MIGRATIONS: list[str | tuple[str, ...]] = [
    # 1: runs, their sweep membership, scalar metrics over steps, spectra per measurement.
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        sweep TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        device TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        error TEXT,
        step INTEGER NOT NULL DEFAULT 0,
        total_steps INTEGER,
        epoch REAL NOT NULL DEFAULT 0,
        checkpoint_step INTEGER
    );
    CREATE TABLE sweep_runs (
        sweep TEXT NOT NULL, run_id TEXT NOT NULL, position INTEGER NOT NULL,
        PRIMARY KEY (sweep, run_id)
    );
    CREATE TABLE metrics (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, epoch REAL NOT NULL,
        name TEXT NOT NULL, value REAL,
        PRIMARY KEY (run_id, name, step)
    ) WITHOUT ROWID;
    CREATE TABLE spectra (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, epoch REAL NOT NULL,
        layer_index INTEGER NOT NULL, layer TEXT NOT NULL,
        d_out INTEGER NOT NULL, d_in INTEGER NOT NULL, m INTEGER NOT NULL,
        svals BLOB NOT NULL, rank INTEGER NOT NULL, rank_eps REAL NOT NULL,
        stable_rank REAL, effective_rank REAL, spectral_norm REAL, fro_norm REAL, bound REAL,
        PRIMARY KEY (run_id, step, layer_index)
    );
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, run_id TEXT,
        created_at REAL NOT NULL, done_at REAL
    );
    """,
    # 2: provenance (package version, git SHA) and attempt count, for reproducibility.
    """
    ALTER TABLE runs ADD COLUMN provenance TEXT;
    ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    CREATE INDEX runs_status ON runs(status);
    """,
    # 3: requests name what they ask for in their own columns: a launch's spec file and sweep
    # (before, a launch kept ``<spec path>::<sweep>`` in run_id). A pending old launch is split at
    # its first ``::``.
    """
    ALTER TABLE requests ADD COLUMN spec_path TEXT;
    ALTER TABLE requests ADD COLUMN sweep TEXT;
    UPDATE requests SET spec_path = substr(run_id, 1, instr(run_id, '::') - 1),
        sweep = substr(run_id, instr(run_id, '::') + 2), run_id = NULL
        WHERE kind = 'launch' AND instr(run_id, '::') > 0
    """,
    # 4: the training protocol a run was trained under (engine.loop.PROTOCOL_VERSION; 2 since
    # issue 11). Runs that had started before were trained under protocol 1.
    """
    ALTER TABLE runs ADD COLUMN protocol_version INTEGER;
    UPDATE runs SET protocol_version = 1 WHERE started_at IS NOT NULL
    """,
    # 5: the scheduler process that owns a running run (``owner.token``: pid and start time, so a
    # run whose scheduler died shows as interrupted), warnings recorded on a run (one per line),
    # and the execution mode of each segment a run was trained in (a resume starts a new segment;
    # ``pack``: the JSON list of the ids trained together, in pack order; one id for a single run).
    """
    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE runs ADD COLUMN warnings TEXT;
    CREATE TABLE segments (
        run_id TEXT NOT NULL, started_at REAL NOT NULL, from_step INTEGER NOT NULL,
        device TEXT, mode TEXT NOT NULL, pack TEXT NOT NULL
    );
    CREATE INDEX segments_run ON segments(run_id)
    """,
    # 6: the seconds a run has been training, summed over its attempts (``started_at`` is the start of
    # the latest attempt): what ``duration_s`` and the ETA use. Older runs count their last attempt.
    """
    ALTER TABLE runs ADD COLUMN active_s REAL NOT NULL DEFAULT 0;
    UPDATE runs SET active_s = finished_at - started_at
        WHERE finished_at IS NOT NULL AND started_at IS NOT NULL AND finished_at > started_at
    """,
    # 7: the SHA-256 of each acknowledged checkpoint file, as the worker wrote it (the latest two per
    # run, as on disk): a resume verifies the file against it (``checkpoints.read_verified``).
    """
    CREATE TABLE checkpoint_digests (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, digest TEXT NOT NULL,
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID
    """,
    # 8: the provenance of each segment (each attempt), as its worker said it (``protocol.Started``):
    # rankbias version, git SHA and dirty flag, Python, torch, CUDA, cuDNN, GPU. NULL: not said.
    """
    ALTER TABLE segments ADD COLUMN provenance TEXT
    """,
    # 9: when a run left its sweep's grid (the spec changed: ``Store.supersede``); NULL while it is in
    # the grid the sweep was last queued with. Its data is kept; the sweep's views leave it out.
    """
    ALTER TABLE sweep_runs ADD COLUMN superseded_at REAL
    """,
    # 10: a change counter on runs, so a reader asks for the runs written since it last looked
    # (``Store.runs_changed``) instead of reading every run: the terminal UI polls twice a second and
    # a store may hold 20,000 runs. Triggers keep it, so no writer has to remember to; a run's
    # ``changed`` is the largest in the table after its latest insert or update.
    (
        "ALTER TABLE runs ADD COLUMN changed INTEGER NOT NULL DEFAULT 0",
        "UPDATE runs SET changed = rowid",
        "CREATE INDEX runs_changed ON runs(changed)",
        """CREATE TRIGGER runs_changed_on_update AFTER UPDATE ON runs FOR EACH ROW
        WHEN NEW.changed = OLD.changed
        BEGIN UPDATE runs SET changed = (SELECT MAX(changed) FROM runs) + 1 WHERE rowid = NEW.rowid; END""",
        """CREATE TRIGGER runs_changed_on_insert AFTER INSERT ON runs FOR EACH ROW
        BEGIN UPDATE runs SET changed = (SELECT MAX(changed) FROM runs) + 1 WHERE rowid = NEW.rowid; END""",
    ),
    # 11: where each acknowledged checkpoint file is when it is not in the store's checkpoint
    # directory (a Ray sweep's ``--checkpoint-dir``: a shared path or a URI); NULL: in the store.
    """
    ALTER TABLE checkpoint_digests ADD COLUMN location TEXT
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
