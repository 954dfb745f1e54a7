"""The ``kpe`` command line (typer + rich). Every subcommand has ``--help``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from flows.environment import apply_defaults

apply_defaults()

app = typer.Typer(
    name="kpe",
    help="Nightly keyphrase pipeline for PubMed and Semantic Scholar: ingest, extract, train, evaluate, query.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
console = Console()

PubmedOpt = Annotated[Optional[list[str]], typer.Option(
    "--pubmed", help="MEDLINE XML file, folder, glob or https URL (repeatable).")]
S2Opt = Annotated[Optional[list[str]], typer.Option(
    "--s2", help="Semantic Scholar file, folder, glob or https URL (repeatable).")]


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


@app.command()
def ingest(pubmed: PubmedOpt = None, s2: S2Opt = None) -> None:
    """Ingest MEDLINE and Semantic Scholar inputs into Parquet shards and the DuckDB documents table."""
    if not pubmed and not s2:
        raise typer.BadParameter("give at least one --pubmed or --s2 input")
    from flows.ingest import ingest as ingest_flow

    result = ingest_flow(pubmed=pubmed or [], s2=s2 or [])
    print_rows([{k: r[k] for k in ("name", "status", "records", "new", "updated", "unchanged", "deleted",
                                   "quarantined", "seconds")} for r in result["files"]], "files")
    print_rows(result["summary"], "ingest summary")
    if any(r["status"] in ("partial", "failed") for r in result["files"]):
        for r in result["files"]:
            if r["error"]:
                console.print(f"[yellow]{r['name']}[/yellow]: {r['status']}: {r['error']}")


@app.command()
def status() -> None:
    """Row counts of every warehouse table, and the ingest watermark."""
    from kpe.settings import get_settings
    from warehouse.db import connect
    from warehouse.documents import table_counts
    from warehouse.ingest_files import list_files

    settings = get_settings()
    con = connect(settings.warehouse_path, read_only=True)
    try:
        print_rows([{"table": k, "rows": v} for k, v in table_counts(con).items()], f"{settings.warehouse_path}")
        print_rows([{k: f[k] for k in ("file_id", "source", "name", "status", "n_records", "n_new", "n_updated",
                                       "n_deleted", "n_quarantined", "error")} for f in list_files(con)],
                   "ingested files")
    finally:
        con.close()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
