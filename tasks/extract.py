"""Prefect tasks of the nightly extraction: prepare the run, extract one batch, write one batch, finish the run.

Each task that touches the warehouse opens it only for its own work (see ``warehouse.db``), so readers are never
locked out for longer than one commit.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from kpe.extract.batches import DocumentResult, PendingDocument, extract_batch
from kpe.extract.config import ExtractionConfig
from kpe.extract.encoder import resolve_device, resolved_precision
from kpe.extract.methods import Extractor, build_extractor
from kpe.registry import ExtractionModel, current_extraction_model
from kpe.settings import get_settings
from warehouse import extraction
from warehouse.db import connect, utcnow
from warehouse.models import production_model


@dataclass(frozen=True)
class RunPlan:
    """What a nightly extraction run works on, decided once at its start."""

    run_id: str
    model: ExtractionModel
    config_json: str
    config_hash: str
    precision: str
    device: str
    removed: int
    pending: dict[str, int]  # fresh / stale counts at the start


@lru_cache(maxsize=2)
def cached_extractor(method: str, model_path: str | None, config_json: str) -> Extractor:
    """One extractor per (method, model, config) per process: a worker loads the model once."""
    return build_extractor(method, model_path, ExtractionConfig.model_validate(json.loads(config_json)))


@task(name="prepare-run", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def prepare_run_task(run_id: str | None, config: dict[str, Any] | None) -> RunPlan:
    """Close runs a killed process left ``running``, record this run (model, config, precision, device), remove
    the keyphrases of deleted documents, and count what is pending."""
    cfg = ExtractionConfig.model_validate(config or {})
    device, precision = resolve_device(cfg.device), resolved_precision(cfg)
    run_id = run_id or str(uuid.uuid4())
    with connect(get_settings().warehouse_path) as con:
        model = current_extraction_model(production_model(con))
        extraction.mark_interrupted(con, utcnow())
        extraction.start_run(con, run_id, model.version, model.method, cfg.config_hash(),
                             cfg.model_dump(mode="json"), utcnow(), precision=precision, device=device)
        removed = extraction.remove_deleted(con, run_id, utcnow())
        pending = extraction.count_pending_by_phase(con, model.version, cfg.config_hash())
    return RunPlan(run_id, model, cfg.model_dump_json(), cfg.config_hash(), precision, device, removed, pending)


@task(name="extract-batch", retries=1, retry_delay_seconds=5, cache_policy=NONE,
      task_run_name="extract-batch-{number}")
def extract_batch_task(number: int, docs: list[PendingDocument], method: str, model_path: str | None,
                       config_json: str) -> list[DocumentResult]:
    """Keyphrases for one batch of documents (no warehouse access: safe to run on any worker)."""
    return extract_batch(cached_extractor(method, model_path, config_json), docs)


@task(name="write-batch", retries=2, retry_delay_seconds=5, cache_policy=NONE,
      task_run_name="write-batch-{number}")
def write_batch_task(number: int, plan: RunPlan, results: list[DocumentResult]) -> int:
    """Commit one batch's keyphrases, extraction state and the run's progress in one transaction."""
    with connect(get_settings().warehouse_path) as con:
        return extraction.write_results(con, plan.run_id, results, method=plan.model.method,
                                        model_version=plan.model.version, config_hash=plan.config_hash,
                                        now=utcnow())


@task(name="finish-run", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def finish_run_task(plan: RunPlan, status: str, *, n_selected: int, n_backfill: int, seconds: float,
                    stage_seconds: dict[str, float], error: str | None = None) -> dict[str, Any]:
    """Close the run; returns its row, the backlog left and the top new keyphrases."""
    with connect(get_settings().warehouse_path) as con:
        row = extraction.finish_run(con, plan.run_id, status, n_selected=n_selected, seconds=seconds,
                                    stage_seconds=stage_seconds, now=utcnow(), error=error, n_backfill=n_backfill)
        backlog = extraction.count_pending_by_phase(con, plan.model.version, plan.config_hash)
        top = extraction.top_new_keyphrases(con, plan.run_id)
    return {"run": row, "backlog": backlog, "top": top}
