"""Graph API answers saved to disk: ``/paper/{id}`` (with its citations and references), search and bulk-search
pages, ``/paper/batch`` lists; one JSON document (pretty-printed or not) or JSON lines of answers / papers.

``source_id`` is the S2 corpus id (the Graph API ``paperId`` only when a response has no ``corpusId``).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kpe.records import BadRecord, SourceItem, SourceRecord
from kpe.sources.semantic_scholar.jsonl import (
    MAX_JSON_DOCUMENT_BYTES,
    SOURCE,
    FileProblem,
    as_int,
    as_text,
    corpus_id,
    counted,
    json_lines,
    looks_like_jsonl,
    open_binary,
    s2_external_ids,
    snippet,
)


def _unwrap(entry: Any) -> dict[str, Any] | None:
    """A paper dict from a list entry: plain, or ``{"citingPaper": ...}`` / ``{"citedPaper": ...}`` /
    ``{"paper": ...}``."""
    if not isinstance(entry, dict):
        return None
    for key in ("citingPaper", "citedPaper", "paper"):
        if isinstance(entry.get(key), dict) and "paperId" not in entry:
            return entry[key]
    return entry


def _graph_record(paper: dict[str, Any]) -> SourceRecord:
    external = paper.get("externalIds") if isinstance(paper.get("externalIds"), dict) else {}
    corpusid = corpus_id(paper.get("corpusId"))
    if corpusid is None:
        corpusid = corpus_id(external.get("CorpusId"))
    journal = paper.get("journal")
    journal_name = journal.get("name") if isinstance(journal, dict) else None
    types = paper.get("publicationTypes")
    ids = s2_external_ids(external)
    if corpusid is not None:
        ids["s2"] = str(corpusid)
    return SourceRecord(
        source=SOURCE,
        source_id=str(corpusid) if corpusid is not None else str(paper["paperId"]),
        title=as_text(paper.get("title")),
        abstract=as_text(paper.get("abstract")),
        journal=as_text(journal_name) or as_text(paper.get("venue")),
        year=as_int(paper.get("year")),
        pub_date=as_text(paper.get("publicationDate")),
        publication_types=[str(t) for t in types if t] if isinstance(types, list) else [],
        external_ids=ids,
        raw_snippet=snippet(json.dumps({k: paper.get(k) for k in ("paperId", "corpusId", "title")},
                                       ensure_ascii=False)),
    )


def iter_graph_papers(obj: dict[str, Any] | list[Any]) -> Iterator[SourceItem]:
    """Records from a Graph API answer: ``/paper/{id}`` (the paper, then its ``citations`` and ``references``
    that have a ``paperId``), a search / bulk-search page (``{"data": [...]}``) or a ``/paper/batch`` list.

    A top-level paper without ``paperId`` is a ``BadRecord``; citing / referenced entries without one
    (references S2 could not resolve, also as ``{"citingPaper": ...}`` page items) and ``null`` batch
    entries (unknown ids) carry no paper and are skipped. A paper seen twice in one answer is yielded once.
    """
    if isinstance(obj, list):
        papers: list[Any] = obj
    elif isinstance(obj, dict) and isinstance(obj.get("data"), list):
        papers = obj["data"]
    else:
        papers = [obj]
    seen: set[str] = set()
    for entry in papers:
        if entry is None:
            continue
        paper = _unwrap(entry)
        if paper is not None and paper is not entry and not paper.get("paperId"):
            continue  # a /citations or /references page entry S2 could not resolve to a paper
        if paper is None or not paper.get("paperId"):
            yield BadRecord(SOURCE, None, "Graph API paper without paperId",
                            snippet(json.dumps(entry, ensure_ascii=False)[:2000]))
            continue
        for item in [paper, *(_unwrap(e) for key in ("citations", "references") for e in (paper.get(key) or []))]:
            if item is None or not item.get("paperId"):
                continue
            record = _graph_record(item)
            if record.source_id not in seen:
                seen.add(record.source_id)
                yield record


def iter_graph_file(path: Path) -> Iterator[SourceItem]:
    """A saved Graph API answer: one JSON document (pretty-printed or not), or JSONL of answers / papers."""
    return counted(_iter_graph_file(Path(path)))


def _iter_graph_file(path: Path) -> Iterator[SourceItem]:
    if looks_like_jsonl(path):
        for _line_no, obj, _raw in json_lines(path):
            yield from ([obj] if isinstance(obj, BadRecord) else iter_graph_papers(obj))
        return
    if path.stat().st_size > MAX_JSON_DOCUMENT_BYTES:
        raise FileProblem(path, f"a single JSON document over {MAX_JSON_DOCUMENT_BYTES} bytes is not supported", None)
    try:
        with open_binary(path) as fh:
            document = json.loads(fh.read().decode("utf-8"))
    except (EOFError, OSError, zlib.error) as exc:
        raise FileProblem(path, f"truncated or corrupt file ({type(exc).__name__}: {exc})", None) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileProblem(path, f"invalid JSON document ({exc})", getattr(exc, "lineno", None)) from exc
    yield from iter_graph_papers(document)

