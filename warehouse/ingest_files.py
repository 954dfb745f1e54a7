"""The incremental watermark (``ingest_files``) and the shard manifest (``shards``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from kpe.shards import ShardInfo
from warehouse.rows import fetch_dicts

COUNTERS = ("n_records", "n_new", "n_updated", "n_unchanged", "n_deleted", "n_quarantined")


def find_file(con: duckdb.DuckDBPyConnection, name: str, sha256: str) -> dict[str, Any] | None:
    """The watermark row of a file (by name and checksum), or ``None`` if never seen."""
    rows = fetch_dicts(con, "SELECT * FROM ingest_files WHERE name = ? AND sha256 = ?", [name, sha256])
    return rows[0] if rows else None


def start_file(con: duckdb.DuckDBPyConnection, source: str, name: str, uri: str, sha256: str, size: int,
               now: dt.datetime) -> int:
    """Create the watermark row of a new file (status ``running``); returns its ``file_id``."""
    return con.execute(
        "INSERT INTO ingest_files (source, name, uri, sha256, bytes, status, started_at) "
        "VALUES (?, ?, ?, ?, ?, 'running', ?) RETURNING file_id",
        [source, name, uri, sha256, size, now],
    ).fetchone()[0]


def resume_file(con: duckdb.DuckDBPyConnection, file_id: int) -> None:
    """Mark an interrupted or failed file as running again (it resumes after ``records_done``)."""
    con.execute("UPDATE ingest_files SET status = 'running', error = NULL WHERE file_id = ?", [file_id])


def record_batch(con: duckdb.DuckDBPyConnection, file_id: int, items_done: int, counts: dict[str, int]) -> None:
    """Advance the watermark by one committed batch; call in the batch's transaction."""
    sets = ", ".join(f"{c} = {c} + ?" for c in COUNTERS)
    con.execute(
        f"UPDATE ingest_files SET records_done = records_done + ?, batches_done = batches_done + 1, {sets} "
        "WHERE file_id = ?",
        [items_done, *[counts.get(c, 0) for c in COUNTERS], file_id],
    )


def finish_file(con: duckdb.DuckDBPyConnection, file_id: int, status: str, error: str | None,
                now: dt.datetime, seconds: float) -> None:
    """Close a file: ``done``, ``partial`` (a fatal error after some records) or ``failed``."""
    con.execute(
        "UPDATE ingest_files SET status = ?, error = ?, finished_at = ?, "
        "seconds = coalesce(seconds, 0) + ? WHERE file_id = ?",
        [status, error, now, seconds, file_id],
    )


def get_file(con: duckdb.DuckDBPyConnection, file_id: int) -> dict[str, Any]:
    """One watermark row by id."""
    return fetch_dicts(con, "SELECT * FROM ingest_files WHERE file_id = ?", [file_id])[0]


def add_shard(con: duckdb.DuckDBPyConnection, file_id: int, shard: ShardInfo, now: dt.datetime) -> None:
    """Record a written shard (a re-run of the same batch replaces its row)."""
    con.execute(
        "INSERT OR REPLACE INTO shards (path, file_id, batch, kind, source, ingest_date, rows, bytes, sha256, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [shard.path, file_id, shard.batch, shard.kind, shard.source, shard.ingest_date, shard.rows, shard.bytes,
         shard.sha256, now],
    )


def list_files(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every watermark row, oldest first."""
    return fetch_dicts(con, "SELECT * FROM ingest_files ORDER BY file_id")


def shard_ownership(con: duckdb.DuckDBPyConnection) -> tuple[set[str], list[tuple[str, str]]]:
    """What the lake sweep needs: every listed shard path, and ``(name, sha256)`` of every known input file."""
    listed = {row[0] for row in con.execute("SELECT path FROM shards").fetchall()}
    files = [(row[0], row[1]) for row in con.execute("SELECT name, sha256 FROM ingest_files").fetchall()]
    return listed, files


def shard_totals(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """How many shards the lake holds and their bytes."""
    count, size = con.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM shards").fetchone()
    return count, size
