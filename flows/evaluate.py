"""The evaluation flow: every method on every configured benchmark, stored and reported.

    from flows.evaluate import evaluate
    evaluate(methods=["yake", "tfidf"], limit=50)

Each (dataset, method) result goes to the warehouse ``evaluations`` table; the run publishes a table
artifact and a markdown artifact with the F1@k curves. A method that fails (e.g. cannot be built) does
not stop the others: it is listed in the report and the flow raises at the end.
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from kpe.datasets import DEFAULT_BENCHMARKS, silver_name
from kpe.settings import get_settings
from tasks.evaluate import (
    evaluate_method_task,
    load_benchmark_task,
    publish_report_task,
    store_evaluation_task,
    warehouse_has_documents,
)


class EvaluationFailed(RuntimeError):
    """At least one (dataset, method) evaluation failed; the others were stored."""


def default_datasets() -> list[str]:
    """The shared benchmarks, plus the silver PubMed dev split when the warehouse holds documents."""
    datasets = list(DEFAULT_BENCHMARKS)
    if warehouse_has_documents(get_settings().warehouse_path):
        datasets.append(silver_name("dev"))
    return datasets


@flow(name="evaluate", log_prints=True)
def evaluate(
    datasets: list[str] | None = None,
    methods: list[str] = ["keybert", "yake", "kpe"],  # noqa: B006 - Prefect parameter default, never mutated
    limit: int | None = None,
    model_path: str | None = None,
) -> list[dict]:
    """Evaluate ``methods`` on ``datasets`` (names, JSONL paths, or ``pubmed_silver_<split>``; default:
    :func:`default_datasets`), ``limit`` documents each; returns the results without predictions."""
    logger = get_run_logger()
    run_id = str(flow_run.id) if flow_run.id else None
    results: list[dict] = []
    failures: list[str] = []
    for name in datasets or default_datasets():
        try:
            dataset, split, docs = load_benchmark_task(name, limit)
        except Exception as exc:  # noqa: BLE001 - reported below, the other datasets still run
            failures.append(f"{name}: could not load ({exc})")
            logger.error("dataset %s failed to load: %s", name, exc)
            continue
        for method in methods:
            try:
                result = evaluate_method_task(method, dataset, split, docs, model_path)
            except Exception as exc:  # noqa: BLE001 - reported below, the other methods still run
                failures.append(f"{method} on {dataset}: {type(exc).__name__}: {exc}")
                logger.error("%s on %s failed: %s", method, dataset, exc)
                continue
            result["evaluation_id"] = store_evaluation_task(result, run_id)
            results.append(result)
    png = publish_report_task(results, failures)
    logger.info("F1@k figure: %s", png)
    if failures:
        raise EvaluationFailed("; ".join(failures))
    return results
