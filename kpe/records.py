"""Typed records that flow from the source readers through cleaning into shards and the warehouse."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class MeshHeading:
    """One MeSH descriptor with its major-topic flag."""

    name: str
    major: bool = False


@dataclass(slots=True)
class SourceRecord:
    """One paper as a source file describes it, before cleaning.

    ``source`` is ``"pubmed"`` or ``"s2"``; ``source_id`` is the PMID or the S2 corpus id.
    ``external_ids`` holds every id the record knows of itself, keyed ``pmid``, ``doi``, ``pmcid``,
    ``s2`` (corpus id), ``mag``, ``arxiv``...: values as published (cleaning normalises them).
    """

    source: str
    source_id: str
    title: str | None = None
    abstract: str | None = None
    version: int | None = None
    language: str | None = None
    journal: str | None = None
    year: int | None = None
    pub_date: str | None = None
    keywords: list[str] = field(default_factory=list)
    mesh: list[MeshHeading] = field(default_factory=list)
    publication_types: list[str] = field(default_factory=list)
    external_ids: dict[str, str] = field(default_factory=dict)
    raw_snippet: str = ""


@dataclass(slots=True)
class Deletion:
    """A source says this record is withdrawn (MEDLINE ``DeleteCitation``, S2 ``delete_files``)."""

    source: str
    source_id: str


@dataclass(slots=True)
class BadRecord:
    """A record the reader could not turn into a ``SourceRecord``; it becomes a quarantine row."""

    source: str
    record_id: str | None
    reason: str
    raw_snippet: str = ""


@dataclass(slots=True)
class Document:
    """A cleaned record, ready for a shard and the ``documents`` table."""

    doc_id: str
    source: str
    source_id: str
    title: str | None
    abstract: str | None
    content_hash: str
    aliases: list[str]
    version: int | None = None
    language: str | None = None
    journal: str | None = None
    year: int | None = None
    pub_date: str | None = None
    doi: str | None = None
    pmid: str | None = None
    keywords: list[str] = field(default_factory=list)
    mesh: list[MeshHeading] = field(default_factory=list)
    publication_types: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Quarantined:
    """A record rejected by cleaning, with the reason and a raw snippet for a person to look at."""

    source: str
    record_id: str | None
    reason: str
    raw_snippet: str = ""


SourceItem = SourceRecord | Deletion | BadRecord
