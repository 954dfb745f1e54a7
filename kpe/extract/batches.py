"""Run an extraction method over a batch of pending documents (pure: documents in, ranked phrases out)."""

from __future__ import annotations

from dataclasses import dataclass

from kpe.extract.methods import Extractor, document_text
from kpe.phrases import normalize_phrase


@dataclass(frozen=True, slots=True)
class PendingDocument:
    """A document that needs (re-)extraction."""

    doc_id: str
    title: str | None
    abstract: str | None
    content_hash: str


@dataclass(frozen=True, slots=True)
class DocumentResult:
    """Ranked keyphrases of one document: ``(keyphrase, normalized, score)``, best first."""

    doc_id: str
    content_hash: str
    phrases: list[tuple[str, str, float]]


def extract_batch(extractor: Extractor, docs: list[PendingDocument]) -> list[DocumentResult]:
    """Keyphrases for each document; phrases that normalise to the same stemmed form keep the best one."""
    ranked = extractor.extract([document_text(d.title, d.abstract) for d in docs]) if docs else []
    results = []
    for doc, phrases in zip(docs, ranked, strict=True):
        seen: set[str] = set()
        kept = []
        for kp in phrases:
            normalized = normalize_phrase(kp.phrase)
            if normalized and normalized not in seen:
                seen.add(normalized)
                kept.append((kp.phrase, normalized, round(float(kp.score), 6)))
        results.append(DocumentResult(doc.doc_id, doc.content_hash, kept))
    return results
