"""What every group of CLI commands shares: the error console, a clean, traceback-free exit, opening
the store (``open_store``, the one rule for its exit status), and the one top-level handler for
what no command expected (``guarded``)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from ..display import printable
from ..store import DB_NAME, NoStore, Store, StoreError, damaged

err = Console(stderr=True)
DEBUG_ENV = "RANKBIAS_DEBUG"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` (taken literally: no rich markup or emoji codes) and return the
    Exit to raise."""
    try:
        err.print("[red]error:[/red] ", end="", highlight=False)
        err.print(printable(message), markup=False, emoji=False, highlight=False, soft_wrap=True)
    except OSError:
        pass  # no terminal left to tell (a hang-up): the exit status still says it
    return typer.Exit(code)


def hard_exit(code: int) -> None:
    """End the process now, output flushed, no exit handlers run (a Ray driver whose cluster is gone:
    Ray's own handlers would block, then abort the process a minute later)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


NO_STORE_EXIT = 2  # ``--store`` names no store: a bad option, as an unknown sweep or field is
UNUSABLE_STORE_EXIT = 1  # the store is there but cannot be used: damaged, read-only for a run, too new


def open_store(directory: Path, create: bool = False) -> Store:
    """The store in ``directory``, or exit with its problem in one line: status 2 when there is no
    store there, 1 when there is one that cannot be opened (every command opens its store here)."""
    try:
        return Store(directory, create=create)
    except NoStore as e:
        raise fail(str(e), NO_STORE_EXIT) from None
    except StoreError as e:
        raise fail(str(e), UNUSABLE_STORE_EXIT) from None


def guarded(main: Callable[[], object], argv: list[str]) -> int:
    """Run ``main`` (the Typer app) and return the exit status. An exception no command expected
    becomes one line - what failed, and where the traceback was written - and status 1; with
    ``--debug`` (removed from ``argv``) or ``RANKBIAS_DEBUG=1`` it is raised as is instead."""
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    while "--debug" in argv:
        argv.remove("--debug")
    try:
        main()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception as error:  # noqa: BLE001 - the one place every unexpected error ends
        if debug:
            raise
        fail(_one_line(error, argv))
        return 1
    return 0


def _one_line(error: Exception, argv: list[str]) -> str:
    if isinstance(error, StoreError):
        return str(error)
    if isinstance(error, sqlite3.DatabaseError):
        return f"{_store_arg(argv) / DB_NAME}: {damaged(error)}"
    log = _write_traceback(error)
    command = " ".join(a for a in argv[1:2] if not a.startswith("-")) or "rankbias"
    where = f"traceback in {log}" if log else "no log could be written"
    return (
        f"unexpected {type(error).__name__} in `rankbias {command}`: "
        f"{str(error).splitlines()[0] if str(error) else ''} "
        f"({where}; run again with --debug to see it)"
    )


def _store_arg(argv: list[str]) -> Path:
    """The ``--store`` a command was given (default ``runs``), for naming the database."""
    for i, arg in enumerate(argv):
        if arg == "--store" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--store="):
            return Path(arg.partition("=")[2])
    return Path("runs")


def _write_traceback(error: Exception) -> Path | None:
    """Write the traceback (no local variables) to the user's cache, owner-only; its path, or None."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rankbias"
    try:
        base.mkdir(parents=True, exist_ok=True)
        path = base / "last-error.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"rankbias {' '.join(sys.argv[1:])}\n")
            fh.write("".join(traceback.format_exception(error)))
        return path
    except OSError:
        return None
