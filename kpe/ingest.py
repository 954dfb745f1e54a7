"""Ingest one input unit (a MEDLINE file, an S2 file or file pair) in batches: read, clean, shard, commit.

Every source item ends up as a document, a deletion or a quarantine row. A batch's shards are written
atomically first, then its rows and the watermark commit in one warehouse transaction, so a crash leaves no
half-written batch and a re-run resumes after the last committed item.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kpe.clean import clean_record, quarantine_of
from kpe.records import BadRecord, Deletion, Document, Quarantined, SourceItem, SourceRecord
from kpe.shards import ShardInfo, deletions_table, documents_table, shard_relpath, write_shard
from kpe.sources.errors import SourceFileError


@dataclass
class InputUnit:
    """One thing the watermark tracks: a stable name, its local files, and how to read it."""

    source: str
    name: str
    uri: str
    paths: list[Path]
    read: Callable[[], Iterator[SourceItem]]

    def sha256(self) -> str:
        """Checksum of the unit's bytes (of each file's digest, for multi-file units)."""
        digests = []
        for path in self.paths:
            with open(path, "rb") as fh:
                digests.append(hashlib.file_digest(fh, "sha256").hexdigest())
        if len(digests) == 1:
            return digests[0]
        return hashlib.sha256("\n".join(digests).encode()).hexdigest()

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.paths)


@dataclass
class Batch:
    """One batch of cleaned items, ready to commit."""

    number: int
    items: int
    documents: list[Document] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    shards: list[ShardInfo] = field(default_factory=list)


@dataclass
class FileReport:
    """What happened to one input unit in this run."""

    source: str
    name: str
    status: str  # done | partial | failed | skipped
    records: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    error: str | None = None
    file_id: int | None = None


class IngestStore(Protocol):
    """What the ingest loop needs from the warehouse (implemented by ``warehouse.ingest_store``)."""

    def begin(self, unit: InputUnit, sha256: str) -> tuple[int, str, int, int]:
        """Watermark lookup: ``(file_id, status, items_done, batches_done)``; creates or resumes the row."""

    def resolve_doc_ids(self, documents: Sequence[Document]) -> None:
        """Point each document at an existing paper that shares an alias (in place)."""

    def commit(self, file_id: int, batch: Batch, now: dt.datetime) -> dict[str, int]:
        """Write a batch and advance the watermark in one transaction; returns its counters."""

    def finish(self, file_id: int, status: str, error: str | None, seconds: float) -> dict[str, Any]:
        """Close the watermark row; returns it (with the file's cumulative counters)."""


def ingest_unit(unit: InputUnit, store: IngestStore, *, lake_dir: Path, batch_size: int,
                min_abstract_words: int, log: Callable[[str], None] = print) -> FileReport:
    """Ingest one unit incrementally (skips a unit already ingested with the same checksum)."""
    started = time.perf_counter()
    sha = unit.sha256()
    file_id, status, items_done, batches_done = store.begin(unit, sha)
    if status in ("done", "partial"):
        log(f"{unit.name}: already ingested ({status}), skipped")
        return FileReport(unit.source, unit.name, "skipped", file_id=file_id)
    if items_done:
        log(f"{unit.name}: resuming after {items_done:,} committed items")

    ingest_date = dt.date.today()
    items = unit.read()
    if items_done:
        items = itertools.islice(items, items_done, None)
    batch_no, error, seen = batches_done, None, items_done
    try:
        for chunk in _chunks(items, batch_size):
            batch_no += 1
            batch = _clean_batch(chunk, batch_no, unit, min_abstract_words)
            _commit(batch, unit, sha, store, file_id, lake_dir, ingest_date)
            seen += batch.items
            rate = (seen - items_done) / max(time.perf_counter() - started, 1e-9)
            log(f"{unit.name}: {seen:,} items committed ({rate:,.0f} items/s)")
    except SourceFileError as exc:
        error = str(exc)
        log(f"{unit.name}: stopped early, records before the problem are kept: {error}")
    except Exception as exc:
        store.finish(file_id, "failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
        raise
    seconds = time.perf_counter() - started
    row = store.finish(file_id, "partial" if error else "done", error, seconds)
    return FileReport(
        unit.source, unit.name, row["status"], records=row["n_records"], new=row["n_new"],
        updated=row["n_updated"], unchanged=row["n_unchanged"], deleted=row["n_deleted"],
        quarantined=row["n_quarantined"], seconds=seconds, error=error, file_id=file_id,
    )


def _chunks(items: Iterator[SourceItem], size: int) -> Iterator[list[SourceItem]]:
    """Batches of ``size`` items; a reader error surfaces after the last complete batch is yielded."""
    chunk: list[SourceItem] = []
    try:
        for item in items:
            chunk.append(item)
            if len(chunk) >= size:
                yield chunk
                chunk = []
    except SourceFileError:
        if chunk:
            yield chunk
        raise
    if chunk:
        yield chunk


def _clean_batch(chunk: list[SourceItem], number: int, unit: InputUnit, min_abstract_words: int) -> Batch:
    batch = Batch(number=number, items=len(chunk))
    for item in chunk:
        if isinstance(item, SourceRecord):
            cleaned = clean_record(item, min_abstract_words)
            if isinstance(cleaned, Document):
                batch.documents.append(cleaned)
            else:
                batch.quarantined.append(cleaned)
        elif isinstance(item, Deletion):
            batch.deletions.append(item)
        elif isinstance(item, BadRecord):
            batch.quarantined.append(quarantine_of(item))
        else:  # a reader bug, not bad data: say so loudly
            raise TypeError(f"{unit.name}: reader yielded {type(item).__name__}")
    return batch


def _commit(batch: Batch, unit: InputUnit, sha: str, store: IngestStore, file_id: int, lake_dir: Path,
            ingest_date: dt.date) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    store.resolve_doc_ids(batch.documents)
    if batch.documents:
        table = documents_table(batch.documents, unit.name, now)
        rel = shard_relpath("documents", unit.source, ingest_date, unit.name, sha, batch.number)
        batch.shards.append(write_shard(table, lake_dir, rel, kind="documents", source=unit.source,
                                        ingest_date=ingest_date, batch=batch.number))
    if batch.deletions:
        table = deletions_table(batch.deletions, unit.name, now)
        rel = shard_relpath("deletions", unit.source, ingest_date, unit.name, sha, batch.number)
        batch.shards.append(write_shard(table, lake_dir, rel, kind="deletions", source=unit.source,
                                        ingest_date=ingest_date, batch=batch.number))
    store.commit(file_id, batch, now)
