"""How an incoming cleaned document changes the current state of a paper (pure, no I/O).

Rules:
- A record of the same source as the stored one, or a PubMed record, replaces the text fields (PubMed is the
  reference for biomedical text; a later PubMed version replaces an earlier one).
- A Semantic Scholar record that merges into a PubMed document only fills fields that are still empty.
- Aliases and contributing sources accumulate; ``first_seen`` never changes.
- A record that arrives for a deleted document restores it (the source published it again).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kpe.clean import content_hash
from kpe.records import Document
from kpe.shards import mesh_dicts

TEXT_FIELDS = (
    "title", "abstract", "version", "language", "journal", "year", "pub_date", "doi", "pmid",
    "keywords", "mesh", "publication_types",
)
SOURCE_PRIORITY = {"pubmed": 2, "s2": 1}
ROW_FIELDS = ("doc_id", "source", "source_id", "content_hash", *TEXT_FIELDS)


def document_row(doc: Document) -> dict[str, Any]:
    """A ``Document`` as a ``documents`` row (without timestamps)."""
    row = {name: getattr(doc, name) for name in ROW_FIELDS}
    row["mesh"] = mesh_dicts(doc.mesh)
    row["sources"] = [doc.source]
    row["aliases"] = sorted(set(doc.aliases))
    return row


def merge_document(existing: dict[str, Any] | None, incoming: Document, now: dt.datetime,
                   file_id: int) -> tuple[dict[str, Any], str]:
    """The new row for a paper and what happened: ``"new"``, ``"updated"`` or ``"unchanged"``."""
    new = document_row(incoming)
    if existing is None:
        new.update(first_seen=now, updated_at=now, deleted=False, deleted_at=None, last_file_id=file_id)
        return new, "new"

    row = dict(existing)
    replaces = incoming.source == existing["source"] or (
        SOURCE_PRIORITY.get(incoming.source, 0) > SOURCE_PRIORITY.get(existing["source"], 0)
    )
    if replaces:
        for name in TEXT_FIELDS:
            row[name] = new[name]
        row["source"], row["source_id"] = incoming.source, incoming.source_id
    else:
        for name in TEXT_FIELDS:
            if row.get(name) in (None, "", []) and new[name] not in (None, "", []):
                row[name] = new[name]
    row["aliases"] = sorted(set(existing["aliases"] or []) | set(new["aliases"]))
    row["sources"] = sorted(set(existing["sources"] or []) | {incoming.source})
    row["content_hash"] = content_hash(row["title"], row["abstract"])
    row["deleted"], row["deleted_at"] = False, None

    if _same(existing, row):
        return dict(existing), "unchanged"
    row["updated_at"] = now
    row["last_file_id"] = file_id
    return row, "updated"


def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    keys = set(TEXT_FIELDS) | {"aliases", "sources", "content_hash", "deleted", "source", "source_id"}
    return all(_norm(before.get(k)) == _norm(after.get(k)) for k in keys)


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in sorted(value.items())}
    return value
