"""A persistent cache of candidate-phrase embeddings, shared across runs, with an in-memory LRU in front.

One SQLite file per model fingerprint, precision and encoding scheme (``<cache_dir>/embeddings/<fingerprint>-
<precision>-<encoding>/phrases.sqlite``, encoding = ``kpe.extract.encoder.ENCODING_VERSION``): a key is the
phrase text exactly as it is encoded (lower-cased when the tokenizer ignores case), a value the float32 embedding
bytes, so a hit returns the identical vector, and, since the encoder computes a text's vector independently of
its batch, the very vector a fresh encoding would give, whichever run computed it. SQLite in WAL mode lets
several runs read while one writes; a run that cannot get the write lock within ``busy_timeout_s`` skips
storing that batch (a cache is an optimisation: it never fails an extraction). Usage::

    cache = EmbeddingCache.for_model(settings.cache_dir, encoder.fingerprint, "fp32", dimension=384)
    found = cache.get_many(["heart failure", "dapagliflozin"])   # {key: vector} for the hits
    cache.put_many({"chronic kidney disease": vector})
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_SQL_VARS = 500  # keys per SELECT ... IN (...)


@dataclass(slots=True)
class CacheStats:
    """Lookups since the cache was opened."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    stored: int = 0
    skipped_writes: int = 0

    @property
    def lookups(self) -> int:
        return self.memory_hits + self.disk_hits + self.misses

    @property
    def hit_rate(self) -> float:
        return (self.memory_hits + self.disk_hits) / self.lookups if self.lookups else 0.0


class EmbeddingCache:
    """Phrase -> embedding on disk (SQLite, WAL) with an LRU of ``memory_items`` entries in memory."""

    def __init__(
        self, directory: Path, dimension: int, memory_items: int = 200_000, busy_timeout_s: float = 10.0
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "phrases.sqlite"
        self.dimension = dimension
        self.memory_items = memory_items
        self.stats = CacheStats()
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None)
        # 16 KiB pages hold ~10 vectors of 1.5 KB each (set before the first table exists; ignored after)
        self._con.execute("PRAGMA page_size=16384")
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.execute("PRAGMA journal_size_limit=67108864")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS vectors "
            "(id INTEGER PRIMARY KEY, phrase TEXT NOT NULL UNIQUE, vector BLOB NOT NULL)"
        )
        self._con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = self._con.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()
        if row is None:
            self._con.execute("INSERT OR IGNORE INTO meta VALUES ('dimension', ?)", (str(dimension),))
        elif int(row[0]) != dimension:
            raise ValueError(f"embedding cache {self.path} holds {row[0]}-d vectors, the encoder makes {dimension}-d")

    @staticmethod
    def directory_for(cache_dir: Path, fingerprint: str, precision: str, encoding: str = "") -> Path:
        """``cache_dir/embeddings/<fingerprint>-<precision>[-<encoding>]``: one cache per way of computing a vector."""
        return Path(cache_dir) / "embeddings" / "-".join(p for p in (fingerprint, precision, encoding) if p)

    @classmethod
    def for_model(
        cls, cache_dir: Path, fingerprint: str, precision: str, dimension: int, memory_items: int = 200_000,
        encoding: str = "", **info: str,
    ) -> EmbeddingCache:
        """The cache of one model (fingerprint) at one precision and encoding scheme under ``cache_dir/embeddings/``."""
        directory = cls.directory_for(cache_dir, fingerprint, precision, encoding)
        cache = cls(directory, dimension, memory_items)
        info_file = directory / "model.json"
        if not info_file.exists():
            info_file.write_text(json.dumps({"fingerprint": fingerprint, "precision": precision, "encoding": encoding,
                                             "dimension": dimension, **info}))
        return cache

    def __len__(self) -> int:
        return int(self._con.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def _remember(self, key: str, vector: np.ndarray) -> None:
        if self.memory_items <= 0:
            return
        self._memory[key] = vector
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors of those ``keys`` that are cached (memory first, then disk)."""
        found: dict[str, np.ndarray] = {}
        wanted: list[str] = []
        with self._lock:
            for key in dict.fromkeys(keys):
                vec = self._memory.get(key)
                if vec is not None:
                    self._memory.move_to_end(key)
                    found[key] = vec
                    self.stats.memory_hits += 1
                else:
                    wanted.append(key)
            disk_hits = 0
            for start in range(0, len(wanted), _SQL_VARS):
                chunk = wanted[start : start + _SQL_VARS]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT phrase, vector FROM vectors WHERE phrase IN ({marks})"
                for key, blob in self._con.execute(query, chunk):
                    vec = np.frombuffer(blob, dtype=np.float32)
                    found[key] = vec
                    self._remember(key, vec)
                    disk_hits += 1
            self.stats.disk_hits += disk_hits
            self.stats.misses += len(wanted) - disk_hits
        return found

    def put_many(self, items: Mapping[str, np.ndarray]) -> int:
        """Store vectors (float32); returns how many were written (0 when another run holds the write lock)."""
        if not items:
            return 0
        rows = []
        with self._lock:
            for key, vec in items.items():
                vec = np.ascontiguousarray(vec, dtype=np.float32)
                if vec.shape != (self.dimension,):
                    raise ValueError(f"vector for {key!r} has shape {vec.shape}, expected ({self.dimension},)")
                self._remember(key, vec)
                rows.append((key, vec.tobytes()))
            try:
                self._con.execute("BEGIN IMMEDIATE")
                self._con.executemany("INSERT OR IGNORE INTO vectors (phrase, vector) VALUES (?, ?)", rows)
                self._con.execute("COMMIT")
            except sqlite3.OperationalError as exc:  # locked by another writer past the timeout
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                log.warning("embedding cache %s: not storing %d vectors (%s)", self.path, len(rows), exc)
                self.stats.skipped_writes += len(rows)
                return 0
            self.stats.stored += len(rows)
        return len(rows)

    def close(self) -> None:
        """Close the database connection (the in-memory LRU is dropped)."""
        with self._lock:
            self._memory.clear()
            self._con.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
