"""Deterministic train / dev split by document id: the same document never moves between splits."""

from __future__ import annotations

import hashlib

DEV_FRACTION = 0.1


def stable_hash(key: str) -> int:
    """A 64-bit hash of ``key`` (the first 8 bytes of its sha256), the same across runs, processes and machines."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def split_of(doc_id: str, dev_fraction: float = DEV_FRACTION) -> str:
    """``"dev"`` or ``"train"`` for a document, from a hash of its id alone (stable across runs and machines)."""
    return "dev" if stable_hash(doc_id) / 2**64 < dev_fraction else "train"
