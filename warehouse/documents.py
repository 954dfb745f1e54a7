"""Reads and writes of the current document state: ``documents``, ``doc_aliases``, ``deletions``, ``quarantine``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from kpe.shards import MESH_TYPE
from warehouse.rows import fetch_dicts

DOCUMENT_ROW_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()), ("source", pa.string()), ("source_id", pa.string()),
        ("sources", pa.list_(pa.string())), ("aliases", pa.list_(pa.string())),
        ("title", pa.string()), ("abstract", pa.string()), ("version", pa.int32()),
        ("language", pa.string()), ("journal", pa.string()), ("year", pa.int32()),
        ("pub_date", pa.string()), ("doi", pa.string()), ("pmid", pa.string()),
        ("keywords", pa.list_(pa.string())), ("mesh", MESH_TYPE),
        ("publication_types", pa.list_(pa.string())), ("content_hash", pa.string()),
        ("first_seen", pa.timestamp("us")), ("updated_at", pa.timestamp("us")),
        ("deleted", pa.bool_()), ("deleted_at", pa.timestamp("us")), ("last_file_id", pa.int64()),
    ]
)
_COLUMNS = ", ".join(DOCUMENT_ROW_SCHEMA.names)


def resolve_aliases(con: duckdb.DuckDBPyConnection, aliases: Iterable[str]) -> dict[str, str]:
    """Map every already known alias among ``aliases`` to its document id."""
    wanted = sorted(set(aliases))
    if not wanted:
        return {}
    rows = con.execute(
        "SELECT alias, doc_id FROM doc_aliases WHERE alias IN (SELECT unnest(?::VARCHAR[]))", [wanted]
    ).fetchall()
    return dict(rows)


def get_documents(con: duckdb.DuckDBPyConnection, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Current rows of the given documents, keyed by ``doc_id``."""
    ids = sorted(set(doc_ids))
    if not ids:
        return {}
    rows = fetch_dicts(
        con, f"SELECT {_COLUMNS} FROM documents WHERE doc_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
    )
    return {row["doc_id"]: row for row in rows}


def deleted_doc_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The ``doc_id`` of every document marked deleted (training leaves them out of the Parquet lake's data)."""
    return {row[0] for row in con.execute("SELECT doc_id FROM documents WHERE deleted").fetchall()}


def write_documents(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Replace (or insert) whole document rows and register their aliases; call inside a transaction."""
    if not rows:
        return
    table = pa.Table.from_pylist(list(rows), schema=DOCUMENT_ROW_SCHEMA)
    con.register("_incoming_documents", table)
    try:
        con.execute("DELETE FROM documents WHERE doc_id IN (SELECT doc_id FROM _incoming_documents)")
        con.execute(f"INSERT INTO documents ({_COLUMNS}) SELECT {_COLUMNS} FROM _incoming_documents")
        con.execute(
            "INSERT INTO doc_aliases SELECT DISTINCT alias, doc_id FROM "
            "(SELECT unnest(aliases) AS alias, doc_id FROM _incoming_documents) ON CONFLICT DO NOTHING"
        )
    finally:
        con.unregister("_incoming_documents")


def insert_new_documents(con: duckdb.DuckDBPyConnection, table: pa.Table, now: dt.datetime, file_id: int) -> None:
    """Insert documents that are not stored yet straight from their shard table (``kpe.shards.DOCUMENT_SCHEMA``)
    and register their aliases; call inside a transaction, after checking that no ``doc_id`` exists.

    The rows are what ``kpe.merge.merge_document`` makes of a new document (sources ``[source]``, aliases
    sorted and unique, ``first_seen = updated_at = now``), without a Python dict per row.
    """
    if table.num_rows == 0:
        return
    con.register("_new_documents", table)
    try:
        con.execute(
            f"INSERT INTO documents ({_COLUMNS}) SELECT doc_id, source, source_id, [source], "
            "list_sort(list_distinct(aliases)), title, abstract, version, language, journal, year, pub_date, doi, "
            "pmid, keywords, mesh, publication_types, content_hash, ?, ?, FALSE, NULL, ? FROM _new_documents",
            [now, now, file_id],
        )
        con.execute(
            "INSERT INTO doc_aliases SELECT DISTINCT alias, doc_id FROM "
            "(SELECT unnest(aliases) AS alias, doc_id FROM _new_documents) ON CONFLICT DO NOTHING"
        )
    finally:
        con.unregister("_new_documents")


def apply_deletions(con: duckdb.DuckDBPyConnection, deletions: Sequence[tuple[str, str]], file_id: int,
                    now: dt.datetime) -> int:
    """Mark documents deleted for ``(source, source_id)`` pairs; record every deletion. Returns documents deleted.

    A deletion only deletes a document whose text comes from the same source (an S2 deletion does not remove a
    PubMed paper that S2 also listed); it is recorded either way so the lake can be replayed.
    """
    if not deletions:
        return 0
    prefix = {"pubmed": "pmid:", "s2": "s2:"}
    table = pa.table(
        {
            "source": [s for s, _ in deletions],
            "source_id": [i for _, i in deletions],
            "alias": [prefix.get(s, f"{s}:") + i for s, i in deletions],
        }
    )
    con.register("_incoming_deletions", table)
    try:
        con.execute(
            "INSERT INTO deletions (source, source_id, doc_id, file_id, deleted_at) "
            "SELECT DISTINCT d.source, d.source_id, a.doc_id, ?, ? FROM _incoming_deletions d "
            "LEFT JOIN doc_aliases a ON a.alias = d.alias ON CONFLICT DO NOTHING",
            [file_id, now],
        )
        deleted = con.execute(
            "UPDATE documents SET deleted = TRUE, deleted_at = ?, updated_at = ?, last_file_id = ? "
            "WHERE NOT deleted AND doc_id IN (SELECT a.doc_id FROM _incoming_deletions d "
            "JOIN doc_aliases a ON a.alias = d.alias JOIN documents x ON x.doc_id = a.doc_id "
            "WHERE x.source = d.source) RETURNING doc_id",
            [now, now, file_id],
        ).fetchall()
    finally:
        con.unregister("_incoming_deletions")
    return len(deleted)


def add_quarantine(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert quarantine rows (source, file_id, file_name, record_id, reason, raw_snippet, created_at)."""
    if not rows:
        return
    con.executemany(
        "INSERT INTO quarantine (source, file_id, file_name, record_id, reason, raw_snippet, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [[r["source"], r["file_id"], r["file_name"], r["record_id"], r["reason"], r["raw_snippet"], r["created_at"]]
         for r in rows],
    )


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts for ``kpe status``: every base table, plus current / deleted documents."""
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_type = 'BASE TABLE' ORDER BY table_name").fetchall()]
    counts = {name: con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
    counts["documents (current)"] = con.execute("SELECT count(*) FROM documents WHERE NOT deleted").fetchone()[0]
    counts["documents (deleted)"] = con.execute("SELECT count(*) FROM documents WHERE deleted").fetchone()[0]
    return counts
