"""Datasets API ``papers`` + ``abstracts`` files, joined on ``corpusid``.

Abstracts are indexed first (a dict when their files are small, else SQLite in a temporary folder, so memory
stays flat for 1.5 GB files), then papers stream through in order; a paper without an abstract is a title-only
record. An abstract whose ``corpusid`` is in none of the papers files becomes ``BadRecord(reason=
ABSTRACT_ORPHAN_REASON)`` (it has no title, year or ids of its own, so it must not overwrite a document), yielded
after all papers, by ascending corpus id.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kpe.records import BadRecord, SourceItem, SourceRecord
from kpe.sources.semantic_scholar.jsonl import (
    SOURCE,
    FileProblem,
    as_int,
    as_text,
    corpus_id,
    counted,
    id_problem,
    json_lines,
    records_with_corpus_id,
    s2_external_ids,
    snippet,
)

IN_MEMORY_ABSTRACTS_MAX_BYTES = 32 * 1024 * 1024
"""Abstract files up to this size on disk (all together) are indexed in a dict; larger ones in sqlite."""

_LOOKUP_BATCH = 900  # below SQLite's host-parameter limit
ABSTRACT_ORPHAN_REASON = "abstract without paper metadata"


def _paper_record(obj: dict[str, Any], raw: str, line_no: int) -> SourceRecord | BadRecord:
    corpusid = corpus_id(obj.get("corpusid"))
    if corpusid is None:
        return BadRecord(SOURCE, None, f"papers record without a valid corpusid at line {line_no}"
                         f"{id_problem(obj.get('corpusid'))}", snippet(raw))
    journal = obj.get("journal")
    journal_name = journal.get("name") if isinstance(journal, dict) else None
    types = obj.get("publicationtypes")
    return SourceRecord(
        source=SOURCE,
        source_id=str(corpusid),
        title=as_text(obj.get("title")),
        journal=as_text(journal_name) or as_text(obj.get("venue")),
        year=as_int(obj.get("year")),
        pub_date=as_text(obj.get("publicationdate")),
        publication_types=[str(t) for t in types if t] if isinstance(types, list) else [],
        external_ids={**s2_external_ids(obj.get("externalids")), "s2": str(corpusid)},
        raw_snippet=snippet(raw),
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
            found.update(self._con.execute(
                f"SELECT corpusid, abstract FROM abstracts WHERE corpusid IN ({marks})", chunk))
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
        for item in records_with_corpus_id(path, "abstracts"):
            if isinstance(item, BadRecord):
                yield item
                continue
            corpusid, obj, _raw = item
            batch.append((corpusid, as_text(obj.get("abstract"))))
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
            for line_no, obj, raw in json_lines(path):
                pending.append(obj if isinstance(obj, BadRecord) else _paper_record(obj, raw, line_no))
                if len(pending) >= chunk_size:
                    yield from flush()
        except FileProblem:
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
    return counted(_iter_s2_datasets(list(map(Path, papers)), list(map(Path, abstracts)), work_dir,
                                     in_memory_max_bytes))


def _iter_s2_datasets(papers: list[Path], abstracts: list[Path], work_dir: Path | None,
                      in_memory_max_bytes: int) -> Iterator[SourceItem]:
    on_disk = sum(p.stat().st_size for p in abstracts) > in_memory_max_bytes
    with tempfile.TemporaryDirectory(prefix="kpe-s2-abstracts-", dir=work_dir) as tmp:
        index = _AbstractIndex(Path(tmp) if on_disk else None)
        try:
            yield from _index_abstracts(abstracts, index)
            yield from _join_papers(papers, index)
            for corpusid, abstract in index.orphans():
                yield BadRecord(SOURCE, str(corpusid), ABSTRACT_ORPHAN_REASON, snippet(abstract or ""))
        finally:
            index.close()

