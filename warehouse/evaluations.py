"""Evaluation results (the ``evaluations`` table) and the documents the silver benchmark is drawn from."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import duckdb

from warehouse.db import transaction


def insert_evaluation(
    con: duckdb.DuckDBPyConnection,
    *,
    dataset: str,
    split: str,
    method: str,
    model_version: str,
    config_hash: str,
    n_docs: int,
    metrics: dict[str, Any],
    seconds: float,
    flow_run_id: str | None = None,
) -> int:
    """Store one evaluation result; returns its ``evaluation_id``."""
    with transaction(con):
        row = con.execute(
            "INSERT INTO evaluations (dataset, split, method, model_version, config_hash, n_docs, metrics,"
            " seconds, created_at, flow_run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP, ?)"
            " RETURNING evaluation_id",
            [dataset, split, method, model_version, config_hash, n_docs, json.dumps(metrics), seconds, flow_run_id],
        ).fetchone()
    return int(row[0])


def insert_result(con: duckdb.DuckDBPyConnection, result: Mapping[str, Any], flow_run_id: str | None = None) -> int:
    """Store one evaluation harness result (``kpe.evaluate.harness``), its predictions and the gate's
    per-document scores left out; returns its id."""
    return insert_evaluation(
        con,
        dataset=result["dataset"],
        split=result.get("split", "unknown"),
        method=result["method"],
        model_version=result.get("model_version", "default"),
        config_hash=result.get("config_hash", "default"),
        n_docs=result["n_docs"],
        metrics={key: value for key, value in result.items() if key not in ("predictions", "per_document")},
        seconds=result["seconds"],
        flow_run_id=flow_run_id,
    )


def list_evaluations(
    con: duckdb.DuckDBPyConnection,
    *,
    dataset: str | None = None,
    method: str | None = None,
    model_version: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Stored evaluations, newest first, optionally filtered; ``metrics`` decoded to a dict."""
    where, params = [], []
    for column, value in (("dataset", dataset), ("method", method), ("model_version", model_version)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = (
        "SELECT evaluation_id, dataset, split, method, model_version, config_hash, n_docs, metrics, seconds,"
        " created_at, flow_run_id FROM evaluations"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY created_at DESC, evaluation_id DESC"
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    cursor = con.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    rows = []
    for values in cursor.fetchall():
        row = dict(zip(columns, values))
        row["metrics"] = json.loads(row["metrics"]) if isinstance(row["metrics"], str) else row["metrics"]
        rows.append(row)
    return rows


def count_documents(con: duckdb.DuckDBPyConnection) -> int:
    """Documents that are not deleted."""
    return int(con.execute("SELECT count(*) FROM documents WHERE NOT deleted").fetchone()[0])


def iter_keyword_documents(
    con: duckdb.DuckDBPyConnection, batch_size: int = 1000
) -> Iterator[tuple[str, str | None, str, list[str]]]:
    """``(doc_id, title, abstract, keywords)`` of every live document with an abstract and author
    keywords, in ``doc_id`` order (the silver benchmark's candidates)."""
    cursor = con.execute(
        "SELECT doc_id, title, abstract, keywords FROM documents"
        " WHERE NOT deleted AND abstract IS NOT NULL AND length(trim(abstract)) > 0"
        " AND keywords IS NOT NULL AND len(keywords) > 0"
        " ORDER BY doc_id"
    )
    while True:
        rows = cursor.fetchmany(batch_size)
        if not rows:
            return
        for doc_id, title, abstract, keywords in rows:
            yield doc_id, title, abstract, [k for k in keywords if k]
