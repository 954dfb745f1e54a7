"""Deterministic train / dev split by document id: the same document never moves between splits."""

from __future__ import annotations

import hashlib

DEV_FRACTION = 0.1


def split_of(doc_id: str, dev_fraction: float = DEV_FRACTION) -> str:
    """``"dev"`` or ``"train"`` for a document, from a hash of its id alone (stable across runs and machines)."""
    bucket = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") / 2**64
    return "dev" if bucket < dev_fraction else "train"
