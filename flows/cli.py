"""The ``kpe`` command line (typer + rich). Every subcommand has ``--help``."""

from __future__ import annotations

import json
import os
import sys
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
# Piped or logged output is not wrapped at 80 columns (COLUMNS still wins).
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)

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


@app.command()
def nightly(
    pubmed: PubmedOpt = None,
    s2: S2Opt = None,
    sample: Annotated[bool, typer.Option(
        "--sample", help="Also ingest the real sample MEDLINE file pubmed21n1298.xml.gz (20,788 records).")] = False,
    limit: Annotated[Optional[int], typer.Option(
        help="Extract at most N documents in this run; the rest wait for the next run.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Documents per extraction batch (one transaction).")] = None,
    top_n: Annotated[Optional[int], typer.Option(help="Keyphrases per document.")] = None,
    fast: Annotated[bool, typer.Option(
        "--fast", help="The throughput setting (ExtractionConfig.fast): no per-phrase encoder pass, int8 on CPU."),
    ] = False,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="An extraction setting (ExtractionConfig field), e.g. --set diversity=0.5; "
        "repeatable.")] = None,
) -> None:
    """Run the nightly job: ingest new files, extract keyphrases for new/changed documents, report."""
    from flows.nightly import nightly as nightly_flow
    from kpe.sample_data import sample_medline_path
    from kpe.settings import get_settings

    settings = get_settings()
    pubmed_inputs = list(pubmed) if pubmed else list(settings.pubmed_sources)
    if sample:
        pubmed_inputs.append(str(sample_medline_path(settings.cache_dir, settings.shared_data_dir)))
    config = extraction_settings(set_ or [], top_n=top_n, fast=fast)
    result = nightly_flow(pubmed=pubmed_inputs, s2=list(s2) if s2 else list(settings.s2_sources), limit=limit,
                          batch_size=batch_size, config=config)
    print_summary(result)


def extraction_settings(pairs: list[str], top_n: int | None = None, fast: bool = False) -> dict | None:
    """``--set KEY=VALUE`` pairs (values read as JSON where they parse, else as text), ``--top-n`` and ``--fast``
    as the nightly flow's ``config``; a bad key or value is a clear error."""
    from pydantic import ValidationError

    from kpe.extract.config import ExtractionConfig

    values: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    if top_n:
        values["top_n"] = top_n
    if not values and not fast:
        return None
    try:
        config = ExtractionConfig.fast(**values) if fast else ExtractionConfig(**values)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from None
    return config.model_dump(mode="json")


def print_summary(result: dict) -> None:
    """The few lines a person reads after a nightly run: counts, where the data is, one example query."""
    if result["ingest"]:
        print_rows(result["ingest"], "ingest")
    console.print(
        f"[bold]extracted[/bold] {result['documents']} documents, {result['keyphrases']} keyphrases written, "
        f"{result['removed']} removed, {result['backlog']} documents waiting for the next run "
        f"({result['seconds']:.1f} s, model {result['model_version']}, method {result['method']})"
    )
    console.print(f"[bold]warehouse[/bold] {result['warehouse']}   [bold]lake[/bold] {result['lake']}")
    example = ("SELECT keyphrase, doc_freq FROM keyphrase_frequency ORDER BY doc_freq DESC, keyphrase LIMIT 5")
    console.print(f"[bold]example[/bold]: kpe sql \"{example}\"")
    from kpe.settings import get_settings
    from warehouse.db import connect
    from warehouse.rows import fetch_dicts

    con = connect(get_settings().warehouse_path, read_only=True)
    try:
        print_rows(fetch_dicts(con, example))
    finally:
        con.close()


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A SQL query over the warehouse (read-only).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or parquet.")] = "table",
    out: Annotated[Optional[Path], typer.Option(help="Write the result to this file (required for parquet).")] = None,
) -> None:
    """Query the warehouse with SQL on a read-only connection (writes are refused)."""
    import duckdb

    from kpe.settings import get_settings
    from warehouse.db import connect

    if format not in ("table", "csv", "json", "parquet"):
        raise typer.BadParameter("--format must be table, csv, json or parquet")
    if format == "parquet" and out is None:
        raise typer.BadParameter("--format parquet needs --out FILE.parquet")
    con = connect(get_settings().warehouse_path, read_only=True)
    try:
        result = con.sql(query).to_arrow_table() if query.strip() else None
    except duckdb.Error as exc:
        message = str(exc)
        if "read-only" in message.lower() or "read only" in message.lower():
            console.print("[red]error:[/red] the warehouse is opened read-only by `kpe sql`; "
                          "this statement would change it and was refused.")
        else:
            console.print(f"[red]error:[/red] {message}")
        raise typer.Exit(1) from None
    finally:
        con.close()
    if result is None:
        raise typer.BadParameter("empty query")
    write_result(result, format, out)


def write_result(table, format: str, out: Path | None) -> None:  # noqa: ANN001 - a pyarrow.Table
    """Print or save an Arrow table as a rich table, CSV, JSON lines or Parquet."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if format == "parquet":
        pq.write_table(table, out)
        console.print(f"wrote {table.num_rows} rows to {out}")
        return
    if format == "csv":
        if out:
            pacsv.write_csv(table, out)
        else:
            sink = pacsv.CSVWriter(sys.stdout.buffer, table.schema)
            sink.write_table(table)
            sink.close()
        return
    rows = table.to_pylist()
    if format == "json":
        text = "\n".join(json.dumps(r, default=str, ensure_ascii=False) for r in rows)
        if out:
            out.write_text(text + "\n", encoding="utf-8")
        else:
            print(text)
        return
    print_rows(rows)


@app.command()
def keyphrases(doc_id: Annotated[str, typer.Argument(help="Document id, e.g. pmid:33397041.")]) -> None:
    """Show one document's current keyphrases with its title, year and source."""
    from kpe.settings import get_settings
    from warehouse.db import connect
    from warehouse.extraction import document_keyphrases

    con = connect(get_settings().warehouse_path, read_only=True)
    try:
        rows = document_keyphrases(con, doc_id)
    finally:
        con.close()
    if not rows:
        console.print(f"no current keyphrases for {doc_id} (unknown, deleted, or not extracted yet)")
        raise typer.Exit(1)
    console.print(f"[bold]{rows[0]['title']}[/bold] ({rows[0]['year']}, {rows[0]['source']})")
    print_rows([{k: r[k] for k in ("rank", "keyphrase", "score", "method", "model_version")} for r in rows])


def _register_area_commands() -> None:
    """Commands that live beside their flows: evaluation, training and the model registry."""
    from flows.cli_evaluate import evaluate_command, export_silver_command
    from flows.cli_models import models_app, train_command

    app.command("evaluate")(evaluate_command)
    app.command("export-silver")(export_silver_command)
    app.command("train")(train_command)
    app.add_typer(models_app, name="models")


_register_area_commands()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
