"""The nightly job: ingest new files, extract keyphrases for new/changed documents, publish a report."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows.annotate import annotate_all
from flows.ingest import IngestProblems, ingest, ingest_result
from flows.runners import extraction_task_runner
from kpe.settings import Settings, get_settings
from tasks.extract import RunPlan, extract_batch_task, finish_run_task, prepare_run_task, write_batch_task
from warehouse.db import writer_lock
from warehouse.extraction import iter_pending_batches


@flow(name="nightly", log_prints=True, task_runner=extraction_task_runner())
def nightly(
    pubmed: list[str] | None = None,
    s2: list[str] | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    config: dict[str, Any] | None = None,
    parallelism: int | None = None,
) -> dict[str, Any] | State:
    """Ingest, then extract keyphrases for every document that is new, changed, or was extracted with another
    model version or config; keyphrases of deleted documents are removed. Each batch commits with its
    progress, so a killed run resumes where it stopped.

    New and changed documents go first; re-extraction for a model or config change follows as a backfill within
    ``KPE_BACKFILL_MAX_DOCS`` / ``KPE_BACKFILL_MAX_MINUTES``. ``limit`` caps the documents extracted by this run
    (the rest wait for the next run); ``parallelism`` is how many batches are in flight on the task runner
    (default ``KPE_EXTRACT_PARALLELISM``; raise it with ``KPE_TASK_RUNNER=dask``). The run holds the warehouse's
    writer lock: a second nightly or ingest run waits ``KPE_WRITER_WAIT_S`` and then refuses. A partial or failed
    input ends the run Failed after extraction (``nightly_result`` reads the summary from that state).
    """
    settings = get_settings()
    logger = get_run_logger()
    with writer_lock(settings.warehouse_path, command="kpe nightly"):
        stages: dict[str, float] = {}
        started = time.perf_counter()
        pubmed = list(pubmed if pubmed is not None else settings.pubmed_sources)
        s2 = list(s2 if s2 is not None else settings.s2_sources)
        ingest_summary: list[dict[str, Any]] = []
        problems = {"partial": 0, "failed": 0, "quarantined": 0}
        if pubmed or s2:  # inputs with problems do not stop extraction; the run still ends Failed (below)
            ingested = ingest_result(ingest(pubmed=pubmed, s2=s2, return_state=True))
            ingest_summary, problems = ingested["summary"], ingested["problems"]
        else:
            logger.info("no sources configured: skipping ingestion")
        stages["ingest"] = time.perf_counter() - started

        t = time.perf_counter()
        plan = prepare_run_task(flow_run.get_id(), config)
        stages["prepare"] = time.perf_counter() - t
        logger.info("model %s (%s), config %s, %s on %s: %d new or changed and %d to re-extract, %d keyphrases "
                    "removed", plan.model.version, plan.model.method, plan.config_hash, plan.precision, plan.device,
                    plan.pending["fresh"], plan.pending["stale"], plan.removed)

        t = time.perf_counter()
        counts = _extract_all(plan, settings, limit, batch_size or settings.extract_batch_size,
                              parallelism or _default_parallelism(settings), logger)
        stages["extract"] = time.perf_counter() - t
        t = time.perf_counter()  # entities, MeSH suggestions: each annotation kind with a production model
        annotations = annotate_all(plan.run_id, limit=limit, batch_size=batch_size or settings.extract_batch_size,
                                   logger=logger)
        stages["annotate"] = time.perf_counter() - t
        total = time.perf_counter() - started
        done = finish_run_task(plan, "completed", n_selected=counts["documents"], n_backfill=counts["stale"],
                               seconds=total, stage_seconds={k: round(v, 2) for k, v in stages.items()})

    backlog = sum(done["backlog"].values())
    summary = {
        "run_id": plan.run_id, "model_version": plan.model.version, "method": plan.model.method,
        "config_hash": plan.config_hash, "precision": plan.precision, "device": plan.device,
        "documents": done["run"]["n_docs"], "keyphrases": counts["keyphrases"], "removed": plan.removed,
        "backfilled": counts["stale"], "backlog": backlog, "backlog_by_phase": done["backlog"],
        "stage_seconds": stages, "seconds": total, "ingest": ingest_summary, "ingest_problems": problems,
        "top_keyphrases": done["top"], "annotations": annotations,
        "warehouse": str(settings.warehouse_path), "lake": str(settings.lake_dir),
    }
    if not counts["documents"] and not plan.removed:
        logger.info("nothing new to extract: finished in %.1f s", total)
    create_markdown_artifact(key="nightly-report", markdown=report_markdown(summary),
                             description=f"Nightly run {plan.run_id}")
    if problems["partial"] or problems["failed"]:
        message = (f"ingest: {problems['partial']} partial and {problems['failed']} failed input(s) (see the "
                   f"ingest-problems artifact); extraction completed: {summary['documents']} documents")
        return Failed(message=message, data=IngestProblems(message, summary))
    return summary


def nightly_result(state: State) -> dict[str, Any]:
    """The nightly summary from its final state (``nightly(..., return_state=True)``), also when ingest problems
    failed the run (``summary["ingest_problems"]``); any other failure is raised."""
    return ingest_result(state)


def _default_parallelism(settings: Settings) -> int:
    if settings.task_runner == "dask" and settings.extract_parallelism == 1:
        return 2 * settings.dask_workers
    return settings.extract_parallelism


def _extract_all(plan: RunPlan, settings: Settings, limit: int | None, batch_size: int, parallelism: int,
                 logger: Any) -> dict[str, int]:
    """Stream the pending batches to the task runner (``parallelism`` in flight) and write each in order: one
    writer, and never more than ``parallelism`` batches in memory."""
    minutes = settings.backfill_max_minutes
    batches = iter_pending_batches(
        settings.warehouse_path, plan.model.version, plan.config_hash, batch_size=batch_size, limit=limit,
        backfill_max_docs=settings.backfill_max_docs, backfill_seconds=None if minutes is None else 60 * minutes)
    expected = plan.pending["fresh"] + min(plan.pending["stale"], settings.backfill_max_docs or plan.pending["stale"])
    expected = min(expected, limit) if limit is not None else expected
    in_flight: deque = deque()
    counts = {"documents": 0, "keyphrases": 0, "fresh": 0, "stale": 0, "batches": 0}
    t0 = time.perf_counter()

    def write_oldest() -> None:
        number, batch, future = in_flight.popleft()
        counts["keyphrases"] += write_batch_task(number, plan, future.result())
        counts["documents"] += len(batch.documents)
        counts[batch.phase] += len(batch.documents)
        rate = counts["documents"] / max(time.perf_counter() - t0, 1e-9)
        logger.info("extracted %d/%d documents (%s; %.1f docs/s), %d keyphrases written", counts["documents"],
                    expected, batch.phase, rate, counts["keyphrases"])

    for batch in batches:
        counts["batches"] += 1
        future = extract_batch_task.submit(counts["batches"], batch.documents, plan.model.method,
                                           plan.model.model_path, plan.config_json)
        in_flight.append((counts["batches"], batch, future))
        if len(in_flight) >= parallelism:
            write_oldest()
    while in_flight:
        write_oldest()
    return counts


def report_markdown(summary: dict[str, Any]) -> str:
    """The run's markdown artifact: counts, time per stage, model, top new keyphrases."""
    lines = [
        f"# Nightly keyphrase run `{summary['run_id']}`",
        "",
        f"- model: **{summary['model_version']}** (method `{summary['method']}`, config `{summary['config_hash']}`)",
        f"- documents extracted: **{summary['documents']}**, keyphrases written: **{summary['keyphrases']}**",
        f"- of which re-extracted for a model or config change (backfill): {summary['backfilled']}",
        f"- keyphrases removed (deleted documents): {summary['removed']}",
        f"- documents left for later runs: {summary['backlog']} ({summary['backlog_by_phase']['fresh']} new or "
        f"changed, {summary['backlog_by_phase']['stale']} to re-extract)",
        f"- precision: {summary['precision']} on {summary['device']}",
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
    bad = summary["ingest_problems"]
    if bad["partial"] or bad["failed"]:
        lines += [f"**Ingest problems: {bad['partial']} partial and {bad['failed']} failed input(s)** (the run ends "
                  "Failed; see the `ingest-problems` artifact).", ""]
    if summary.get("annotations"):
        lines += ["## Annotations", "", "| kind | table | model | documents | rows written | rows removed | backlog |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {kind} | {a['output']} | {a['model_version'] or 'none (skipped)'} | {a['documents']} | "
                  f"{a['rows']} | {a['removed']} | {a['backlog']} |" for kind, a in summary["annotations"].items()]
        lines.append("")
    lines += ["## Time per stage", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in summary["stage_seconds"].items()]
    if summary["top_keyphrases"]:
        lines += ["", "## Top new keyphrases", "", "| keyphrase | documents |", "|---|---|"]
        lines += [f"| {r['keyphrase']} | {r['docs']} |" for r in summary["top_keyphrases"]]
    return "\n".join(lines) + "\n"
