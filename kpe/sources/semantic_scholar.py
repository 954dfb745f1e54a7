"""Semantic Scholar readers: Datasets API files, incremental diffs, S2ORC, Graph API JSON.

Every reader yields ``kpe.records`` items (``SourceRecord(source="s2")``, ``Deletion``, ``BadRecord``);
``source_id`` is the S2 corpus id (the Graph API ``paperId`` only when a response has no ``corpusId``).

Entry points:

- ``expand_s2_inputs(paths)``: CLI inputs (files, folders, globs) -> ordered ingest units (``S2Input``), each
  with a stable ``name``, its local ``paths`` and ``iter_items()`` (``read_s2_unit(kind, paths)`` does
  the same from plain data). Every ``papers`` and ``abstracts`` file
  among the inputs forms ONE ``datasets`` unit (the join on ``corpusid`` needs all of them); every other
  file is a unit of its own; delete files come last. In folders and globs, files that are not paper
  records (authors, citations, embeddings, READMEs...) are skipped with a warning.
- ``iter_s2_file(path)``: the items of one local file or folder, format detected from the content
  (gzip or not, whatever the name): papers, s2orc metadata, s2orc full text, Graph API JSON, delete
  files. A lone ``abstracts`` file is refused (``SourceFileError``): abstracts are joined to papers.
- ``iter_s2_datasets(papers, abstracts)``: the join. Abstracts are indexed first (a dict when their files
  are small, else sqlite in a temporary folder, so memory stays flat for 1.5 GB files), then papers
  stream through in order; a paper without an abstract is a title-only record. An abstract whose
  ``corpusid`` is in none of the papers files becomes ``BadRecord(reason="abstract without paper
  metadata")`` (it has no title, year or ids of its own, so it must not overwrite a document),
  yielded after all papers, by ascending corpus id.
- ``plan_diff(diff_json)`` / ``iter_s2_delete_file(path)``: incremental updates.
- ``iter_graph_papers(obj)``: a Graph API paper (and its citing / referenced papers) or a page of results.

Robustness per line: invalid UTF-8, invalid JSON, or a record without its id -> ``BadRecord`` with the
line number; a truncated or corrupt gzip -> every complete item before it is yielded, then
``SourceFileError``.
"""

from __future__ import annotations

import glob as globlib
import gzip
import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import unquote, urlsplit

from kpe.records import BadRecord, Deletion, SourceItem, SourceRecord
from kpe.sources.errors import SourceFileError

log = logging.getLogger(__name__)

SOURCE = "s2"
SNIPPET_CHARS = 300
IN_MEMORY_ABSTRACTS_MAX_BYTES = 32 * 1024 * 1024
"""Abstract files up to this size on disk (all together) are indexed in a dict; larger ones in sqlite."""
MAX_JSON_DOCUMENT_BYTES = 256 * 1024 * 1024
_LOOKUP_BATCH = 900  # below SQLite's host-parameter limit
ABSTRACT_ORPHAN_REASON = "abstract without paper metadata"

_UNIT_KINDS = frozenset({"datasets", "papers", "deletes", "s2orc_metadata", "s2orc", "graph"})
S2Kind = Literal["datasets", "papers", "abstracts", "deletes", "s2orc_metadata", "s2orc", "graph", "unsupported"]

_EXTERNAL_ID_NAMES = {
    "pubmed": "pmid",
    "pubmedcentral": "pmcid",
    "corpusid": "s2",
    "doi": "doi",
    "mag": "mag",
    "arxiv": "arxiv",
    "acl": "acl",
    "dblp": "dblp",
}
_S2ORC_METADATA_IDS = {
    "pubmed_id": "pmid",
    "doi": "doi",
    "pmc_id": "pmcid",
    "mag_id": "mag",
    "arxiv_id": "arxiv",
    "acl_id": "acl",
}
_ID_IN_LINE = re.compile(rb'"(?:corpusid|corpusId|paper_id|paperId)"\s*:\s*"?([0-9A-Za-z]+)')
_SKIP_SUFFIXES = (".part", ".md5", ".txt", ".md", ".yaml", ".yml", ".sqlite", ".csv", ".tsv")


class _FileProblem(Exception):
    """A fatal problem inside one file; turned into ``SourceFileError`` with the item count by ``_counted``."""

    def __init__(self, path: Path, problem: str, line: int | None) -> None:
        super().__init__(problem)
        self.path, self.problem, self.line = path, problem, line


def _counted(items: Iterator[SourceItem]) -> Iterator[SourceItem]:
    n = 0
    try:
        for item in items:
            n += 1
            yield item
    except _FileProblem as exc:
        raise SourceFileError(exc.path, exc.problem, line=exc.line, items_read=n) from exc.__cause__


# Low-level reading ---------------------------------------------------------------------------------------
def _open_binary(path: Path) -> BinaryIO:
    """The decompressed bytes of ``path``: gzip is detected by its magic number, not the name."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")  # type: ignore[return-value]


def _snippet(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw[: SNIPPET_CHARS * 4].decode("utf-8", "replace")
    return raw[:SNIPPET_CHARS]


def _id_from_line(raw: bytes) -> str | None:
    match = _ID_IN_LINE.search(raw[:4096])
    return match.group(1).decode("ascii") if match else None


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRecord, str]]:
    """``(line number, parsed object or BadRecord, raw line)`` for every non-blank line of a JSONL file."""
    line_no = 0
    opened = _open_binary(path)  # a missing file raises FileNotFoundError here, not a "corrupt file" problem
    try:
        with opened as fh:
            for raw in fh:
                line_no += 1
                stripped = raw.strip()
                if line_no == 1 and stripped.startswith(b"\xef\xbb\xbf"):
                    stripped = stripped[3:]
                if not stripped:
                    continue
                try:
                    text = stripped.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield line_no, BadRecord(SOURCE, _id_from_line(stripped), f"invalid UTF-8 at line {line_no}: {exc}",
                                             _snippet(stripped)), ""
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield line_no, BadRecord(SOURCE, _id_from_line(stripped),
                                             f"invalid JSON at line {line_no}: {exc.msg} (column {exc.colno})",
                                             _snippet(text)), text
                    continue
                if not isinstance(obj, dict):
                    yield line_no, BadRecord(SOURCE, None,
                                             f"not a JSON object at line {line_no}: {type(obj).__name__}",
                                             _snippet(text)), text
                    continue
                yield line_no, obj, text
    except (EOFError, OSError, zlib.error) as exc:
        raise _FileProblem(path, f"truncated or corrupt file ({type(exc).__name__}: {exc})", line_no + 1) from exc


def _text(value: Any) -> str | None:
    """A string field as published; ``None`` for null / empty; lone surrogates replaced (Arrow needs UTF-8)."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    if value == "":
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _external_ids(raw: Any, names: dict[str, str] | None = None) -> dict[str, str]:
    """S2 ``externalIds`` with keys lowercased and renamed (``PubMed`` -> ``pmid``, ``CorpusId`` -> ``s2``...)."""
    names = names or _EXTERNAL_ID_NAMES
    out: dict[str, str] = {}
    if not isinstance(raw, dict):
        return out
    for key, value in raw.items():
        if value is None or isinstance(value, (dict, list, bool)):
            continue
        value = str(value).strip()
        if value:
            out[names.get(str(key).lower(), str(key).lower())] = value
    return out


# Datasets API: papers + abstracts --------------------------------------------------------------------------
def _paper_record(obj: dict[str, Any], raw: str, line_no: int) -> SourceRecord | BadRecord:
    corpusid = _int(obj.get("corpusid"))
    if corpusid is None:
        return BadRecord(SOURCE, None, f"papers record without a valid corpusid at line {line_no}", _snippet(raw))
    journal = obj.get("journal")
    journal_name = journal.get("name") if isinstance(journal, dict) else None
    types = obj.get("publicationtypes")
    return SourceRecord(
        source=SOURCE,
        source_id=str(corpusid),
        title=_text(obj.get("title")),
        journal=_text(journal_name) or _text(obj.get("venue")),
        year=_int(obj.get("year")),
        pub_date=_text(obj.get("publicationdate")),
        publication_types=[str(t) for t in types if t] if isinstance(types, list) else [],
        external_ids={**_external_ids(obj.get("externalids")), "s2": str(corpusid)},
        raw_snippet=_snippet(raw),
    )


class _AbstractIndex:
    """corpusid -> abstract, in a dict or an on-disk sqlite table; remembers which ids a paper used."""

    def __init__(self, work_dir: Path | None) -> None:
        self._dict: dict[int, str | None] | None = {} if work_dir is None else None
        self._matched: set[int] = set()
        self._con: sqlite3.Connection | None = None
        if work_dir is not None:
            self._con = sqlite3.connect(work_dir / "abstracts.sqlite", check_same_thread=False)
            self._con.execute("PRAGMA journal_mode=OFF")
            self._con.execute("PRAGMA synchronous=OFF")
            self._con.execute("CREATE TABLE abstracts (corpusid INTEGER PRIMARY KEY, abstract TEXT, "
                              "matched INTEGER NOT NULL DEFAULT 0)")

    def put_many(self, rows: list[tuple[int, str | None]]) -> None:
        if self._dict is not None:
            self._dict.update(rows)
        elif rows:
            assert self._con is not None
            self._con.executemany("INSERT OR REPLACE INTO abstracts (corpusid, abstract) VALUES (?, ?)", rows)

    def take(self, ids: list[int]) -> dict[int, str | None]:
        """Abstracts of ``ids`` that are indexed; marks them matched."""
        if self._dict is not None:
            found = {i: self._dict[i] for i in ids if i in self._dict}
            self._matched.update(found)
            return found
        assert self._con is not None
        found = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _LOOKUP_BATCH):
            chunk = unique[start : start + _LOOKUP_BATCH]
            marks = ",".join("?" * len(chunk))
            found.update(self._con.execute(f"SELECT corpusid, abstract FROM abstracts WHERE corpusid IN ({marks})", chunk))
            self._con.execute(f"UPDATE abstracts SET matched = 1 WHERE corpusid IN ({marks})", chunk)
        return found

    def orphans(self) -> Iterator[tuple[int, str | None]]:
        """Indexed abstracts that no paper took, by ascending corpus id."""
        if self._dict is not None:
            for corpusid in sorted(set(self._dict) - self._matched):
                yield corpusid, self._dict[corpusid]
        else:
            assert self._con is not None
            yield from self._con.execute("SELECT corpusid, abstract FROM abstracts WHERE matched = 0 ORDER BY corpusid")

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def _index_abstracts(files: Sequence[Path], index: _AbstractIndex) -> Iterator[BadRecord]:
    batch: list[tuple[int, str | None]] = []
    for path in files:
        for line_no, obj, raw in _json_lines(path):
            if isinstance(obj, BadRecord):
                yield obj
                continue
            corpusid = _int(obj.get("corpusid"))
            if corpusid is None:
                yield BadRecord(SOURCE, None, f"abstracts record without a valid corpusid at line {line_no}", _snippet(raw))
                continue
            batch.append((corpusid, _text(obj.get("abstract"))))
            if len(batch) >= 10_000:
                index.put_many(batch)
                batch = []
    index.put_many(batch)


def _join_papers(files: Sequence[Path], index: _AbstractIndex, chunk_size: int = 1000) -> Iterator[SourceItem]:
    pending: list[SourceRecord | BadRecord] = []

    def flush() -> Iterator[SourceItem]:
        found = index.take([int(r.source_id) for r in pending if isinstance(r, SourceRecord)])
        for item in pending:
            if isinstance(item, SourceRecord):
                item.abstract = found.get(int(item.source_id))
            yield item
        pending.clear()

    for path in files:
        try:
            for line_no, obj, raw in _json_lines(path):
                pending.append(obj if isinstance(obj, BadRecord) else _paper_record(obj, raw, line_no))
                if len(pending) >= chunk_size:
                    yield from flush()
        except _FileProblem:
            yield from flush()  # the complete records before the problem stay valid
            raise
        yield from flush()


def iter_s2_datasets(
    papers: Sequence[Path],
    abstracts: Sequence[Path],
    *,
    work_dir: Path | None = None,
    in_memory_max_bytes: int = IN_MEMORY_ABSTRACTS_MAX_BYTES,
) -> Iterator[SourceItem]:
    """Datasets API ``papers`` files joined with ``abstracts`` files on ``corpusid``.

    Order: bad abstract lines, then every papers line in file order (records with their abstract, or
    title-only; bad lines as ``BadRecord``), then abstracts that matched no paper as
    ``BadRecord(reason=ABSTRACT_ORPHAN_REASON)`` by ascending corpus id. Abstract files larger than
    ``in_memory_max_bytes`` in total are indexed in sqlite under a temporary folder in ``work_dir``
    (default: the system temp dir), removed when the iterator ends or is closed.
    """
    return _counted(_iter_s2_datasets(list(map(Path, papers)), list(map(Path, abstracts)), work_dir, in_memory_max_bytes))


def _iter_s2_datasets(papers: list[Path], abstracts: list[Path], work_dir: Path | None,
                      in_memory_max_bytes: int) -> Iterator[SourceItem]:
    on_disk = sum(p.stat().st_size for p in abstracts) > in_memory_max_bytes
    with tempfile.TemporaryDirectory(prefix="kpe-s2-abstracts-", dir=work_dir) as tmp:
        index = _AbstractIndex(Path(tmp) if on_disk else None)
        try:
            yield from _index_abstracts(abstracts, index)
            yield from _join_papers(papers, index)
            for corpusid, abstract in index.orphans():
                yield BadRecord(SOURCE, str(corpusid), ABSTRACT_ORPHAN_REASON, _snippet(abstract or ""))
        finally:
            index.close()


# Incremental diffs and delete files ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DiffStep:
    """One file to apply, in order: ``update`` files upsert records, ``delete`` files delete them."""

    dataset: str
    from_release: str
    to_release: str
    action: Literal["update", "delete"]
    url: str

    @property
    def filename(self) -> str:
        """A local file name unique within a diff list (S3 names such as ``20241018_1.gz`` repeat)."""
        base = unquote(urlsplit(self.url).path.rstrip("/").rsplit("/", 1)[-1]) or "file"
        return f"{self.dataset}-{self.from_release}_to_{self.to_release}-{self.action}-{base}"

    @property
    def name(self) -> str:
        """Stable unit name for the watermark (no query string: presigned links change)."""
        return self.filename


def plan_diff(diff_json: dict[str, Any]) -> list[DiffStep]:
    """The ordered steps of a ``/datasets/v1/diffs/{start}/to/{end}/{dataset}`` answer.

    For each diff in order: its ``update_files`` then its ``delete_files`` (S2's documented order). Raises
    ``ValueError`` when the answer is malformed, when the first diff does not start at ``start_release``,
    or when the diffs do not chain (``to_release`` of one == ``from_release`` of the next): a gap would
    silently lose updates. A last ``to_release`` other than ``end_release`` is logged as a warning.
    """
    if not isinstance(diff_json, dict) or not isinstance(diff_json.get("diffs"), list):
        raise ValueError("not a Datasets API diff answer: expected an object with a 'diffs' list")
    dataset = str(diff_json.get("dataset") or "dataset")
    steps: list[DiffStep] = []
    previous_to = diff_json.get("start_release")
    for position, diff in enumerate(diff_json["diffs"]):
        if not isinstance(diff, dict) or "from_release" not in diff or "to_release" not in diff:
            raise ValueError(f"diff #{position} has no from_release / to_release")
        start, end = str(diff["from_release"]), str(diff["to_release"])
        if previous_to is not None and start != str(previous_to):
            raise ValueError(f"diff #{position} starts at {start} but the previous release is {previous_to}: "
                             "the diff list has a gap")
        for action, key in (("update", "update_files"), ("delete", "delete_files")):
            urls = diff.get(key) or []
            if not isinstance(urls, list):
                raise ValueError(f"diff #{position}: {key} is not a list")
            steps.extend(DiffStep(dataset, start, end, action, str(url)) for url in urls)  # type: ignore[arg-type]
        previous_to = end
    end_release = diff_json.get("end_release")
    if diff_json["diffs"] and end_release is not None and str(previous_to) != str(end_release):
        log.warning("diff list for %s ends at %s, not at end_release %s", dataset, previous_to, end_release)
    return steps


def iter_s2_delete_file(path: Path) -> Iterator[SourceItem]:
    """A diff delete file (JSONL of ``{"corpusid": N}``) as ``Deletion`` items; bad lines as ``BadRecord``."""
    return _counted(_iter_deletes(Path(path)))


def _iter_deletes(path: Path) -> Iterator[SourceItem]:
    for line_no, obj, raw in _json_lines(path):
        if isinstance(obj, BadRecord):
            yield obj
            continue
        corpusid = _int(obj.get("corpusid"))
        if corpusid is None:
            yield BadRecord(SOURCE, None, f"delete record without a valid corpusid at line {line_no}", _snippet(raw))
        else:
            yield Deletion(SOURCE, str(corpusid))


# S2ORC ---------------------------------------------------------------------------------------------------
def iter_s2orc_metadata(path: Path) -> Iterator[SourceItem]:
    """S2ORC (2020) ``metadata`` JSONL: ``paper_id`` (the corpus id), title, abstract, year, venue/journal, ids."""
    return _counted(_iter_s2orc_metadata(Path(path)))


def _iter_s2orc_metadata(path: Path) -> Iterator[SourceItem]:
    for line_no, obj, raw in _json_lines(path):
        if isinstance(obj, BadRecord):
            yield obj
            continue
        paper_id = _text(obj.get("paper_id"))
        if paper_id is None:
            yield BadRecord(SOURCE, None, f"S2ORC record without paper_id at line {line_no}", _snippet(raw))
            continue
        ids = {name: str(obj[key]).strip() for key, name in _S2ORC_METADATA_IDS.items()
               if obj.get(key) not in (None, "") and not isinstance(obj.get(key), (dict, list))}
        yield SourceRecord(
            source=SOURCE,
            source_id=paper_id,
            title=_text(obj.get("title")),
            abstract=_text(obj.get("abstract")),
            journal=_text(obj.get("journal")) or _text(obj.get("venue")),
            year=_int(obj.get("year")),
            external_ids={**ids, "s2": paper_id},
            raw_snippet=_snippet(raw),
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
        start, end = _int(span.get("start")), _int(span.get("end"))
        if start is not None and end is not None and 0 <= start < end <= len(text):
            found = text[start:end].strip()
            if found:
                return _text(found)
    return None


def iter_s2orc_fulltext(path: Path) -> Iterator[SourceItem]:
    """Datasets API ``s2orc`` JSONL: title and abstract cut from ``content.text`` by their first annotation span."""
    return _counted(_iter_s2orc_fulltext(Path(path)))


def _iter_s2orc_fulltext(path: Path) -> Iterator[SourceItem]:
    for line_no, obj, raw in _json_lines(path):
        if isinstance(obj, BadRecord):
            yield obj
            continue
        corpusid = _int(obj.get("corpusid"))
        if corpusid is None:
            yield BadRecord(SOURCE, None, f"s2orc record without a valid corpusid at line {line_no}", _snippet(raw))
            continue
        content = obj.get("content") if isinstance(obj.get("content"), dict) else {}
        text = content.get("text") if isinstance(content.get("text"), str) else ""
        annotations = content.get("annotations") if isinstance(content.get("annotations"), dict) else {}
        yield SourceRecord(
            source=SOURCE,
            source_id=str(corpusid),
            title=_first_span(text, annotations, "title"),
            abstract=_first_span(text, annotations, "abstract"),
            external_ids={**_external_ids(obj.get("externalids")), "s2": str(corpusid)},
            raw_snippet=_snippet(raw),
        )


# Graph API -----------------------------------------------------------------------------------------------
def _unwrap(entry: Any) -> dict[str, Any] | None:
    """A paper dict from a list entry: plain, or ``{"citingPaper": ...}`` / ``{"citedPaper": ...}`` / ``{"paper": ...}``."""
    if not isinstance(entry, dict):
        return None
    for key in ("citingPaper", "citedPaper", "paper"):
        if isinstance(entry.get(key), dict) and "paperId" not in entry:
            return entry[key]
    return entry


def _graph_record(paper: dict[str, Any]) -> SourceRecord:
    external = paper.get("externalIds") if isinstance(paper.get("externalIds"), dict) else {}
    corpusid = _int(paper.get("corpusId"))
    if corpusid is None:
        corpusid = _int(external.get("CorpusId"))
    journal = paper.get("journal")
    journal_name = journal.get("name") if isinstance(journal, dict) else None
    types = paper.get("publicationTypes")
    ids = _external_ids(external)
    if corpusid is not None:
        ids["s2"] = str(corpusid)
    return SourceRecord(
        source=SOURCE,
        source_id=str(corpusid) if corpusid is not None else str(paper["paperId"]),
        title=_text(paper.get("title")),
        abstract=_text(paper.get("abstract")),
        journal=_text(journal_name) or _text(paper.get("venue")),
        year=_int(paper.get("year")),
        pub_date=_text(paper.get("publicationDate")),
        publication_types=[str(t) for t in types if t] if isinstance(types, list) else [],
        external_ids=ids,
        raw_snippet=_snippet(json.dumps({k: paper.get(k) for k in ("paperId", "corpusId", "title")}, ensure_ascii=False)),
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
                            _snippet(json.dumps(entry, ensure_ascii=False)[:2000]))
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
    return _counted(_iter_graph_file(Path(path)))


def _iter_graph_file(path: Path) -> Iterator[SourceItem]:
    if _looks_like_jsonl(path):
        for _line_no, obj, _raw in _json_lines(path):
            yield from ([obj] if isinstance(obj, BadRecord) else iter_graph_papers(obj))
        return
    if path.stat().st_size > MAX_JSON_DOCUMENT_BYTES:
        raise _FileProblem(path, f"a single JSON document over {MAX_JSON_DOCUMENT_BYTES} bytes is not supported", None)
    try:
        with _open_binary(path) as fh:
            document = json.loads(fh.read().decode("utf-8"))
    except (EOFError, OSError, zlib.error) as exc:
        raise _FileProblem(path, f"truncated or corrupt file ({type(exc).__name__}: {exc})", None) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _FileProblem(path, f"invalid JSON document ({exc})", getattr(exc, "lineno", None)) from exc
    yield from iter_graph_papers(document)


# Format detection and input expansion ----------------------------------------------------------------------
def _head_lines(path: Path, max_lines: int = 20, max_line_bytes: int = 32 << 20, max_bytes: int = 64 << 20) -> list[bytes]:
    """The first lines of the decompressed file (fewer when it is short, truncated or not line-based)."""
    lines: list[bytes] = []
    total = 0
    try:
        with _open_binary(path) as fh:
            while len(lines) < max_lines and total < max_bytes:
                line = fh.readline(max_line_bytes)
                if not line:
                    break
                lines.append(line)
                total += len(line)
    except (EOFError, OSError, zlib.error):
        pass
    return lines


def _parse_line(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _looks_like_jsonl(path: Path) -> bool:
    """True when one of the first non-blank lines is a JSON object on its own (not a pretty-printed document)."""
    lines = [line for line in _head_lines(path, max_lines=10) if line.strip()][:5]
    return any(isinstance(_parse_line(line), (dict, list)) for line in lines)


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
    head = _head_lines(path)
    first = next((line for line in head if line.strip()), b"")
    if not first.lstrip().startswith((b"{", b"[", b"\xef\xbb\xbf")):
        return "unsupported"
    for line in head:
        obj = _parse_line(line)
        if isinstance(obj, dict):
            return _kind_of_record(obj)
        if isinstance(obj, list):
            return "graph" if all(isinstance(x, dict) or x is None for x in obj) else "unsupported"
    # A pretty-printed JSON document (Graph API answer saved to disk).
    if path.stat().st_size <= MAX_JSON_DOCUMENT_BYTES:
        try:
            with _open_binary(path) as fh:
                document = json.loads(fh.read().decode("utf-8-sig"))
        except (EOFError, OSError, zlib.error, UnicodeDecodeError, json.JSONDecodeError):
            return "unsupported"
        if isinstance(document, list):
            return "graph"
        if isinstance(document, dict) and _kind_of_record(document) == "graph":
            return "graph"
    return "unsupported"


def iter_s2_file(path: Path) -> Iterator[SourceItem]:
    """Items of one local S2 file (format detected) or folder (every unit of ``expand_s2_inputs([folder])``)."""
    path = Path(path)
    if path.is_dir():
        return (item for unit in expand_s2_inputs([path]) for item in unit.iter_items())
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    kind = detect_s2_format(path)
    return _reader(kind, path)


def _reader(kind: S2Kind, path: Path) -> Iterator[SourceItem]:
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


@dataclass(frozen=True, slots=True)
class S2Input:
    """One ingest unit: a stable ``name`` (the watermark key), its ``kind`` and local ``paths`` in reading
    order. For ``kind == "datasets"``, ``abstract_paths`` lists which of ``paths`` are abstracts."""

    name: str
    kind: S2Kind
    paths: tuple[Path, ...]
    abstract_paths: tuple[Path, ...] = ()

    @property
    def uri(self) -> str:
        """Where the unit was read from: its file, or the folder holding its files."""
        if len(self.paths) == 1:
            return str(self.paths[0])
        return os.path.commonpath([str(p.resolve()) for p in self.paths])

    def iter_items(self, *, work_dir: Path | None = None) -> Iterator[SourceItem]:
        """The unit's items (``work_dir``: where a large abstracts index may go)."""
        return read_s2_unit(self.kind, self.paths, abstract_paths=self.abstract_paths, work_dir=work_dir)

    def sha256(self) -> str:
        """The sha256 of the one file, or for several files of ``"<name> <sha256>\\n"`` lines in order."""
        digests = []
        for path in self.paths:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            digests.append((path.name, digest.hexdigest()))
        if len(digests) == 1:
            return digests[0][1]
        return hashlib.sha256("".join(f"{n} {d}\n" for n, d in digests).encode()).hexdigest()


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
    return _reader(kind, files[0])  # type: ignore[arg-type]


def _candidate_files(spec: str | Path) -> tuple[list[Path], bool]:
    """Files for one CLI input and whether they came from a folder / glob (then non-paper files are skipped)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path], False
    if path.is_dir():
        files = sorted(p for p in path.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        return files, True
    if globlib.has_magic(str(spec)):
        matches = sorted(Path(p) for p in globlib.glob(os.path.expanduser(str(spec)), recursive=True))
        files = [p for p in matches if p.is_file()]
        if not files:
            raise FileNotFoundError(f"no files match {spec}")
        return files, True
    raise FileNotFoundError(f"input not found: {spec}")


def _unique_name(path: Path, taken: set[str]) -> str:
    name = path.name
    if name in taken:
        name = f"{path.parent.name}/{path.name}"
    taken.add(name)
    return name


def expand_s2_inputs(paths: Iterable[str | Path]) -> list[S2Input]:
    """Ordered ingest units for CLI inputs (files, folders searched recursively, globs).

    - All ``papers`` and ``abstracts`` files form one ``datasets`` unit, placed where the first of them
      appeared; its name is ``"<papers file>+<abstracts file>"`` for one of each, else
      ``"papers+abstracts@<common folder>"``. Abstracts without any papers file: ``ValueError``.
    - Every other paper file is a unit named by its file name (``parent/name`` if two share a name).
    - Delete units come last, so a delete is applied after the updates it belongs with.
    - An explicitly named file that is not S2 paper data raises ``SourceFileError``; in folders and globs
      such files (READMEs, authors, citations, ``.part`` / ``.md5``...) are skipped with a warning.
    - The same file named twice is used once.
    """
    units: list[S2Input | None] = []
    datasets_at: int | None = None
    papers: list[Path] = []
    abstracts: list[Path] = []
    deletes: list[Path] = []
    seen: set[Path] = set()
    taken: set[str] = set()
    for spec in paths:
        files, from_folder = _candidate_files(spec)
        for path in files:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if from_folder and (path.name.lower().startswith("readme") or path.name.lower().endswith(_SKIP_SUFFIXES)):
                log.debug("skipping %s (not a data file)", path)
                continue
            kind = detect_s2_format(path)
            if kind == "unsupported":
                if not from_folder:
                    raise SourceFileError(path, "not a Semantic Scholar paper file (papers, abstracts, s2orc, "
                                                "Graph API JSON or delete file expected)")
                log.warning("skipping %s: not Semantic Scholar paper data", path)
                continue
            if kind in ("papers", "abstracts"):
                (papers if kind == "papers" else abstracts).append(path)
                if datasets_at is None:
                    datasets_at = len(units)
                    units.append(None)  # placeholder for the datasets unit
            elif kind == "deletes":
                deletes.append(path)
            else:
                units.append(S2Input(_unique_name(path, taken), kind, (path,)))
    if abstracts and not papers:
        raise ValueError("abstracts files need their papers files (joined on corpusid): "
                         + ", ".join(str(p) for p in abstracts))
    if datasets_at is not None:
        if len(papers) == 1 and len(abstracts) <= 1:
            name = "+".join(p.name for p in (*papers, *abstracts))
        else:
            common = Path(os.path.commonpath([str(p.resolve()) for p in (*papers, *abstracts)]))
            name = f"papers+abstracts@{common.name or common}"
        taken.add(name)
        units[datasets_at] = S2Input(name, "datasets", (*papers, *abstracts), tuple(abstracts))
    result = [u for u in units if u is not None]
    result.extend(S2Input(_unique_name(path, taken), "deletes", (path,)) for path in deletes)
    return result
