"""Warehouses at scale for benchmarks: real documents and keyphrases repeated under new ids.

Only benchmarks use this module; it writes nothing a nightly run reads unless you point one at it.
"""

from __future__ import annotations

import duckdb

from warehouse.db import transaction


def replicate_documents(con: duckdb.DuckDBPyConnection, n_docs: int, *, id_offset: int = 900_000_000) -> int:
    """Grow ``documents`` to ``n_docs`` rows by copying its real documents under new ``pmid:`` ids (nothing when
    it holds that many already).

    Copies keep their text, so they look like real MEDLINE abstracts to every query; each copy's
    ``content_hash`` is made unique so it counts as its own document. Returns the new row count.
    """
    base = con.execute("SELECT count(*) FROM documents WHERE NOT deleted").fetchone()[0]
    if base == 0:
        raise ValueError("replicate_documents needs a warehouse with real documents in it")
    missing = n_docs - con.execute("SELECT count(*) FROM documents").fetchone()[0]
    if missing <= 0:
        return con.execute("SELECT count(*) FROM documents").fetchone()[0]
    with transaction(con):
        con.execute(
            """
            INSERT INTO documents
            WITH real AS (SELECT *, row_number() OVER (ORDER BY doc_id) - 1 AS k FROM documents WHERE NOT deleted),
                 copies AS (SELECT i, i % ? AS k FROM range(?) t(i))
            SELECT 'pmid:' || (? + i)::VARCHAR, source, (? + i)::VARCHAR, sources, ['pmid:' || (? + i)::VARCHAR],
                   title, abstract, version, language, journal, year, pub_date, NULL, (? + i)::VARCHAR, keywords,
                   mesh, publication_types, sha256(content_hash || i::VARCHAR), first_seen, updated_at, FALSE,
                   NULL, last_file_id
            FROM copies JOIN real USING (k)
            """,
            [base, missing, id_offset, id_offset, id_offset, id_offset],
        )
    return con.execute("SELECT count(*) FROM documents").fetchone()[0]


def mark_extracted(con: duckdb.DuckDBPyConnection, model_version: str, config_hash: str, *,
                   keep_pending: int) -> int:
    """Record every document but the last ``keep_pending`` (by ``doc_id``) as extracted with this model and config,
    as if earlier nights had done them. Returns the number marked."""
    with transaction(con):
        return con.execute(
            """
            INSERT OR REPLACE INTO extraction_state
            SELECT doc_id, content_hash, ?, ?, 'synthetic', 10, now()::TIMESTAMP FROM (
                SELECT doc_id, content_hash, row_number() OVER (ORDER BY doc_id DESC) AS r FROM documents
                WHERE NOT deleted) WHERE r > ?
            """,
            [model_version, config_hash, keep_pending],
        ).fetchone()[0]


def replicate_keyphrases(con: duckdb.DuckDBPyConnection, n_rows: int, run_id: str = "synthetic") -> int:
    """Fill ``keyphrases`` to about ``n_rows`` rows by giving documents without keyphrases the real keyphrases of
    extracted documents (in turn). Returns the row count."""
    have = con.execute("SELECT count(*) FROM keyphrases").fetchone()[0]
    per_doc = con.execute("SELECT count(*) / greatest(count(DISTINCT doc_id), 1) FROM keyphrases").fetchone()[0]
    if have == 0 or per_doc == 0:
        raise ValueError("replicate_keyphrases needs a warehouse with real keyphrases in it")
    docs_needed = max(0, (n_rows - have) // per_doc)
    with transaction(con):
        con.execute(
            """
            INSERT INTO keyphrases
            WITH src AS (SELECT doc_id AS src_id, dense_rank() OVER (ORDER BY doc_id) - 1 AS k FROM
                           (SELECT DISTINCT doc_id FROM keyphrases)),
                 n_src AS (SELECT count(*) AS n FROM src),
                 targets AS (SELECT d.doc_id, d.content_hash, (row_number() OVER (ORDER BY d.doc_id) - 1) AS i
                             FROM documents d ANTI JOIN keyphrases k USING (doc_id)
                             WHERE NOT d.deleted LIMIT ?)
            SELECT t.doc_id, k.rank, k.keyphrase, k.normalized, k.score, k.method, k.model_version, k.config_hash,
                   ?, t.content_hash, k.created_at
            FROM targets t CROSS JOIN n_src JOIN src ON src.k = t.i % n_src.n JOIN keyphrases k ON k.doc_id = src.src_id
            """,
            [docs_needed, run_id],
        )
    return con.execute("SELECT count(*) FROM keyphrases").fetchone()[0]
