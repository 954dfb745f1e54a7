"""The DuckDB side of ``kpe.ingest``: alias resolution, merging and one transaction per batch."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kpe.ingest import Batch, InputUnit
from kpe.merge import merge_document
from kpe.records import Document
from kpe.shards import documents_table
from warehouse import documents, ingest_files
from warehouse.db import connect, transaction, utcnow


class DuckDBIngestStore:
    """Implements ``kpe.ingest.IngestStore`` (the single writer) on an open connection, or on the warehouse file
    opened afresh for each step (``DuckDBIngestStore(path)``: the flows' way, so readers get in between
    batches; see ``warehouse.db``)."""

    def __init__(self, target: duckdb.DuckDBPyConnection | Path | str) -> None:
        self._con = None if isinstance(target, (str, Path)) else target
        self._path = Path(target) if isinstance(target, (str, Path)) else None

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._con is not None:
            yield self._con
            return
        with connect(self._path) as con:
            yield con

    def begin(self, unit: InputUnit, sha256: str) -> tuple[int, str, int, int]:
        with self._connection() as con:
            row = ingest_files.find_file(con, unit.name, sha256)
            if row is None:
                file_id = ingest_files.start_file(con, unit.source, unit.name, unit.uri, sha256, unit.size(),
                                                  utcnow())
                return file_id, "running", 0, 0
            if row["status"] in ("running", "failed"):
                ingest_files.resume_file(con, row["file_id"])
        return row["file_id"], row["status"], row["records_done"], row["batches_done"]

    def resolve_doc_ids(self, docs: Sequence[Document]) -> None:
        """A document that shares an alias with a stored paper, or with an earlier document of the batch, takes
        that paper's ``doc_id``."""
        aliases = [a for d in docs for a in d.aliases]
        with self._connection() as con:
            known = documents.resolve_aliases(con, aliases)
        if not known and len(set(aliases)) == len(aliases) and all(d.doc_id in d.aliases for d in docs):
            return  # nothing stored and nothing shared inside the batch (the usual case): nothing to change
        for doc in docs:
            match = known.get(doc.doc_id) or next((known[a] for a in doc.aliases if a in known), None)
            if match:
                doc.doc_id = match
            for alias in doc.aliases:
                known.setdefault(alias, doc.doc_id)
            known.setdefault(doc.doc_id, doc.doc_id)

    def commit(self, file_id: int, batch: Batch, now: dt.datetime) -> dict[str, int]:
        """Documents seen for the first time (not stored, once in the batch: most of them) go straight from the
        batch's Arrow table to DuckDB; the others are merged one by one (``kpe.merge``)."""
        docs = batch.documents
        counts = {"n_records": len(docs) + len(batch.quarantined),
                  "n_quarantined": len(batch.quarantined), "n_deleted": len(batch.deletions),
                  "n_new": 0, "n_updated": 0, "n_unchanged": 0}
        with self._connection() as con:
            with transaction(con):
                current = documents.get_documents(con, (d.doc_id for d in docs))
                in_batch = Counter(d.doc_id for d in docs)
                fresh = [i for i, d in enumerate(docs) if in_batch[d.doc_id] == 1 and d.doc_id not in current]
                if len(fresh) < len(docs):
                    fresh_ids = {docs[i].doc_id for i in fresh}
                    changed: dict[str, dict[str, Any]] = {}
                    for doc in docs:
                        if doc.doc_id in fresh_ids:
                            continue
                        row, change = merge_document(current.get(doc.doc_id), doc, now, file_id)
                        counts[f"n_{change}"] += 1
                        current[doc.doc_id] = row
                        if change != "unchanged":
                            changed[doc.doc_id] = row
                    documents.write_documents(con, list(changed.values()))
                if fresh:
                    documents.insert_new_documents(con, _table_of(batch, fresh, now), now, file_id)
                    counts["n_new"] += len(fresh)
                documents.apply_deletions(con, [(d.source, d.source_id) for d in batch.deletions], file_id, now)
                file_name = con.execute("SELECT name FROM ingest_files WHERE file_id = ?", [file_id]).fetchone()[0]
                documents.add_quarantine(con, [
                    {"source": q.source, "file_id": file_id, "file_name": file_name,
                     "record_id": q.record_id, "reason": q.reason, "raw_snippet": q.raw_snippet[:2000],
                     "created_at": now}
                    for q in batch.quarantined
                ])
                for shard in batch.shards:
                    ingest_files.add_shard(con, file_id, shard, now)
                ingest_files.record_batch(con, file_id, batch.items, counts)
        return counts

    def finish(self, file_id: int, status: str, error: str | None, seconds: float) -> dict[str, Any]:
        with self._connection() as con:
            ingest_files.finish_file(con, file_id, status, error, utcnow(), seconds)
            return ingest_files.get_file(con, file_id)


def _table_of(batch: Batch, rows: list[int], now: dt.datetime) -> pa.Table:
    """These documents of the batch as rows of its shard table (built here when the batch has none)."""
    if batch.table is None:
        return documents_table([batch.documents[i] for i in rows], "", now)
    if len(rows) == batch.table.num_rows:
        return batch.table
    return batch.table.take(pa.array(rows, pa.int64()))
