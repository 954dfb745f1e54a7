"""The ingestion flow: MEDLINE and Semantic Scholar inputs -> cleaned Parquet shards + DuckDB documents.

A run with a partial or failed input (a truncated file, an unreadable one, a symlink loop, an unsupported file)
still ingests every other input and every good record, then ends in a **Failed** flow-run state whose message
counts the problems (the ``ingest-summary`` and ``ingest-problems`` artifacts give the details), so that a
Prefect automation or a scheduler notices; ``kpe ingest`` exits 1. Quarantined records alone (bad records in
files that were otherwise read to their end) do not fail the run: they are counted in the artifacts.

Called as a subflow, use ``ingest(..., return_state=True)`` and :func:`ingest_result`: a plain call raises
:class:`IngestProblems` (which carries the result) when there were problems.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Failed, State

from kpe.ingest import PROBLEM_STATUSES, FileReport
from kpe.settings import get_settings
from tasks.ingest import ingest_file, plan_inputs, sweep_lake
from warehouse.db import writer_lock
from warehouse.examples import QUARANTINE_EXAMPLE

SUMMARY_FIELDS = ("files", "partial", "failed", "records", "new", "updated", "unchanged", "deleted", "quarantined",
                  "seconds")


class IngestProblems(RuntimeError):
    """Some inputs of an ingest run were partial or failed. ``result`` is the flow's full result (the same
    dict a run without problems returns); the flow run's state is Failed with this as its data."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (result persistence, the reader process)
        return (IngestProblems, (str(self), self.result))


def ingest_result(state: State) -> dict[str, Any]:
    """The ingest flow's result from its final state (``ingest(..., return_state=True)``), with or without
    problems (``result["problems"]`` counts them); any other failure is raised."""
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, IngestProblems) and outcome.result is not None:
        return outcome.result
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def summarize(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-source totals for the artifact and the CLI (skipped files count as files, with no records)."""
    totals: dict[str, dict[str, Any]] = defaultdict(lambda: dict.fromkeys(SUMMARY_FIELDS, 0))
    for report in reports:
        row = totals[report["source"]]
        row["files"] += 1
        for status in PROBLEM_STATUSES:
            row[status] += report["status"] == status
        for name in SUMMARY_FIELDS[3:]:
            row[name] += report[name]
    return [{"source": source, **{k: (round(v, 1) if k == "seconds" else v) for k, v in row.items()}}
            for source, row in sorted(totals.items())]


def problems_markdown(reports: list[dict[str, Any]], removed: list[str]) -> str:
    """The ``ingest-problems`` artifact: every partial or failed input with its full path and error."""
    bad = [r for r in reports if r["status"] in PROBLEM_STATUSES]
    lines = ["# Ingest problems", ""]
    if not bad:
        lines.append("No partial or failed input.")
    else:
        lines += ["| input | status | records kept | error |", "|---|---|---|---|"]
        lines += [f"| `{r.get('uri') or r['name']}` | {r['status']} | {r['records']} | "
                  f"{(r['error'] or '').replace('|', '/')} |" for r in bad]
    quarantined = sum(r["quarantined"] for r in reports)
    lines += ["", f"Records quarantined in this run: {quarantined} (see the `quarantine` table: "
                  f"`kpe sql \"{QUARANTINE_EXAMPLE}\"`)."]
    if removed:
        lines += ["", f"Leftovers of interrupted runs removed from the lake: {len(removed)}"]
    return "\n".join(lines) + "\n"


@flow(name="ingest", log_prints=True)
def ingest(pubmed: list[str] | None = None, s2: list[str] | None = None) -> dict[str, Any]:
    """Ingest MEDLINE files and Semantic Scholar files/URLs; files already ingested are skipped.

    Files are processed one after another: DuckDB has one writer, and MEDLINE update files must apply in
    order. Returns per-file reports, per-source totals and ``problems`` (partial / failed inputs, quarantined
    records); with a partial or failed input the run ends Failed (see the module docstring). The run holds the
    warehouse's writer lock (a second ingest or nightly run refuses, see ``warehouse.db``).
    """
    with writer_lock(get_settings().warehouse_path, command="kpe ingest"):
        return _ingest(pubmed, s2)


def _ingest(pubmed: list[str] | None, s2: list[str] | None) -> dict[str, Any] | State:
    settings = get_settings()
    logger = get_run_logger()
    pubmed = list(pubmed if pubmed is not None else settings.pubmed_sources)
    s2 = list(s2 if s2 is not None else settings.s2_sources)
    started = time.perf_counter()
    removed = sweep_lake()
    specs = plan_inputs(pubmed, s2)
    reports = []
    for spec in specs:  # one input failing (after its retries) never stops the others
        state = ingest_file(spec, return_state=True)
        if state.is_completed():
            reports.append(state.result())
        else:
            exc = state.result(raise_on_failure=False)
            error = f"{spec.uri}: {type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
            reports.append(asdict(FileReport(spec.source, spec.name, "failed", error=error, uri=spec.uri)))
    summary = summarize(reports)
    bad = [r for r in reports if r["status"] in PROBLEM_STATUSES]
    problems = {status: sum(r["status"] == status for r in reports) for status in PROBLEM_STATUSES}
    problems["quarantined"] = sum(r["quarantined"] for r in reports)
    for report in bad:
        logger.error("%s: %s (%s)", report.get("uri") or report["name"], report["status"], report["error"])
    seconds = time.perf_counter() - started
    create_table_artifact(
        key="ingest-summary",
        table=summary or [{"source": "-", **dict.fromkeys(SUMMARY_FIELDS, 0)}],
        description=f"Ingest: {len(specs)} input units, {problems['partial']} partial, {problems['failed']} "
                    f"failed, {problems['quarantined']} records quarantined, {seconds:.1f} s",
    )
    create_markdown_artifact(key="ingest-problems", markdown=problems_markdown(reports, removed),
                             description=f"{len(bad)} partial or failed input(s)")
    logger.info("ingest finished: %s", summary)
    result = {"files": reports, "summary": summary, "problems": problems, "lake_leftovers_removed": removed}
    if bad:
        message = (f"{problems['partial']} partial and {problems['failed']} failed of {len(specs)} inputs "
                   f"({problems['quarantined']} records quarantined): "
                   + "; ".join(f"{r.get('uri') or r['name']} {r['status']}" for r in bad))[:1000]
        return Failed(message=message, data=IngestProblems(message, result))
    return result
