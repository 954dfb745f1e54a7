"""Annotation kinds in the flows: the nightly's annotation step (entities, MeSH suggestions) and the train flow of
an annotation kind (fine-tune, gate on the kind's own set, promote or reject).

    from flows.annotate import annotate, train_annotator
    annotate(kinds=["ner"], limit=500)                  # only the annotation step (a backfill), as its own flow
    train_annotator(kind="ner", epochs=2)               # what `kpe train --kind ner` runs

In the nightly, :func:`annotate_all` runs after keyphrase extraction: for each annotation kind
(``kpe.train.kinds.annotation_kinds``) with a production model, the pending documents in batches, one
``<kind>-batch-N`` task and one ``write-<kind>-batch-N`` commit each; a kind without a production model is
skipped (logged).
"""

from __future__ import annotations

import time
from typing import Any

from flows.environment import apply_defaults

apply_defaults()

from prefect import flow, get_run_logger  # noqa: E402 - after the environment defaults
from prefect.runtime import flow_run  # noqa: E402

from kpe.evaluate.gate import DEFAULT_MARGIN  # noqa: E402
from kpe.registry import base_model_name, model_dir, new_version  # noqa: E402
from kpe.settings import get_settings  # noqa: E402
from kpe.train.config import DEFAULT_EPOCHS, DEFAULT_SEED, TrainConfig  # noqa: E402
from kpe.train.kinds import annotation_kinds, get_kind  # noqa: E402
from tasks.annotate import (  # noqa: E402
    annotate_batch_task,
    annotation_production_task,
    evaluate_annotation_gate_task,
    finish_annotation_task,
    prepare_annotation_task,
    record_annotation_decision_task,
    write_annotations_task,
)
from tasks.train import register_candidate_task, reject_candidate_task, train_model_task  # noqa: E402
from warehouse.annotations import iter_pending_batches  # noqa: E402


def annotate_all(run_id: str, *, limit: int | None, batch_size: int, logger: Any,
                 kinds: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every annotation kind's step of one run: ``{kind: {"model_version", "documents", "rows", "removed",
    "backlog", "seconds"}}`` (``model_version`` None: skipped, no production model). ``limit`` caps the
    documents of each kind."""
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds or list(annotation_kinds()):
        started = time.perf_counter()
        plan = prepare_annotation_task(run_id, kind)
        counts = {"output": plan.output, "model_version": plan.model_version, "documents": 0, "rows": 0,
                  "removed": plan.removed, "backlog": 0, "seconds": 0.0}
        out[kind] = counts
        if plan.model_version is None:
            logger.info("%s: no production %s model, skipped (%d rows of deleted documents removed)", kind, kind,
                        plan.removed)
            continue
        logger.info("%s: model %s, %d documents pending, %d rows of deleted documents removed", kind,
                    plan.model_version, plan.pending, plan.removed)
        expected = plan.pending if limit is None else min(plan.pending, limit)
        batches = iter_pending_batches(get_settings().warehouse_path, kind, plan.output, plan.model_version,
                                       batch_size=batch_size, limit=limit)
        for number, docs in enumerate(batches, start=1):
            results = annotate_batch_task(number, kind, plan.model_path, docs)
            counts["rows"] += write_annotations_task(number, plan, results)
            counts["documents"] += len(docs)
            rate = counts["documents"] / max(time.perf_counter() - started, 1e-9)
            logger.info("%s: annotated %d/%d documents (%.1f docs/s), %d %s rows written", kind, counts["documents"],
                        expected, rate, counts["rows"], plan.output)
        counts["seconds"] = time.perf_counter() - started
        done = finish_annotation_task(plan, counts["seconds"])
        counts["backlog"] = done["backlog"]
    return out


@flow(name="annotate", log_prints=True)
def annotate(kinds: list[str] | None = None, limit: int | None = None,
             batch_size: int | None = None) -> dict[str, dict[str, Any]]:
    """Only the annotation step of the nightly (entities, MeSH suggestions) for the current documents: e.g. a
    backfill after a model promotion. Holds the warehouse's writer lock like the nightly."""
    from warehouse.db import writer_lock

    settings = get_settings()
    with writer_lock(settings.warehouse_path, command="kpe annotate"):
        return annotate_all(str(flow_run.get_id() or f"annotate-{time.time_ns()}"), limit=limit,
                            batch_size=batch_size or settings.extract_batch_size, logger=get_run_logger(),
                            kinds=kinds)


@flow(name="train-annotator", log_prints=True)
def train_annotator(
    kind: str = "ner",
    base_model: str | None = None,
    train_data: list[str] | None = None,
    max_steps: int | None = None,
    epochs: int = DEFAULT_EPOCHS,
    train_limit: int | None = None,
    gate_limit: int | None = None,
    margin: float = DEFAULT_MARGIN,
    floor: float | None = None,
    auto_promote: bool = True,
    seed: int = DEFAULT_SEED,
    batch_size: int = 16,
    learning_rate: float = 1e-4,
    keep_checkpoints: bool = False,
    train_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train an annotation model (``ner``, ``classify``), measure it and the kind's production model on the
    kind's gate set (``ner``: BC5CDR devel; the test split is only for reporting, ``kpe evaluate-ner``), then
    promote when it beats production by ``margin``, or, with no production model of the kind, when it reaches
    ``floor`` (default: the kind module's ``GATE_FLOOR``, 0.5 entity F1 for ``ner``). Returns ``{"version",
    "status", "decision", "model_path", "training"}``."""
    import importlib

    logger = get_run_logger()
    spec = get_kind(kind)
    if spec.output == "keyphrases":
        raise ValueError(f"{kind} is not an annotation kind; use the train flow")
    floor = floor if floor is not None else float(getattr(importlib.import_module(spec.module), "GATE_FLOOR", 0.0))
    version = new_version(kind)
    run_dir = model_dir(version)
    settings = get_settings()
    fields = {"kind": kind, "output_dir": run_dir, "base": base_model, "max_steps": max_steps, "epochs": epochs,
              "max_docs": train_limit, "seed": seed, "batch_size": batch_size, "learning_rate": learning_rate,
              "shared_data_dir": settings.shared_data_dir, "lake_dir": settings.lake_dir, **(train_options or {})}
    if train_data:
        fields["train_data"] = train_data
    config = TrainConfig(**fields)
    logger.info("candidate %s: kind %s, base %s, run dir %s", version, kind, base_model_name(base_model), run_dir)
    result = train_model_task(config, keep_checkpoints)
    training = {"steps": result.steps, "seconds": round(result.seconds, 1),
                "validation": {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}}
    register_candidate_task(version, result, kind, base_model_name(base_model),
                            {"train_config": config.model_dump(mode="json")})
    try:
        production = annotation_production_task(kind)
        candidate = evaluate_annotation_gate_task(kind, "candidate", str(result.model_dir.resolve()), version,
                                                  gate_limit)
        prod = (evaluate_annotation_gate_task(kind, "production", production["path"], production["version"],
                                              gate_limit) if production else None)
        outcome = record_annotation_decision_task(kind, version, candidate, prod, margin=margin, floor=floor,
                                                  auto_promote=auto_promote, extra={"training": training},
                                                  flow_run_id=str(flow_run.id) if flow_run.id else None)
    except Exception as exc:
        logger.error("gate failed for %s: %s; the candidate is rejected", version, exc)
        reject_candidate_task(version, f"{type(exc).__name__}: {exc}")
        raise
    logger.info("%s -> %s: %s", version, outcome["status"], outcome["decision"]["reason"])
    return {**outcome, "model_path": str(result.model_dir.resolve()), "training": training}
