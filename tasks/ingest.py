"""Prefect tasks of the ingestion flow: plan the inputs, ingest one unit (with retries)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from kpe.ingest import ingest_unit
from kpe.inputs import InputSpec, pubmed_specs, s2_specs, unit_from_spec
from kpe.settings import get_settings
from warehouse.db import connect
from warehouse.ingest_store import DuckDBIngestStore


@task(name="plan-inputs", retries=2, retry_delay_seconds=10, cache_policy=NONE)
def plan_inputs(pubmed: list[str], s2: list[str]) -> list[InputSpec]:
    """Expand paths/globs/folders and download URLs (retries, md5 check) into ordered ingest specs."""
    settings = get_settings()
    http = {"retries": settings.http_retries, "backoff_s": settings.http_backoff_s,
            "timeout_s": settings.http_timeout_s}
    download_dir = settings.cache_dir / "downloads"
    specs = pubmed_specs(pubmed, download_dir, **http) if pubmed else []
    if s2:
        specs += s2_specs(s2, download_dir, **http)
    get_run_logger().info("planned %d input units", len(specs))
    return specs


@task(name="ingest-file", retries=2, retry_delay_seconds=5, cache_policy=NONE,
      task_run_name="ingest-{spec.name}")
def ingest_file(spec: InputSpec) -> dict[str, Any]:
    """Ingest one unit; a retry resumes after the last committed batch."""
    settings = get_settings()
    logger = get_run_logger()
    con = connect(settings.warehouse_path)
    try:
        report = ingest_unit(
            unit_from_spec(spec), DuckDBIngestStore(con), lake_dir=settings.lake_dir,
            batch_size=settings.batch_size, min_abstract_words=settings.min_abstract_words, log=logger.info,
        )
    finally:
        con.close()
    return asdict(report)
