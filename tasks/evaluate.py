"""Evaluation steps: load a benchmark (file or silver warehouse set), evaluate one method, store, report.

The plain functions compose ``kpe.evaluate`` with ``warehouse.evaluations`` (the CLI calls them
directly); the ``*_task`` objects are their thin Prefect wrappers for ``flows/evaluate.py``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import duckdb
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from kpe.evaluate.benchmarks import GoldDocument, load_jsonl, resolve_benchmark, write_jsonl
from kpe.evaluate.harness import evaluate_method, metrics_only
from kpe.evaluate.report import markdown_report, plot_f1_curves, table_rows
from kpe.evaluate.silver import SILVER_DATASET, SILVER_SPLITS, silver_documents
from kpe.settings import get_settings
from warehouse import db, evaluations

SILVER_PREFIX = f"{SILVER_DATASET}_"


def silver_name(split: str) -> str:
    """Dataset name of a silver split (``pubmed_silver_dev``)."""
    return f"{SILVER_PREFIX}{split}"


def load_silver(warehouse_path: Path | str, split: str = "dev", limit: int | None = None) -> list[GoldDocument]:
    """The silver PubMed benchmark of one split, read from the warehouse (read-only)."""
    con = db.connect(warehouse_path, read_only=True)
    try:
        return list(silver_documents(evaluations.iter_keyword_documents(con), split=split, limit=limit))
    finally:
        con.close()


def warehouse_has_documents(warehouse_path: Path | str) -> bool:
    """Whether a warehouse file exists and holds at least one live document (False when unreadable)."""
    if not Path(warehouse_path).is_file():
        return False
    try:
        con = db.connect(warehouse_path, read_only=True)
    except duckdb.Error:
        return False
    try:
        return evaluations.count_documents(con) > 0
    except duckdb.Error:
        return False
    finally:
        con.close()


def load_benchmark_docs(name_or_path: str, limit: int | None = None) -> tuple[str, str, list[GoldDocument]]:
    """``(dataset, split, documents)`` for a registered benchmark, a JSONL file, or ``pubmed_silver_<split>``."""
    settings = get_settings()
    if name_or_path.startswith(SILVER_PREFIX) and name_or_path[len(SILVER_PREFIX):] in SILVER_SPLITS:
        split = name_or_path[len(SILVER_PREFIX):]
        return name_or_path, split, load_silver(settings.warehouse_path, split, limit)
    dataset, split, path = resolve_benchmark(name_or_path, settings.shared_data_dir)
    return dataset, split, load_jsonl(path, limit)


def store_evaluation(warehouse_path: Path | str, result: dict[str, Any], flow_run_id: str | None = None) -> int:
    """Write one harness result (without predictions) to the ``evaluations`` table; returns its id."""
    con = db.connect(warehouse_path)
    try:
        return evaluations.insert_evaluation(
            con,
            dataset=result["dataset"],
            split=result.get("split", "unknown"),
            method=result["method"],
            model_version=result.get("model_version", "default"),
            config_hash=result.get("config_hash", "default"),
            n_docs=result["n_docs"],
            metrics=metrics_only(result),
            seconds=result["seconds"],
            flow_run_id=flow_run_id,
        )
    finally:
        con.close()


def export_silver(warehouse_path: Path | str, out: Path | str, split: str = "dev", limit: int | None = None) -> int:
    """Write the silver benchmark of a split as benchmark JSONL; returns the number of documents."""
    return write_jsonl(load_silver(warehouse_path, split, limit), out)


def report_figure_path(cache_dir: Path | str) -> Path:
    """Where the F1@k figure of one evaluation run goes (under the cache dir)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
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
    result = evaluate_method(method, docs, model_path=model_path, limit=limit, dataset=dataset, split=split, progress=False)
    get_run_logger().info(
        "%s on %s: macro F1@5 present %.4f, micro F1@5 all %.4f (%d docs, %.1f s)", method, dataset,
        result["macro"]["present"]["f1@5"], result["micro"]["all"]["f1@5"], result["n_docs"], result["seconds"],
    )
    return metrics_only(result)


@task(name="store-evaluation", cache_policy=NO_CACHE)
def store_evaluation_task(result: dict[str, Any], flow_run_id: str | None = None) -> int:
    """Store one result in the warehouse named by the settings."""
    return store_evaluation(get_settings().warehouse_path, result, flow_run_id)


@task(name="publish-evaluation-report", cache_policy=NO_CACHE)
def publish_report_task(results: list[dict[str, Any]], failures: list[str]) -> Path:
    """Table artifact, F1@k figure (under the cache dir) and a markdown artifact embedding it."""
    png = plot_f1_curves(results, report_figure_path(get_settings().cache_dir))
    create_table_artifact(
        key="keyphrase-evaluation", table=table_rows(results),
        description="Keyphrase evaluation: macro F1 (present, all gold) and micro F1@5 (all gold) per method and dataset",
    )
    create_markdown_artifact(
        key="keyphrase-evaluation-report", markdown=markdown_report(results, png, failures),
        description=f"F1@k curves per method and dataset; figure at {png}",
    )
    return png
