"""MEDLINE / PubMed XML reader: stream a ``PubmedArticleSet`` file into source records.

Usage::

    for item in iter_medline("pubmed21n1298.xml.gz"):
        ...  # SourceRecord | Deletion | BadRecord

The file (``.xml`` or gzip, recognised by its magic bytes) is streamed as bytes and split at record boundaries
(``<PubmedArticle>``, ``<DeleteCitation>``, ``<PubmedBookArticle>``) by a byte scanner; each record is then
parsed on its own by a hardened lxml parser (no DTD or external entity is loaded, no network, entities are
not expanded, libxml2's depth and entity-amplification limits stay on). So memory stays flat whatever the file
size (one record at a time, a record over ``MAX_RECORD_BYTES`` is not read), and **bad input costs exactly the
bad record**: a record that is malformed, undecodable (invalid UTF-8, NUL or other control characters), not
closed, too deeply nested, an entity bomb or too large becomes a ``BadRecord`` with the reason and its line,
and the reader resynchronises at the next record boundary. Each record is parsed with the file's XML
declaration and DOCTYPE in front of it, exactly as it would be read in place.

Only a file whose end cannot be read raises :class:`SourceFileError`, after every complete record before the
problem has been yielded: a truncated or corrupt gzip (also one missing only its trailer), XML that ends
before ``</PubmedArticleSet>``, a read error; and a file that is no MEDLINE file at all (empty, not XML, another
root element).

Text fields are returned as published except that XML layout whitespace (runs of spaces, tabs, CR/LF from
pretty-printing; not NBSP or other Unicode spaces) is collapsed to single spaces inside each field; a
structured abstract's sections are joined by ``"\\n"``, so a newline in ``abstract`` always means a section
break. Entities, inline markup and mojibake are left to :mod:`kpe.clean`.

``raw_snippet`` of a good record is cheap text (``PMID <n> v<version> | <title> | <abstract>``, 500
characters at most); a ``BadRecord`` carries the first 500 characters of its XML.

The source (``PUBMED``, registered in :mod:`kpe.sources`) plans MEDLINE inputs: files, folders (searched for
``*.xml.gz`` / ``*.xml``), globs and https URLs -> one ingest spec per file, in file-name order.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import zlib
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from lxml import etree

from kpe.records import BadRecord, Deletion, MeshHeading, SourceItem, SourceRecord
from kpe.sources.base import InputSpec, absolute, failed_spec, local_files, localize_inputs, unreadable
from kpe.sources.errors import SourceFileError
from kpe.sources.stream import DecompressedChunks

__all__ = ["MAX_RECORD_BYTES", "MEDLINE_PATTERNS", "PUBMED", "PubmedSource", "SourceFileError", "count_records_plain",
           "iter_medline", "open_source"]

SOURCE = "pubmed"
SNIPPET_CHARS = 500

_GZIP_MAGIC = b"\x1f\x8b"
_RECORD_TAGS = ("PubmedArticle", "DeleteCitation", "PubmedBookArticle")
_PARSER_OPTIONS = dict(  # the bare ``iterparse`` of count_records_plain (the benchmark's baseline)
    recover=False,
    huge_tree=True,
    resolve_entities=False,
    load_dtd=False,
    dtd_validation=False,
    no_network=True,
)
_RECORD_PARSER_OPTIONS = dict(  # one record at a time: libxml2's limits (depth 256, 10 MB text, entity
    recover=False,              # amplification) stay on, since no real record comes near them
    huge_tree=False,
    resolve_entities=False,
    load_dtd=False,
    dtd_validation=False,
    no_network=True,
)
MAX_RECORD_BYTES = 16 * 1024 * 1024
"""A record larger than this is not parsed (quarantined); the biggest real ones are about 1 MB."""
MAX_PROLOG_BYTES = 64 * 1024
"""The XML declaration, DOCTYPE and comments before the root element (about 200 bytes in NLM files)."""
_ROOT_TAGS = (b"PubmedArticleSet", b"PubmedBookArticleSet")
_RECORD_START = re.compile(rb"<(PubmedArticle|DeleteCitation|PubmedBookArticle)(?=[\s/>])")
_END_TAGS = {name: b"</" + name for name in (b"PubmedArticle", b"DeleteCitation", b"PubmedBookArticle")}
_SPACES = re.compile(rb"[ \t\r\n]*")
_TAG_CLOSE = re.compile(rb"[ \t\r\n]*>")
_ELEMENT_START = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_DOCTYPE_END = re.compile(rb"\][ \t\r\n]*>")
_PMID_IN_BYTES = re.compile(rb"<PMID[^>]*>\s*(\d{1,30})\s*</PMID>")
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LIBXML_WHERE = re.compile(r",? line \d+, column \d+.*$")  # positions inside the record's own parse: not the file's
_DROP_BEFORE = 4 * 1024 * 1024  # consumed bytes are dropped from the scan buffer once there are this many

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


def iter_medline(path: str | Path, *, max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[SourceItem]:
    """Stream a MEDLINE file: one ``SourceRecord`` per ``PubmedArticle``, one ``Deletion`` per PMID of a
    ``DeleteCitation``, a ``BadRecord`` (with the reason and its line) for a record without PMID, a book article
    or a record that cannot be read, after which reading goes on at the next record. Raises
    ``SourceFileError`` (after every complete record before it) when the file's end cannot be read.
    """
    path = Path(path)
    count = 0
    try:
        for element_or_bad in _MedlineSplitter(path, max_record_bytes):
            if isinstance(element_or_bad, BadRecord):
                items: list[SourceItem] = [element_or_bad]
            elif element_or_bad.tag == "PubmedArticle":
                items = [_article_item(element_or_bad)]
            elif element_or_bad.tag == "DeleteCitation":
                items = _deletions(element_or_bad)
            else:
                items = [_book_item(element_or_bad)]
            for item in items:
                count += 1
                yield item
    except _FileProblem as exc:
        raise SourceFileError(path, exc.problem, line=exc.line, items_read=count) from None


class _FileProblem(Exception):
    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem, self.line = problem, line


class _MedlineSplitter:
    """Split the decompressed bytes at record boundaries; yield each record parsed (an lxml element) or a
    ``BadRecord``; raise ``_FileProblem`` at the end when the end of the file could not be read.

    The scan buffer holds the current record (at most ``max_record_bytes``: a bigger one is skipped while it
    is scanned), a chunk read ahead and at most a few MB already consumed, which are dropped with the count of
    their lines kept for error messages.
    """

    def __init__(self, path: Path, max_record_bytes: int) -> None:
        self.path = path
        self.max_record_bytes = max_record_bytes
        self.chunks = DecompressedChunks(path)
        self._source: Iterator[bytes] = iter(())
        self.buf = bytearray()
        self.base_line = 1  # line number of buf[0]
        self.eof = False
        self.prolog = b""
        self.prolog_lines = 0
        self.root_end: bytes | None = None
        self.parser = etree.XMLParser(**_RECORD_PARSER_OPTIONS)

    # --- the byte buffer ---

    def _more(self) -> bool:
        """Append the next chunk of the file to the buffer; False at its end."""
        if self.eof:
            return False
        for chunk in self._source:
            self.buf += chunk
            return True
        self.eof = True
        return False

    def _drop(self, n: int) -> None:
        if n:
            self.base_line += self.buf.count(b"\n", 0, n)
            del self.buf[:n]

    def _line(self, pos: int) -> int:
        return self.base_line + self.buf.count(b"\n", 0, pos)

    def _bad(self, pos: int, end: int, reason: str) -> BadRecord:
        data = bytes(self.buf[pos:min(end, pos + 8 * SNIPPET_CHARS)])
        match = _PMID_IN_BYTES.search(data)
        snippet = _CONTROL_CHARS.sub("\ufffd", data.decode("utf-8", "replace"))[:SNIPPET_CHARS]
        return BadRecord(SOURCE, match.group(1).decode() if match else None, reason, snippet)

    # --- the file ---

    def __iter__(self) -> Iterator[etree._Element | BadRecord]:
        try:
            self._source = iter(self.chunks)
            self._more()
        except OSError as exc:
            raise _FileProblem(f"cannot open file: {exc.strerror or exc}") from exc
        self.root_end, pos = self._read_prolog()
        yield from self._records(pos, self.root_end)

    def _read_prolog(self) -> tuple[bytes | None, int]:
        """Find the root element; keep what comes before it (XML declaration, DOCTYPE) to parse each record with.
        Returns the root's end tag (``None`` when the file is a bare record) and where the records start."""
        while True:
            found = self._find_root()
            if found is not None:
                break
            if len(self.buf) > MAX_PROLOG_BYTES or not self._more():
                raise self._not_medline()
        start, name, after = found
        self.prolog = bytes(self.buf[:start])
        self.prolog_lines = self.prolog.count(b"\n")
        try:  # a broken DOCTYPE would break every record the same way: say it once, for the file
            etree.fromstring(self.prolog + b"<PubmedArticleSet/>", self.parser)
        except etree.XMLSyntaxError as exc:
            raise _FileProblem(f"cannot read the XML declaration or DOCTYPE: {exc.msg}", exc.lineno) from None
        if name in _END_TAGS:
            return None, start
        if name not in _ROOT_TAGS:
            raise _FileProblem(f"not a MEDLINE file: the root element is <{name.decode('ascii', 'replace')}>, "
                               "not <PubmedArticleSet>", self._line(start))
        if self.buf[after - 2:after] == b"/>":
            return b"", after  # an empty set
        return b"</" + name, after

    def _find_root(self) -> tuple[int, bytes, int] | None:
        """``(start, name, end of its start tag)`` of the root element, or ``None`` when more bytes are needed."""
        buf, i = self.buf, 0
        if buf.startswith(b"\xef\xbb\xbf"):
            i = 3
        while True:
            i = _SPACES.match(buf, i).end()
            if len(buf) - i < 16 and not self.eof:  # too little to tell what comes next
                return None
            if i >= len(buf):
                return None
            if buf.startswith(b"<?", i) or buf.startswith(b"<!--", i):
                close = buf.find(b"?>" if buf[i + 1] == 63 else b"-->", i + 2)
                if close < 0:
                    return None
                i = close + (2 if buf[i + 1] == 63 else 3)
            elif buf.startswith(b"<!DOCTYPE", i):
                bracket, close = buf.find(b"[", i), buf.find(b">", i)
                if close < 0:
                    return None
                if 0 <= bracket < close:  # an internal subset: it ends with "]>"
                    match = _DOCTYPE_END.search(buf, bracket)
                    if match is None:
                        return None
                    close = match.end() - 1
                i = close + 1
            elif (match := _ELEMENT_START.match(buf, i)) is not None:
                close = buf.find(b">", match.end())
                if close < 0:
                    return None
                return i, match.group(1), close + 1
            else:
                raise self._not_medline()

    def _not_medline(self) -> _FileProblem:
        if self.chunks.problem:
            return _FileProblem(self.chunks.problem)
        if not self.buf.strip():
            return _FileProblem("empty file" if not self.buf else "no XML in the file (only whitespace)")
        if len(self.buf) > MAX_PROLOG_BYTES:
            return _FileProblem(f"no root element in the first {MAX_PROLOG_BYTES:,} bytes: not a MEDLINE XML file")
        return _FileProblem("not an XML file: no root element found")

    def _records(self, pos: int, root_end: bytes | None) -> Iterator[etree._Element | BadRecord]:
        buf = self.buf
        closed = root_end == b""  # an empty <PubmedArticleSet/>
        while not closed:
            if pos >= _DROP_BEFORE:
                self._drop(pos)
                pos = 0
            pos = _SPACES.match(buf, pos).end()
            if len(buf) - pos < 64 and self._more():  # a tag cut by the end of a chunk: read on first
                continue
            if pos >= len(buf):
                if root_end is None:  # a bare record: its end is the end of the file
                    closed = True
                    break
                raise self._truncated(f"the file ends before </{root_end[2:].decode()}>", self._line(pos))
            start = _RECORD_START.match(buf, pos)
            if start is not None:
                pos = yield from self._record(pos, start)
            elif root_end is not None and buf.startswith(root_end, pos):
                close = _TAG_CLOSE.match(buf, pos + len(root_end))
                if close is None or close.end() > len(buf):
                    if self._more():
                        continue
                    raise self._truncated(f"the file ends inside </{root_end[2:].decode()}>", self._line(pos))
                pos = close.end()
                closed = True
            else:
                pos = yield from self._between_records(pos, root_end)
        yield from self._trailer(pos)

    def _record(self, pos: int, start: re.Match[bytes]) -> Generator[BadRecord | etree._Element, None, int]:
        """Parse the record that starts at ``pos``; returns where the next one may start."""
        buf, tag = self.buf, start.group(1)
        end_tag = _END_TAGS[tag]
        search = start.end()
        while True:
            end = self._find_end_tag(end_tag, search)
            if end >= 0:
                break
            if len(buf) - pos > self.max_record_bytes:
                return (yield from self._oversized(pos, start))
            search = max(start.end(), len(buf) - len(end_tag) - 64)
            if not self._more():
                if self.root_end and (at := buf.find(self.root_end, start.end())) >= 0 and not self.chunks.problem:
                    yield self._bad(pos, at, f"malformed XML at line {self._line(pos)}: the <{tag.decode()}> "
                                    "record is not closed before the end of the file")
                    return at
                raise self._truncated(f"the file ends inside a <{tag.decode()}> record", self._line(pos))
        if end - pos > self.max_record_bytes:
            return (yield from self._oversized(pos, start))
        try:
            element = etree.fromstring(self.prolog + buf[pos:end], self.parser)
        except etree.XMLSyntaxError as exc:
            nested = _RECORD_START.search(buf, start.end(), end)
            if nested is not None:  # its end tag is missing: the record stops where the next one starts
                yield self._bad(pos, nested.start(), f"malformed XML at line {self._line(pos)}: the "
                                f"<{tag.decode()}> record is not closed before the next record starts")
                return nested.start()
            yield self._bad(pos, end, self._parse_reason(exc, pos))
            return end
        yield element
        return end

    def _find_end_tag(self, end_tag: bytes, search: int) -> int:
        """Position just after ``</Tag>`` (whitespace allowed before ``>``), or -1 when not in the buffer yet."""
        buf = self.buf
        while True:
            at = buf.find(end_tag, search)
            if at < 0:
                return -1
            close = _TAG_CLOSE.match(buf, at + len(end_tag))
            if close is not None:
                return close.end()
            if at + len(end_tag) >= len(buf) - 64:  # maybe "</PubmedArticle  >" cut by the chunk end
                return -1
            search = at + 1  # "</PubmedArticleSet" or the like

    def _parse_reason(self, exc: etree.XMLSyntaxError, pos: int) -> str:
        line = self._line(pos)
        if exc.lineno and exc.lineno > self.prolog_lines:
            line += exc.lineno - self.prolog_lines - 1
        message = _LIBXML_WHERE.sub("", (exc.msg or str(exc)).strip().split("\n", 1)[0])
        lower = message.lower()
        if "encoding" in lower or "utf-8" in lower or "char 0x" in lower or "invalid char" in lower:
            kind = "undecodable bytes or invalid characters"
        elif "amplification" in lower or "entity reference loop" in lower or "entities" in lower:
            kind = "entity expansion refused"
        elif "depth" in lower:
            kind = "nesting too deep"
        else:
            kind = "malformed XML"
        return f"{kind} at line {line}: {message}"

    def _oversized(self, pos: int, start: re.Match[bytes]) -> Generator[BadRecord, None, int]:
        """Quarantine a record over ``max_record_bytes`` without parsing it, then skip to its end (or to the
        next record, when it is not closed); the skipped bytes are dropped as they are scanned."""
        tag = start.group(1)
        nested = _RECORD_START.search(self.buf, start.end(), pos + self.max_record_bytes)
        if nested is not None:  # not closed: what follows is the next record
            yield self._bad(pos, nested.start(), f"malformed XML at line {self._line(pos)}: the "
                            f"<{tag.decode()}> record is not closed before the next record starts")
            return nested.start()
        yield self._bad(pos, pos + SNIPPET_CHARS, f"record larger than {self.max_record_bytes:,} bytes at line "
                        f"{self._line(pos)}: not read")
        end_tag = _END_TAGS[tag]
        keep = 64 + len(end_tag)
        search = start.end()
        while True:
            end = self._find_end_tag(end_tag, search)
            nested = _RECORD_START.search(self.buf, search, end if end >= 0 else len(self.buf))
            if nested is not None:
                return nested.start()
            if end >= 0:
                return end
            cut = max(0, len(self.buf) - keep)
            self._drop(cut)
            search = 0
            if not self._more():
                raise self._truncated(f"the file ends inside the oversized <{tag.decode()}> record", None)

    def _between_records(self, pos: int, root_end: bytes | None) -> Generator[BadRecord, None, int]:
        """Comments and processing instructions are skipped; anything else up to the next record (or the
        root's end tag) is quarantined as one bad item."""
        buf = self.buf
        for opening, closing in ((b"<!--", b"-->"), (b"<?", b"?>")):
            if buf.startswith(opening, pos):
                while (close := buf.find(closing, pos + len(opening))) < 0:
                    if len(buf) - pos > self.max_record_bytes or not self._more():
                        break
                else:
                    return close + len(closing)
        first_line = self._line(pos)
        first = bytes(buf[pos:pos + 8 * SNIPPET_CHARS])
        search = pos + 1
        while True:
            nested = _RECORD_START.search(buf, search)
            stop = nested.start() if nested is not None else -1
            if root_end:
                at = buf.find(root_end, search, stop if stop >= 0 else len(buf))
                if at >= 0:
                    stop = at
            if stop >= 0:
                break
            if len(buf) - pos > self.max_record_bytes:  # drop the junk scanned so far (its start is kept above)
                self._drop(len(buf) - 64)
                pos = search = 0
            else:
                search = max(pos + 1, len(buf) - 64)
            if not self._more():
                raise self._truncated(f"the file ends inside unexpected content that starts at line {first_line}",
                                      first_line)
        bad = self._bad(pos, stop, f"unexpected content between records at line {first_line}")
        bad.raw_snippet = _CONTROL_CHARS.sub("\ufffd", first.decode("utf-8", "replace"))[:SNIPPET_CHARS]
        yield bad
        return stop

    def _trailer(self, pos: int) -> Iterator[BadRecord]:
        """After the root's end only comments and whitespace may follow. Anything else (a second document
        appended to the first...) is a problem of the file, which then ends ``partial``: its records are not
        read. The rest of the file is still read, so that a broken gzip end is noticed."""
        tail = bytes(self.buf[pos:pos + 200])
        line = self._line(pos)
        junk = bool(re.sub(rb"<!--.*?-->|<\?.*?\?>", b"", bytes(self.buf[pos:pos + 65536]), flags=re.S).strip())
        self._drop(len(self.buf))
        while self._more():
            junk = junk or bool(self.buf.strip())
            self._drop(len(self.buf))
        if self.chunks.problem:
            raise _FileProblem(self.chunks.problem)
        if junk:
            shown = _CONTROL_CHARS.sub("\ufffd", tail.strip().decode("utf-8", "replace"))[:80]
            raise _FileProblem(f"unexpected content after the end of the root element: {shown!r}", line)
        yield from ()

    def _truncated(self, what: str, line: int | None) -> _FileProblem:
        """The file ends early: the gzip problem when there is one (the root cause), else the XML one."""
        if self.chunks.problem:
            return _FileProblem(self.chunks.problem)
        return _FileProblem(f"truncated XML: {what}", line)


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


# --- the source: command-line inputs -> ingest specs ------------------------------------------------------------

MEDLINE_PATTERNS = ("*.xml.gz", "*.xml")
"""The MEDLINE files searched for in a folder (and recognised by name on the command line)."""


class PubmedSource:
    """MEDLINE files as a :class:`kpe.sources.base.Source`: one spec per file."""

    name = SOURCE
    file_patterns = MEDLINE_PATTERNS

    def expand(self, inputs: Sequence[str], download_dir: Path, **http: Any) -> list[InputSpec]:
        """MEDLINE inputs in ingest order: by file name, so baseline files come before later update files.

        An input that cannot be used (not found, a failed download, a file that cannot be opened: a symlink
        loop, no permission) is a failed spec naming its full path or URL, placed first.
        """
        local, urls, failed = localize_inputs(SOURCE, inputs, download_dir, **http)  # one bad input never stops others
        paths: list[tuple[str, Path]] = []
        for spec in local:
            try:
                found, searched = local_files(spec, MEDLINE_PATTERNS)
                if searched and not found:
                    raise FileNotFoundError(f"no {' or '.join(MEDLINE_PATTERNS)} file under {absolute(spec)}")
            except OSError as exc:  # not found, or a folder that cannot be listed
                message = str(exc) if isinstance(exc, FileNotFoundError) else f"{absolute(spec)}: {exc.strerror or exc}"
                failed.append(failed_spec(SOURCE, absolute(spec), message))
                continue
            for path in found:
                if problem := unreadable(path):  # a symlink loop, no permission, a broken link
                    failed.append(failed_spec(SOURCE, absolute(path), f"{absolute(path)}: cannot read: {problem}"))
                else:
                    paths.append((urls.get(str(path), str(path.resolve())), path))
        unique = {p.resolve(): uri for uri, p in paths}
        ordered = sorted(unique.items(), key=lambda item: (item[0].name, str(item[0])))
        return failed + [InputSpec(source=SOURCE, name=path.name, uri=uri, paths=[str(path)]) for path, uri in ordered]

    def read(self, spec: InputSpec) -> Iterator[SourceItem]:
        """The items of the spec's one MEDLINE file (:func:`iter_medline`)."""
        return iter_medline(Path(spec.paths[0]))


PUBMED = PubmedSource()
