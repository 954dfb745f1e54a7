"""Keyphrase extraction: candidates, the encoder, the embedding cache, ranking strategies and the engine.

Importing this package stays cheap (no torch); the engine loads on first use::

    from kpe.extract import ExtractionConfig, KeyphraseEngine
    engine = KeyphraseEngine(ExtractionConfig())
    engine.extract(["Dapagliflozin in chronic kidney disease. ..."])
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "ExtractionConfig": "kpe.extract.config",
    "candidate_phrases": "kpe.extract.candidates",
    "candidate_spans": "kpe.extract.candidates",
    "CandidateSource": "kpe.extract.candidates",
    "PhraseCandidates": "kpe.extract.candidates",
    "KeyBERTCandidates": "kpe.extract.candidates",
    "SentenceEncoder": "kpe.extract.encoder",
    "resolved_precision": "kpe.extract.encoder",
    "EmbeddingCache": "kpe.extract.embedding_cache",
    "KeyBERTRanker": "kpe.extract.engine",
    "KeyphraseEngine": "kpe.extract.engine",
    "build_kpe": "kpe.extract.engine",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kpe.extract' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
