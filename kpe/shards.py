"""Immutable Parquet shards: explicit Arrow schemas, deterministic names, atomic writes.

Layout under the lake root::

    documents/source=<source>/ingest_date=<YYYY-MM-DD>/<file-stem>-<sha256[:12]>-b<batch>.parquet
    deletions/source=<source>/ingest_date=<YYYY-MM-DD>/<file-stem>-<sha256[:12]>-b<batch>.parquet

A shard name is a function of (input file name, its checksum, batch number), so a batch re-run after a crash
rewrites the same name instead of leaving a duplicate, and two different files that share a name never
collide; a shard is renamed into place only once fully written.

After a crash (SIGKILL, power loss) two kinds of leftovers are possible, and :func:`find_orphans` finds both
for the next run to remove: a temporary ``.<shard>.<pid>.tmp`` whose writer is gone, and a shard renamed into
place whose batch never committed (the warehouse's ``shards`` table does not list it, though it knows the
input file). A shard of an input the warehouse does not know is never touched (the lake outlives a lost
warehouse).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kpe.records import Deletion, Document, MeshHeading

MESH_TYPE = pa.list_(pa.struct([("name", pa.string()), ("major", pa.bool_())]))

DOCUMENT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("source_id", pa.string()),
        ("version", pa.int32()),
        ("title", pa.string()),
        ("abstract", pa.string()),
        ("language", pa.string()),
        ("journal", pa.string()),
        ("year", pa.int32()),
        ("pub_date", pa.string()),
        ("doi", pa.string()),
        ("pmid", pa.string()),
        ("aliases", pa.list_(pa.string())),
        ("keywords", pa.list_(pa.string())),
        ("mesh", MESH_TYPE),
        ("publication_types", pa.list_(pa.string())),
        ("content_hash", pa.string()),
        ("input_file", pa.string()),
        ("ingested_at", pa.timestamp("us")),
    ]
)

DELETION_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("source_id", pa.string()),
        ("input_file", pa.string()),
        ("ingested_at", pa.timestamp("us")),
    ]
)


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """What the warehouse records about one written shard."""

    path: str  # relative to the lake root, with forward slashes
    kind: str
    source: str
    ingest_date: dt.date
    batch: int
    rows: int
    bytes: int
    sha256: str


def mesh_dicts(mesh: Sequence[MeshHeading]) -> list[dict[str, object]]:
    """MeSH headings as the ``{name, major}`` structs of the Arrow and DuckDB schemas."""
    return [{"name": m.name, "major": m.major} for m in mesh]


def documents_table(docs: Sequence[Document], input_file: str, ingested_at: dt.datetime) -> pa.Table:
    """Arrow table of cleaned documents in ``DOCUMENT_SCHEMA`` (built column by column: no per-row dicts)."""
    columns: dict[str, list] = {}
    for name in DOCUMENT_SCHEMA.names:
        if name == "mesh":  # (name, major) tuples: Arrow builds the structs by position, faster than from dicts
            columns[name] = [[(m.name, m.major) for m in d.mesh] for d in docs]
        elif name == "input_file":
            columns[name] = [input_file] * len(docs)
        elif name == "ingested_at":
            columns[name] = [ingested_at] * len(docs)
        else:
            columns[name] = [getattr(d, name) for d in docs]
    return pa.Table.from_pydict(columns, schema=DOCUMENT_SCHEMA)


def deletions_table(deletions: Sequence[Deletion], input_file: str, ingested_at: dt.datetime) -> pa.Table:
    """Arrow table of deletions in ``DELETION_SCHEMA``."""
    rows = [
        {"source": d.source, "source_id": d.source_id, "input_file": input_file, "ingested_at": ingested_at}
        for d in deletions
    ]
    return pa.Table.from_pylist(rows, schema=DELETION_SCHEMA)


def _file_stem(input_file: str) -> str:
    name = Path(input_file).name
    for suffix in (".gz", ".xml", ".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "input"


def shard_relpath(kind: str, source: str, ingest_date: dt.date, input_file: str, input_sha256: str,
                  batch: int) -> str:
    """Deterministic shard path (relative to the lake root) for one batch of one input file."""
    return (f"{kind}/source={source}/ingest_date={ingest_date.isoformat()}/"
            f"{_file_stem(input_file)}-{input_sha256[:12]}-b{batch:05d}.parquet")


def write_shard(table: pa.Table, lake_dir: Path, relpath: str, *, kind: str, source: str,
                ingest_date: dt.date, batch: int) -> ShardInfo:
    """Write a table as one zstd Parquet shard: temporary name, fsync, then atomic rename."""
    final = Path(lake_dir) / relpath
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)
        with open(tmp, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return ShardInfo(path=relpath, kind=kind, source=source, ingest_date=ingest_date, batch=batch,
                     rows=table.num_rows, bytes=final.stat().st_size, sha256=digest)


def document_shard_files(lake_dir: Path, source: str | None = None) -> list[Path]:
    """Every document shard in the lake (optionally of one source), oldest ingest date first."""
    pattern = f"documents/source={source or '*'}/ingest_date=*/*.parquet"
    return sorted(Path(lake_dir).glob(pattern), key=lambda p: (p.parent.name, p.name))


_TMP_NAME = re.compile(r"^\.(?P<shard>.+\.parquet)\.(?P<pid>\d+)\.tmp$")
_SHARD_NAME = re.compile(r"^(?P<key>.+-[0-9a-f]{12})-b\d{5}\.parquet$")
SHARD_KINDS = ("documents", "deletions")


def current_rows(doc_ids: Sequence[str], ingested_at: Sequence[object], exclude_doc_ids: Collection[str] = ()
                 ) -> list[int]:
    """Which rows of the lake's document shards (read in :func:`document_shard_files` order) are current: the
    latest row per ``doc_id`` by ``ingested_at``, a later shard or row winning a tie (as the warehouse replays the
    lake), less ``exclude_doc_ids`` (deleted documents); their indices in ``doc_id`` order."""
    latest: dict[str, tuple[object, int]] = {}
    for i, (doc_id, at) in enumerate(zip(doc_ids, ingested_at, strict=True)):
        current = latest.get(doc_id)
        if current is None or at >= current[0]:  # type: ignore[operator]
            latest[doc_id] = (at, i)
    excluded = set(exclude_doc_ids)
    return [latest[d][1] for d in sorted(latest) if d not in excluded]


def shard_key(input_file: str, input_sha256: str) -> str:
    """The part of a shard's name that identifies its input file: ``<file-stem>-<sha256[:12]>``."""
    return f"{_file_stem(input_file)}-{input_sha256[:12]}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True


def find_orphans(lake_dir: Path, listed: set[str], known_keys: set[str], *, tmp_grace_s: float = 3600.0,
                 unlisted_grace_s: float = 600.0, now: float | None = None) -> list[Path]:
    """Leftovers of interrupted shard writes under ``documents/`` and ``deletions/`` of the lake:

    - temporary files (``.<shard>.<pid>.tmp``) whose writing process is gone, or older than ``tmp_grace_s``;
    - shards that ``listed`` (the ``shards`` table's paths) does not hold although their input file is known
      (``known_keys``: :func:`shard_key` of every file in the watermark), older than ``unlisted_grace_s``
      (a batch being committed right now is never taken for an orphan).

    Nothing is removed here; the caller deletes what it decides to.
    """
    now = time.time() if now is None else now
    root = Path(lake_dir)
    orphans: list[Path] = []
    for kind in SHARD_KINDS:
        base = root / kind
        if not base.is_dir():
            continue
        for path in sorted(base.glob("source=*/ingest_date=*/*")):
            name = path.name
            try:
                age = now - path.lstat().st_mtime
            except OSError:
                continue
            if (tmp := _TMP_NAME.match(name)) is not None:
                pid = int(tmp["pid"])
                if age > tmp_grace_s or (pid != os.getpid() and not _process_alive(pid)):
                    orphans.append(path)
            elif (shard := _SHARD_NAME.match(name)) is not None and shard["key"] in known_keys:
                rel = path.relative_to(root).as_posix()
                if rel not in listed and age > unlisted_grace_s:
                    orphans.append(path)
    return orphans
