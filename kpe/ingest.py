"""Ingest one input unit (a MEDLINE file, an S2 file or file pair) in batches: read, clean, shard, commit.

Every source item ends up as a document, a deletion or a quarantine row. A batch's shards are written
atomically first, then its rows and the watermark commit in one warehouse transaction, so a crash leaves no
half-written batch and a re-run resumes after the last committed item.

How a unit ends (``FileReport.status``, also the watermark's ``status``):

- ``done``: read to its end; bad records are in ``quarantined`` (each with its reason), the rest was ingested.
- ``partial``: its end could not be read (a truncated or corrupt file): every complete record before the
  problem was ingested, ``error`` says what happened. Skipped by later runs unless the file changes (a new
  checksum is a new unit).
- ``failed``: nothing could be read (unreadable, empty, not the expected format), or ingesting crashed;
  ``error`` names the file by its full path. Later runs try it again (a crash resumes after its last batch).
- ``skipped``: already ingested with this checksum.

A large unit is read in a second process, the *reader process* (:mod:`kpe.reader_process`), while this process
cleans, writes shards and commits. Batches, resume and errors are the same as reading in this process: the first
``items_done`` (committed) items are skipped, a ``SourceFileError`` arrives after every item before it (they are
committed and the file is ``partial``), any other reader exception fails the file, and the reader process never
outlives this one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from kpe.clean import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, clean_item, clean_record, quarantine_of
from kpe.input_unit import InputUnit
from kpe.reader_process import PARALLEL_MIN_BYTES, read_in_reader_process, use_reader_process
from kpe.records import BadRecord, Deletion, Document, Quarantined, SourceItem, SourceRecord
from kpe.shards import ShardInfo, deletions_table, documents_table, shard_relpath, write_shard
from kpe.sources.errors import SourceFileError

__all__ = ["PARALLEL_MIN_BYTES", "PROBLEM_STATUSES", "Batch", "FileReport", "IngestStore", "InputUnit",
           "clean_batches", "ingest_unit"]


@dataclass
class Batch:
    """One batch of cleaned items, ready to commit."""

    number: int
    items: int
    documents: list[Document] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    shards: list[ShardInfo] = field(default_factory=list)
    table: pa.Table | None = None  # the documents' shard table (``DOCUMENT_SCHEMA``, same order), once written


@dataclass
class FileReport:
    """What happened to one input unit in this run."""

    source: str
    name: str
    status: str  # done | partial | failed | skipped (see the module docstring)
    records: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    error: str | None = None
    file_id: int | None = None
    uri: str = ""  # full path (or URL) of the input, for messages


PROBLEM_STATUSES = ("partial", "failed")
"""Unit statuses a scheduler must hear about (the ingest flow's run is then not plain Completed)."""


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
                min_abstract_words: int, log: Callable[[str], None] = print,
                parallel: bool | None = None, max_title_chars: int = MAX_TITLE_CHARS,
                max_abstract_chars: int = MAX_ABSTRACT_CHARS) -> FileReport:
    """Ingest one unit incrementally (skips a unit already ingested with the same checksum).

    ``parallel``: read the unit in a reader process (``True``), in this process (``False``), or decide by
    size (``None``: units of ``PARALLEL_MIN_BYTES`` or more, on Linux). Both give the same documents,
    quarantine rows, shards and watermark. A unit whose files cannot be read at all (missing, a symlink loop,
    no permission) is ``failed`` without a watermark row; other failures are recorded in the watermark.
    """
    started = time.perf_counter()
    where = unit.uri or ", ".join(str(p) for p in unit.paths)
    try:
        sha = unit.sha256()
    except OSError as exc:
        error = f"{where}: cannot read: {exc.strerror or exc}"
        log(f"{unit.name}: failed: {error}")
        return FileReport(unit.source, unit.name, "failed", error=error, uri=where,
                          seconds=time.perf_counter() - started)
    file_id, status, items_done, batches_done = store.begin(unit, sha)
    if status in ("done", "partial"):
        log(f"{unit.name}: already ingested ({status}), skipped")
        return FileReport(unit.source, unit.name, "skipped", file_id=file_id, uri=where)
    if items_done:
        log(f"{unit.name}: resuming after {items_done:,} committed items")

    ingest_date = dt.date.today()
    read = read_in_reader_process if use_reader_process(unit, parallel) else _read_in_process
    error, seen = None, items_done
    try:
        with contextlib.closing(read(unit, items_done)) as items:
            for batch in clean_batches(items, input_file=unit.name, batch_size=batch_size,
                                       min_abstract_words=min_abstract_words, first_number=batches_done + 1,
                                       max_title_chars=max_title_chars, max_abstract_chars=max_abstract_chars):
                _commit(batch, unit, sha, store, file_id, lake_dir, ingest_date)
                seen += batch.items
                rate = (seen - items_done) / max(time.perf_counter() - started, 1e-9)
                log(f"{unit.name}: {seen:,} items committed ({rate:,.0f} items/s)")
    except SourceFileError as exc:
        error = str(exc)
        log(f"{unit.name}: stopped early, records before the problem are kept: {error}")
    except Exception as exc:
        store.finish(file_id, "failed", f"{where}: {type(exc).__name__}: {exc}", time.perf_counter() - started)
        raise
    seconds = time.perf_counter() - started
    # a file whose end could not be read is partial; one of which nothing at all could be read failed (tried again)
    final = "done" if error is None else ("partial" if seen else "failed")
    row = store.finish(file_id, final, error, seconds)
    return FileReport(
        unit.source, unit.name, row["status"], records=row["n_records"], new=row["n_new"],
        updated=row["n_updated"], unchanged=row["n_unchanged"], deleted=row["n_deleted"],
        quarantined=row["n_quarantined"], seconds=seconds, error=error, file_id=file_id, uri=where,
    )


def clean_batches(items: Iterable[SourceItem], *, input_file: str, batch_size: int, min_abstract_words: int,
                  first_number: int = 1, max_title_chars: int = MAX_TITLE_CHARS,
                  max_abstract_chars: int = MAX_ABSTRACT_CHARS) -> Iterator[Batch]:
    """Clean source items into batches of ``batch_size`` items (the last one may be smaller), numbered from
    ``first_number``. A ``SourceFileError`` from the reader is raised after the batch with the items before it
    has been yielded; any other exception loses the incomplete batch. A reader that yields something that is
    not a source item is a bug: ``TypeError``. Deletions with an invalid id are quarantined.
    """
    number = first_number
    batch = Batch(number=number, items=0)
    try:
        for item in items:
            if isinstance(item, SourceRecord):
                cleaned = clean_record(item, min_abstract_words, max_title_chars=max_title_chars,
                                       max_abstract_chars=max_abstract_chars)
                (batch.documents if isinstance(cleaned, Document) else batch.quarantined).append(cleaned)
            elif isinstance(item, Deletion):
                deletion = clean_item(item, min_abstract_words)
                (batch.deletions if isinstance(deletion, Deletion) else batch.quarantined).append(deletion)
            elif isinstance(item, BadRecord):
                batch.quarantined.append(quarantine_of(item))
            else:  # a reader bug, not bad data: say so loudly
                raise TypeError(f"{input_file}: reader yielded {type(item).__name__}")
            batch.items += 1
            if batch.items >= batch_size:
                yield batch
                number += 1
                batch = Batch(number=number, items=0)
    except SourceFileError:
        if batch.items:
            yield batch
        raise
    if batch.items:
        yield batch


def _commit(batch: Batch, unit: InputUnit, sha: str, store: IngestStore, file_id: int, lake_dir: Path,
            ingest_date: dt.date) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    store.resolve_doc_ids(batch.documents)
    if batch.documents:
        batch.table = documents_table(batch.documents, unit.name, now)
        rel = shard_relpath("documents", unit.source, ingest_date, unit.name, sha, batch.number)
        batch.shards.append(write_shard(batch.table, lake_dir, rel, kind="documents", source=unit.source,
                                        ingest_date=ingest_date, batch=batch.number))
    if batch.deletions:
        table = deletions_table(batch.deletions, unit.name, now)
        rel = shard_relpath("deletions", unit.source, ingest_date, unit.name, sha, batch.number)
        batch.shards.append(write_shard(table, lake_dir, rel, kind="deletions", source=unit.source,
                                        ingest_date=ingest_date, batch=batch.number))
    store.commit(file_id, batch, now)


def _read_in_process(unit: InputUnit, skip: int) -> Iterator[SourceItem]:
    """The unit's items after the first ``skip`` (already committed) ones, read in this process."""
    items = unit.read()
    if skip:
        items = itertools.islice(items, skip, None)
    yield from items
