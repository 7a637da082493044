"""The ``rankbias`` Typer app: the root callback (``--version``), every command group registered
in help order, and the console script ``main``."""

from __future__ import annotations

import sys

import typer

from ..provenance import provenance
from . import analysis, attach, launch, runs
from .common import guarded
from .output import run_quietly

app = typer.Typer(
    help="Run sweeps of training runs and watch the rank of their weight matrices "
    "(Galanti et al., 'SGD and Weight Decay Secretly Minimize the Rank of Your Neural Network').",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback must not print the values of variables
)


def _version(value: bool) -> None:
    if value:
        record = provenance()
        sha = record["git_sha"] or "unknown (not a git checkout)"
        typer.echo(f"rankbias {record['rankbias']} (git {sha}, Python {record['python']})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version and git SHA (as recorded with every run) and exit.",
    ),
) -> None:
    """Run sweeps of training runs and watch the rank of their weight matrices."""


for group in (launch, runs, analysis, attach):
    group.register(app)


def main() -> None:
    """The ``rankbias`` console script: ``--debug`` anywhere (or ``RANKBIAS_DEBUG=1``) shows the
    traceback of an unexpected error instead of its one line (``common.guarded``); a closed
    pipe ends quietly (``output.run_quietly``)."""
    sys.exit(guarded(lambda: sys.exit(run_quietly(app)), sys.argv))
