"""Annotation kinds in the nightly: documents in, entity mentions or suggested labels out (pure; no warehouse).

An annotation kind is a model kind whose ``output`` (``kpe.train.kinds``) is a table other than keyphrases:
``ner`` -> ``entities``, ``classify`` -> ``doc_labels``. Its ``annotator`` factory ``(model_dir) -> annotator``
loads a production model once; :func:`annotate_batch` runs it over a batch of pending documents (the same
``PendingDocument`` the keyphrase side reads) and returns one :class:`DocAnnotations` per document, which
``warehouse.annotations`` writes in one transaction per batch.

Every annotator sees the text keyphrase extraction sees, ``kpe.extract.methods.document_text(title, abstract)``
(title and abstract joined as one passage): entity offsets slice exactly that string.

Usage::

    annotator = load_annotator("ner", "/models/ner-20261129-2300-ab12cd/model")
    results = annotate_batch(annotator, docs)        # list[DocAnnotations]
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kpe.extract.batches import PendingDocument
from kpe.extract.methods import document_text

#: Labels a ``classify`` model suggests per document at most.
DEFAULT_TOP_K = 10


@dataclass(frozen=True, slots=True)
class EntityRow:
    """One entity mention: ``document_text(title, abstract)[start:end] == text``."""

    start: int
    end: int
    text: str
    type: str
    score: float


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One suggested label of a scheme (``mesh``), ``rank`` 1 = best."""

    scheme: str
    label: str
    score: float
    rank: int


@dataclass(frozen=True, slots=True)
class DocAnnotations:
    """What an annotator made of one document (possibly nothing: that is remembered too)."""

    doc_id: str
    content_hash: str
    rows: list[EntityRow] | list[LabelRow]


class Annotator(Protocol):
    """What :func:`annotate_batch` calls: rows for each text."""

    def rows(self, texts: Sequence[str]) -> list[list[EntityRow] | list[LabelRow]]: ...


class EntityAnnotator:
    """Rows of a ``ner`` model (``kpe.train.ner.EntityTagger``)."""

    def __init__(self, tagger: Any):
        self.tagger = tagger

    def rows(self, texts: Sequence[str]) -> list[list[EntityRow]]:
        return [[EntityRow(m.start, m.end, m.surface, m.type, m.score) for m in mentions]
                for mentions in self.tagger.annotate(list(texts))]


class LabelAnnotator:
    """Rows of a ``classify`` model (``kpe.train.classify.Labeler``: ``predict(texts, top_k)``)."""

    def __init__(self, labeler: Any, scheme: str = "mesh", top_k: int = DEFAULT_TOP_K):
        self.labeler = labeler
        self.scheme = scheme
        self.top_k = top_k

    def rows(self, texts: Sequence[str]) -> list[list[LabelRow]]:
        return [[LabelRow(self.scheme, label, round(float(score), 6), rank)
                 for rank, (label, score) in enumerate(labels, start=1)]
                for labels in self.labeler.predict(list(texts), top_k=self.top_k)]


def entity_annotator(model_dir: str | Path) -> EntityAnnotator:
    """The ``ner`` kind's annotator: chemical and disease mentions from ``kpe.train.ner.load_entity_tagger``."""
    from kpe.train.ner import load_entity_tagger

    return EntityAnnotator(load_entity_tagger(model_dir))


def mesh_annotator(model_dir: str | Path) -> LabelAnnotator:
    """The ``classify`` kind's annotator: MeSH suggestions from ``kpe.train.classify.load_labeler``."""
    from kpe.train.classify import load_labeler
    from kpe.train.predict import device_of

    labeler = load_labeler(model_dir, device=device_of(None))
    return LabelAnnotator(labeler, scheme=getattr(labeler, "scheme", "mesh") or "mesh")


def load_annotator(kind: str, model_dir: str | Path) -> Annotator:
    """The annotator of an annotation kind for a saved model dir (its ``annotator`` factory in ``KINDS``)."""
    from kpe.train.kinds import annotation_kinds

    kinds = annotation_kinds()
    if kind not in kinds:
        raise ValueError(f"not an annotation kind: {kind!r} (known: {', '.join(kinds)})")
    module, _, name = kinds[kind].annotator.partition(":")
    return getattr(importlib.import_module(module), name)(model_dir)


def annotate_batch(annotator: Annotator, docs: Sequence[PendingDocument]) -> list[DocAnnotations]:
    """One :class:`DocAnnotations` per document, in order."""
    if not docs:
        return []
    rows = annotator.rows([document_text(d.title, d.abstract) for d in docs])
    return [DocAnnotations(d.doc_id, d.content_hash, list(r)) for d, r in zip(docs, rows, strict=True)]


def annotation_decision(kind: str, candidate: dict[str, Any], production: dict[str, Any] | None, *, margin: float,
                        floor: float) -> tuple[str, str]:
    """``(action, reason)``: promote when the candidate beats production by ``margin`` on the gate set, or, with
    no production model of the kind, when it reaches ``floor``; else reject."""
    metric = candidate.get("main_metric", "main")
    if production is None:
        if candidate["main"] >= floor:
            return "promote", f"first {kind} model: {metric} {candidate['main']:.4f} >= floor {floor:.2f}"
        return "reject", f"first {kind} model: {metric} {candidate['main']:.4f} < floor {floor:.2f}"
    delta = candidate["main"] - production["main"]
    verdict = "promote" if delta >= margin else "reject"
    return verdict, (f"{metric} {candidate['main']:.4f} vs production {production['model_version']} "
                     f"{production['main']:.4f} (delta {delta:+.4f}, margin {margin:.4f})")
