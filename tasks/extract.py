"""Prefect tasks of the nightly extraction: build the method once per process, extract one batch."""

from __future__ import annotations

import json
from functools import lru_cache

from prefect import task
from prefect.cache_policies import NONE

from kpe.extract.batches import DocumentResult, PendingDocument, extract_batch
from kpe.extract.config import ExtractionConfig
from kpe.extract.methods import Extractor, build_extractor


@lru_cache(maxsize=2)
def cached_extractor(method: str, model_path: str | None, config_json: str) -> Extractor:
    """One extractor per (method, model, config) per process: a worker loads the model once."""
    return build_extractor(method, model_path, ExtractionConfig.model_validate(json.loads(config_json)))


@task(name="extract-batch", retries=1, retry_delay_seconds=5, cache_policy=NONE,
      task_run_name="extract-batch-{number}")
def extract_batch_task(number: int, docs: list[PendingDocument], method: str, model_path: str | None,
                       config_json: str) -> list[DocumentResult]:
    """Keyphrases for one batch of documents (no warehouse access: safe to run on any worker)."""
    return extract_batch(cached_extractor(method, model_path, config_json), docs)
