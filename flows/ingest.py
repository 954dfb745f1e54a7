"""The ingestion flow: MEDLINE and Semantic Scholar inputs -> cleaned Parquet shards + DuckDB documents."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from kpe.settings import get_settings
from tasks.ingest import ingest_file, plan_inputs

SUMMARY_FIELDS = ("files", "records", "new", "updated", "unchanged", "deleted", "quarantined", "seconds")


def summarize(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-source totals for the artifact and the CLI (skipped files count as files, with no records)."""
    totals: dict[str, dict[str, Any]] = defaultdict(lambda: dict.fromkeys(SUMMARY_FIELDS, 0))
    for report in reports:
        row = totals[report["source"]]
        row["files"] += 1
        for name in SUMMARY_FIELDS[1:]:
            row[name] += report[name]
    return [{"source": source, **{k: (round(v, 1) if k == "seconds" else v) for k, v in row.items()}}
            for source, row in sorted(totals.items())]


@flow(name="ingest", log_prints=True)
def ingest(pubmed: list[str] | None = None, s2: list[str] | None = None) -> dict[str, Any]:
    """Ingest MEDLINE files and Semantic Scholar files/URLs; files already ingested are skipped.

    Files are processed one after another: DuckDB has one writer, and MEDLINE update files must apply in
    order. Returns per-file reports and per-source totals.
    """
    settings = get_settings()
    logger = get_run_logger()
    pubmed = list(pubmed if pubmed is not None else settings.pubmed_sources)
    s2 = list(s2 if s2 is not None else settings.s2_sources)
    started = time.perf_counter()
    specs = plan_inputs(pubmed, s2)
    reports = [ingest_file(spec) for spec in specs]
    summary = summarize(reports)
    problems = [r for r in reports if r["status"] in ("partial", "failed")]
    for report in problems:
        logger.warning("%s: %s (%s)", report["name"], report["status"], report["error"])
    create_table_artifact(
        key="ingest-summary",
        table=summary or [{"source": "-", **dict.fromkeys(SUMMARY_FIELDS, 0)}],
        description=f"Ingest: {len(specs)} input units, {len(problems)} with problems, "
                    f"{time.perf_counter() - started:.1f} s",
    )
    logger.info("ingest finished: %s", summary)
    return {"files": reports, "summary": summary}
