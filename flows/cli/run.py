"""``kpe ingest``, ``kpe nightly`` and ``kpe status``: the jobs, run in this process without a Prefect server."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from flows.cli.console import console, fail, print_rows, read_connection
from flows.cli.options import FilesArg, PubmedOpt, S2Opt, extraction_settings, inputs_by_source


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
        fail(str(exc))
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
        "--fast", help="The throughput setting (ExtractionConfig.fast): no per-phrase encoder pass, int8 on CPU "
        "(bf16 where it has AMX)."),
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
        fail(str(exc))
    print_summary(result)
    problems = result["ingest_problems"]
    if problems["partial"] or problems["failed"]:
        fail(f"{problems['partial']} partial and {problems['failed']} failed input(s): extraction ran, but the run "
               "ends failed (see `kpe status` and the ingest-problems artifact)")


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
    for kind, a in (result.get("annotations") or {}).items():
        if a["model_version"] is None:
            console.print(f"[bold]{a['output']}[/bold] ({kind}): no production model, skipped")
        else:
            console.print(f"[bold]annotated[/bold] {a['documents']} documents, {a['rows']} {a['output']} rows written, "
                          f"{a['removed']} removed, {a['backlog']} waiting ({a['seconds']:.1f} s, model "
                          f"{a['model_version']})")
    console.print(f"[bold]warehouse[/bold] {result['warehouse']}   [bold]lake[/bold] {result['lake']}")
    from warehouse.examples import NIGHTLY_EXAMPLE as example

    console.print(f"[bold]example[/bold]: kpe sql \"{example}\"")
    from warehouse.rows import fetch_dicts

    con = read_connection()
    try:
        print_rows(fetch_dicts(con, example))
    finally:
        con.close()


