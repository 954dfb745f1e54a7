"""MEDLINE / PubMed XML reader: stream a ``PubmedArticleSet`` file into source records.

Usage::

    for item in iter_medline("pubmed21n1298.xml.gz"):
        ...  # SourceRecord | Deletion | BadRecord

The file (``.xml`` or gzip, recognised by its magic bytes) is parsed with ``lxml.etree.iterparse`` and every
record element is cleared once read, so memory stays flat whatever the file size. No DTD or external entity
is loaded (no network). A file that cannot be read to its end raises :class:`SourceFileError` after every
complete record before the problem has been yielded.

Text fields are returned as published except that XML layout whitespace (runs of spaces, tabs, CR/LF from
pretty-printing; not NBSP or other Unicode spaces) is collapsed to single spaces inside each field; a
structured abstract's sections are joined by ``"\\n"``, so a newline in ``abstract`` always means a section
break. Entities, inline markup and mojibake are left to :mod:`kpe.clean`.

``raw_snippet`` of a good record is cheap text (``PMID <n> v<version> | <title> | <abstract>``, 500
characters at most); a ``BadRecord`` carries the first 500 characters of its XML.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from lxml import etree

from kpe.records import BadRecord, Deletion, MeshHeading, SourceItem, SourceRecord
from kpe.sources.errors import SourceFileError

__all__ = ["SourceFileError", "count_records_plain", "iter_medline", "open_source"]

SOURCE = "pubmed"
SNIPPET_CHARS = 500

_GZIP_MAGIC = b"\x1f\x8b"
_RECORD_TAGS = ("PubmedArticle", "DeleteCitation", "PubmedBookArticle")
_PARSER_OPTIONS = dict(
    recover=False,
    huge_tree=True,
    resolve_entities=False,
    load_dtd=False,
    dtd_validation=False,
    no_network=True,
)

_ARTICLE_ID_KEYS = {"doi": "doi", "pmc": "pmcid"}  # ArticleId IdType -> external id key (the first one wins)
_MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_XML_SPACE_RUN = re.compile(r"[ \t\r\n]{2,}|[\t\r\n]")
_YEAR = re.compile(r"(?<!\d)\d{4}(?!\d)")


def open_source(path: str | Path) -> IO[bytes]:
    """Open a file for binary reading, decompressing it when it starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")


def _iter_events(path: Path, tags: tuple[str, ...] | str) -> Iterator[etree._Element]:
    """Yield each end-of-``tags`` element; translate every fatal file problem into ``SourceFileError``.

    The caller must clear the element before asking for the next one. ``items_read`` in the error counts
    the elements yielded before the problem.
    """
    try:
        stream = open_source(path)
    except OSError as exc:
        raise SourceFileError(path, f"cannot open file: {exc.strerror or exc}") from exc
    seen = 0
    try:
        events = iter(etree.iterparse(stream, events=("end",), tag=tags, **_PARSER_OPTIONS))
        while True:
            try:
                _, elem = next(events)
            except StopIteration:
                return
            except etree.XMLSyntaxError as exc:
                raise SourceFileError(path, f"malformed XML: {exc.msg}", line=exc.lineno, items_read=seen) from exc
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                raise SourceFileError(path, f"truncated or corrupt gzip data: {exc}", items_read=seen) from exc
            except UnicodeError as exc:
                raise SourceFileError(path, f"undecodable bytes: {exc}", items_read=seen) from exc
            except OSError as exc:
                raise SourceFileError(path, f"read error: {exc}", items_read=seen) from exc
            seen += 1
            yield elem
    finally:
        stream.close()


def _release(elem: etree._Element) -> None:
    """Free a parsed record and every earlier sibling so the tree never grows."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def iter_medline(path: str | Path) -> Iterator[SourceItem]:
    """Stream a MEDLINE file: one ``SourceRecord`` per ``PubmedArticle``, one ``Deletion`` per PMID of a
    ``DeleteCitation``, a ``BadRecord`` for a record without PMID, a book article or a record that cannot be
    read. Raises ``SourceFileError`` (after the complete records before it) when the file is broken.
    """
    path = Path(path)
    for elem in _iter_events(path, _RECORD_TAGS):
        tag = elem.tag
        if tag == "PubmedArticle":
            items: list[SourceItem] = [_article_item(elem)]
        elif tag == "DeleteCitation":
            items = _deletions(elem)
        else:
            items = [_book_item(elem)]
        _release(elem)
        yield from items


def count_records_plain(path: str | Path) -> int:
    """Number of ``PubmedArticle`` elements: a bare streaming parse with no field extraction (the baseline
    the ingest benchmark compares ``iter_medline`` against)."""
    n = 0
    for elem in _iter_events(Path(path), "PubmedArticle"):
        n += 1
        _release(elem)
    return n


# --- one record -------------------------------------------------------------------------------------------

def _snippet(elem: etree._Element) -> str:
    """The first ``SNIPPET_CHARS`` characters of an element's XML (used for rare bad records)."""
    return etree.tostring(elem, encoding="unicode", with_tail=False)[:SNIPPET_CHARS]


def _record_snippet(pmid: str, version: int, title: str, abstract: str | None) -> str:
    """A cheap snippet of a good record: ``PMID <n> v<version> | <title> | <abstract>`` (text as extracted).

    Serialising the record's XML (author and reference lists included) just to keep 500 characters costs
    about 15% of the parse time; bad records, which are rare, keep the first 500 characters of their XML.
    """
    return f"PMID {pmid} v{version} | {title} | {abstract or ''}"[:SNIPPET_CHARS]


def _text(elem: etree._Element | None) -> str:
    """All text inside an element (inline markup such as ``<i>``/``<sup>`` included) with XML layout
    whitespace (space, tab, CR, LF) collapsed; other spaces (NBSP, thin space) are kept for cleaning."""
    if elem is None:
        return ""
    text = "".join(elem.itertext()) if len(elem) else elem.text
    if not text:
        return ""
    if "  " in text or "\n" in text or "\t" in text or "\r" in text:
        text = _XML_SPACE_RUN.sub(" ", text)
    return text.strip(" ")


def _child(elem: etree._Element | None, tag: str) -> etree._Element | None:
    """The first child with this tag (cheaper than ``find``, which parses a path; the DTD puts the children
    asked for here first, so look there before scanning)."""
    if elem is None:
        return None
    try:
        first = elem[0]
    except IndexError:
        return None
    if first.tag == tag:
        return first
    for child in elem.iterchildren(tag):
        return child
    return None


def _pmid_of(elem: etree._Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def _article_item(elem: etree._Element) -> SourceRecord | BadRecord:
    """A ``PubmedArticle`` as a ``SourceRecord``, or a ``BadRecord`` when it has no PMID or cannot be read."""
    citation = _child(elem, "MedlineCitation")
    pmid_el = _child(citation, "PMID")
    pmid = _pmid_of(pmid_el)
    if not pmid:
        return BadRecord(SOURCE, None, "missing PMID", _snippet(elem))
    try:
        return _article(elem, citation, pmid_el, pmid)
    except Exception as exc:  # noqa: BLE001 - a record we cannot read becomes a quarantine row, not a crash
        return BadRecord(SOURCE, pmid, f"cannot read record: {type(exc).__name__}: {exc}", _snippet(elem))


def _article(elem: etree._Element, citation: etree._Element, pmid_el: etree._Element, pmid: str) -> SourceRecord:
    """Fields of one ``PubmedArticle``: one pass over the children of each level, MeSH headings and keywords
    read in the same pass (about 60 elements a record: every lxml access and Python call here counts)."""
    article = medline_ta = None
    other_abstracts: list[etree._Element] = []
    keywords: list[str] = []
    seen_keywords: set[str] = set()
    mesh: list[MeshHeading] = []
    for child in citation:
        tag = child.tag
        if tag == "Article":
            article = child
        elif tag == "MeshHeadingList":
            for heading in child:
                if heading.tag != "MeshHeading":
                    continue
                name, major = "", False
                for part in heading:
                    part_tag = part.tag
                    if part_tag == "DescriptorName":
                        name = _text(part)
                        if part.get("MajorTopicYN") == "Y":
                            major = True
                    elif part_tag == "QualifierName" and part.get("MajorTopicYN") == "Y":
                        major = True
                if name:
                    mesh.append(MeshHeading(name, major))
        elif tag == "KeywordList":
            for kw_el in child:
                if kw_el.tag == "Keyword" and (kw := _text(kw_el)) and (key := kw.casefold()) not in seen_keywords:
                    seen_keywords.add(key)
                    keywords.append(kw)
        elif tag == "OtherAbstract":
            other_abstracts.append(child)
        elif tag == "MedlineJournalInfo":
            medline_ta = _child(child, "MedlineTA")

    external_ids = {"pmid": pmid}
    publication_types: list[str] = []
    journal_el = abstract_el = title_el = vernacular_el = language_el = article_date = None
    if article is not None:
        for child in article:
            tag = child.tag
            if tag == "Journal":
                journal_el = child
            elif tag == "ArticleTitle":
                title_el = child
            elif tag == "Abstract":
                abstract_el = child
            elif tag == "ELocationID":
                if (child.get("EIdType") == "doi" and child.get("ValidYN") != "N" and "doi" not in external_ids
                        and (doi := _text(child))):
                    external_ids["doi"] = doi
            elif tag == "Language":
                if language_el is None:
                    language_el = child
            elif tag == "PublicationTypeList":
                publication_types = [t for t in map(_text, child.iterchildren("PublicationType")) if t]
            elif tag == "VernacularTitle":
                vernacular_el = child
            elif tag == "ArticleDate":
                if article_date is None:
                    article_date = child

    title = _text(title_el) or _text(vernacular_el)
    abstract = _abstract(abstract_el)
    if abstract is None:
        for other in other_abstracts:
            if (other.get("Language") or "").lower() in ("eng", "en"):
                abstract = _abstract(other)
                break

    pub_date_el = None
    journal = ""
    if journal_el is not None:
        for child in journal_el:
            tag = child.tag
            if tag == "Title":
                journal = _text(child)
            elif tag == "JournalIssue":
                pub_date_el = _child(child, "PubDate")
    year, pub_date = _date(pub_date_el)
    if year is None:
        year, pub_date = _date(article_date)

    pubmed_data = _child(elem, "PubmedData")
    for child in pubmed_data if pubmed_data is not None else ():
        tag = child.tag
        if tag == "ArticleIdList":
            for aid in child:
                key = _ARTICLE_ID_KEYS.get(aid.get("IdType"))
                if key and key not in external_ids and aid.tag == "ArticleId" and (value := _text(aid)):
                    external_ids[key] = value
        elif tag == "History" and year is None:
            for hist in child.iterchildren("PubMedPubDate"):
                if hist.get("PubStatus") == "pubmed":
                    year, pub_date = _date(hist)
                    break

    version_attr = (pmid_el.get("Version") or "").strip()
    version = int(version_attr) if version_attr.isdigit() else 1
    return SourceRecord(
        source=SOURCE,
        source_id=pmid,
        title=title or None,
        abstract=abstract,
        version=version,
        language=_text(language_el) or None,
        journal=journal or _text(medline_ta) or None,
        year=year,
        pub_date=pub_date,
        keywords=keywords,
        mesh=mesh,
        publication_types=publication_types,
        external_ids=external_ids,
        raw_snippet=_record_snippet(pmid, version, title, abstract),
    )


def _abstract(abstract_el: etree._Element | None) -> str | None:
    """Sections of an ``Abstract``/``OtherAbstract`` as "LABEL: text" lines (no label: just the text)."""
    if abstract_el is None:
        return None
    parts = []
    for section in abstract_el:
        if section.tag != "AbstractText":
            continue
        text = _text(section)
        if not text:
            continue
        label = (section.get("Label") or "").strip()
        parts.append(f"{label}: {text}" if label else text)
    return "\n".join(parts) or None


def _month(value: str | None) -> int | None:
    """Month number from "Jan"/"January"/"01"/"1"; ``None`` for seasons or anything else."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        month = int(value)
        return month if 1 <= month <= 12 else None
    return _MONTHS.get(value[:3].lower())


def _date(date_el: etree._Element | None) -> tuple[int | None, str | None]:
    """(year, ISO date or the MedlineDate text) from a PubDate / ArticleDate / PubMedPubDate element."""
    if date_el is None:
        return None, None
    year_text = month_text = day_text = medline_date = None
    for child in date_el:
        tag = child.tag
        if tag == "Year":
            year_text = (child.text or "").strip()
        elif tag == "Month":
            month_text = child.text
        elif tag == "Day":
            day_text = (child.text or "").strip()
        elif tag == "MedlineDate":
            medline_date = child.text
    if year_text and len(year_text) == 4 and year_text.isdigit():
        year = int(year_text)
        month = _month(month_text)
        if month is None:
            return year, year_text
        if day_text and day_text.isdigit():
            try:
                return year, dt.date(year, month, int(day_text)).isoformat()
            except ValueError:
                pass
        return year, f"{year_text}-{month:02d}"
    if medline_date and (match := _YEAR.search(medline_date)):
        return int(match.group()), _XML_SPACE_RUN.sub(" ", medline_date).strip(" ")
    return None, None


def _deletions(elem: etree._Element) -> list[SourceItem]:
    """One ``Deletion`` per PMID of a ``DeleteCitation`` (an empty PMID becomes a ``BadRecord``)."""
    items: list[SourceItem] = []
    for pmid_el in elem.iterchildren("PMID"):
        pmid = _pmid_of(pmid_el)
        if pmid:
            items.append(Deletion(SOURCE, pmid))
        else:
            items.append(BadRecord(SOURCE, None, "empty PMID in DeleteCitation", _snippet(elem)))
    return items


def _book_item(elem: etree._Element) -> BadRecord:
    """Books (``PubmedBookArticle``) are out of scope: a quarantine row that names the PMID."""
    pmid = _pmid_of(elem.find("BookDocument/PMID")) or None
    return BadRecord(SOURCE, pmid, "book article not supported", _snippet(elem))
