"""The DuckDB side of ``kpe.ingest``: alias resolution, merging and one transaction per batch."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import duckdb
import pyarrow as pa

from kpe.ingest import Batch, InputUnit
from kpe.merge import documents_of, merge_document
from warehouse import documents, ingest_files
from warehouse.db import transaction


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class DuckDBIngestStore:
    """Implements ``kpe.ingest.IngestStore`` on one write connection (the single writer)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def begin(self, unit: InputUnit, sha256: str) -> tuple[int, str, int, int]:
        row = ingest_files.find_file(self.con, unit.name, sha256)
        if row is None:
            file_id = ingest_files.start_file(self.con, unit.source, unit.name, unit.uri, sha256, unit.size(), _utcnow())
            return file_id, "running", 0, 0
        if row["status"] in ("running", "failed"):
            ingest_files.resume_file(self.con, row["file_id"])
        return row["file_id"], row["status"], row["records_done"], row["batches_done"]

    def resolve_doc_ids(self, table: pa.Table) -> pa.Table:
        """A document that shares an alias with a stored paper, or with an earlier document of the batch, takes
        that paper's ``doc_id``; the table is returned unchanged when none does (the usual case)."""
        doc_ids = table.column("doc_id").to_pylist()
        aliases = table.column("aliases").to_pylist()
        known = documents.resolve_aliases(self.con, (a for doc_aliases in aliases for a in doc_aliases))
        resolved = []
        for doc_id, doc_aliases in zip(doc_ids, aliases, strict=True):
            match = known.get(doc_id) or next((known[a] for a in doc_aliases if a in known), None)
            if match:
                doc_id = match
            for alias in doc_aliases:
                known.setdefault(alias, doc_id)
            known.setdefault(doc_id, doc_id)
            resolved.append(doc_id)
        if resolved == doc_ids:
            return table
        column = table.schema.get_field_index("doc_id")
        return table.set_column(column, table.schema.field(column), pa.array(resolved, pa.string()))

    def commit(self, file_id: int, batch: Batch, now: dt.datetime) -> dict[str, int]:
        """Documents seen for the first time (not stored, once in the batch: most of them) go straight from the
        batch's Arrow table to DuckDB; the others are merged one by one (``kpe.merge``)."""
        table = batch.documents
        counts = {"n_records": table.num_rows + len(batch.quarantined),
                  "n_quarantined": len(batch.quarantined), "n_deleted": len(batch.deletions),
                  "n_new": 0, "n_updated": 0, "n_unchanged": 0}
        with transaction(self.con):
            doc_ids = table.column("doc_id").to_pylist()
            current = documents.get_documents(self.con, doc_ids)
            in_batch = Counter(doc_ids)
            fresh = [i for i, doc_id in enumerate(doc_ids) if in_batch[doc_id] == 1 and doc_id not in current]
            if len(fresh) < len(doc_ids):
                fresh_set = set(fresh)
                others = [i for i in range(len(doc_ids)) if i not in fresh_set]
                changed: dict[str, dict[str, Any]] = {}
                for doc in documents_of(table.take(pa.array(others, pa.int64()))):
                    row, change = merge_document(current.get(doc.doc_id), doc, now, file_id)
                    counts[f"n_{change}"] += 1
                    current[doc.doc_id] = row
                    if change != "unchanged":
                        changed[doc.doc_id] = row
                documents.write_documents(self.con, list(changed.values()))
            if fresh:
                new = table if len(fresh) == len(doc_ids) else table.take(pa.array(fresh, pa.int64()))
                documents.insert_new_documents(self.con, new, now, file_id)
                counts["n_new"] += len(fresh)
            documents.apply_deletions(self.con, [(d.source, d.source_id) for d in batch.deletions], file_id, now)
            file_name = self.con.execute("SELECT name FROM ingest_files WHERE file_id = ?", [file_id]).fetchone()[0]
            documents.add_quarantine(self.con, [
                {"source": q.source, "file_id": file_id, "file_name": file_name,
                 "record_id": q.record_id, "reason": q.reason, "raw_snippet": q.raw_snippet[:2000],
                 "created_at": now}
                for q in batch.quarantined
            ])
            for shard in batch.shards:
                ingest_files.add_shard(self.con, file_id, shard, now)
            ingest_files.record_batch(self.con, file_id, batch.items, counts)
        return counts

    def finish(self, file_id: int, status: str, error: str | None, seconds: float) -> dict[str, Any]:
        ingest_files.finish_file(self.con, file_id, status, error, _utcnow(), seconds)
        return ingest_files.get_file(self.con, file_id)
