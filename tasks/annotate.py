"""Prefect tasks of the annotation kinds (``ner`` -> ``entities``, ``classify`` -> ``doc_labels``): the nightly's
prepare / annotate one batch / write one batch / finish steps per kind, and the gate of a trained annotation
model (its kind's own gate set, e.g. BC5CDR devel for ``ner``).

Each task that touches the warehouse opens it only for its own work (``warehouse.db``); annotating a batch does
not touch it at all (safe on any worker).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from kpe.annotate import Annotator, DocAnnotations, annotate_batch, annotation_decision, load_annotator
from kpe.extract.batches import PendingDocument
from kpe.settings import get_settings
from kpe.train.kinds import get_kind
from warehouse import annotations, evaluations, models
from warehouse.db import connect, utcnow


@dataclass(frozen=True)
class AnnotationPlan:
    """One kind's share of a nightly run, decided at its start (``model_version`` None: no production model)."""

    run_id: str
    kind: str
    output: str
    model_version: str | None
    model_path: str | None
    removed: int
    pending: int


@lru_cache(maxsize=2)
def cached_annotator(kind: str, model_path: str) -> Annotator:
    """One annotator per (kind, model) per process: a worker loads the model once."""
    return load_annotator(kind, model_path)


@task(name="prepare-annotation", retries=1, retry_delay_seconds=5, cache_policy=NONE,
      task_run_name="prepare-{kind}")
def prepare_annotation_task(run_id: str, kind: str) -> AnnotationPlan:
    """Remove the rows of deleted documents; with a production model of the kind, record the run and count what
    is pending (new or changed documents, or all of them after a model change)."""
    output = get_kind(kind).output
    with connect(get_settings().warehouse_path) as con:
        record = models.production_model(con, output)
        if record is None:
            removed = annotations.remove_deleted(con, kind, output, run_id)
            return AnnotationPlan(run_id, kind, output, None, None, removed, 0)
        if not Path(record.path).exists():
            raise FileNotFoundError(f"production {kind} model {record.version} points at {record.path}, which does "
                                    "not exist; restore it or roll it back (`kpe models rollback --kind "
                                    f"{kind}`)")
        annotations.start_run(con, run_id, kind, output, record.version, utcnow())
        removed = annotations.remove_deleted(con, kind, output, run_id)
        pending = annotations.count_pending(con, kind, output, record.version)
    return AnnotationPlan(run_id, kind, output, record.version, record.path, removed, pending)


@task(name="annotate-batch", retries=1, retry_delay_seconds=5, cache_policy=NONE,
      task_run_name="{kind}-batch-{number}")
def annotate_batch_task(number: int, kind: str, model_path: str, docs: list[PendingDocument]) -> list[DocAnnotations]:
    """Entities or labels of one batch of documents (no warehouse access)."""
    return annotate_batch(cached_annotator(kind, model_path), docs)


@task(name="write-annotations", retries=2, retry_delay_seconds=5, cache_policy=NONE,
      task_run_name="write-{plan.kind}-batch-{number}")
def write_annotations_task(number: int, plan: AnnotationPlan, results: list[DocAnnotations]) -> int:
    """Commit one batch's rows, the documents' state and the run's counts in one transaction."""
    with connect(get_settings().warehouse_path) as con:
        return annotations.write_annotations(con, plan.kind, plan.output, plan.run_id, results,
                                             model_version=plan.model_version, now=utcnow())


@task(name="finish-annotation", retries=1, retry_delay_seconds=5, cache_policy=NONE,
      task_run_name="finish-{plan.kind}")
def finish_annotation_task(plan: AnnotationPlan, seconds: float) -> dict[str, Any]:
    """Close the kind's run; returns its row and the backlog left."""
    with connect(get_settings().warehouse_path) as con:
        row = annotations.finish_run(con, plan.run_id, plan.kind, "completed", seconds=seconds, now=utcnow())
        backlog = annotations.count_pending(con, plan.kind, plan.output, plan.model_version)
    return {"run": row, "backlog": backlog}


# --- the gate of an annotation kind ---------------------------------------------------------------------------


def _gate_function(kind: str) -> Any:
    module = importlib.import_module(get_kind(kind).module)
    if not hasattr(module, "gate_evaluate"):
        raise ValueError(f"kind {kind!r} has no gate_evaluate(model_dir, limit, shared_data_dir) in {module.__name__}")
    return module.gate_evaluate


@task(name="annotation-production", cache_policy=NONE, retries=3, retry_delay_seconds=20,
      task_run_name="production-{kind}")
def annotation_production_task(kind: str) -> dict[str, str] | None:
    """``{"version", "path"}`` of the kind's production model, or None."""
    with connect(get_settings().warehouse_path) as con:
        record = models.production_model(con, get_kind(kind).output)
    return None if record is None else {"version": record.version, "path": record.path}


@task(name="annotation-gate-evaluate", cache_policy=NONE, task_run_name="gate-{kind}-{side}")
def evaluate_annotation_gate_task(kind: str, side: str, model_dir: str, version: str,
                                  limit: int | None = None) -> dict[str, Any]:
    """The kind's gate measurement of one model (``<kind module>.gate_evaluate``: ``main`` is what decides)."""
    result = _gate_function(kind)(model_dir, limit=limit, shared_data_dir=get_settings().shared_data_dir)
    get_run_logger().info("%s %s (%s): %s %.4f", kind, side, version, result.get("main_metric"), result["main"])
    return {**result, "model_version": version, "side": side}


@task(name="annotation-gate-decision", cache_policy=NONE, retries=3, retry_delay_seconds=20,
      task_run_name="gate-decision-{kind}")
def record_annotation_decision_task(kind: str, version: str, candidate: dict[str, Any],
                                    production: dict[str, Any] | None, *, margin: float, floor: float,
                                    auto_promote: bool, extra: dict[str, Any] | None = None,
                                    flow_run_id: str | None = None) -> dict[str, Any]:
    """Decide, store the numbers and the reason on the candidate's row and promote or reject it (one
    transaction); both measurements also go to ``evaluations``."""
    action, reason = annotation_decision(kind, candidate, production, margin=margin, floor=floor)
    if action == "promote" and not auto_promote:
        action, reason = "keep", f"{reason}; not promoted (auto_promote off)"
    strip = ("per_type", "overall")
    decision = {"kind": kind, "reason": reason, "action": action, "margin": margin, "floor": floor,
                "gate_set": f"{candidate.get('dataset')} {candidate.get('split')}",
                "primary": candidate.get("main_metric"), "primary_candidate": candidate["main"],
                "primary_production": None if production is None else production["main"],
                "delta": None if production is None else candidate["main"] - production["main"],
                "production_version": None if production is None else production["model_version"],
                "candidate": {k: candidate.get(k) for k in strip},
                "production": None if production is None else {k: production.get(k) for k in strip},
                **(extra or {})}
    with connect(get_settings().warehouse_path) as con:
        record = models.record_gate_decision(
            con, version, action=action, reason=reason, decision=decision,
            metrics={"gate": {"candidate": candidate["main"],
                              "production": None if production is None else production["main"]}},
            replaces=None if production is None else production["model_version"])
        for side in (candidate, production):
            if side is not None:
                n_docs = side.get("n_docs", side.get("sentences", 0))
                evaluations.insert_result(con, {**side, "method": kind, "n_docs": n_docs, "config_hash": "gate"},
                                          flow_run_id)
    get_run_logger().info("gate: %s -> %s (%s)", version, record.status, reason)
    return {"version": version, "status": record.status, "decision": decision}
