"""The CLI's one console, its one way to fail, and the shared table printer."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

# Piped or logged output is not wrapped at 80 columns (COLUMNS still wins).
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
_errors = Console(stderr=True, width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 160)


def fail(message: str) -> NoReturn:
    """Print one red ``error:`` line on stderr and exit 1."""
    _errors.print(f"[red]error:[/red] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(1)


def print_rows(rows: list[dict], title: str | None = None) -> None:
    """Print dictionaries as one rich table."""
    if not rows:
        console.print(f"[dim]{title or ''}: no rows[/dim]")
        return
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(str(column), overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row.values()))
    console.print(table)


def read_connection():  # noqa: ANN201 - a duckdb connection
    """The warehouse, read-only (waits KPE_READ_WAIT_S for a running job's commit); a clear error otherwise."""
    from kpe.settings import get_settings
    from warehouse.db import WarehouseBusy, connect

    try:
        return connect(get_settings().warehouse_path, read_only=True)
    except (FileNotFoundError, WarehouseBusy) as exc:
        fail(str(exc))
