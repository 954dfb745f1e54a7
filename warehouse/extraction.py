"""Extraction runs, per-document extraction state, current keyphrases and their history."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kpe.extract.batches import DocumentResult, PendingDocument
from warehouse.db import connect, transaction
from warehouse.rows import fetch_dicts

_KEYPHRASE_COLUMNS = ("doc_id, rank, keyphrase, normalized, score, method, model_version, config_hash, run_id, "
                      "content_hash, created_at")


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, model_version: str, method: str, config_hash: str,
              config: dict[str, Any], now: dt.datetime, *, precision: str | None = None,
              device: str | None = None) -> None:
    """Record a new extraction run (status ``running``) with the precision and device it computes in."""
    con.execute(
        "INSERT OR REPLACE INTO extraction_runs (run_id, started_at, status, model_version, method, config_hash, "
        "config, precision, device) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
        [run_id, now, model_version, method, config_hash, json.dumps(config, sort_keys=True), precision, device],
    )


_CANDIDATES = """
    FROM documents d
    WHERE NOT d.deleted AND (d.title IS NOT NULL OR d.abstract IS NOT NULL)
"""
#: What makes a document pending, by phase: ``fresh`` (never extracted, or its text changed) goes first;
#: ``stale`` (extracted from this text with another model version or config) is the budgeted backfill.
#: (Written with EXISTS: DuckDB 2.0.1 drops the LIMIT of ``documents LEFT JOIN extraction_state ... WHERE
#: s.doc_id IS NULL OR ...`` when extraction_state is empty.)
_PHASES = {
    "fresh": "NOT EXISTS (SELECT 1 FROM extraction_state s WHERE s.doc_id = d.doc_id "
             "AND s.content_hash = d.content_hash)",
    "stale": "EXISTS (SELECT 1 FROM extraction_state s WHERE s.doc_id = d.doc_id AND s.content_hash = d.content_hash "
             "AND (s.model_version <> ? OR s.config_hash <> ?))",
}
PHASES = tuple(_PHASES)


def _phase_params(phase: str, model_version: str, config_hash: str) -> list[Any]:
    return [model_version, config_hash] if phase == "stale" else []


def count_pending_by_phase(con: duckdb.DuckDBPyConnection, model_version: str, config_hash: str) -> dict[str, int]:
    """Pending documents per phase: ``{"fresh": new or changed, "stale": another model version or config}``."""
    row = con.execute(
        f"SELECT count(*) FILTER (WHERE {_PHASES['fresh']}), count(*) FILTER (WHERE {_PHASES['stale']}) {_CANDIDATES}",
        [model_version, config_hash],
    ).fetchone()
    return {"fresh": row[0], "stale": row[1]}


def pending_ids(con: duckdb.DuckDBPyConnection, model_version: str, config_hash: str, *, phase: str,
                after: str = "", limit: int = 10_000) -> list[str]:
    """The next ``limit`` pending document ids of one phase after ``after`` (keyset pagination on ``doc_id``):
    a page of ids, never the whole backlog."""
    return [row[0] for row in con.execute(
        f"SELECT d.doc_id {_CANDIDATES} AND {_PHASES[phase]} AND d.doc_id > ? ORDER BY d.doc_id LIMIT ?",
        [*_phase_params(phase, model_version, config_hash), after, limit],
    ).fetchall()]


def fetch_pending(con: duckdb.DuckDBPyConnection, doc_ids: Sequence[str]) -> list[PendingDocument]:
    """The text of these documents, in ``doc_ids`` order (deleted or emptied ones since the page was read are
    left out). A literal IN list lets DuckDB look the ids up in the primary-key index."""
    if not doc_ids:
        return []
    placeholders = ",".join("?" * len(doc_ids))
    found = {row[0]: PendingDocument(*row) for row in con.execute(
        f"SELECT doc_id, title, abstract, content_hash FROM documents WHERE doc_id IN ({placeholders}) "
        "AND NOT deleted AND (title IS NOT NULL OR abstract IS NOT NULL)", list(doc_ids)).fetchall()}
    return [found[doc_id] for doc_id in doc_ids if doc_id in found]


@dataclass(frozen=True)
class PendingBatch:
    """One batch of documents to extract and the phase it came from (``fresh`` or ``stale``)."""

    phase: str
    documents: list[PendingDocument]


def iter_pending_batches(path: Path | str, model_version: str, config_hash: str, *, batch_size: int,
                         limit: int | None = None, backfill_max_docs: int | None = None,
                         backfill_seconds: float | None = None, page_size: int = 10_000) -> Iterator[PendingBatch]:
    """Stream the pending documents in batches: every fresh document first (new or changed text), then stale ones
    (another model or config) within the backfill budget. ``limit`` caps both together.

    Memory holds one page of ids and one batch of text, whatever the backlog. Each page and batch is read on a
    brief read-only connection, so the warehouse is free between them. The budget's clock starts when the first
    stale batch is handed out; a batch already handed out is always finished.
    """
    handed = 0
    for phase in PHASES:
        cap = None if phase == "fresh" else backfill_max_docs
        deadline = None if phase == "fresh" or backfill_seconds is None else time.monotonic() + backfill_seconds
        rooms = [r for r in (None if limit is None else limit - handed, cap) if r is not None]

        def read_ids(con: duckdb.DuckDBPyConnection, after: str, size: int, phase: str = phase) -> list[str]:
            return pending_ids(con, model_version, config_hash, phase=phase, after=after, limit=size)

        def out_of_time(deadline: float | None = deadline) -> bool:
            return deadline is not None and time.monotonic() >= deadline

        for documents in paged_batches(path, read_ids, batch_size=batch_size, page_size=page_size,
                                       limit=min(rooms) if rooms else None, stop=out_of_time):
            handed += len(documents)
            yield PendingBatch(phase, documents)


def paged_batches(path: Path | str, read_ids: Callable[[duckdb.DuckDBPyConnection, str, int], list[str]], *,
                  batch_size: int, page_size: int, limit: int | None = None,
                  stop: Callable[[], bool] = lambda: False) -> Iterator[list[PendingDocument]]:
    """At most ``limit`` pending documents in batches: pages of ids (``read_ids(con, after, size)``: the next
    ``size`` ids after ``after``), each page fetched ``batch_size`` documents at a time, every read on a brief
    read-only connection (memory holds one page of ids and one batch of text). ``stop()`` is asked before each
    batch is read."""
    after, handed = "", 0
    while limit is None or handed < limit:
        with connect(path, read_only=True) as con:
            ids = read_ids(con, after, page_size if limit is None else min(page_size, limit - handed))
        if not ids:
            return
        after = ids[-1]
        for start in range(0, len(ids), batch_size):
            if stop():
                return
            with connect(path, read_only=True) as con:
                documents = fetch_pending(con, ids[start:start + batch_size])
            handed += len(documents)
            if documents:
                yield documents


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
            con.execute(
                f"INSERT INTO keyphrases ({_KEYPHRASE_COLUMNS}) SELECT {_KEYPHRASE_COLUMNS} FROM _new_keyphrases"
            )
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
               stage_seconds: dict[str, float], now: dt.datetime, error: str | None = None,
               n_backfill: int = 0) -> dict[str, Any]:
    """Close a run and return its row."""
    con.execute(
        "UPDATE extraction_runs SET status = ?, finished_at = ?, n_selected = ?, seconds = ?, stage_seconds = ?, "
        "error = ?, n_backfill = ? WHERE run_id = ?",
        [status, now, n_selected, seconds, json.dumps(stage_seconds), error, n_backfill, run_id],
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


def latest_run(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The most recently started extraction run, or ``None``."""
    rows = fetch_dicts(con, "SELECT * FROM extraction_runs ORDER BY started_at DESC LIMIT 1")
    return rows[0] if rows else None


def some_keyphrases(con: duckdb.DuckDBPyConnection, limit: int = 10) -> list[tuple[str, str, float]]:
    """A few stored ``(keyphrase, normalized, score)`` rows (benchmarks reuse real phrases)."""
    return [tuple(row) for row in con.execute(
        "SELECT keyphrase, normalized, score FROM keyphrases ORDER BY doc_id, rank LIMIT ?", [limit]).fetchall()]
