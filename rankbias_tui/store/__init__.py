"""The SQLite store: the only code that reads or writes a results database, and the owner of the
names of every file in a results directory (``StorePaths``).

One database per results directory (``DIR/rankbias.sqlite``), WAL mode with a busy timeout so
readers (CLI, terminal UI) never block the writer. The scheduler is the one writer of runs,
metrics and spectra; other processes add ``Request`` rows (launch, cancel, resume, stop), which the
scheduler takes (and, holding the scheduler lock when none runs, mark a run cancelled). What a
request means and who answers it is ``rankbias_tui.scheduler``'s business, not this package's.

    paths.py       StorePaths: every file of a results directory, named once
    connection.py  opening the file (read-only or writable), migrations, transactions, identity
    schema.py      the numbered migrations (``PRAGMA user_version``)
    rows.py        the row types read back (RunRow, Segment, Request; spectra as protocol.SpectrumRow)
    database.py    Store: opening and the runs table
    results.py     metrics, spectra and requests (a mixin of Store)
    files.py       the lock, state and log files opened safely (never through a link); who may write
    owner.py       who owns a running run (scheduler pid and boot), to tell dead owners from live
"""

from ..measures import FINISHED
from ..protocol import SpectrumRow
from .connection import NoStore, StoreError, damaged, is_full, make_private_directory, migrate
from .database import Store
from .files import (
    UnsafeStore,
    check_directory,
    network_warning,
    open_private,
    read_end,
    read_from,
    remove_own,
    write_private,
)
from .paths import DB_NAME, StorePaths
from .results import REQUESTS
from .rows import Request, RunRow, Segment
from .schema import SCHEMA_VERSION

__all__ = [
    "DB_NAME",
    "FINISHED",
    "NoStore",
    "REQUESTS",
    "SCHEMA_VERSION",
    "Request",
    "RunRow",
    "Segment",
    "SpectrumRow",
    "Store",
    "StoreError",
    "StorePaths",
    "UnsafeStore",
    "check_directory",
    "damaged",
    "is_full",
    "make_private_directory",
    "migrate",
    "network_warning",
    "open_private",
    "read_end",
    "read_from",
    "remove_own",
    "write_private",
]
