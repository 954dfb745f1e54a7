"""One thing the ingest watermark tracks (a file, or the files read together), shared by the ingest loop
(:mod:`kpe.ingest`) and the reader process (:mod:`kpe.reader_process`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kpe.records import SourceItem


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
