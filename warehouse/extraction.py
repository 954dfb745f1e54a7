"""Extraction runs, per-document extraction state, current keyphrases and their history."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from kpe.extract.batches import DocumentResult, PendingDocument
from warehouse.db import transaction
from warehouse.rows import fetch_dicts

_KEYPHRASE_COLUMNS = ("doc_id, rank, keyphrase, normalized, score, method, model_version, config_hash, run_id, "
                      "content_hash, created_at")


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, model_version: str, method: str, config_hash: str,
              config: dict[str, Any], now: dt.datetime) -> None:
    """Record a new extraction run (status ``running``)."""
    con.execute(
        "INSERT INTO extraction_runs (run_id, started_at, status, model_version, method, config_hash, config) "
        "VALUES (?, ?, 'running', ?, ?, ?, ?)",
        [run_id, now, model_version, method, config_hash, json.dumps(config, sort_keys=True)],
    )


_PENDING_WHERE = """
    FROM documents d LEFT JOIN extraction_state s USING (doc_id)
    WHERE NOT d.deleted AND (d.title IS NOT NULL OR d.abstract IS NOT NULL)
      AND (s.doc_id IS NULL OR s.content_hash <> d.content_hash
           OR s.model_version <> ? OR s.config_hash <> ?)
"""


def count_pending(con: duckdb.DuckDBPyConnection, model_version: str, config_hash: str) -> int:
    """How many documents are new, changed, or were extracted with another model version or config."""
    return con.execute(f"SELECT count(*) {_PENDING_WHERE}", [model_version, config_hash]).fetchone()[0]


def select_pending(con: duckdb.DuckDBPyConnection, model_version: str, config_hash: str,
                   limit: int | None = None) -> list[PendingDocument]:
    """Documents that need extraction, in a stable order (so an interrupted run resumes the same batches)."""
    sql = f"SELECT d.doc_id, d.title, d.abstract, d.content_hash {_PENDING_WHERE} ORDER BY d.doc_id"
    params: list[Any] = [model_version, config_hash]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [PendingDocument(*row) for row in con.execute(sql, params).fetchall()]


def write_results(con: duckdb.DuckDBPyConnection, run_id: str, results: Sequence[DocumentResult], *,
                  method: str, model_version: str, config_hash: str, now: dt.datetime) -> int:
    """Replace the keyphrases of a batch of documents and advance the run, in one transaction.

    Earlier keyphrases of those documents move to ``keyphrases_history`` with the reason they were superseded.
    Returns the number of keyphrases written.
    """
    rows = [
        {"doc_id": r.doc_id, "rank": rank, "keyphrase": phrase, "normalized": normalized, "score": float(score),
         "method": method, "model_version": model_version, "config_hash": config_hash, "run_id": run_id,
         "content_hash": r.content_hash, "created_at": now}
        for r in results for rank, (phrase, normalized, score) in enumerate(r.phrases, start=1)
    ]
    new = pa.Table.from_pylist(rows, schema=pa.schema([
        ("doc_id", pa.string()), ("rank", pa.int32()), ("keyphrase", pa.string()), ("normalized", pa.string()),
        ("score", pa.float64()), ("method", pa.string()), ("model_version", pa.string()),
        ("config_hash", pa.string()), ("run_id", pa.string()), ("content_hash", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]))
    state = pa.table({
        "doc_id": [r.doc_id for r in results], "content_hash": [r.content_hash for r in results],
        "n_keyphrases": pa.array([len(r.phrases) for r in results], pa.int32()),
    })
    with transaction(con):
        con.register("_new_keyphrases", new)
        con.register("_new_state", state)
        try:
            con.execute(
                "INSERT INTO keyphrases_history SELECT k.doc_id, k.rank, k.keyphrase, k.normalized, k.score, "
                "k.method, k.model_version, k.config_hash, k.run_id, k.content_hash, k.created_at, ?, ?, "
                "CASE WHEN k.content_hash <> s.content_hash THEN 'changed' "
                "     WHEN k.model_version <> ? THEN 'model' ELSE 'config' END "
                "FROM keyphrases k JOIN _new_state s USING (doc_id)",
                [now, run_id, model_version],
            )
            con.execute("DELETE FROM keyphrases WHERE doc_id IN (SELECT doc_id FROM _new_state)")
            con.execute(f"INSERT INTO keyphrases ({_KEYPHRASE_COLUMNS}) SELECT {_KEYPHRASE_COLUMNS} FROM _new_keyphrases")
            con.execute(
                "INSERT OR REPLACE INTO extraction_state "
                "SELECT doc_id, content_hash, ?, ?, ?, n_keyphrases, ? FROM _new_state",
                [model_version, config_hash, run_id, now],
            )
            con.execute(
                "UPDATE extraction_runs SET n_docs = n_docs + ?, n_keyphrases = n_keyphrases + ? WHERE run_id = ?",
                [len(results), len(rows), run_id],
            )
        finally:
            con.unregister("_new_keyphrases")
            con.unregister("_new_state")
    return len(rows)


def remove_deleted(con: duckdb.DuckDBPyConnection, run_id: str, now: dt.datetime) -> int:
    """Move the keyphrases of deleted documents to history and forget their extraction state."""
    with transaction(con):
        moved = con.execute(
            f"INSERT INTO keyphrases_history SELECT {_KEYPHRASE_COLUMNS}, ?, ?, 'deleted' FROM keyphrases "
            "WHERE doc_id IN (SELECT doc_id FROM documents WHERE deleted)",
            [now, run_id],
        ).fetchone()[0]
        con.execute("DELETE FROM keyphrases WHERE doc_id IN (SELECT doc_id FROM documents WHERE deleted)")
        con.execute("DELETE FROM extraction_state WHERE doc_id IN (SELECT doc_id FROM documents WHERE deleted)")
        con.execute("UPDATE extraction_runs SET n_removed = n_removed + ? WHERE run_id = ?", [moved, run_id])
    return moved


def mark_interrupted(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> int:
    """Close runs left ``running`` by a killed process (the next run resumes their work)."""
    return len(con.execute(
        "UPDATE extraction_runs SET status = 'interrupted', finished_at = ? WHERE status = 'running' "
        "RETURNING run_id", [now]).fetchall())


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, status: str, *, n_selected: int, seconds: float,
               stage_seconds: dict[str, float], now: dt.datetime, error: str | None = None) -> dict[str, Any]:
    """Close a run and return its row."""
    con.execute(
        "UPDATE extraction_runs SET status = ?, finished_at = ?, n_selected = ?, seconds = ?, stage_seconds = ?, "
        "error = ? WHERE run_id = ?",
        [status, now, n_selected, seconds, json.dumps(stage_seconds), error, run_id],
    )
    return fetch_dicts(con, "SELECT * FROM extraction_runs WHERE run_id = ?", [run_id])[0]


def top_new_keyphrases(con: duckdb.DuckDBPyConnection, run_id: str, limit: int = 15) -> list[dict[str, Any]]:
    """The keyphrases this run wrote for most documents."""
    return fetch_dicts(
        con,
        "SELECT normalized, mode(keyphrase) AS keyphrase, count(DISTINCT doc_id) AS docs FROM keyphrases "
        "WHERE run_id = ? GROUP BY normalized ORDER BY docs DESC, normalized LIMIT ?",
        [run_id, limit],
    )


def document_keyphrases(con: duckdb.DuckDBPyConnection, doc_id: str) -> list[dict[str, Any]]:
    """One document's current keyphrases with its title, year and source."""
    return fetch_dicts(
        con,
        "SELECT doc_id, title, year, source, rank, keyphrase, score, method, model_version, run_id "
        "FROM document_keyphrases WHERE doc_id = ? ORDER BY rank",
        [doc_id],
    )
