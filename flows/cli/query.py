"""``kpe sql`` (sandboxed, read-only) and ``kpe keyphrases DOC_ID``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.console import console, fail, print_rows, read_connection


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
        fail(str(exc))
    try:
        check_sandboxed_query(con, query)
        result = run_query(con, query, timeout_s=timeout or settings.sql_timeout_s)
    except (QueryStopped, SandboxRefused) as exc:
        fail(str(exc))
    except Exception as exc:  # duckdb.Error and friends: one line, no traceback
        fail(sql_error_message(exc))
    finally:
        con.close()
    if result is None:
        console.print("statement ran; it returns no rows")
        return
    write_result(result, format, out)


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


