"""Annotation tables beside keyphrases: ``entities`` (kind ``ner``), ``doc_labels`` (kind ``classify``), their
per-kind ``annotation_state`` and ``annotation_runs`` (migration ``006_annotations.sql``).

The discipline is the keyphrase side's (``warehouse.extraction``): a document is pending for a kind when it has
never been annotated by it, its text changed (``content_hash``) or the kind's production model changed; pending
ids are read a page at a time; each batch's rows, the documents' state and the run's counts commit in **one
transaction**, so a killed run resumes with no duplicate and no gap. Rows of deleted documents are removed.
``doc_labels`` are suggestions for documents **without** MeSH: a document that has MeSH headings is never
pending for ``classify``, and one that receives them later keeps its suggestions (``mesh_suggestions`` compares).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kpe.annotate import DocAnnotations
from kpe.extract.batches import PendingDocument
from warehouse.db import transaction
from warehouse.extraction import paged_batches
from warehouse.rows import fetch_dicts

OUTPUTS = ("entities", "doc_labels")

_ENTITY_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("start_char", pa.int32()), ("end_char", pa.int32()), ("entity", pa.string()),
    ("type", pa.string()), ("score", pa.float64()), ("model_version", pa.string()), ("run_id", pa.string()),
    ("content_hash", pa.string()), ("created_at", pa.timestamp("us")),
])
_LABEL_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("scheme", pa.string()), ("label", pa.string()), ("score", pa.float64()),
    ("rank", pa.int32()), ("model_version", pa.string()), ("run_id", pa.string()), ("content_hash", pa.string()),
    ("created_at", pa.timestamp("us")),
])
#: Which documents an output is for (beyond: current, with text): labels only for documents without MeSH.
_WANTS = {"entities": "TRUE", "doc_labels": "coalesce(len(d.mesh), 0) = 0"}


def _check(output: str) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"annotation output must be one of {', '.join(OUTPUTS)}, got {output!r}")


def _pending_sql(output: str) -> str:
    _check(output)
    return (f"FROM documents d WHERE NOT d.deleted AND (d.title IS NOT NULL OR d.abstract IS NOT NULL) "
            f"AND {_WANTS[output]} AND NOT EXISTS (SELECT 1 FROM annotation_state s WHERE s.kind = ? "
            "AND s.doc_id = d.doc_id AND s.content_hash = d.content_hash AND s.model_version = ?)")


# --- runs ------------------------------------------------------------------------------------------------------

def start_run(con: duckdb.DuckDBPyConnection, run_id: str, kind: str, output: str, model_version: str,
              now: dt.datetime) -> None:
    """Record this run's work on one kind (status ``running``); runs a killed process left running are closed."""
    _check(output)
    with transaction(con):
        con.execute("UPDATE annotation_runs SET status = 'interrupted', finished_at = ? "
                    "WHERE status = 'running' AND kind = ?", [now, kind])
        con.execute("INSERT OR REPLACE INTO annotation_runs (run_id, kind, output, model_version, started_at, status) "
                    "VALUES (?, ?, ?, ?, ?, 'running')", [run_id, kind, output, model_version, now])


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, kind: str, status: str, *, seconds: float,
               now: dt.datetime) -> dict[str, Any]:
    """Close one kind's run and return its row."""
    con.execute("UPDATE annotation_runs SET status = ?, finished_at = ?, seconds = ? WHERE run_id = ? AND kind = ?",
                [status, now, seconds, run_id, kind])
    return fetch_dicts(con, "SELECT * FROM annotation_runs WHERE run_id = ? AND kind = ?", [run_id, kind])[0]


# --- what is pending ---------------------------------------------------------------------------------------------

def count_pending(con: duckdb.DuckDBPyConnection, kind: str, output: str, model_version: str) -> int:
    """Documents this kind has still to annotate with ``model_version`` (new, changed, or another model)."""
    return con.execute(f"SELECT count(*) {_pending_sql(output)}", [kind, model_version]).fetchone()[0]


def pending_ids(con: duckdb.DuckDBPyConnection, kind: str, output: str, model_version: str, *, after: str = "",
                limit: int = 10_000) -> list[str]:
    """The next ``limit`` pending ids after ``after`` (keyset pagination on ``doc_id``)."""
    return [row[0] for row in con.execute(
        f"SELECT d.doc_id {_pending_sql(output)} AND d.doc_id > ? ORDER BY d.doc_id LIMIT ?",
        [kind, model_version, after, limit]).fetchall()]


def iter_pending_batches(path: Path | str, kind: str, output: str, model_version: str, *, batch_size: int,
                         limit: int | None = None, page_size: int = 10_000) -> Iterator[list[PendingDocument]]:
    """Stream the pending documents of one kind in batches (at most ``limit``), each page and batch read on a
    brief read-only connection: memory holds one page of ids and one batch of text."""

    def read_ids(con: duckdb.DuckDBPyConnection, after: str, size: int) -> list[str]:
        return pending_ids(con, kind, output, model_version, after=after, limit=size)

    yield from paged_batches(path, read_ids, batch_size=batch_size, page_size=page_size, limit=limit)


# --- writes --------------------------------------------------------------------------------------------------------

def _table(output: str, results: Sequence[DocAnnotations], model_version: str, run_id: str,
           now: dt.datetime) -> pa.Table:
    if output == "entities":
        rows = [{"doc_id": r.doc_id, "start_char": e.start, "end_char": e.end, "entity": e.text, "type": e.type,
                 "score": float(e.score), "model_version": model_version, "run_id": run_id,
                 "content_hash": r.content_hash, "created_at": now} for r in results for e in r.rows]
        return pa.Table.from_pylist(rows, schema=_ENTITY_SCHEMA)
    rows = [{"doc_id": r.doc_id, "scheme": x.scheme, "label": x.label, "score": float(x.score), "rank": x.rank,
             "model_version": model_version, "run_id": run_id, "content_hash": r.content_hash, "created_at": now}
            for r in results for x in r.rows]
    return pa.Table.from_pylist(rows, schema=_LABEL_SCHEMA)


def write_annotations(con: duckdb.DuckDBPyConnection, kind: str, output: str, run_id: str,
                      results: Sequence[DocAnnotations], *, model_version: str, now: dt.datetime,
                      scheme: str = "mesh") -> int:
    """Replace the rows of a batch of documents in ``output`` (``doc_labels``: of ``scheme``), record their state
    for ``kind`` and advance the run, in one transaction. Returns the rows written."""
    _check(output)
    new = _table(output, results, model_version, run_id, now)
    state = pa.table({"doc_id": [r.doc_id for r in results], "content_hash": [r.content_hash for r in results],
                      "n_rows": pa.array([len(r.rows) for r in results], pa.int32())})
    columns = ", ".join(new.schema.names)
    with transaction(con):
        con.register("_new_rows", new)
        con.register("_new_state", state)
        try:
            if output == "entities":
                con.execute("DELETE FROM entities WHERE doc_id IN (SELECT doc_id FROM _new_state)")
            else:
                con.execute("DELETE FROM doc_labels WHERE scheme = ? AND doc_id IN (SELECT doc_id FROM _new_state)",
                            [scheme])
            con.execute(f"INSERT INTO {output} ({columns}) SELECT {columns} FROM _new_rows")
            con.execute("INSERT OR REPLACE INTO annotation_state (kind, doc_id, content_hash, model_version, run_id, "
                        "n_rows, annotated_at) SELECT ?, doc_id, content_hash, ?, ?, n_rows, ? FROM _new_state",
                        [kind, model_version, run_id, now])
            con.execute("UPDATE annotation_runs SET n_docs = n_docs + ?, n_rows = n_rows + ? "
                        "WHERE run_id = ? AND kind = ?", [len(results), new.num_rows, run_id, kind])
        finally:
            con.unregister("_new_rows")
            con.unregister("_new_state")
    return new.num_rows


def remove_deleted(con: duckdb.DuckDBPyConnection, kind: str, output: str, run_id: str) -> int:
    """Delete the rows and state of documents marked deleted; returns the rows removed."""
    _check(output)
    deleted = "SELECT doc_id FROM documents WHERE deleted"
    with transaction(con):
        removed = con.execute(f"DELETE FROM {output} WHERE doc_id IN ({deleted})").fetchone()[0]
        con.execute(f"DELETE FROM annotation_state WHERE kind = ? AND doc_id IN ({deleted})", [kind])
        con.execute("UPDATE annotation_runs SET n_removed = n_removed + ? WHERE run_id = ? AND kind = ?",
                    [removed, run_id, kind])
    return removed


def document_entities(con: duckdb.DuckDBPyConnection, doc_id: str) -> list[dict[str, Any]]:
    """One document's entities in text order."""
    return fetch_dicts(con, "SELECT start_char, end_char, entity, type, score, model_version, run_id "
                            "FROM entities WHERE doc_id = ? ORDER BY start_char", [doc_id])


def document_labels(con: duckdb.DuckDBPyConnection, doc_id: str) -> list[dict[str, Any]]:
    """One document's suggested labels, best first."""
    return fetch_dicts(con, "SELECT scheme, rank, label, score, model_version, run_id FROM doc_labels "
                            "WHERE doc_id = ? ORDER BY scheme, rank", [doc_id])
