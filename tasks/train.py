"""Steps of the train flow: plan the data, fine-tune, register, read production, record the gate's decision.

Thin Prefect wrappers that ``flows/train.py`` composes (with the gate's measurements from ``tasks/evaluate.py``):
the training is ``kpe.train``, the gate's policy ``kpe.evaluate.gate`` and its page ``kpe.evaluate.report``, the
SQL ``warehouse.models``; these steps read what one side needs from the other and hand it over. Each opens the
warehouse only for as long as it needs it: DuckDB has one writer, and nightly may want it meanwhile.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from kpe.evaluate.gate import GateDecision, decide, decision_record, gate_action, gate_metrics
from kpe.evaluate.report import gate_markdown
from kpe.registry import ExtractionModel, current_extraction_model
from kpe.settings import get_settings
from kpe.train.config import TrainConfig, TrainResult
from kpe.train.data import DataPlan, plan_training_data
from warehouse import documents, evaluations, models
from warehouse.db import connect


@contextmanager
def forward_logs(logger_name: str = "kpe") -> Iterator[None]:
    """Send the records of a library logger (``kpe.train`` logs with ``logging``) to the Prefect run logger,
    so they reach the UI; nothing to do when ``PREFECT_LOGGING_EXTRA_LOGGERS`` already names the logger."""
    extra = {name.strip() for name in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",")}
    if logger_name in extra:
        yield
        return
    run_logger = get_run_logger()

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            run_logger.log(record.levelno, "%s: %s", record.name, record.getMessage())

    handler = _Forward(level=logging.INFO)
    library = logging.getLogger(logger_name)
    old_level, old_propagate = library.level, library.propagate
    library.addHandler(handler)
    library.propagate = False  # the run logger prints it already
    if library.getEffectiveLevel() > logging.INFO:
        library.setLevel(logging.INFO)
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.setLevel(old_level)
        library.propagate = old_propagate


# --- warehouse reads and writes of the train flow ------------------------------------------------------------


def deleted_doc_ids() -> set[str]:
    """Documents the warehouse marks deleted (none without a warehouse): training leaves them out."""
    path = Path(get_settings().warehouse_path)
    if not path.exists():
        return set()
    with connect(path, read_only=True) as con:
        return documents.deleted_doc_ids(con)


def production_for_gate() -> ExtractionModel:
    """What the candidate must beat: the production model, or the packaged default with ``kpe``."""
    with connect(get_settings().warehouse_path) as con:
        return current_extraction_model(models.production_model(con))


def record_decision(
    version: str, decision: GateDecision, candidate: dict[str, dict], production: dict[str, dict],
    production_model: ExtractionModel, *, auto_promote: bool, method: str | None = None,
    extra: dict[str, Any] | None = None, flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Store the numbers, the decision and the method on the candidate's row and promote or reject it, in one
    transaction (``warehouse.models.record_gate_decision``); every gate evaluation also goes to ``evaluations``.

    Returns ``{"version", "status", "decision"}``. The promotion is conditional on production being the
    model that was evaluated; if it changed meanwhile the candidate stays a ``candidate`` (reason stored).
    """
    data = decision_record(version, decision, candidate, production_model, auto_promote=auto_promote,
                           flow_run_id=flow_run_id, extra=extra)
    action, reason = gate_action(decision, auto_promote)
    with connect(get_settings().warehouse_path) as con:
        # the packaged default is not a registry row: "replaces nothing"
        replaces = production_model.version if models.get_model(con, production_model.version) else None
        record = models.record_gate_decision(con, version, action=action, reason=reason, decision=data,
                                             metrics=gate_metrics(candidate, production), method=method,
                                             replaces=replaces)
        for side in (candidate, production):
            for result in side.values():
                evaluations.insert_result(con, result, flow_run_id)
    if (record.decision or {}).get("not_promoted"):
        data["not_promoted"] = record.decision["not_promoted"]
    return {"version": version, "status": record.status, "decision": data}


# --- Prefect tasks -------------------------------------------------------------------------------


@task(name="build-training-data", cache_policy=NO_CACHE)
def build_training_data_task(train_data: list[str] | None, train_limit: int | None) -> DataPlan:
    """Resolve and count the training sources (``kpe.train.data.plan_training_data``): a bad name fails here."""
    settings = get_settings()
    data = plan_training_data(train_data, lake_dir=Path(settings.lake_dir),
                              shared_data_dir=Path(settings.shared_data_dir), exclude_doc_ids=deleted_doc_ids(),
                              max_docs=train_limit)
    logger = get_run_logger()
    logger.info("training data: %s", data.docs)
    if data.empty:
        logger.warning("training sources without documents, left out: %s", data.empty)
    return data


# log_prints=False: `datasets` fingerprints functions with dill, which disassembles them into a captured
# stdout; under the flow's print patch that bytecode went to the run log instead (and dill saw no globals).
@task(name="train-model", cache_policy=NO_CACHE, task_run_name="train-{config.kind}", log_prints=False)
def train_model_task(config: TrainConfig, keep_checkpoints: bool = False) -> TrainResult:
    """Fine-tune (or MLM-pretrain) one model, lake documents deleted in the warehouse left out; the checkpoints
    (only needed to resume) are deleted afterwards unless kept. ``kpe.train`` logs go to the run log."""
    from kpe.train import train

    logger = get_run_logger()
    logger.info("training %s into %s (max_steps=%s, epochs=%s)", config.kind, config.output_dir,
                config.max_steps, config.epochs)
    if config.lake_dir is not None:
        config = config.model_copy(update={"exclude_doc_ids": sorted(deleted_doc_ids())})
    with forward_logs("kpe"):
        result = train(config)
    if not keep_checkpoints:
        shutil.rmtree(config.checkpoints_dir(), ignore_errors=True)
    if not Path(result.model_dir, "config.json").is_file():
        raise RuntimeError(f"training finished without saving a model in {result.model_dir}")
    logger.info("trained %s: %d steps in %.0f s, validation %s", result.kind, result.steps, result.seconds,
                result.metrics)
    return result


@task(name="register-candidate", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=20)
def register_candidate_task(version: str, result: TrainResult, method: str, base_model: str,
                            settings: dict[str, Any]) -> dict[str, Any]:
    """Register the trained model as a candidate (retried: nightly may hold the warehouse for a while)."""
    with connect(get_settings().warehouse_path) as con:
        record = models.register_candidate(
            con, version=version, path=str(Path(result.model_dir).resolve()), base_model=base_model,
            kind=result.kind, method=method, data=result.data_summary, settings=settings,
            metrics={"validation": result.metrics, "steps": result.steps, "train_seconds": result.seconds},
        )
    get_run_logger().info("registered candidate %s at %s", record.version, record.path)
    return {"version": record.version, "path": record.path, "status": record.status}


@task(name="fit-span-ranker", cache_policy=NO_CACHE, log_prints=False)
def fit_span_ranker_task(version: str, out_dir: str,
                         ranker_folds: int = 0) -> tuple[models.ModelRecord, dict[str, Any]]:
    """Copy the files of the registered tagger ``version`` to ``out_dir`` and fit the ``ranked`` method's span ranker
    there, on the validation slice of the training data it was trained with (documents deleted since left out),
    with a phrase lexicon of its training split; with ``ranker_folds`` K also on the training split tagged out of
    fold by K fold taggers trained like its run (``kpe.train.ranker_folds``, in a folder beside ``out_dir``, removed
    after). Returns the tagger's record and the new version's data record (the tagger's, with ``span_ranker``: the
    ranker's summary), as written into its model card."""
    from kpe.train.data import train_val_docs
    from kpe.train.model_card import add_to_model_card
    from kpe.train.phrase_lexicon import LEXICON_FILE
    from kpe.train.ranker_folds import out_of_fold_candidates
    from kpe.train.span_ranker import RANKER_FILE, RANKER_SUMMARY, fit_model_ranker

    with connect(get_settings().warehouse_path, read_only=True) as con:
        record = models.get_model(con, version)
    if record is None:
        raise ValueError(f"no model version {version!r} in the registry (see `kpe models list`)")
    if record.kind != "tagger":
        raise ValueError(f"{version} is not a tagger (kind {record.kind}): a span ranker ranks the spans of a "
                         "tagger trained by `kpe train --kind tagger`")
    if not (record.settings or {}).get("train_config"):
        raise ValueError(f"{version} records no training configuration: its validation slice, which the span "
                         "ranker is fitted on, is unknown")
    if not Path(record.path, "config.json").is_file():
        raise ValueError(f"the files of {version} are missing ({record.path})")
    folds = {"ranker_folds": ranker_folds, "fit_span_ranker": True, "output_dir": str(Path(out_dir).parent)}
    config = TrainConfig.model_validate({**record.settings["train_config"], **(folds if ranker_folds else {}),
                                         "exclude_doc_ids": sorted(deleted_doc_ids())})
    train_docs, val_docs, _ = train_val_docs(config, capped=False)
    shutil.copytree(record.path, out_dir, ignore=shutil.ignore_patterns(RANKER_FILE, RANKER_SUMMARY, LEXICON_FILE))
    logger = get_run_logger()
    logger.info("fitting a span ranker for %s on %d validation documents%s", version, len(val_docs),
                f" and {len(train_docs)} training documents tagged by {ranker_folds} fold taggers"
                if ranker_folds else "")
    try:
        with forward_logs("kpe"):
            out_of_fold = out_of_fold_candidates(config, train_docs) if ranker_folds else None
            summary = fit_model_ranker(out_dir, val_docs, lexicon_docs=train_docs, out_of_fold=out_of_fold)
    except Exception:  # no half-made version left behind
        shutil.rmtree(Path(out_dir).parent, ignore_errors=True)
        raise
    data = {**(record.data or {}), "span_ranker": summary}
    add_to_model_card(out_dir, "data", data)
    return record, data


@task(name="register-ranked-candidate", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=20)
def register_ranked_candidate_task(version: str, path: str, tagger: models.ModelRecord,
                                   data: dict[str, Any]) -> dict[str, Any]:
    """Register a tagger with a new span ranker as a candidate (method ``ranked``; training as ``tagger``'s, ``data``
    from :func:`fit_span_ranker_task`)."""
    with connect(get_settings().warehouse_path) as con:
        record = models.register_candidate(
            con, version=version, path=str(Path(path).resolve()), base_model=tagger.base_model, kind="tagger",
            method="ranked", data=data,
            settings={**(tagger.settings or {}), "span_ranker_for": tagger.version}, metrics=tagger.metrics)
    get_run_logger().info("registered candidate %s (%s with a span ranker) at %s", record.version, tagger.version,
                          record.path)
    return {"version": record.version, "path": record.path, "status": record.status}


@task(name="production-model", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=20)
def production_model_task() -> ExtractionModel:
    """The model the candidate is compared with."""
    model = production_for_gate()
    get_run_logger().info("production: %s (method %s)", model.version, model.method)
    return model


@task(name="gate-decision", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=20)
def decide_and_record_task(
    version: str, candidate: dict[str, dict], production: dict[str, dict], production_model: ExtractionModel,
    margin: float, tolerance: float, auto_promote: bool, method: str | None = None,
    extra: dict[str, Any] | None = None, flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Decide (``kpe.evaluate.gate.decide``), store every number, the method and the reason, promote or reject."""
    decision = decide(candidate, production, margin=margin, tolerance=tolerance)
    result = record_decision(version, decision, candidate, production, production_model, auto_promote=auto_promote,
                             method=method, extra=extra, flow_run_id=flow_run_id)
    get_run_logger().info("gate: %s -> %s (%s)", version, result["status"], decision.reason)
    return result


@task(name="model-card-gate", cache_policy=NO_CACHE)
def add_gate_to_model_card_task(model_dir: str, outcome: dict[str, Any], method: str) -> str | None:
    """Write the gate's decision and numbers into the trained model's card (``README.md``) once decided."""
    from kpe.train.model_card import add_gate_to_model_card

    decision = outcome.get("decision") or {}
    gate = {"status": outcome.get("status"), "method": method,
            **{k: decision.get(k) for k in ("reason", "production_version", "primary", "primary_candidate",
                                            "primary_production", "delta", "margin", "tolerance", "per_set",
                                            "sets", "regressions", "delta_ci95")},
            "method_scores": (decision.get("method_choice") or {}).get("mean_f1@5_present")}
    path = add_gate_to_model_card(model_dir, gate)
    if path is None:
        get_run_logger().warning("no model card in %s: the gate numbers are in the registry only", model_dir)
    return None if path is None else str(path)


def production_model_dir(output: str = "keyphrases") -> tuple[str, str, str]:
    """``(version, kind, model dir)`` of the configured warehouse's production model for ``output``
    (``keyphrases``, ``entities``, ``doc_labels``), for evaluating without naming a model; a ``ValueError`` that says
    what to do when there is none."""
    path = Path(get_settings().warehouse_path)
    name_one = "--model DIR" if output == "keyphrases" else "a model dir"  # evaluate-ner takes it as an argument
    if not path.is_file():
        raise ValueError(f"no warehouse at {path}: give {name_one}, or train and promote a model with `kpe train`")
    with connect(path, read_only=True) as con:
        record = models.production_model(con, output)
    if record is None:
        default = " (nightly uses the packaged encoder)" if output == "keyphrases" else ""
        raise ValueError(f"no production model for {output} in {path}{default}: give {name_one}, "
                         "or train and promote one with `kpe train`")
    if not Path(record.path).is_dir():
        raise ValueError(f"production model {record.version}: its directory {record.path} is missing")
    return record.version, record.kind, record.path


@task(name="reject-candidate", cache_policy=NO_CACHE)
def reject_candidate_task(version: str, error: str) -> None:
    """A candidate whose evaluation failed is rejected, with the error as the reason."""
    with connect(get_settings().warehouse_path) as con:
        if models.get_model(con, version) is not None:
            models.reject(con, version, reason=f"evaluation failed: {error}")


@task(name="publish-gate-decision", cache_policy=NO_CACHE)
def publish_gate_decision_task(outcome: dict[str, Any], candidate: dict[str, dict],
                               production: dict[str, dict]) -> None:
    """The markdown artifact ``train-gate-decision`` (``kpe.evaluate.report.gate_markdown``)."""
    create_markdown_artifact(key="train-gate-decision", markdown=gate_markdown(outcome, candidate, production),
                             description=f"{outcome['version']}: {outcome['status']}")
