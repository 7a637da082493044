"""What every group of CLI commands shares: the error console and a clean, traceback-free exit."""

from __future__ import annotations

import typer
from rich.console import Console

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` (taken literally: no rich markup or emoji codes) and return the
    Exit to raise."""
    err.print("[red]error:[/red] ", end="", highlight=False)
    err.print(message, markup=False, emoji=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)
