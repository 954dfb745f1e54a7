"""Evaluation steps: load a named dataset (a benchmark file or the silver set from the warehouse), evaluate
methods and models, store results, publish the report.

The plain functions are the I/O around ``kpe.datasets`` / ``kpe.evaluate`` and ``warehouse.evaluations`` (the
CLI calls them directly); the ``*_task`` objects are their thin Prefect wrappers, composed by
``flows/evaluate.py`` and, for the gate's measurements, ``flows/train.py``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import duckdb
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from kpe.datasets import GoldDocument, load_jsonl, resolve_benchmark, silver_documents, silver_split, write_jsonl
from kpe.evaluate.gate import GateSet, choose_method, evaluate_on_gate_sets, gate_set_names, gate_sets, primary_metric
from kpe.evaluate.harness import EvaluationResult, evaluate_method, metrics_only
from kpe.evaluate.report import markdown_report, plot_f1_curves, table_rows
from kpe.registry import ExtractionModel
from kpe.settings import get_settings
from warehouse import evaluations
from warehouse.db import connect


def load_silver(warehouse_path: Path | str, split: str = "dev", limit: int | None = None) -> list[GoldDocument]:
    """The silver PubMed benchmark of one split, read from the warehouse (read-only)."""
    with connect(warehouse_path, read_only=True) as con:
        return list(silver_documents(evaluations.iter_keyword_documents(con), split=split, limit=limit))


def warehouse_has_documents(warehouse_path: Path | str) -> bool:
    """Whether a warehouse file exists and holds at least one live document (False when unreadable)."""
    if not Path(warehouse_path).is_file():
        return False
    try:
        with connect(warehouse_path, read_only=True) as con:
            return evaluations.count_documents(con) > 0
    except duckdb.Error:
        return False


def load_benchmark_docs(name_or_path: str, limit: int | None = None) -> tuple[str, str, list[GoldDocument]]:
    """``(dataset, split, documents)`` for a registered benchmark, a JSONL file, or ``pubmed_silver_<split>``."""
    settings = get_settings()
    split = silver_split(name_or_path)
    if split is not None:
        return name_or_path, split, load_silver(settings.warehouse_path, split, limit)
    dataset, split, path = resolve_benchmark(name_or_path, settings.shared_data_dir)
    return dataset, split, load_jsonl(path, limit, dataset=dataset)


def load_gate_sets(names: list[str], limit: int | None = None) -> dict[str, GateSet]:
    """The gate's sets, ``limit`` documents each (empty ones left out: ``kpe.evaluate.gate.gate_sets``)."""
    return gate_sets(load_benchmark_docs(name, limit) for name in names)


def load_warehouse_gate_sets(limit: int | None = None) -> dict[str, GateSet]:
    """The gate sets of the configured warehouse (``kpe.evaluate.gate.gate_set_names``: silver dev when it holds
    documents), ``limit`` documents each."""
    return load_gate_sets(gate_set_names(warehouse_has_documents(get_settings().warehouse_path)), limit)


def store_evaluation(warehouse_path: Path | str, result: EvaluationResult, flow_run_id: str | None = None) -> int:
    """Write one harness result (without predictions) to the ``evaluations`` table; returns its id."""
    with connect(warehouse_path) as con:
        return evaluations.insert_result(con, result, flow_run_id)


def export_silver(warehouse_path: Path | str, out: Path | str, split: str = "dev", limit: int | None = None) -> int:
    """Write the silver benchmark of a split as benchmark JSONL; returns the number of documents."""
    return write_jsonl(load_silver(warehouse_path, split, limit), out)


def report_figure_path(cache_dir: Path | str) -> Path:
    """Where the F1@k figure of one evaluation run goes (under the cache dir)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return Path(cache_dir) / "reports" / f"evaluation-{stamp}.png"


# --- Prefect tasks ---------------------------------------------------------------------------------


@task(name="load-benchmark", cache_policy=NO_CACHE)
def load_benchmark_task(name_or_path: str, limit: int | None = None) -> tuple[str, str, list[GoldDocument]]:
    """Load one benchmark (see :func:`load_benchmark_docs`)."""
    dataset, split, docs = load_benchmark_docs(name_or_path, limit)
    get_run_logger().info("benchmark %s (%s): %d documents", dataset, split, len(docs))
    return dataset, split, docs


@task(name="evaluate-method", cache_policy=NO_CACHE)
def evaluate_method_task(
    method: str, dataset: str, split: str, docs: list[GoldDocument], model_path: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Evaluate one method on one benchmark (predictions dropped from the returned result)."""
    result = evaluate_method(
        method, docs, model_path=model_path, limit=limit, dataset=dataset, split=split, progress=False
    )
    get_run_logger().info(
        "%s on %s: macro F1@5 present %.4f, micro F1@5 all %.4f (%d docs, %.1f s)", method, dataset,
        primary_metric(result), result["micro"]["all"]["f1@5"], result["n_docs"], result["seconds"],
    )
    return metrics_only(result)


@task(name="store-evaluation", cache_policy=NO_CACHE)
def store_evaluation_task(result: EvaluationResult, flow_run_id: str | None = None) -> int:
    """Store one result in the warehouse named by the settings."""
    return store_evaluation(get_settings().warehouse_path, result, flow_run_id)


@task(name="publish-evaluation-report", cache_policy=NO_CACHE)
def publish_report_task(results: list[EvaluationResult], failures: list[str]) -> Path:
    """Table artifact, F1@k figure (under the cache dir) and a markdown artifact embedding it."""
    png = plot_f1_curves(results, report_figure_path(get_settings().cache_dir))
    create_table_artifact(
        key="keyphrase-evaluation", table=table_rows(results),
        description="Keyphrase evaluation: macro F1 (present, all gold) and micro F1@5 (all gold) "
        "per method and dataset",
    )
    create_markdown_artifact(
        key="keyphrase-evaluation-report", markdown=markdown_report(results, png, failures),
        description=f"F1@k curves per method and dataset; figure at {png}",
    )
    return png


@task(name="load-gate-sets", cache_policy=NO_CACHE)
def load_gate_sets_task(limit: int | None) -> dict[str, GateSet]:
    """Load the gate sets (``kpe.evaluate.gate.gate_set_names``: silver dev when the warehouse has documents)."""
    sets = load_warehouse_gate_sets(limit)
    get_run_logger().info("gate sets: %s", {name: len(s.docs) for name, s in sets.items()})
    return sets


@task(name="evaluate-on-gate-sets", cache_policy=NO_CACHE, task_run_name="evaluate-{label}")
def evaluate_on_gate_sets_task(label: str, model: ExtractionModel, sets: dict[str, GateSet]) -> dict[str, dict]:
    """Evaluate one side of the gate's comparison on every gate set."""
    logger = get_run_logger()
    logger.info("evaluating %s %s (method %s)", label, model.version, model.method)
    results = evaluate_on_gate_sets(model, sets)
    for name, result in results.items():
        logger.info("%s on %s: macro F1@5 present %.4f (%d docs, %.1f s)", label, name,
                    primary_metric(result), result["n_docs"], result["seconds"])
    return results


@task(name="choose-method", cache_policy=NO_CACHE)
def choose_method_task(kind: str, model: ExtractionModel,
                       sets: dict[str, GateSet]) -> tuple[dict[str, Any], dict[str, dict[str, dict]]]:
    """Let the gate sets choose the candidate's extraction method (``kpe.evaluate.gate.choose_method``); returns
    the choice as the decision records it (``{"chosen", "mean_f1@5_present"}``) and every method's results."""
    method, means, results = choose_method(kind, model, sets)
    choice = {"chosen": method, "mean_f1@5_present": {m: round(v, 4) for m, v in means.items()}}
    get_run_logger().info("method for %s: %s (mean macro F1@5 present per method: %s)", model.version, method,
                          choice["mean_f1@5_present"])
    return choice, results
