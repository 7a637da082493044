"""The ``rankbias`` command line: thin Typer commands that hand their work to one function each.

    app.py       the Typer app, ``--version``, the console script ``main``; registers the groups
    options.py   the options commands share, declared once; the one SchedulerOptions builder
    launch.py    run, validate (and the headless and dry-run paths of run)
    runs.py      export, cancel, list, show
    analysis.py  plot, claims, report
    attach.py    attach, stop (the terminal UI on a store)
    common.py    errors as one line and exit codes, opening a store
    output.py    tables for terminals and pipes (table, csv, json)
    headless.py  the rich progress view of ``run --headless``

A new command goes in the group module it belongs to (or a new one registered in ``app.py``).
"""

from .app import app, main

__all__ = ["app", "main"]
