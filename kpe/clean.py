"""Cleaning: normalise text and ids, decide document or quarantine, compute the content hash.

Usage::

    item = clean_item(source_item, min_abstract_words=5)   # Document | Deletion | Quarantined

Text cleaning (:func:`clean_text`), in order: HTML entities are unescaped (twice at most, for
double-escaped sources such as ``&amp;#945;``); markup tags (HTML, JATS, MathML: ``<i>``, ``<sup>``,
``<jats:p>``, ``<mml:math>``...) are removed and their inner text kept (block tags such as ``<p>``/``<br>``
become a line break, inline tags nothing, so ``H<sub>2</sub>O`` is ``H2O``; unknown tag-like text such as
``a<b and c>d`` stays); mojibake is fixed with ``ftfy`` when the text shows signs of it (quotes are not
uncurled, control characters are not dropped); Unicode NFKC; soft hyphens and zero-width spaces are
dropped; whitespace is collapsed. MeSH names are NLM vocabulary and pass through unchanged.

What is stored is validated: numeric ids (PMID, S2 corpus id, MAG id, PMC number) are ASCII digits in
1..2^63-1 (they fit a BIGINT), text ids (DOI, arXiv...) are at most ``MAX_ID_CHARS`` characters; an invalid
id is not an alias, and a record whose own id is invalid is quarantined. Oversized fields are quarantined with
the reason, never stored whole or cut silently: a title over ``max_title_chars`` (4,000) or an abstract over
``max_abstract_chars`` (100,000 characters, after cleaning), a keyword, journal, language, date or publication
type over ``MAX_FIELD_CHARS``, more than ``MAX_LIST_ITEMS`` keywords, MeSH headings or publication types.

Whitespace choice: inside a line every run of spaces/tabs becomes one space; a run that holds a line break
becomes exactly one ``"\\n"`` (``keep_newlines=True``, used for abstracts) so that the sections of a
structured abstract, which the readers join with ``"\\n"``, stay one per line. Titles, keywords and journal
names are single-line (``keep_newlines=False``). Text that is ASCII with no ``<`` or ``&`` takes a fast
path (whitespace only), which is most of MEDLINE.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata

import ftfy

from kpe.records import BadRecord, Deletion, Document, Quarantined, SourceItem, SourceRecord

__all__ = [
    "aliases_of",
    "clean_item",
    "clean_record",
    "clean_text",
    "content_hash",
    "is_valid_text",
    "normalize_arxiv",
    "normalize_doi",
    "normalize_pmcid",
    "normalize_pmid",
    "primary_doc_id",
    "quarantine_of",
]

MAX_NUMERIC_ID = 2**63 - 1
"""Largest PMID / S2 corpus id / MAG id / PMC number accepted (a signed 64-bit integer)."""
MAX_ID_CHARS = 500
"""Longest DOI, arXiv or other text id accepted."""
MAX_TITLE_CHARS = 4_000
MAX_ABSTRACT_CHARS = 100_000
MAX_FIELD_CHARS = 1_000
"""Longest keyword, journal, language, publication date or publication type."""
MAX_LIST_ITEMS = 2_000
"""Most keywords, MeSH headings or publication types one record may have."""

_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # done before tag stripping
    uncurl_quotes=False,  # "’" stays "’"
    remove_control_chars=False,  # left in so that is_valid_text() can reject undecodable text
    normalization=None,  # NFKC below, on every path
    explain=False,
)

_INLINE_TAGS = frozenset("""
a abbr b bdi bdo big cite code del dfn em font i ins kbd mark q s samp small span strike strong sub sup tt u var
bold italic underline overline monospace roman sans-serif sc styled-content named-content inline-formula
inline-graphic ext-link uri xref email chem-struct-wrap tex-math alternatives
math mi mo mn ms mtext mspace mrow msub msup msubsup mfrac msqrt mroot mstyle mover munder munderover
mfenced mpadded mphantom menclose mtable mtr mtd mlabeledtr mmultiscripts mprescripts none semantics
annotation-xml maligngroup malignmark merror mglyph maction
""".split())
_BLOCK_TAGS = frozenset("""
p br div sec title abstract trans-abstract list list-item label caption disp-formula disp-quote
h1 h2 h3 h4 h5 h6 li ul ol dl dt dd table thead tbody tr td th blockquote hr section article header footer
""".split())
# A tag: optional namespace prefix, a name, attributes that all have a value (so "a<b and c>d" is not a tag).
_TAG = re.compile(
    r"""<\s*/?\s*(?:([A-Za-z][\w.-]*):)?([A-Za-z][\w.-]*)"""
    r"""(?:\s+[A-Za-z_:][\w:.-]*\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))*\s*/?\s*>"""
)
_ANNOTATION = re.compile(r"<\s*(?:[\w.-]+:)?annotation\b[^>]*>.*?<\s*/\s*(?:[\w.-]+:)?annotation\s*>", re.S | re.I)
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_DROP_CHARS = re.compile("[\u00ad\u200b\u2060\ufeff]")
# What mojibake looks like: a UTF-8 lead byte read as Latin-1/Windows-1252 followed by a continuation byte
# read the same way ("â€™", "Ã©", "Ð¿"), Mac Roman ("‚Äô"), C1 controls, U+FFFD. ftfy (slow: about 0.5 ms
# per abstract) runs only on text that matches; on anything else it would change nothing but the
# ligatures / widths / line breaks that NFKC and the whitespace step handle anyway.
_MOJIBAKE_LEAD = re.compile("[\u00c2-\u00f4\u0080-\u009f\ufffd\u201a]")  # cheap first filter
_MOJIBAKE_HINT = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
    "|[\u00c2\u00c3] |[\u0080-\u009f\ufffd]|\u201a\u00c4|\u00e2\u20ac"
)
_OTHER_BREAKS = re.compile("\r\n?|[\u2028\u2029\x85]")
_SPACE_RUN = re.compile(r"[ \t\f\v]{2,}|[\t\f\v]")
# C0/C1 controls (whitespace excepted) and U+FFFD: what undecodable bytes leave behind.
_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")


def _replace_tag(match: re.Match[str]) -> str:
    prefix, name = match.group(1), match.group(2).lower()
    if name in _BLOCK_TAGS:
        return "\n"
    if prefix or name in _INLINE_TAGS:
        return ""
    return match.group(0)  # not known markup: leave it ("x <y> z" in a formula stays)


def _collapse_line(line: str) -> str:
    if "  " in line or "\t" in line or "\f" in line or "\v" in line:
        line = _SPACE_RUN.sub(" ", line)
    return line.strip(" ")


def _collapse_whitespace(text: str, keep_newlines: bool) -> str:
    """Runs of spaces/tabs -> one space; runs holding a line break -> one newline (or a space)."""
    if "\r" in text or (not text.isascii() and ("\u2028" in text or "\u2029" in text or "\x85" in text)):
        text = _OTHER_BREAKS.sub("\n", text)
    if "\n" not in text:
        return _collapse_line(text)
    if keep_newlines:
        return "\n".join(filter(None, map(_collapse_line, text.split("\n"))))
    return _collapse_line(text.replace("\n", " "))


def clean_text(text: str | None, *, keep_newlines: bool = True) -> str | None:
    """Cleaned text (see the module docstring), or ``None`` when nothing is left."""
    if text is None:
        return None
    if text.isascii() and "<" not in text and "&" not in text:
        if "\n" not in text and "\r" not in text:  # one plain line (titles, keywords): spaces only
            return _collapse_line(text) or None
    else:
        if "&" in text:
            text = html.unescape(text)
            if "&" in text and _ENTITY.search(text):
                text = html.unescape(text)
        if "<" in text:
            if "nnotation" in text:
                text = _ANNOTATION.sub("", text)
            text = _TAG.sub(_replace_tag, text)
        if not text.isascii():
            if _MOJIBAKE_LEAD.search(text) and _MOJIBAKE_HINT.search(text):
                text = ftfy.fix_text(text, _FTFY_CONFIG)
            if not unicodedata.is_normalized("NFKC", text):
                text = unicodedata.normalize("NFKC", text)
            if "\u00ad" in text or "\u200b" in text or "\u2060" in text or "\ufeff" in text:
                text = _DROP_CHARS.sub("", text)
    text = _collapse_whitespace(text, keep_newlines)
    return text or None


def _word_count(text: str) -> int:
    """Words of a cleaned text (whitespace there is single spaces and newlines, none at the ends)."""
    return text.count(" ") + text.count("\n") + 1 if text else 0


def is_valid_text(text: str | None) -> bool:
    """False when text holds a replacement character or a control character (undecodable bytes)."""
    if text is None:
        return True
    if "\ufffd" not in text and (text.isprintable() or text.replace("\n", " ").isprintable()):
        return True  # fast path: no control character (a line break is no control character here)
    return _INVALID.search(text) is None


# --- ids -------------------------------------------------------------------------------------------------

_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|(?:dx\.)?doi\.org/|doi\s*:\s*|urn:doi:)", re.I)
_ARXIV_PREFIX = re.compile(r"^(?:https?://arxiv\.org/abs/|arxiv\s*:\s*)", re.I)
_ARXIV_VERSION = re.compile(r"v\d+$")


def _str(value: object) -> str:
    return "" if value is None else str(value).strip()


def normalize_doi(doi: object) -> str | None:
    """``10.xxxx/yyy`` lowercased, without URL / ``doi:`` prefixes or whitespace; ``None`` if not a DOI (or
    longer than ``MAX_ID_CHARS``)."""
    text = _str(doi)
    if len(text) > 4 * MAX_ID_CHARS:
        return None
    text = _DOI_PREFIX.sub("", text)
    text = "".join(text.split()).lower()
    return text if text.startswith("10.") and "/" in text and len(text) <= MAX_ID_CHARS else None


def _positive_int_text(value: object, prefix: str = "") -> str | None:
    """Digits of a positive integer id in 1..``MAX_NUMERIC_ID`` without leading zeros, else ``None``."""
    text = _str(value)
    if prefix and text[: len(prefix)].lower() == prefix:
        text = text[len(prefix):].strip()
    if not text.isdigit() or not text.isascii():
        return None
    text = text.lstrip("0")
    if len(text) > 19 or (len(text) == 19 and int(text) > MAX_NUMERIC_ID):
        return None
    return text or None


def normalize_pmid(value: object) -> str | None:
    """A PMID as digits without leading zeros (``"pmid:"`` prefix allowed); ``None`` if not a PMID."""
    return _positive_int_text(value, "pmid:")


def normalize_pmcid(value: object) -> str | None:
    """``PMC<digits>`` from ``"PMC123"``, ``"pmc123"``, ``"123"`` or ``"PMC123.1"``; ``None`` otherwise."""
    text = _str(value).upper()
    if text.startswith("PMCID:"):
        text = text[6:].strip()
    if text.startswith("PMC"):
        text = text[3:]
    text = text.split(".", 1)[0]
    digits = _positive_int_text(text)
    return f"PMC{digits}" if digits else None


def normalize_arxiv(value: object) -> str | None:
    """An arXiv id lowercased, without URL / ``arXiv:`` prefix or version suffix (``2101.00001v2`` ->
    ``2101.00001``)."""
    text = _str(value)
    if len(text) > 4 * MAX_ID_CHARS:
        return None
    text = _ARXIV_VERSION.sub("", _ARXIV_PREFIX.sub("", text).lower())
    return text if text and len(text) <= MAX_ID_CHARS else None


# Keys used by the readers (and the Semantic Scholar spellings of them) -> alias prefix.
_ID_KEYS = {
    "pmid": "pmid", "pubmed": "pmid",
    "doi": "doi",
    "pmcid": "pmcid", "pmc": "pmcid", "pubmedcentral": "pmcid",
    "s2": "s2", "corpusid": "s2", "corpus_id": "s2",
    "mag": "mag",
    "arxiv": "arxiv",
}
_NORMALIZERS = {
    "pmid": normalize_pmid,
    "doi": normalize_doi,
    "pmcid": normalize_pmcid,
    "s2": _positive_int_text,
    "mag": _positive_int_text,
    "arxiv": normalize_arxiv,
}


# The id kind of ``source_id`` for each source.
_OWN_ID_KEY = {"pubmed": "pmid", "s2": "s2"}


def _normalized_ids(record: SourceRecord) -> dict[str, str]:
    """Every usable id of a record, keyed by alias prefix, values normalised; invalid values are dropped."""
    ids: dict[str, str] = {}
    own_key = _OWN_ID_KEY.get(record.source)
    if own_key:
        own = _NORMALIZERS[own_key](record.source_id)
        if own:
            ids[own_key] = own
    for key, value in record.external_ids.items():
        prefix = _ID_KEYS.get(key.lower().replace(" ", ""), key.lower())
        if prefix in ids:
            continue
        if not isinstance(value, (str, int)):
            continue
        normalizer = _NORMALIZERS.get(prefix)
        normalized = normalizer(value) if normalizer else (_str(value) or None)
        if normalized and len(normalized) <= MAX_ID_CHARS:
            ids[prefix] = normalized
    return ids


def _aliases(ids: dict[str, str]) -> list[str]:
    return sorted({f"{prefix}:{value}" for prefix, value in ids.items()})


def _primary(record: SourceRecord, ids: dict[str, str]) -> str:
    if "pmid" in ids:
        return f"pmid:{ids['pmid']}"
    if record.source == "s2" and "s2" in ids:
        return f"s2:{ids['s2']}"
    if "doi" in ids:
        return f"doi:{ids['doi']}"
    raise ValueError(f"{record.source} record {record.source_id!r} has no PMID, S2 corpus id or DOI")


def aliases_of(record: SourceRecord) -> list[str]:
    """Every id of a record as ``prefix:value`` (``pmid:N``, ``doi:10.x/y``, ``pmcid:PMCn``, ``s2:N``,
    ``mag:N``, ``arxiv:x``...), normalised, sorted and unique."""
    return _aliases(_normalized_ids(record))


def primary_doc_id(record: SourceRecord) -> str:
    """The document id: ``pmid:N`` when the record has a PMID, else ``s2:<corpusid>`` for S2 records, else
    ``doi:<doi>``. Raises ``ValueError`` when the record has none of them."""
    return _primary(record, _normalized_ids(record))


def content_hash(title: str | None, abstract: str | None) -> str:
    """sha256 hex of ``title + "\\x1f" + abstract``; pass the *cleaned* texts (as in ``Document``), ``None``
    counts as empty."""
    return hashlib.sha256(f"{title or ''}\x1f{abstract or ''}".encode()).hexdigest()


# --- records ---------------------------------------------------------------------------------------------

def quarantine_of(bad: BadRecord) -> Quarantined:
    """A reader's ``BadRecord`` as a quarantine row."""
    record_id = bad.record_id[:MAX_ID_CHARS] if bad.record_id else bad.record_id
    return Quarantined(source=bad.source, record_id=record_id, reason=bad.reason, raw_snippet=bad.raw_snippet)


def _clean_list(values: list[str]) -> list[str]:
    """Cleaned single-line strings, empty or undecodable ones dropped, duplicates removed case-insensitively."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        text = clean_text(value, keep_newlines=False)
        if text and is_valid_text(text) and (key := text.casefold()) not in seen:
            seen.add(key)
            out.append(text)
    return out


def _oversized(record: SourceRecord) -> str | None:
    """Why a record's secondary fields are too big to store, or ``None`` (checked before cleaning: cheap)."""
    for name in ("keywords", "mesh", "publication_types"):
        values = getattr(record, name)
        if len(values) > MAX_LIST_ITEMS:
            return f"too many {name.replace('_', ' ')}: {len(values):,} (at most {MAX_LIST_ITEMS:,})"
    for name, values in (("keyword", record.keywords), ("publication type", record.publication_types),
                         ("MeSH heading", [m.name for m in record.mesh]),
                         ("journal", [record.journal or ""]), ("language", [record.language or ""]),
                         ("publication date", [record.pub_date or ""])):
        for value in values:
            if value and len(value) > MAX_FIELD_CHARS:
                return f"{name} longer than {MAX_FIELD_CHARS:,} characters ({len(value):,})"
    return None


def clean_record(record: SourceRecord, min_abstract_words: int, *, max_title_chars: int = MAX_TITLE_CHARS,
                 max_abstract_chars: int = MAX_ABSTRACT_CHARS) -> Document | Quarantined:
    """A cleaned ``Document``, or ``Quarantined`` with the reason: ``no title and no abstract``,
    ``undecodable text``, ``abstract shorter than N words``, ``title / abstract longer than N characters``,
    an oversized keyword, journal... (see the module docstring), ``invalid PMID``, ``invalid S2 corpus id`` or
    ``no usable id``.

    ``doc_id`` is :func:`primary_doc_id`; the ingest step may remap it to an existing document found
    through one of the aliases.
    """

    def quarantine(reason: str) -> Quarantined:
        record_id = _str(record.source_id)[:MAX_ID_CHARS] or None
        return Quarantined(source=record.source, record_id=record_id, reason=reason, raw_snippet=record.raw_snippet)

    title = clean_text(record.title, keep_newlines=False)
    abstract = clean_text(record.abstract)
    if title is None and abstract is None:
        return quarantine("no title and no abstract")
    if not (is_valid_text(title) and is_valid_text(abstract)):
        return quarantine("undecodable text")
    if title is not None and len(title) > max_title_chars:
        return quarantine(f"title longer than {max_title_chars:,} characters ({len(title):,})")
    if abstract is not None and len(abstract) > max_abstract_chars:
        return quarantine(f"abstract longer than {max_abstract_chars:,} characters ({len(abstract):,})")
    if abstract is not None and min_abstract_words > 0 and _word_count(abstract) < min_abstract_words:
        return quarantine(f"abstract shorter than {min_abstract_words} words")
    if (too_big := _oversized(record)) is not None:
        return quarantine(too_big)
    if record.year is not None and not 1 <= record.year <= 9999:
        return quarantine(f"year out of range: {record.year}")
    if record.version is not None and not 1 <= record.version <= 2**31 - 1:
        return quarantine(f"version out of range: {str(record.version)[:40]}")

    ids = _normalized_ids(record)
    if record.source == "pubmed" and "pmid" not in ids:
        return quarantine(f"invalid PMID {_str(record.source_id)[:40]!r}")
    if record.source == "s2" and "s2" not in ids and _str(record.source_id).isdigit():
        return quarantine(f"invalid S2 corpus id {_str(record.source_id)[:40]!r} (expected 1..2^63-1)")
    try:
        doc_id = _primary(record, ids)
    except ValueError:
        return quarantine("no usable id")

    journal = clean_text(record.journal, keep_newlines=False)
    return Document(
        doc_id=doc_id,
        source=record.source,
        source_id=ids.get(_OWN_ID_KEY.get(record.source, ""), _str(record.source_id)),
        title=title,
        abstract=abstract,
        content_hash=content_hash(title, abstract),
        aliases=_aliases(ids),
        version=record.version,
        language=(record.language or "").strip().lower() or None,
        journal=journal if is_valid_text(journal) else None,
        year=record.year,
        pub_date=record.pub_date,
        doi=ids.get("doi"),
        pmid=ids.get("pmid"),
        keywords=_clean_list(record.keywords),
        mesh=list(record.mesh),  # NLM controlled vocabulary: kept as read
        publication_types=_clean_list(record.publication_types),
    )


def clean_item(item: SourceItem, min_abstract_words: int) -> Document | Deletion | Quarantined:
    """Clean any reader item: a record becomes a ``Document`` or ``Quarantined``, a ``BadRecord`` becomes
    ``Quarantined``, a ``Deletion`` keeps its (normalised) id or is quarantined when the id is invalid."""
    if isinstance(item, SourceRecord):
        return clean_record(item, min_abstract_words)
    if isinstance(item, BadRecord):
        return quarantine_of(item)
    if isinstance(item, Deletion):
        if item.source == "pubmed":
            pmid = normalize_pmid(item.source_id)
            if pmid is None:
                return Quarantined(item.source, _str(item.source_id)[:MAX_ID_CHARS] or None,
                                   f"invalid PMID in deletion: {_str(item.source_id)[:40]!r}")
            return Deletion(item.source, pmid)
        if item.source == "s2" and _str(item.source_id).isdigit():
            corpus_id = _positive_int_text(item.source_id)
            if corpus_id is None:
                return Quarantined(item.source, _str(item.source_id)[:MAX_ID_CHARS] or None,
                                   f"invalid S2 corpus id in deletion: {_str(item.source_id)[:40]!r}")
            return Deletion(item.source, corpus_id)
        return Deletion(item.source, _str(item.source_id))
    raise TypeError(f"not a source item: {type(item).__name__}")
