"""The silver biomedical benchmark: MEDLINE documents whose author keywords serve as gold.

A document qualifies when it is not deleted, has an abstract, and at least one of its author keywords
occurs in its title + abstract (the evaluation's stemmed matching, ``kpe.evaluate.metrics``); its gold is
then *all* its author keywords (present and absent). The split is ``kpe.splits.split_of(doc_id)``.
Rows come from ``warehouse.evaluations.iter_keyword_documents``; this module holds no SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from kpe.evaluate.benchmarks import GoldDocument
from kpe.evaluate.metrics import occurs_in, phrase_key, unique_keys
from kpe.extract.methods import document_text
from kpe.splits import split_of

SILVER_SPLITS = ("dev", "train", "all")
SILVER_DATASET = "pubmed_silver"


def silver_document(doc_id: str, title: str | None, abstract: str | None, keywords: list[str]) -> GoldDocument | None:
    """The silver document for one warehouse row, or ``None`` when no author keyword is in the text."""
    text = document_text(title, abstract)
    if not abstract or not abstract.strip() or not text:
        return None
    text_key = phrase_key(text)
    if not any(occurs_in(key, text_key) for key in unique_keys(keywords)):
        return None
    return GoldDocument(doc_id=doc_id, text=text, keyphrases=tuple(keywords))


def silver_documents(
    rows: Iterable[tuple[str, str | None, str | None, list[str]]], split: str = "dev", limit: int | None = None
) -> Iterator[GoldDocument]:
    """Silver documents of one split (``dev``, ``train`` or ``all``) from ``(doc_id, title, abstract,
    keywords)`` rows, at most ``limit`` of them, in row order."""
    if split not in SILVER_SPLITS:
        raise ValueError(f"split must be one of {', '.join(SILVER_SPLITS)}, got {split!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    count = 0
    for doc_id, title, abstract, keywords in rows:
        if limit is not None and count >= limit:
            return
        if split != "all" and split_of(doc_id) != split:
            continue
        doc = silver_document(doc_id, title, abstract, keywords)
        if doc is not None:
            count += 1
            yield doc
