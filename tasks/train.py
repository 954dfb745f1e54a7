"""Steps of the train flow: plan the data, fine-tune, register, evaluate both sides on the gate sets, decide.

The plain functions compose ``kpe.train``, ``kpe.evaluate`` and ``warehouse.models`` (tests call them
directly); the ``*_task`` objects are their thin Prefect wrappers for ``flows/train.py``. Each step opens the
warehouse only for as long as it needs it: DuckDB has one writer, and nightly may want it meanwhile.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import fmean
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from kpe.encoders import DEFAULT_ENCODER_NAME, packaged_encoder_path, resolve_encoder
from kpe.evaluate.benchmarks import GoldDocument
from kpe.evaluate.gate import GateDecision, decide, primary_metric
from kpe.evaluate.harness import evaluate_method, metrics_only
from kpe.registry import ExtractionModel, current_extraction_model
from kpe.settings import get_settings
from kpe.train.config import TrainConfig, TrainResult
from tasks.evaluate import load_benchmark_docs, silver_name, store_evaluation, warehouse_has_documents
from warehouse import models as registry
from warehouse.db import connect

#: Fine-tuning kinds and the extraction methods that can use what each one produces.
METHODS_FOR_KIND: dict[str, tuple[str, ...]] = {
    "tagger": ("tagger", "hybrid", "keybert-ft"),
    "joint": ("joint", "keybert-ft"),
}
#: Benchmarks (train files) used when no training data is named; ``pubmed`` is added when the lake has documents.
DEFAULT_TRAIN_DATA: tuple[str, ...] = ("inspec", "semeval2017")
#: Dev sets every candidate is compared on; the PubMed silver dev split joins when the warehouse has documents.
GATE_BENCHMARKS: tuple[str, ...] = ("inspec_dev", "semeval2017_dev")


@dataclass(frozen=True, slots=True)
class GateSet:
    """One evaluation set of the gate."""

    name: str
    split: str
    docs: list[GoldDocument]


def check_kind_and_method(kind: str, method: str | None) -> str:
    """The extraction method for a fine-tuning kind (default: the kind itself); bad pairs are a ``ValueError``."""
    if kind not in METHODS_FOR_KIND:
        raise ValueError(f"kind must be one of {', '.join(METHODS_FOR_KIND)}, got {kind!r}")
    method = method or kind
    if method not in METHODS_FOR_KIND[kind]:
        raise ValueError(f"method {method!r} cannot use a {kind} model; choose one of {', '.join(METHODS_FOR_KIND[kind])}")
    return method


def base_model_name(base_model: str | None) -> str:
    """What the registry records as the base model: ``all-MiniLM-L6-v2`` for the packaged one, else the path/id."""
    resolved = resolve_encoder(base_model)
    return DEFAULT_ENCODER_NAME if resolved == packaged_encoder_path() else resolved


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


# --- data and training ---------------------------------------------------------------------------


def plan_training_data(train_data: list[str] | None, train_limit: int | None = None) -> dict[str, Any]:
    """Resolve and load the training sources once, before any model is loaded: a bad name fails here.

    Returns ``{"sources": [...], "docs": {source: n}, "empty": [...], "lake_dir": str | None}``; sources without a single
    document (e.g. no author keyword in the ingested PubMed records) are left out and listed in ``"empty"``.
    """
    from kpe.shards import document_shard_files
    from kpe.train.data import SILVER, load_sources

    settings = get_settings()
    lake_has_docs = bool(document_shard_files(Path(settings.lake_dir)))
    sources = list(train_data) if train_data else [*DEFAULT_TRAIN_DATA, *([SILVER] if lake_has_docs else [])]
    if SILVER in sources and not lake_has_docs:
        raise ValueError(f"training source {SILVER!r} needs ingested documents, but {settings.lake_dir} has no shards")
    loaded = load_sources(
        sources, lake_dir=Path(settings.lake_dir) if SILVER in sources else None,
        warehouse_path=Path(settings.warehouse_path) if Path(settings.warehouse_path).exists() else None,
        shared_data_dir=Path(settings.shared_data_dir), max_docs=train_limit,
    )
    counts = {name: len(docs) for name, docs in loaded.items()}
    kept = [s for s in sources if counts.get(Path(s).stem if s.endswith(".jsonl") else s, 1) > 0]
    empty = [s for s in sources if s not in kept]
    if not kept or not any(counts.values()):
        raise ValueError(f"no training documents in {sources}")
    return {"sources": kept, "docs": counts, "empty": empty,
            "lake_dir": str(settings.lake_dir) if SILVER in kept else None}


def train_config(
    kind: str, output_dir: Path, data: dict[str, Any], *, base: str | None, max_steps: int | None, epochs: int,
    train_limit: int | None, seed: int, **overrides: Any,
) -> TrainConfig:
    """The ``kpe.train.TrainConfig`` of one run (``overrides``: any other ``TrainConfig`` field)."""
    settings = get_settings()
    warehouse = Path(settings.warehouse_path)
    return TrainConfig(
        kind=kind, output_dir=output_dir, base=base, train_data=data["sources"],
        lake_dir=Path(data["lake_dir"]) if data.get("lake_dir") else None,
        warehouse_path=warehouse if warehouse.exists() else None, shared_data_dir=Path(settings.shared_data_dir),
        max_docs=train_limit, max_steps=max_steps, epochs=epochs, seed=seed, **overrides,
    )


def run_training(config: TrainConfig, keep_checkpoints: bool = False) -> TrainResult:
    """Train as configured; the checkpoints (only needed to resume) are deleted afterwards unless kept."""
    from kpe.train import train

    result = train(config)
    if not keep_checkpoints:
        shutil.rmtree(config.checkpoints_dir(), ignore_errors=True)
    if not Path(result.model_dir, "config.json").is_file():
        raise RuntimeError(f"training finished without saving a model in {result.model_dir}")
    return result


# --- registry ------------------------------------------------------------------------------------


def register(version: str, result: TrainResult, *, method: str, base_model: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Register a trained model as a candidate; returns the row as a dict."""
    con = connect(get_settings().warehouse_path)
    try:
        record = registry.register_candidate(
            con, version=version, path=str(Path(result.model_dir).resolve()), base_model=base_model,
            kind=result.kind, method=method, data=result.data_summary, settings=settings,
            metrics={"validation": result.metrics, "steps": result.steps, "train_seconds": result.seconds},
        )
    finally:
        con.close()
    return {"version": record.version, "path": record.path, "status": record.status}


def production_for_gate() -> ExtractionModel:
    """What the candidate must beat: the production model, or the packaged default with ``kpe``."""
    con = connect(get_settings().warehouse_path)
    try:
        return current_extraction_model(con)
    finally:
        con.close()


# --- gate ----------------------------------------------------------------------------------------


def gate_set_names(include_silver: bool | None = None) -> list[str]:
    """Inspec dev and SemEval-2017 dev, plus the PubMed silver dev split when the warehouse has documents."""
    if include_silver is None:
        include_silver = warehouse_has_documents(get_settings().warehouse_path)
    return [*GATE_BENCHMARKS, *([silver_name("dev")] if include_silver else [])]


def load_gate_sets(names: list[str], limit: int | None = None) -> dict[str, GateSet]:
    """The gate's documents, ``limit`` per set; a set with no document (silver dev on a small warehouse) is
    left out, so both sides are always compared on the same, non-empty sets."""
    sets: dict[str, GateSet] = {}
    for name in names:
        dataset, split, docs = load_benchmark_docs(name, limit)
        if docs:
            sets[dataset] = GateSet(dataset, split, docs)
    if not sets:
        raise ValueError(f"no gate set has documents: {names}")
    return sets


def evaluate_on_gate_sets(model: ExtractionModel, sets: dict[str, GateSet], config: Any = None) -> dict[str, dict]:
    """Harness metrics (no predictions) of one model on every gate set, keyed by set name."""
    out: dict[str, dict] = {}
    for name, gate_set in sets.items():
        result = evaluate_method(model.method, gate_set.docs, model_path=model.model_path, config=config,
                                 dataset=name, split=gate_set.split, progress=False)
        result = metrics_only(result)
        result["model_version"] = model.version
        out[name] = result
    return out


def choose_method(kind: str, model: ExtractionModel, sets: dict[str, GateSet],
                  methods: tuple[str, ...] | None = None) -> tuple[str, dict[str, float], dict[str, dict[str, dict]]]:
    """Evaluate a candidate with every extraction method its kind supports; the best mean primary metric over
    the gate sets wins (a tie goes to the method listed first in ``METHODS_FOR_KIND``). Returns the method,
    every method's mean and every method's results."""
    results = {m: evaluate_on_gate_sets(replace(model, method=m), sets) for m in methods or METHODS_FOR_KIND[kind]}
    means = {m: fmean(primary_metric(r) for r in res.values()) for m, res in results.items()}
    return max(means, key=means.__getitem__), means, results


def set_candidate_method(version: str, method: str) -> None:
    """Store the chosen method on the candidate's registry row."""
    con = connect(get_settings().warehouse_path)
    try:
        registry.set_method(con, version, method)
    finally:
        con.close()


def gate_decision(
    candidate: dict[str, dict], production: dict[str, dict], margin: float, tolerance: float,
) -> GateDecision:
    """The decision rule on harness results (``kpe.evaluate.gate.decide``)."""
    return decide(candidate, production, margin=margin, tolerance=tolerance)


def _headline(result: dict) -> dict[str, Any]:
    keys = ("n_docs", "n_docs_scored", "seconds", "load_seconds", "model_version", "method")
    return {**{k: result.get(k) for k in keys}, "macro": result["macro"], "micro": result["micro"]}


def record_decision(
    version: str, decision: GateDecision, candidate: dict[str, dict], production: dict[str, dict],
    production_model: ExtractionModel, *, auto_promote: bool, extra: dict[str, Any] | None = None,
    flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Store the numbers and the decision on the candidate's row, then promote it or reject it.

    Returns ``{"version", "status", "decision"}``. The promotion is conditional on production being the
    model that was evaluated; if it changed meanwhile the candidate stays a ``candidate`` (reason stored).
    Every gate evaluation also goes to the ``evaluations`` table.
    """
    settings = get_settings()
    data = {
        **decision.to_dict(),
        "candidate_version": version,
        "production_version": production_model.version,
        "production_method": production_model.method,
        "production_model_path": production_model.model_path,
        "sets": {name: result["n_docs"] for name, result in candidate.items()},
        "auto_promote": auto_promote,
        "flow_run_id": flow_run_id,
        **(extra or {}),
    }
    con = connect(settings.warehouse_path)
    try:
        record = registry.get_model(con, version)
        if record is None:
            raise registry.RegistryError(f"candidate {version} is not registered")
        metrics = {**(record.metrics or {}),
                   "gate": {"candidate": {k: _headline(v) for k, v in candidate.items()},
                            "production": {k: _headline(v) for k, v in production.items()}}}
        if record.status == "candidate":  # a retried step finds the status already decided
            # the packaged default is not a registry row: "replaces nothing"
            replaces = production_model.version if registry.get_model(con, production_model.version) else None
            registry.record_evaluation(con, version, metrics=metrics, decision=data)
            if not decision.promote:
                registry.reject(con, version, reason=decision.reason)
            elif not auto_promote:
                registry.set_status(con, version, "candidate", reason="gate passed; not promoted (auto_promote off)")
            else:
                try:
                    registry.promote(con, version, reason=decision.reason, action="promoted_by_gate",
                                     replaces=replaces)
                except registry.RegistryError as exc:
                    data["not_promoted"] = str(exc)
                    registry.record_evaluation(con, version, decision=data)
                    registry.set_status(con, version, "candidate", reason=str(exc))
        status = registry.get_model(con, version).status
    finally:
        con.close()
    for side in (candidate, production):
        for result in side.values():
            store_evaluation(settings.warehouse_path, result, flow_run_id)
    return {"version": version, "status": status, "decision": data}


def reject_after_failure(version: str, error: BaseException) -> None:
    """A candidate whose evaluation failed is rejected, with the error as the reason."""
    con = connect(get_settings().warehouse_path)
    try:
        if registry.get_model(con, version) is not None:
            registry.reject(con, version, reason=f"evaluation failed: {type(error).__name__}: {error}")
    finally:
        con.close()


def decision_markdown(result: dict[str, Any], candidate: dict[str, dict], production: dict[str, dict]) -> str:
    """The artifact: per-set metrics of both sides, deltas, the decision and its reason."""
    d = result["decision"]
    lines = [
        f"# Train gate: `{result['version']}` -> **{result['status']}**",
        "",
        f"Candidate `{d['candidate_version']}` against production `{d['production_version']}` "
        f"(method `{d['production_method']}`); primary metric macro {d['primary']} over present gold.",
        "",
        "| set | docs | candidate F1@5 | production F1@5 | delta | candidate F1@10 | production F1@10 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cmp in d["per_set"].items():
        c10 = candidate[name]["macro"]["present"].get("f1@10", float("nan"))
        p10 = production[name]["macro"]["present"].get("f1@10", float("nan"))
        lines.append(f"| {name} | {candidate[name]['n_docs']} | {cmp['candidate']:.4f} | {cmp['production']:.4f} | "
                     f"{cmp['delta']:+.4f} | {c10:.4f} | {p10:.4f} |")
    lines += [
        f"| **mean** | | **{d['primary_candidate']:.4f}** | **{d['primary_production']:.4f}** | "
        f"**{d['delta']:+.4f}** | | |",
        "",
        f"- margin {d['margin']:.4f}, tolerance {d['tolerance']:.4f}, regressions: {', '.join(d['regressions']) or 'none'}",
        f"- decision: **{'promote' if d['promote'] else 'reject'}**; final status **{result['status']}**",
        f"- reason: {d['reason']}",
    ]
    if d.get("not_promoted"):
        lines.append(f"- not promoted: {d['not_promoted']}")
    if d.get("method_choice"):
        choice = d["method_choice"]
        scores = ", ".join(f"`{m}` {v:.4f}" for m, v in choice["mean_f1@5_present"].items())
        lines.append(f"- method chosen on the gate sets: **{choice['chosen']}** (mean F1@5: {scores})")
    if d.get("training"):
        t = d["training"]
        lines.append(f"- training: {t.get('steps')} steps, {t.get('seconds', 0):.0f} s, data {t.get('docs')}, "
                     f"validation {t.get('validation')}")
    return "\n".join(lines) + "\n"


# --- Prefect tasks -------------------------------------------------------------------------------


@task(name="build-training-data", cache_policy=NO_CACHE)
def build_training_data_task(train_data: list[str] | None, train_limit: int | None) -> dict[str, Any]:
    """Plan the training data (see :func:`plan_training_data`)."""
    data = plan_training_data(train_data, train_limit)
    logger = get_run_logger()
    logger.info("training data: %s", data["docs"])
    if data["empty"]:
        logger.warning("training sources without documents, left out: %s", data["empty"])
    return data


@task(name="train-model", cache_policy=NO_CACHE, task_run_name="train-{config.kind}")
def train_model_task(config: TrainConfig, keep_checkpoints: bool = False) -> TrainResult:
    """Fine-tune (or MLM-pretrain) one model; ``kpe.train`` logs go to the run log."""
    logger = get_run_logger()
    logger.info("training %s into %s (max_steps=%s, epochs=%s)", config.kind, config.output_dir,
                config.max_steps, config.epochs)
    with forward_logs("kpe"):
        result = run_training(config, keep_checkpoints)
    logger.info("trained %s: %d steps in %.0f s, validation %s", result.kind, result.steps, result.seconds,
                result.metrics)
    return result


@task(name="register-candidate", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=20)
def register_candidate_task(version: str, result: TrainResult, method: str, base_model: str,
                            settings: dict[str, Any]) -> dict[str, Any]:
    """Register the trained model as a candidate (retried: nightly may hold the warehouse for a while)."""
    row = register(version, result, method=method, base_model=base_model, settings=settings)
    get_run_logger().info("registered candidate %s at %s", row["version"], row["path"])
    return row


@task(name="production-model", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=20)
def production_model_task() -> ExtractionModel:
    """The model the candidate is compared with."""
    model = production_for_gate()
    get_run_logger().info("production: %s (method %s)", model.version, model.method)
    return model


@task(name="load-gate-sets", cache_policy=NO_CACHE)
def load_gate_sets_task(limit: int | None) -> dict[str, GateSet]:
    """Load the gate sets (see :func:`gate_set_names`)."""
    sets = load_gate_sets(gate_set_names(), limit)
    get_run_logger().info("gate sets: %s", {name: len(s.docs) for name, s in sets.items()})
    return sets


@task(name="evaluate-on-gate-sets", cache_policy=NO_CACHE, task_run_name="evaluate-{label}")
def evaluate_task(label: str, model: ExtractionModel, sets: dict[str, GateSet]) -> dict[str, dict]:
    """Evaluate one side of the comparison on every gate set."""
    logger = get_run_logger()
    logger.info("evaluating %s %s (method %s)", label, model.version, model.method)
    results = evaluate_on_gate_sets(model, sets)
    for name, result in results.items():
        logger.info("%s on %s: macro F1@5 present %.4f (%d docs, %.1f s)", label, name,
                    result["macro"]["present"]["f1@5"], result["n_docs"], result["seconds"])
    return results


@task(name="choose-method", cache_policy=NO_CACHE)
def choose_method_task(version: str, kind: str, model: ExtractionModel,
                       sets: dict[str, GateSet]) -> tuple[dict[str, Any], dict[str, dict[str, dict]]]:
    """Let the gate sets choose the candidate's extraction method (see :func:`choose_method`); returns the
    choice as the decision records it (``{"chosen", "mean_f1@5_present"}``) and every method's results."""
    method, means, results = choose_method(kind, model, sets)
    set_candidate_method(version, method)
    choice = {"chosen": method, "mean_f1@5_present": {m: round(v, 4) for m, v in means.items()}}
    get_run_logger().info("method for %s: %s (mean macro F1@5 present per method: %s)", version, method,
                          choice["mean_f1@5_present"])
    return choice, results


@task(name="gate-decision", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=20)
def decide_and_record_task(
    version: str, candidate: dict[str, dict], production: dict[str, dict], production_model: ExtractionModel,
    margin: float, tolerance: float, auto_promote: bool, extra: dict[str, Any] | None = None,
    flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Decide, store every number and the reason, promote or reject."""
    decision = gate_decision(candidate, production, margin, tolerance)
    result = record_decision(version, decision, candidate, production, production_model,
                             auto_promote=auto_promote, extra=extra, flow_run_id=flow_run_id)
    get_run_logger().info("gate: %s -> %s (%s)", version, result["status"], decision.reason)
    return result
