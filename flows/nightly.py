"""The nightly job: ingest new files, extract keyphrases for new/changed documents, publish a report."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import deque
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.ingest import ingest
from flows.runners import extraction_task_runner
from kpe.extract.config import ExtractionConfig
from kpe.registry import current_extraction_model
from kpe.settings import get_settings
from tasks.extract import extract_batch_task
from warehouse import extraction
from warehouse.db import connect


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@flow(name="nightly", log_prints=True, task_runner=extraction_task_runner())
def nightly(
    pubmed: list[str] | None = None,
    s2: list[str] | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    config: dict[str, Any] | None = None,
    parallelism: int | None = None,
) -> dict[str, Any]:
    """Ingest, then extract keyphrases for every document that is new, changed, or was extracted with another
    model version or config; keyphrases of deleted documents are removed. Each batch commits with its
    progress, so a killed run resumes where it stopped.

    ``limit`` caps the documents extracted by this run (the rest wait for the next run); ``parallelism`` is how
    many batches are in flight on the task runner (default ``KPE_EXTRACT_PARALLELISM``; raise it with
    ``KPE_TASK_RUNNER=dask``).
    """
    settings = get_settings()
    logger = get_run_logger()
    stages: dict[str, float] = {}
    started = time.perf_counter()

    pubmed = list(pubmed if pubmed is not None else settings.pubmed_sources)
    s2 = list(s2 if s2 is not None else settings.s2_sources)
    ingest_summary: list[dict[str, Any]] = []
    if pubmed or s2:
        ingest_summary = ingest(pubmed=pubmed, s2=s2)["summary"]
    else:
        logger.info("no sources configured: skipping ingestion")
    stages["ingest"] = time.perf_counter() - started

    con = connect(settings.warehouse_path)
    try:
        model = current_extraction_model(con)
        cfg = ExtractionConfig.model_validate(config or {})
        config_hash = cfg.config_hash()
        run_id = str(flow_run.get_id() or uuid.uuid4())
        extraction.mark_interrupted(con, _utcnow())
        extraction.start_run(con, run_id, model.version, model.method, config_hash, cfg.model_dump(mode="json"),
                             _utcnow())

        t = time.perf_counter()
        removed = extraction.remove_deleted(con, run_id, _utcnow())
        stages["remove"] = time.perf_counter() - t

        t = time.perf_counter()
        pending = extraction.select_pending(con, model.version, config_hash, limit)
        backlog = extraction.count_pending(con, model.version, config_hash) - len(pending)
        stages["select"] = time.perf_counter() - t
        logger.info("model %s (%s), config %s: %d documents to extract%s, %d keyphrases removed",
                    model.version, model.method, config_hash, len(pending),
                    f" ({backlog} left for later runs)" if backlog else "", removed)

        t = time.perf_counter()
        written = _extract_all(con, run_id, pending, model, cfg, batch_size or settings.extract_batch_size,
                               parallelism or _default_parallelism(settings), logger)
        stages["extract"] = time.perf_counter() - t

        total = time.perf_counter() - started
        row = extraction.finish_run(con, run_id, "completed", n_selected=len(pending), seconds=total,
                                    stage_seconds={k: round(v, 2) for k, v in stages.items()}, now=_utcnow())
        top = extraction.top_new_keyphrases(con, run_id)
    finally:
        con.close()

    summary = {
        "run_id": run_id, "model_version": model.version, "method": model.method, "config_hash": config_hash,
        "documents": row["n_docs"], "keyphrases": written, "removed": removed, "backlog": backlog,
        "stage_seconds": stages, "seconds": total, "ingest": ingest_summary, "top_keyphrases": top,
        "warehouse": str(settings.warehouse_path), "lake": str(settings.lake_dir),
    }
    if not pending and not removed:
        logger.info("nothing new to extract: finished in %.1f s", total)
    create_markdown_artifact(key="nightly-report", markdown=report_markdown(summary),
                             description=f"Nightly run {run_id}")
    return summary


def _default_parallelism(settings) -> int:  # noqa: ANN001
    if settings.task_runner == "dask" and settings.extract_parallelism == 1:
        return 2 * settings.dask_workers
    return settings.extract_parallelism


def _extract_all(con, run_id, pending, model, cfg, batch_size, parallelism, logger) -> int:  # noqa: ANN001
    """Submit batches to the task runner (``parallelism`` in flight) and write each in order: one writer."""
    batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
    config_json, config_hash = cfg.model_dump_json(), cfg.config_hash()
    in_flight: deque = deque()
    progress = {"written": 0, "done": 0}
    t0 = time.perf_counter()

    def write_oldest() -> None:
        docs, future = in_flight.popleft()
        progress["written"] += extraction.write_results(
            con, run_id, future.result(), method=model.method, model_version=model.version,
            config_hash=config_hash, now=_utcnow())
        progress["done"] += len(docs)
        rate = progress["done"] / max(time.perf_counter() - t0, 1e-9)
        logger.info("extracted %d/%d documents (%.1f docs/s), %d keyphrases written",
                    progress["done"], len(pending), rate, progress["written"])

    for number, batch in enumerate(batches, start=1):
        in_flight.append((batch, extract_batch_task.submit(number, batch, model.method, model.model_path,
                                                           config_json)))
        if len(in_flight) >= parallelism:
            write_oldest()
    while in_flight:
        write_oldest()
    return progress["written"]


def report_markdown(summary: dict[str, Any]) -> str:
    """The run's markdown artifact: counts, time per stage, model, top new keyphrases."""
    lines = [
        f"# Nightly keyphrase run `{summary['run_id']}`",
        "",
        f"- model: **{summary['model_version']}** (method `{summary['method']}`, config `{summary['config_hash']}`)",
        f"- documents extracted: **{summary['documents']}**, keyphrases written: **{summary['keyphrases']}**",
        f"- keyphrases removed (deleted documents): {summary['removed']}",
        f"- documents left for later runs: {summary['backlog']}",
        f"- total time: {summary['seconds']:.1f} s",
        "",
    ]
    if not summary["documents"] and not summary["removed"]:
        lines += ["**Nothing new to extract.**", ""]
    if summary["ingest"]:
        lines += ["## Ingest", "", "| source | files | records | new | updated | deleted | quarantined |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['source']} | {r['files']} | {r['records']} | {r['new']} | {r['updated']} | {r['deleted']} "
                  f"| {r['quarantined']} |" for r in summary["ingest"]]
        lines.append("")
    lines += ["## Time per stage", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in summary["stage_seconds"].items()]
    if summary["top_keyphrases"]:
        lines += ["", "## Top new keyphrases", "", "| keyphrase | documents |", "|---|---|"]
        lines += [f"| {r['keyphrase']} | {r['docs']} |" for r in summary["top_keyphrases"]]
    return "\n".join(lines) + "\n"
