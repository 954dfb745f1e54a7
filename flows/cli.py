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
    "--pubmed", help="MEDLINE XML file, folder, glob or https URL (repeatable; more files may follow, as a shell "
    "glob gives them: --pubmed data/*.xml.gz).")]
S2Opt = Annotated[Optional[list[str]], typer.Option(
    "--s2", help="Semantic Scholar file, folder, glob or https URL (repeatable; more files may follow, as a shell "
    "glob gives them: --s2 data/*.jsonl.gz).")]
FilesArg = Annotated[Optional[list[str]], typer.Argument(
    metavar="FILES", show_default=False,
    help="More input files, each given to its source by its name: *.xml and *.xml.gz to --pubmed; *.jsonl, "
    "*.json and other *.gz to --s2. A folder or URL needs --pubmed or --s2 in front of it.")]


def inputs_by_source(pubmed: list[str] | None, s2: list[str] | None, files: list[str] | None) -> dict[str, list[str]]:
    """The inputs of each source: its option's values plus the loose FILES assigned to it by name (see
    ``kpe.inputs.assign_inputs``); a loose folder, URL or unknown file name is a clear usage error."""
    from kpe.inputs import assign_inputs

    try:
        return assign_inputs({"pubmed": pubmed or [], "s2": s2 or []}, files or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILES") from None


def read_connection():  # noqa: ANN201 - a duckdb connection
    """The warehouse, read-only (waits KPE_READ_WAIT_S for a running job's commit); a clear error otherwise."""
    from kpe.settings import get_settings
    from warehouse.db import WarehouseBusy, connect

    try:
        return connect(get_settings().warehouse_path, read_only=True)
    except (FileNotFoundError, WarehouseBusy) as exc:
        _error(str(exc))


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
def ingest(files: FilesArg = None, pubmed: PubmedOpt = None, s2: S2Opt = None) -> None:
    """Ingest MEDLINE and Semantic Scholar inputs into Parquet shards and the DuckDB documents table.

    Bad records are quarantined (with the reason) and the rest of their file is ingested. Exits 1 when an
    input is partial (its end could not be read) or failed (it could not be read at all); the others are
    ingested all the same.
    """
    inputs = inputs_by_source(pubmed, s2, files)
    if not any(inputs.values()):
        raise typer.BadParameter("give at least one --pubmed or --s2 input")
    from flows.ingest import ingest as ingest_flow
    from flows.ingest import ingest_result
    from kpe.settings import get_settings
    from kpe.url_secrets import hide_url_secrets
    from warehouse.db import WarehouseBusy, writer_lock

    try:  # the writer lock first: a refused run starts no flow run and prints one line
        with writer_lock(get_settings().warehouse_path, command="kpe ingest"):
            state = ingest_flow(pubmed=hide_url_secrets(inputs["pubmed"]), s2=hide_url_secrets(inputs["s2"]),
                                return_state=True)
            result = ingest_result(state)  # a crash of the flow itself is raised here
    except WarehouseBusy as exc:
        _error(str(exc))
    print_rows([{k: r[k] for k in ("name", "status", "records", "new", "updated", "unchanged", "deleted",
                                   "quarantined", "seconds")} for r in result["files"]], "files")
    print_rows(result["summary"], "ingest summary")
    bad = [r for r in result["files"] if r["status"] in ("partial", "failed")]
    for r in bad:  # the error names the input by its full path
        where = r.get("uri") or r["name"]
        error = r["error"] if (r["error"] or "").startswith(where) else f"{where}: {r['error']}"
        console.print(f"[yellow]{r['status']}[/yellow]: {error}", soft_wrap=True)
    if bad:
        problems = result["problems"]
        console.print(f"[red]ingest finished with problems:[/red] {problems['partial']} partial, "
                      f"{problems['failed']} failed input(s); {problems['quarantined']} records quarantined "
                      "(the flow run is Failed)")
        raise typer.Exit(1)


@app.command()
def status() -> None:
    """Row counts of every warehouse table, and the ingest watermark."""
    from kpe.settings import get_settings
    from warehouse.documents import table_counts
    from warehouse.ingest_files import list_files

    settings = get_settings()
    con = read_connection()
    try:
        print_rows([{"table": k, "rows": v} for k, v in table_counts(con).items()], f"{settings.warehouse_path}")
        print_rows([{k: f[k] for k in ("file_id", "source", "name", "status", "n_records", "n_new", "n_updated",
                                       "n_deleted", "n_quarantined", "error")} for f in list_files(con)],
                   "ingested files")
    finally:
        con.close()


@app.command()
def nightly(
    files: FilesArg = None,
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
    from flows.nightly import nightly_result
    from kpe.sample_data import sample_medline_path
    from kpe.settings import get_settings

    inputs = inputs_by_source(pubmed, s2, files)
    settings = get_settings()
    pubmed_inputs = inputs["pubmed"] or list(settings.pubmed_sources)
    if sample:
        pubmed_inputs.append(str(sample_medline_path(settings.cache_dir, settings.shared_data_dir)))
    config = extraction_settings(set_ or [], top_n=top_n, fast=fast)
    from kpe.url_secrets import hide_url_secrets
    from warehouse.db import WarehouseBusy, writer_lock

    try:  # the writer lock first: a refused run starts no flow run and prints one line
        with writer_lock(settings.warehouse_path, command="kpe nightly"):
            state = nightly_flow(pubmed=hide_url_secrets(pubmed_inputs),
                                 s2=hide_url_secrets(inputs["s2"] or list(settings.s2_sources)), limit=limit,
                                 batch_size=batch_size, config=config, return_state=True)
            result = nightly_result(state)
    except WarehouseBusy as exc:
        _error(str(exc))
    print_summary(result)
    problems = result["ingest_problems"]
    if problems["partial"] or problems["failed"]:
        _error(f"{problems['partial']} partial and {problems['failed']} failed input(s): extraction ran, but the run "
               "ends failed (see `kpe status` and the ingest-problems artifact)")


def extraction_settings(pairs: list[str], top_n: int | None = None, fast: bool = False) -> dict | None:
    """``--set KEY=VALUE`` pairs (values read as JSON where they parse, else as text), ``--top-n`` and ``--fast``
    as the nightly flow's ``config``; a bad key or value is a clear error."""
    from pydantic import ValidationError

    from flows.cli_evaluate import config_pairs
    from kpe.extract.config import ExtractionConfig

    values = config_pairs(pairs)
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
        f"({result['seconds']:.1f} s, model {result['model_version']}, method {result['method']}, "
        f"{result['precision']} on {result['device']})"
    )
    console.print(f"[bold]warehouse[/bold] {result['warehouse']}   [bold]lake[/bold] {result['lake']}")
    from warehouse.examples import NIGHTLY_EXAMPLE as example

    console.print(f"[bold]example[/bold]: kpe sql \"{example}\"")
    from warehouse.rows import fetch_dicts

    con = read_connection()
    try:
        print_rows(fetch_dicts(con, example))
    finally:
        con.close()


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A SQL query over the warehouse (read-only, sandboxed).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or parquet.")] = "table",
    out: Annotated[Optional[Path], typer.Option(help="Write the result to this file (required for parquet).")] = None,
    timeout: Annotated[Optional[float], typer.Option(
        help="Stop the query after this many seconds (default KPE_SQL_TIMEOUT_S, 300).")] = None,
) -> None:
    """Query the warehouse with SQL in a sandbox: read-only, no other file, extension or setting can be touched.

    Exports go through --format/--out, which this command writes itself. Ctrl-C or --timeout stop a long query.
    """
    from kpe.settings import get_settings
    from warehouse.db import (
        QueryStopped,
        SandboxRefused,
        WarehouseBusy,
        check_sandboxed_query,
        connect_sandboxed,
        run_query,
    )

    if format not in ("table", "csv", "json", "parquet"):
        raise typer.BadParameter("--format must be table, csv, json or parquet")
    if format == "parquet" and out is None:
        raise typer.BadParameter("--format parquet needs --out FILE.parquet")
    if not query.strip():
        raise typer.BadParameter("empty query")
    settings = get_settings()
    try:
        con = connect_sandboxed(settings.warehouse_path, memory_limit=settings.sql_memory_limit)
    except (FileNotFoundError, WarehouseBusy) as exc:
        _error(str(exc))
    try:
        check_sandboxed_query(con, query)
        result = run_query(con, query, timeout_s=timeout or settings.sql_timeout_s)
    except (QueryStopped, SandboxRefused) as exc:
        _error(str(exc))
    except Exception as exc:  # duckdb.Error and friends: one line, no traceback
        _error(sql_error_message(exc))
    finally:
        con.close()
    if result is None:
        console.print("statement ran; it returns no rows")
        return
    write_result(result, format, out)


def _error(message: str) -> None:
    """Print one red line and exit 1."""
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(1)


def sql_error_message(exc: Exception) -> str:
    """One line a person can act on for a refused or failed ``kpe sql`` statement."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = message.lower()
    if "read-only" in low or "read only" in low:
        return ("`kpe sql` opens the warehouse read-only: this statement would change it and was refused "
                f"({message})")
    if "file system operations are disabled" in low or "external extensions is disabled" in low:
        return ("`kpe sql` cannot read or write files outside the warehouse, attach databases, or install or load "
                "extensions; export a result with --format csv|json|parquet --out FILE "
                f"({message})")
    if "configuration has been locked" in low:
        return f"`kpe sql` cannot change DuckDB settings ({message})"
    return message


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
    from warehouse.extraction import document_keyphrases

    con = read_connection()
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
