"""Run one extraction method over a benchmark and score it: the single entry point of every comparison.

Usage::

    from kpe.datasets import load_jsonl
    docs = load_jsonl("../shared/data/keyphrase/inspec_dev.jsonl")
    result = evaluate_method("yake", docs, dataset="inspec_dev", split="dev")
    result["micro"]["all"]["f1@5"], result["macro"]["present"]["f1@10"]

The result is a JSON-ready dict (see :func:`evaluate_extractor`); ``predictions`` holds the ranked
phrases per document. An extractor that needs corpus statistics (TF-IDF) may define
``fit_corpus(texts)``: the harness calls it once with every evaluated text before extracting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from kpe.datasets import GoldDocument
from kpe.evaluate.metrics import KS, CorpusScores, aggregate, match_document
from kpe.extract.methods import Extractor, build_extractor

DEFAULT_BATCH_SIZE = 64


class EvaluationResult(CorpusScores, total=False):
    """One method on one dataset: the scores (:class:`kpe.evaluate.metrics.CorpusScores`), what was run, how long
    it took, and the ranked ``predictions`` (left out of what is stored: :func:`metrics_only`). JSON-ready."""

    method: str
    dataset: str
    split: str
    seconds: float
    cpu_seconds: float
    docs_per_second: float | None
    predictions: list[dict[str, Any]]
    model_path: str | None
    model_version: str
    config_hash: str
    config: dict[str, Any]
    load_seconds: float
    evaluation_id: int
    per_document: dict[str, Any]  # the gate's per-document scores (kpe.evaluate.gate.per_document_scores)


def config_dict(config: Any) -> dict:
    """A JSON-ready view of an extraction config (``None``, a dict, a dataclass or a pydantic model)."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return dict(config)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    return {"repr": repr(config)}


def config_hash(config: Any) -> str:
    """The config's own ``config_hash()`` when it has one (``ExtractionConfig``), else a short stable
    hash of :func:`config_dict` (``"default"`` for no config)."""
    own = getattr(config, "config_hash", None)
    if callable(own):
        return str(own())
    data = config_dict(config)
    if not data:
        return "default"
    blob = json.dumps(data, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def model_version(model_path: str | None) -> str:
    """The name stored with an evaluation for the model it used (``"default"`` for the method's own): the folder's
    name, or for a training run's ``<run>/model`` (the registry's ``<models_dir>/<version>/model``) the run's."""
    if not model_path:
        return "default"
    path = Path(str(model_path))
    return path.parent.name if path.name == "model" and path.parent.name else path.name


def evaluate_extractor(
    extractor: Extractor,
    docs: Sequence[GoldDocument],
    *,
    method: str | None = None,
    dataset: str = "unknown",
    split: str = "unknown",
    limit: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    ks: Sequence[int] = KS,
) -> EvaluationResult:
    """Extract with an already built extractor, in batches, and score against the gold.

    Returns ``{"method", "dataset", "split", "n_docs", "n_pred", "n_gold", "n_docs_scored", "macro",
    "micro", "macro_mink", "micro_mink", "seconds", "cpu_seconds", "docs_per_second", "predictions"}``
    where ``predictions`` is ``[{"id", "keyphrases": [...]}]`` in document order and ``seconds`` the
    wall-clock extraction time (``fit_corpus`` included; ``cpu_seconds``: CPU time of this process).
    ``progress=None`` shows a bar only on a terminal.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    docs = list(docs[:limit] if limit is not None else docs)
    name = method or getattr(extractor, "name", type(extractor).__name__)
    texts = [doc.text for doc in docs]
    predictions: list[list[str]] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    fit_corpus = getattr(extractor, "fit_corpus", None)
    if callable(fit_corpus):
        fit_corpus(texts)
    with tqdm(
        total=len(docs), desc=f"{name} on {dataset}", unit="doc", disable=None if progress is None else not progress
    ) as bar:
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            ranked = extractor.extract(batch)
            if len(ranked) != len(batch):
                raise RuntimeError(f"method {name!r} returned {len(ranked)} results for {len(batch)} documents")
            predictions.extend([kp.phrase for kp in phrases] for phrases in ranked)
            bar.update(len(batch))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    matches = [match_document(d.doc_id, p, d.keyphrases, d.text) for d, p in zip(docs, predictions)]
    result: EvaluationResult = {"method": name, "dataset": dataset, "split": split, **aggregate(matches, ks)}
    result["seconds"] = seconds
    result["cpu_seconds"] = cpu_seconds
    result["docs_per_second"] = len(docs) / seconds if seconds > 0 else None
    result["predictions"] = [{"id": d.doc_id, "keyphrases": p} for d, p in zip(docs, predictions)]
    return result


def evaluate_method(
    method: str,
    docs: Sequence[GoldDocument],
    model_path: str | None = None,
    config: Any = None,
    limit: int | None = None,
    *,
    dataset: str = "unknown",
    split: str = "unknown",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
) -> EvaluationResult:
    """Build a method by name (``kpe.extract.methods.METHODS``), evaluate it, and time both steps.

    The result of :func:`evaluate_extractor` plus ``model_path``, ``model_version``, ``config_hash``,
    ``config`` and ``load_seconds`` (building the method: loading weights).
    """
    started = time.perf_counter()
    extractor = build_extractor(method, model_path, config)
    load_seconds = time.perf_counter() - started
    result = evaluate_extractor(
        extractor, docs, method=method, dataset=dataset, split=split, limit=limit,
        batch_size=batch_size, progress=progress,
    )
    result.update(
        model_path=model_path,
        model_version=model_version(model_path),
        config_hash=config_hash(config),
        config=config_dict(config),
        load_seconds=load_seconds,
    )
    return result


def metrics_only(result: EvaluationResult) -> EvaluationResult:
    """A result without its predictions (what is stored and printed)."""
    return EvaluationResult(**{key: value for key, value in result.items() if key != "predictions"})
