"""Prefect tasks of the ingestion flow: tidy the lake, plan the inputs, ingest one unit (with retries)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from kpe.ingest import ingest_unit
from kpe.inputs import InputSpec, failed_report, plan_specs, unit_from_spec
from kpe.settings import get_settings
from kpe.shards import find_orphans, shard_key
from warehouse.db import connect
from warehouse.ingest_files import shard_ownership
from warehouse.ingest_store import DuckDBIngestStore


@task(name="sweep-lake", cache_policy=NONE)
def sweep_lake() -> list[str]:
    """Remove what interrupted shard writes left in the lake (see ``kpe.shards.find_orphans``); returns the
    removed paths, relative to the lake."""
    settings = get_settings()
    lake = settings.lake_dir
    if not (lake / "documents").is_dir() and not (lake / "deletions").is_dir():
        return []
    with connect(settings.warehouse_path) as con:
        listed, files = shard_ownership(con)
    removed = []
    for path in find_orphans(lake, listed, {shard_key(name, sha) for name, sha in files}):
        path.unlink(missing_ok=True)
        removed.append(path.relative_to(lake).as_posix())
    if removed:
        get_run_logger().warning("removed %d leftover shard file(s) of interrupted runs: %s", len(removed),
                                 ", ".join(removed))
    return removed


@task(name="plan-inputs", retries=2, retry_delay_seconds=10, cache_policy=NONE)
def plan_inputs(pubmed: list[str], s2: list[str]) -> list[InputSpec]:
    """Expand paths/globs/folders and download URLs (retries, md5 check) into ordered ingest specs, through the
    sources registered in ``kpe.sources.SOURCES``; an input that cannot be used is a spec with ``error`` set (it
    does not stop the others)."""
    settings = get_settings()
    http = {"retries": settings.http_retries, "backoff_s": settings.http_backoff_s,
            "timeout_s": settings.http_timeout_s}
    specs = plan_specs({"pubmed": pubmed, "s2": s2}, settings.cache_dir / "downloads", **http)
    get_run_logger().info("planned %d input units", len(specs))
    return specs


@task(name="ingest-file", retries=2, retry_delay_seconds=5, cache_policy=NONE,
      task_run_name="ingest-{spec.name}")
def ingest_file(spec: InputSpec) -> dict[str, Any]:
    """Ingest one unit; a retry resumes after the last committed batch. An input that could not be planned
    (``spec.error``) is reported failed at once."""
    settings = get_settings()
    logger = get_run_logger()
    if spec.error:
        logger.error("%s", spec.error)
        return asdict(failed_report(spec))
    report = ingest_unit(  # the store opens the warehouse per step: readers get in between batches
        unit_from_spec(spec), DuckDBIngestStore(settings.warehouse_path), lake_dir=settings.lake_dir,
        batch_size=settings.batch_size, min_abstract_words=settings.min_abstract_words, log=logger.info,
        max_title_chars=settings.max_title_chars, max_abstract_chars=settings.max_abstract_chars,
    )
    return asdict(report)
