"""S2ORC: the 2020 ``metadata`` JSONL (``paper_id`` = the corpus id) and the Datasets API ``s2orc`` full text
(title and abstract cut from ``content.text`` by their first annotation span)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kpe.records import BadRecord, SourceItem, SourceRecord
from kpe.sources.semantic_scholar.jsonl import (
    SOURCE,
    as_int,
    as_text,
    counted,
    json_lines,
    records_with_corpus_id,
    s2_external_ids,
    snippet,
)

_S2ORC_METADATA_IDS = {
    "pubmed_id": "pmid",
    "doi": "doi",
    "pmc_id": "pmcid",
    "mag_id": "mag",
    "arxiv_id": "arxiv",
    "acl_id": "acl",
}


def iter_s2orc_metadata(path: Path) -> Iterator[SourceItem]:
    """S2ORC (2020) ``metadata`` JSONL: ``paper_id`` (the corpus id), title, abstract, year, venue/journal, ids."""
    return counted(_iter_s2orc_metadata(Path(path)))


def _iter_s2orc_metadata(path: Path) -> Iterator[SourceItem]:
    for line_no, obj, raw in json_lines(path):
        if isinstance(obj, BadRecord):
            yield obj
            continue
        paper_id = as_text(obj.get("paper_id"))
        if paper_id is None:
            yield BadRecord(SOURCE, None, f"S2ORC record without paper_id at line {line_no}", snippet(raw))
            continue
        ids = {name: str(obj[key]).strip() for key, name in _S2ORC_METADATA_IDS.items()
               if obj.get(key) not in (None, "") and not isinstance(obj.get(key), (dict, list))}
        yield SourceRecord(
            source=SOURCE,
            source_id=paper_id,
            title=as_text(obj.get("title")),
            abstract=as_text(obj.get("abstract")),
            journal=as_text(obj.get("journal")) or as_text(obj.get("venue")),
            year=as_int(obj.get("year")),
            external_ids={**ids, "s2": paper_id},
            raw_snippet=snippet(raw),
        )


def _first_span(text: str, annotations: dict[str, Any], key: str) -> str | None:
    spans = annotations.get(key)
    if isinstance(spans, str):
        try:
            spans = json.loads(spans)
        except json.JSONDecodeError:
            return None
    for span in spans or []:
        if not isinstance(span, dict):
            continue
        start, end = as_int(span.get("start")), as_int(span.get("end"))
        if start is not None and end is not None and 0 <= start < end <= len(text):
            found = text[start:end].strip()
            if found:
                return as_text(found)
    return None


def iter_s2orc_fulltext(path: Path) -> Iterator[SourceItem]:
    """Datasets API ``s2orc`` JSONL: title and abstract cut from ``content.text`` by their first annotation span."""
    return counted(_iter_s2orc_fulltext(Path(path)))


def _iter_s2orc_fulltext(path: Path) -> Iterator[SourceItem]:
    for item in records_with_corpus_id(path, "s2orc"):
        if isinstance(item, BadRecord):
            yield item
            continue
        corpusid, obj, raw = item
        content = obj.get("content") if isinstance(obj.get("content"), dict) else {}
        text = content.get("text") if isinstance(content.get("text"), str) else ""
        annotations = content.get("annotations") if isinstance(content.get("annotations"), dict) else {}
        yield SourceRecord(
            source=SOURCE,
            source_id=str(corpusid),
            title=_first_span(text, annotations, "title"),
            abstract=_first_span(text, annotations, "abstract"),
            external_ids={**s2_external_ids(obj.get("externalids")), "s2": str(corpusid)},
            raw_snippet=snippet(raw),
        )

