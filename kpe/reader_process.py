"""The reader process: read an input unit in a forked child while the ingesting process cleans and commits.

Parsing a MEDLINE file costs about as much as everything after it, so on two cores the two halves overlap. The
reader process is forked (so the unit's ``read`` callable needs no pickling); it only parses (lxml, JSON) and
sends the items, as plain tuples in messages of a few hundred, through a pipe with a small bounded buffer; it
never touches the warehouse, the lake or a model. Batches, resume and errors are the same as reading in the
ingesting process (``kpe.ingest``): the first ``skip`` (committed) items are skipped, a ``SourceFileError``
arrives after every item before it, any other reader exception is raised in the parent (with the reader's
traceback as a note), a reader that dies is a ``RuntimeError``, and the reader process never outlives its
parent (it checks, while it waits, that the parent is still there; SIGTERM stops it, Ctrl-C goes to the parent).

Usage (what ``kpe.ingest.ingest_unit`` does)::

    if use_reader_process(unit, parallel):
        with contextlib.closing(read_in_reader_process(unit, skip)) as items:   # closing reaps the reader
            for item in items:
                ...
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import multiprocessing
import operator
import os
import pickle
import queue as queue_module
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from kpe.records import MeshHeading, SourceItem, SourceRecord
from kpe.sources.errors import SourceFileError

if TYPE_CHECKING:
    from kpe.input_unit import InputUnit

PARALLEL_MIN_BYTES = 8 * 1024 * 1024
"""Units at least this big (on disk) are read in a reader process when ``parallel`` is ``None``."""

_MESSAGE_ITEMS = 500  # items per message: the first batch starts soon after the reader does
_QUEUE_MESSAGES = 8  # messages waiting to be sent at most (a few MB): the reader waits when we lag
_POLL_S = 1.0  # how often the reader checks, while it waits, that this process is still there
_STOP_TIMEOUT_S = 5.0
_RECORD_FIELDS = [f.name for f in dataclasses.fields(SourceRecord)]
_MESH_FIELD = _RECORD_FIELDS.index("mesh")
_record_values = operator.attrgetter(*_RECORD_FIELDS)


def use_reader_process(unit: InputUnit, parallel: bool | None) -> bool:
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


def read_in_reader_process(unit: InputUnit, skip: int) -> Iterator[SourceItem]:
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
