"""Test support: real MEDLINE records broken in each way a file can be (the cases of issue 11).

Each case breaks one record of a real 30-record NLM sample file; the reader must quarantine exactly that record
with a reason that says what is wrong, and read every other record as from the intact file.
"""

from __future__ import annotations

import re

CORRUPTED_SAMPLE = "baseline/pubmed24n1219.xml.gz"  # 30 PubmedArticle records, no deletion


def record_span(xml: bytes, index: int) -> tuple[int, int]:
    """Byte span of the index-th ``<PubmedArticle>`` element."""
    start = [m.start() for m in re.finditer(rb"<PubmedArticle>", xml)][index]
    return start, xml.index(b"</PubmedArticle>", start) + len(b"</PubmedArticle>")


def in_abstract(xml: bytes, index: int, payload: bytes) -> bytes:
    """``payload`` put into the first AbstractText of the index-th record, after 10 bytes of its text."""
    start, end = record_span(xml, index)
    text = xml.index(b">", xml.index(b"<AbstractText", start)) + 1 + 10
    assert text < end
    return xml[:text] + payload + xml[text:]


def without(xml: bytes, index: int, tag: bytes, last: bool = False) -> bytes:
    """The index-th record with its first (or last) ``tag`` removed."""
    start, end = record_span(xml, index)
    at = xml.rindex(tag, start, end) if last else xml.index(tag, start, end)
    return xml[:at] + xml[at + len(tag):]


def entity_bomb(xml: bytes, index: int) -> bytes:
    """A billion-laughs DOCTYPE (10^9 characters once expanded) and a reference to it in one record."""
    subset = b"<!ENTITY a0 \"aaaaaaaaaa\">" + b"".join(
        b"<!ENTITY a%d \"%s\">" % (k, b"&a%d;" % (k - 1) * 10) for k in range(1, 9))
    doctype_start = xml.index(b"<!DOCTYPE")
    doctype_end = xml.index(b">", doctype_start) + 1
    bombed = xml[:doctype_start] + b"<!DOCTYPE PubmedArticleSet [" + subset + b"]>" + xml[doctype_end:]
    return in_abstract(bombed, index, b"&a8;")


BROKEN_RECORDS = {  # case -> (index of the broken record, how, what the reason says)
    "invalid UTF-8 in an AbstractText": (4, lambda x: in_abstract(x, 4, b"\xff\xfe\xc3("), "undecodable bytes"),
    "NUL character": (9, lambda x: in_abstract(x, 9, b"\x00"), "undecodable bytes"),
    "control characters": (9, lambda x: in_abstract(x, 9, b"\x01\x1b"), "undecodable bytes"),
    "unclosed tag in record 16": (15, lambda x: without(x, 15, b"</ArticleTitle>"), "malformed XML"),
    "record 16 never closed": (15, lambda x: without(x, 15, b"</PubmedArticle>"), "is not closed before the next"),
    "last record never closed": (29, lambda x: without(x, 29, b"</PubmedArticle>"), "is not closed before the end"),
    "deep nesting": (6, lambda x: in_abstract(x, 6, b"<i>" * 5000 + b"x" + b"</i>" * 5000), "nesting too deep"),
    "entity bomb": (3, lambda x: entity_bomb(x, 3), "entity expansion refused"),
}
