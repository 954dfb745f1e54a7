"""Ingest one input unit (a MEDLINE file, an S2 file or file pair) in batches: read, clean, shard, commit.

Every source item ends up as a document, a deletion or a quarantine row. A batch's shards are written
atomically first, then its rows and the watermark commit in one warehouse transaction, so a crash leaves no
half-written batch and a re-run resumes after the last committed item.

A large unit is read in a second process, the *reader process* (forked, so the unit's ``read`` callable
needs no pickling), while this process cleans, writes shards and commits: parsing a MEDLINE file costs about
as much as everything after it, so on two cores the two halves overlap. The reader only parses (lxml, JSON)
and sends the items, as plain tuples in messages of a few hundred, through a pipe with a small bounded
buffer; it never touches the warehouse, the lake or a model. Batches, resume and errors are the same as
reading in this process: the first ``items_done`` (committed) items are skipped, a ``SourceFileError``
arrives after every item before it (they are committed and the file is ``partial``), any other reader
exception fails the file, and the reader process never outlives this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import hashlib
import itertools
import multiprocessing
import operator
import os
import pickle
import queue as queue_module
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from kpe.clean import clean_record, quarantine_of
from kpe.records import BadRecord, Deletion, Document, MeshHeading, Quarantined, SourceItem, SourceRecord
from kpe.shards import ShardInfo, deletions_table, documents_table, shard_relpath, write_shard
from kpe.sources.errors import SourceFileError

PARALLEL_MIN_BYTES = 8 * 1024 * 1024
"""Units at least this big (on disk) are read in a reader process when ``parallel`` is ``None``."""


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
    table: pa.Table | None = None  # the documents' shard table (``DOCUMENT_SCHEMA``, same order), once written


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
                min_abstract_words: int, log: Callable[[str], None] = print,
                parallel: bool | None = None) -> FileReport:
    """Ingest one unit incrementally (skips a unit already ingested with the same checksum).

    ``parallel``: read the unit in a reader process (``True``), in this process (``False``), or decide by
    size (``None``: units of ``PARALLEL_MIN_BYTES`` or more, on Linux). Both give the same documents,
    quarantine rows, shards and watermark.
    """
    started = time.perf_counter()
    sha = unit.sha256()
    file_id, status, items_done, batches_done = store.begin(unit, sha)
    if status in ("done", "partial"):
        log(f"{unit.name}: already ingested ({status}), skipped")
        return FileReport(unit.source, unit.name, "skipped", file_id=file_id)
    if items_done:
        log(f"{unit.name}: resuming after {items_done:,} committed items")

    ingest_date = dt.date.today()
    read = _read_in_reader_process if _use_reader_process(unit, parallel) else _read_in_process
    error, seen = None, items_done
    try:
        with contextlib.closing(read(unit, items_done)) as items:
            for batch in clean_batches(items, input_file=unit.name, batch_size=batch_size,
                                       min_abstract_words=min_abstract_words, first_number=batches_done + 1):
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


def clean_batches(items: Iterable[SourceItem], *, input_file: str, batch_size: int, min_abstract_words: int,
                  first_number: int = 1) -> Iterator[Batch]:
    """Clean source items into batches of ``batch_size`` items (the last one may be smaller), numbered from
    ``first_number``. A ``SourceFileError`` from the reader is raised after the batch with the items before it
    has been yielded; any other exception loses the incomplete batch. A reader that yields something that is
    not a source item is a bug: ``TypeError``.
    """
    number = first_number
    batch = Batch(number=number, items=0)
    try:
        for item in items:
            if isinstance(item, SourceRecord):
                cleaned = clean_record(item, min_abstract_words)
                (batch.documents if isinstance(cleaned, Document) else batch.quarantined).append(cleaned)
            elif isinstance(item, Deletion):
                batch.deletions.append(item)
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
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
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


# --- the reader process --------------------------------------------------------------------------------------

_MESSAGE_ITEMS = 500  # items per message: the first batch starts soon after the reader does
_QUEUE_MESSAGES = 8  # messages waiting to be sent at most (a few MB): the reader waits when we lag
_POLL_S = 1.0  # how often the reader checks, while it waits, that this process is still there
_STOP_TIMEOUT_S = 5.0
_RECORD_FIELDS = [f.name for f in dataclasses.fields(SourceRecord)]
_MESH_FIELD = _RECORD_FIELDS.index("mesh")
_record_values = operator.attrgetter(*_RECORD_FIELDS)


def _use_reader_process(unit: InputUnit, parallel: bool | None) -> bool:
    """Whether to read in a reader process: asked for, or (``None``) a big unit on Linux; never where this
    process cannot fork or cannot have children (a daemonic process)."""
    if parallel is False or "fork" not in multiprocessing.get_all_start_methods():
        return False
    if multiprocessing.current_process().daemon:
        return False
    if parallel is None:  # forking is safe on Linux; macOS system libraries may not survive it
        return sys.platform.startswith("linux") and unit.size() >= PARALLEL_MIN_BYTES
    return True


def _encode(items: list[SourceItem]) -> list[Any]:
    """Items for the pipe: a ``SourceRecord`` as the tuple of its fields (MeSH headings as ``(name, major)``),
    which pickles several times faster than the slotted dataclass; other items as they are (rare)."""
    encoded: list[Any] = []
    for item in items:
        if type(item) is SourceRecord:
            values = _record_values(item)
            mesh = [(heading.name, heading.major) for heading in values[_MESH_FIELD]]
            encoded.append((*values[:_MESH_FIELD], mesh, *values[_MESH_FIELD + 1:]))
        else:
            encoded.append(item)
    return encoded


def _decode(encoded: list[Any]) -> Iterator[SourceItem]:
    for value in encoded:
        if type(value) is tuple:
            record = SourceRecord(*value)
            record.mesh = [MeshHeading(name, major) for name, major in record.mesh]
            yield record
        else:
            yield value


def _read_in_reader_process(unit: InputUnit, skip: int) -> Iterator[SourceItem]:
    """The unit's items after the first ``skip``, read in a forked reader process.

    A generator: closing it (or an error here) stops and reaps the reader process.
    """
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    reader = context.Process(target=_reader_main, args=(unit.read, skip, sending, receiving, os.getpid()),
                             name=f"kpe-reader-{unit.name}", daemon=True)
    try:
        reader.start()
    except BaseException:
        receiving.close()
        raise
    finally:
        sending.close()  # only the reader writes: its death then reads as end of file here, never a hang
    try:
        while True:
            try:
                kind, body = pickle.loads(receiving.recv_bytes())
            except EOFError:
                reader.join(_STOP_TIMEOUT_S)
                raise RuntimeError(f"{unit.name}: the reader process died (exit code {reader.exitcode})") from None
            if kind == "items":
                yield from _decode(body)
            elif kind == "end":
                return
            elif kind == "source_error":
                path, problem, line, items_read = body
                raise SourceFileError(path, problem, line=line, items_read=items_read)
            else:
                raise body
    finally:
        receiving.close()  # a reader blocked on a full pipe now fails to write and stops
        _stop_process(reader)


def _stop_process(reader: multiprocessing.process.BaseProcess) -> None:
    """Reap the reader process: it exits by itself once its pipe is closed (at once when it has sent
    everything); one that does not is terminated, then killed. It never outlives this call."""
    reader.join(_STOP_TIMEOUT_S)
    if reader.is_alive():
        reader.terminate()
        reader.join(_STOP_TIMEOUT_S)
        if reader.is_alive():
            reader.kill()
    reader.join()
    reader.close()


class _ParentGone(Exception):
    """The ingesting process is gone (or stopped reading): the reader process stops."""


def _stop_reader(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _reader_main(read: Callable[[], Iterator[SourceItem]], skip: int, channel: Connection, parent_end: Connection,
                 parent_pid: int) -> None:
    """Body of the reader process: read the unit and stream its items to the parent.

    Messages (pickled): ``("items", [encoded item, ...])``, then exactly one of ``("end", None)``,
    ``("source_error", (path, problem, line, items_read))`` or ``("error", exception)``. A sender thread
    writes them to the pipe while the main thread goes on parsing.
    """
    parent_end.close()  # so that the pipe breaks when the parent closes its end or dies
    signal.signal(signal.SIGTERM, _stop_reader)  # the parent's handlers (Prefect's...) are not ours
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    gc.freeze()  # what we inherited is never garbage here: collections then only scan our own objects
    outbox: queue_module.Queue[bytes | None] = queue_module.Queue(maxsize=_QUEUE_MESSAGES)
    sender = threading.Thread(target=_send_all, args=(outbox, channel), name="kpe-reader-sender", daemon=True)
    sender.start()
    chunk: list[SourceItem] = []

    def send(kind: str, body: object) -> None:
        _put(outbox, sender, pickle.dumps((kind, body), protocol=pickle.HIGHEST_PROTOCOL), parent_pid)

    def flush() -> None:
        """Send the items read since the last message (before any end or error message)."""
        nonlocal chunk
        if chunk:
            send("items", _encode(chunk))
            chunk = []

    try:
        try:
            items = read()
            if skip:
                items = itertools.islice(items, skip, None)
            for item in items:
                chunk.append(item)
                if len(chunk) >= _MESSAGE_ITEMS:
                    flush()
            flush()
            send("end", None)
        except (_ParentGone, SystemExit):
            raise
        except SourceFileError as exc:
            flush()
            send("source_error", (exc.path, exc.problem, exc.line, exc.items_read))
        except BaseException as exc:  # noqa: BLE001 - every reader failure goes to the parent
            flush()
            send("error", _portable_exception(exc))
        _put(outbox, sender, None, parent_pid)
        sender.join()
    except (_ParentGone, SystemExit):
        return


def _send_all(outbox: queue_module.Queue[bytes | None], channel: Connection) -> None:
    """Reader process, sender thread: write queued messages to the pipe until the ``None`` sentinel."""
    try:
        while (payload := outbox.get()) is not None:
            channel.send_bytes(payload)
    except OSError:  # the parent closed its end (it stopped reading or died)
        pass


def _put(outbox: queue_module.Queue[bytes | None], sender: threading.Thread, payload: bytes | None,
         parent_pid: int) -> None:
    """Queue one message for the sender thread, waiting while it is full but never for a parent that is gone."""
    while True:
        if os.getppid() != parent_pid or not sender.is_alive():
            raise _ParentGone
        try:
            outbox.put(payload, timeout=_POLL_S)
            return
        except queue_module.Full:
            continue


def _portable_exception(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else a ``RuntimeError`` that names it; with the
    reader's traceback as a note."""
    details = "".join(traceback.format_exception(exc))
    try:
        portable = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - unpicklable exception types are common (required init arguments)
        portable = RuntimeError(f"{type(exc).__name__}: {exc}")
    portable.add_note(f"raised in the reader process:\n{details}")
    return portable
