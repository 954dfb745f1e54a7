"""DuckDB connections, versioned migrations, transactions, and how processes share the warehouse file.

Every write connection runs pending migrations first (``migrations/NNN_name.sql``, each applied once,
in order, inside its own transaction). Read-only connections never change the file.

**Sharing the file.** DuckDB lets one process write a database file, or several read it, never both at once.
So no process keeps the warehouse open for long: the nightly and ingest flows open it around each batch commit
(a second or less) and close it again, and every ``connect`` waits a short while for a conflicting process to
let go (``KPE_READ_WAIT_S`` for readers, ``KPE_WRITE_WAIT_S`` for writers) before it fails with
:class:`WarehouseBusy`, a one-line message instead of DuckDB's lock error. Readers (``kpe sql``, ``kpe status``,
a BI tool that connects per query) therefore see the state of the last committed batch during a run.
Long-running writers (a nightly or ingest run) also hold :func:`writer_lock` for the whole run, so a second
run does not interleave its batches with the first: it waits up to ``KPE_WRITER_WAIT_S`` and then refuses,
naming the process that holds the warehouse.

**The SQL sandbox.** :func:`connect_sandboxed` opens the warehouse read-only with DuckDB's external access
disabled and its configuration locked: no file outside the warehouse can be read or written (``COPY``,
``read_csv``, ``read_text``, ``ATTACH``, ``EXPORT DATABASE``), no extension installed or loaded, no setting
changed. ``kpe sql`` uses it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_CONFLICT = re.compile(r"Could not set lock on file|Conflicting lock is held", re.I)
_LOCK_PID = re.compile(r"\(PID (\d+)\)")

#: DuckDB settings of a ``kpe sql`` connection: no file, network or extension access, settings locked.
SANDBOX_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}


class WarehouseBusy(RuntimeError):
    """The warehouse file is held by another process for longer than this one was willing to wait."""


def utcnow() -> dt.datetime:
    """Naive UTC now: how the warehouse stores timestamps."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def migrations() -> list[tuple[int, str, str]]:
    """All migrations shipped with the package, as ``(version, name, sql)`` in order."""
    found = []
    for entry in resources.files("warehouse.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this database has not seen yet; returns the versions applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)", [version, name]
            )
        applied.append(version)
    return applied


def _wait_seconds(read_only: bool) -> float:
    from kpe.settings import get_settings

    settings = get_settings()
    return settings.read_wait_s if read_only else settings.write_wait_s


def _open_waiting(path: Path, *, read_only: bool, config: dict[str, Any] | None, wait_s: float | None
                  ) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` that retries while another process holds a conflicting lock on the file."""
    wait_s = _wait_seconds(read_only) if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as exc:
            if not _LOCK_CONFLICT.search(str(exc)):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusy(_busy_message(path, str(exc), read_only, wait_s)) from None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)


def _busy_message(path: Path, error: str, read_only: bool, wait_s: float) -> str:
    found = _LOCK_PID.search(error)
    pid = found.group(1) if found else None
    holder = f"process {pid}" if pid else "another process"
    run = read_writer_lock(path)
    if run and (pid is None or str(run.get("pid")) == pid):
        holder += f" ({run.get('command')}, running since {run.get('since')})"
    what, env = ("read", "KPE_READ_WAIT_S") if read_only else ("write", "KPE_WRITE_WAIT_S")
    return (f"the warehouse {path} is busy: {holder} holds it; waited {wait_s:g} s to {what} it "
            f"(raise {env} to wait longer, or try again)")


def connect(path: Path | str, *, read_only: bool = False, wait_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; write connections create the file and apply pending migrations.

    Waits up to ``wait_s`` (default ``KPE_READ_WAIT_S`` / ``KPE_WRITE_WAIT_S``) while another process holds the
    file, then raises :class:`WarehouseBusy`. Use it as a context manager (``with connect(p) as con:``) and keep
    it open only as long as the work needs: the file is shared.
    """
    path = Path(path)
    if read_only:
        if not path.exists():
            raise FileNotFoundError(f"no warehouse at {path}: run `kpe ingest` or `kpe nightly` first")
        return _open_waiting(path, read_only=True, config=None, wait_s=wait_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open_waiting(path, read_only=False, config=None, wait_s=wait_s)
    try:
        migrate(con)
    except BaseException:
        con.close()
        raise
    return con


def connect_sandboxed(path: Path | str, *, memory_limit: str | None = None, threads: int | None = None,
                      wait_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection that can touch no file but the warehouse (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run `kpe ingest` or `kpe nightly` first")
    config = dict(SANDBOX_CONFIG)
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    return _open_waiting(path, read_only=True, config=config, wait_s=wait_s)


class SandboxRefused(RuntimeError):
    """A statement the SQL sandbox does not run."""


#: Statement types ``kpe sql`` runs (``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``FROM``, ``WITH`` parse as SELECT).
SANDBOX_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})


def check_sandboxed_query(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse anything but one read-only query, before DuckDB runs it.

    A second line of defence behind :data:`SANDBOX_CONFIG` (``EXPORT DATABASE`` would still create its target
    folder before failing, and ``IMPORT DATABASE`` or ``CALL`` are not queries).
    """
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise SandboxRefused(str(exc).strip().splitlines()[0]) from None
    if len(statements) != 1:
        raise SandboxRefused(f"`kpe sql` runs one statement at a time; this text holds {len(statements)}")
    kind = statements[0].type.name
    if kind not in SANDBOX_STATEMENTS:
        hint = "; export a result with --format csv|json|parquet --out FILE" if kind in ("COPY", "EXPORT") else ""
        raise SandboxRefused(f"`kpe sql` runs read-only queries (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, "
                             f"EXPLAIN); a {kind} statement is refused{hint}")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One atomic unit of work: everything inside commits together or not at all."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


# --- one long-running writer at a time -------------------------------------------------------------------------

_held: dict[Path, list[Any]] = {}  # lock path -> [file object, depth]
_held_guard = threading.Lock()


def writer_lock_path(path: Path | str) -> Path:
    """The lock file beside the warehouse that a long-running writer holds."""
    path = Path(path).resolve()
    return path.with_name(path.name + ".writer.lock")


def read_writer_lock(path: Path | str) -> dict[str, Any] | None:
    """Who holds (or last held) the writer lock: ``{"pid", "command", "since"}``, or ``None``."""
    try:
        text = writer_lock_path(path).read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


@contextmanager
def writer_lock(path: Path | str, *, wait_s: float | None = None, command: str | None = None) -> Iterator[None]:
    """Hold the warehouse's writer lock for a whole run (re-entrant within a process).

    A second process waits up to ``wait_s`` (default ``KPE_WRITER_WAIT_S``) and then raises
    :class:`WarehouseBusy` naming the process that holds it. The lock is an ``flock`` on a file beside the
    warehouse, so it goes away with its process, however that process ends.
    """
    if wait_s is None:
        from kpe.settings import get_settings

        wait_s = get_settings().writer_wait_s
    lock_path = writer_lock_path(path)
    with _held_guard:
        entry = _held.get(lock_path)
        if entry:
            entry[1] += 1
    if entry:
        try:
            yield
        finally:
            with _held_guard:
                entry[1] -= 1
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held across the yield
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = read_writer_lock(path) or {}
                    raise WarehouseBusy(
                        f"another run is writing the warehouse {Path(path)}: "
                        f"{holder.get('command', 'a kpe process')} (PID {holder.get('pid', '?')}, since "
                        f"{holder.get('since', '?')}); waited {wait_s:g} s. It finishes on its own; raise "
                        f"KPE_WRITER_WAIT_S to queue behind it") from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({
            "pid": os.getpid(), "command": command or " ".join(["kpe", *sys.argv[1:2]]),
            "since": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        }))
        handle.flush()
        with _held_guard:
            _held[lock_path] = [handle, 1]
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(lock_path, None)
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


# --- queries a person can stop ---------------------------------------------------------------------------------

class QueryStopped(RuntimeError):
    """A query was stopped: it ran past its time limit or the user pressed Ctrl-C."""


def run_query(con: duckdb.DuckDBPyConnection, query: str, *, timeout_s: float) -> Any:
    """Run ``query`` and return its result as an Arrow table (``None`` for a statement without rows).

    The query runs in a worker thread while this thread waits, so a time limit or Ctrl-C (``KeyboardInterrupt``)
    interrupts DuckDB cleanly (``con.interrupt()``) and raises :class:`QueryStopped`.
    """
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            relation = con.sql(query)
            outcome["table"] = None if relation is None else relation.to_arrow_table()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc

    stopped: list[str] = []

    def on_ctrl_c(_signum: int, _frame: object) -> None:  # runs in this thread, between its waits
        stopped.append("the query was stopped (Ctrl-C)")
        con.interrupt()

    worker = threading.Thread(target=work, name="kpe-sql", daemon=True)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_ctrl_c) if in_main else None
    worker.start()
    deadline = time.monotonic() + timeout_s
    try:
        while worker.is_alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not stopped:
                stopped.append(f"the query ran longer than {timeout_s:g} s and was stopped "
                               "(raise KPE_SQL_TIMEOUT_S or --timeout)")
                con.interrupt()
            worker.join(0.1 if remaining <= 0 else min(remaining, 0.1))
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    if stopped:
        raise QueryStopped(stopped[0])
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("table")
