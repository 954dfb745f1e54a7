"""Which S2 format a file holds (from its content, gzip or not, whatever its name), and its reader.

Kinds: ``papers`` / ``abstracts`` (Datasets API; joined as one ``datasets`` unit), ``deletes`` (diff delete
files), ``s2orc_metadata`` (S2ORC 2020), ``s2orc`` (Datasets API full text), ``graph`` (Graph API JSON), and
``unsupported`` (authors, citations, embeddings, diff lists, anything that is not JSON paper data).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from kpe.records import SourceItem
from kpe.sources.errors import SourceFileError
from kpe.sources.semantic_scholar.datasets import iter_s2_datasets
from kpe.sources.semantic_scholar.diffs import iter_s2_delete_file
from kpe.sources.semantic_scholar.graph_api import iter_graph_file
from kpe.sources.semantic_scholar.jsonl import MAX_JSON_DOCUMENT_BYTES, head_lines, open_binary, parse_line
from kpe.sources.semantic_scholar.s2orc import iter_s2orc_fulltext, iter_s2orc_metadata

_UNIT_KINDS = frozenset({"datasets", "papers", "deletes", "s2orc_metadata", "s2orc", "graph"})
S2Kind = Literal["datasets", "papers", "abstracts", "deletes", "s2orc_metadata", "s2orc", "graph", "unsupported"]


def _kind_of_record(obj: dict[str, Any]) -> S2Kind:
    keys = set(obj)
    if "paperId" in keys or "citingPaper" in keys or "citedPaper" in keys or isinstance(obj.get("data"), list):
        return "graph"
    if "paper_id" in keys:
        return "s2orc_metadata"
    if "corpusid" in keys:
        if "content" in keys:
            return "s2orc"
        if "title" in keys or "publicationdate" in keys or ("externalids" in keys and "url" in keys):
            return "papers"
        if "abstract" in keys:
            return "abstracts"
        if keys <= {"corpusid", "updated"}:
            return "deletes"
    return "unsupported"


def detect_s2_format(path: Path) -> S2Kind:
    """The format of one local file, from its first parseable record (gzip or not, whatever its name).

    ``"unsupported"`` for JSON that is not paper data (authors, citations, embeddings, diff lists...)
    and for files that are not JSON at all.
    """
    path = Path(path)
    head = head_lines(path)
    first = next((line for line in head if line.strip()), b"")
    if not first.lstrip().startswith((b"{", b"[", b"\xef\xbb\xbf")):
        return "unsupported"
    for line in head:
        obj = parse_line(line)
        if isinstance(obj, dict):
            return _kind_of_record(obj)
        if isinstance(obj, list):
            return "graph" if all(isinstance(x, dict) or x is None for x in obj) else "unsupported"
    # A pretty-printed JSON document (Graph API answer saved to disk).
    if path.stat().st_size <= MAX_JSON_DOCUMENT_BYTES:
        try:
            with open_binary(path) as fh:
                document = json.loads(fh.read().decode("utf-8-sig"))
        except (EOFError, OSError, zlib.error, UnicodeDecodeError, json.JSONDecodeError):
            return "unsupported"
        if isinstance(document, list):
            return "graph"
        if isinstance(document, dict) and _kind_of_record(document) == "graph":
            return "graph"
    return "unsupported"


def reader_for(kind: S2Kind, path: Path) -> Iterator[SourceItem]:
    if kind == "papers":
        return iter_s2_datasets([path], [])
    if kind == "deletes":
        return iter_s2_delete_file(path)
    if kind == "s2orc_metadata":
        return iter_s2orc_metadata(path)
    if kind == "s2orc":
        return iter_s2orc_fulltext(path)
    if kind == "graph":
        return iter_graph_file(path)
    if kind == "abstracts":
        raise SourceFileError(path, "an abstracts file needs its papers files: pass the folder holding both "
                                    "(or both files) so they are joined on corpusid")
    raise SourceFileError(path, "not a Semantic Scholar paper file (papers, abstracts, s2orc, Graph API JSON or "
                                "delete file expected)")


def read_s2_unit(
    kind: str,
    paths: Sequence[str | Path],
    *,
    abstract_paths: Sequence[str | Path] | None = None,
    work_dir: Path | None = None,
) -> Iterator[SourceItem]:
    """Items of a unit given as plain data (``S2Input.kind`` and ``paths``, e.g. after a trip through
    Prefect parameters). For ``"datasets"`` the abstracts among ``paths`` are found by content when
    ``abstract_paths`` is not given."""
    if kind not in _UNIT_KINDS:
        raise ValueError(f"unknown S2 unit kind {kind!r}; expected one of {sorted(_UNIT_KINDS)}")
    files = [Path(p) for p in paths]
    if kind == "datasets":
        if abstract_paths is None:
            abstracts = {p for p in files if detect_s2_format(p) == "abstracts"}
        else:
            abstracts = {Path(p) for p in abstract_paths}
        return iter_s2_datasets([p for p in files if p not in abstracts], [p for p in files if p in abstracts],
                                work_dir=work_dir)
    if len(files) != 1:
        raise ValueError(f"an S2 unit of kind {kind!r} has exactly one file, got {len(files)}")
    return reader_for(kind, files[0])  # type: ignore[arg-type]

