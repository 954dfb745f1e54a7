"""MEDLINE reader on the real sample files, the full NLM update file and broken copies of real files.

Expected values come from the data README or from an independent plain-lxml reading of the same file
(the "oracle" helpers below), never from a previous run of the reader.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import zlib
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree
from support.medline import in_fresh_process, scan_medline_file
from support.medline_corruption import BROKEN_RECORDS, CORRUPTED_SAMPLE, in_abstract, record_span, without

from kpe.clean import clean_record
from kpe.records import BadRecord, Deletion, Quarantined, SourceRecord
from kpe.sources.errors import SourceFileError as BaseSourceFileError
from kpe.sources.pubmed import SourceFileError, count_records_plain, iter_medline

# --- helpers -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pubmed_dir(shared_data: Path) -> Path:
    return shared_data / "pubmed"


@pytest.fixture(scope="module")
def sample_files(pubmed_dir: Path) -> list[Path]:
    files = sorted((pubmed_dir / "medline_samples").rglob("*.xml.gz"))
    assert len(files) == 15
    return files


@pytest.fixture(scope="module")
def sample_items(sample_files: list[Path]) -> dict[Path, list]:
    return {path: list(iter_medline(path)) for path in sample_files}


def _raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _oracle_root(path: Path) -> etree._Element:
    """The whole file parsed at once by plain lxml (small files only)."""
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=True)
    return etree.fromstring(_raw_bytes(path), parser)


def _records(items: list) -> list[SourceRecord]:
    return [item for item in items if isinstance(item, SourceRecord)]


def _all_text(elem: etree._Element | None) -> str:
    """Element text with XML whitespace (not NBSP) collapsed, as the reader documents."""
    return re.sub(r"[ \t\r\n]+", " ", "".join(elem.itertext())).strip(" ") if elem is not None else ""


def _article_pairs(sample_items: dict[Path, list]):
    """(oracle PubmedArticle element, reader record) for every sample record, matched by position."""
    for path, items in sample_items.items():
        articles = _oracle_root(path).findall("PubmedArticle")
        records = _records(items)
        assert len(articles) == len(records)
        yield from zip(articles, records)


# --- the 15 sample files -----------------------------------------------------------------------------------


def test_samples_parse_with_readme_counts(sample_items: dict[Path, list]) -> None:
    records = [r for items in sample_items.values() for r in _records(items)]
    assert len(records) == 445
    assert len({r.source_id for r in records}) == 425
    assert not [item for items in sample_items.values() for item in items if isinstance(item, BadRecord)]
    assert sum(bool(r.mesh) for r in records) == 186
    assert sum(bool(r.keywords) for r in records) == 276
    assert all(r.source == "pubmed" and r.source_id.isdigit() and r.title for r in records)
    assert all(r.external_ids["pmid"] == r.source_id for r in records)
    assert all(r.version >= 1 for r in records) and any(r.version > 1 for r in records)


def test_records_follow_the_file_in_order(sample_items: dict[Path, list]) -> None:
    for path, items in sample_items.items():
        expected = [p.text.strip() for p in _oracle_root(path).findall("PubmedArticle/MedlineCitation/PMID")]
        assert [r.source_id for r in _records(items)] == expected, path.name


def test_deletions_match_delete_citation_pmids(sample_items: dict[Path, list]) -> None:
    total = 0
    for path, items in sample_items.items():
        expected = [p.text.strip() for p in _oracle_root(path).findall("DeleteCitation/PMID")]
        got = [item.source_id for item in items if isinstance(item, Deletion)]
        assert got == expected, path.name
        assert all(item.source == "pubmed" for item in items if isinstance(item, Deletion))
        total += len(got)
    assert total > 0
    update_deletions = sum(
        isinstance(item, Deletion) for path, items in sample_items.items() if path.parent.name == "updatefiles"
        for item in items)
    assert update_deletions > 0


def test_abstracts_from_abstract_or_english_other_abstract(sample_items: dict[Path, list]) -> None:
    with_abstract_element = 0
    for article, record in _article_pairs(sample_items):
        sections = article.findall("MedlineCitation/Article/Abstract/AbstractText")
        if article.find("MedlineCitation/Article/Abstract") is not None:
            with_abstract_element += 1
        if not any(_all_text(s) for s in sections):
            sections = next((o.findall("AbstractText") for o in article.findall("MedlineCitation/OtherAbstract")
                             if o.get("Language") == "eng"), [])
        parts = [(s.get("Label"), _all_text(s)) for s in sections]
        expected = "\n".join(f"{label}: {text}" if label else text for label, text in parts if text)
        assert record.abstract == (expected or None)
    assert with_abstract_element == 390  # data README


def test_structured_abstract_labels_in_order(sample_items: dict[Path, list]) -> None:
    checked = 0
    for article, record in _article_pairs(sample_items):
        sections = [s for s in article.findall("MedlineCitation/Article/Abstract/AbstractText") if _all_text(s)]
        labels = [s.get("Label") for s in sections]
        if len(sections) < 2 or not all(labels):
            continue
        lines = record.abstract.split("\n")
        assert len(lines) == len(sections)
        for line, section in zip(lines, sections):
            assert line == f"{section.get('Label')}: {_all_text(section)}"
        checked += 1
    assert checked > 10


def test_titles_keep_inline_markup_text_and_fall_back_to_vernacular(sample_items: dict[Path, list]) -> None:
    markup = vernacular = 0
    for article, record in _article_pairs(sample_items):
        title_el = article.find("MedlineCitation/Article/ArticleTitle")
        title = _all_text(title_el)
        if title:
            assert record.title == title
            markup += len(title_el) > 0
        else:
            assert record.title == _all_text(article.find("MedlineCitation/Article/VernacularTitle"))
            vernacular += 1
    assert markup > 0 and vernacular > 0
    # the text of <i>/<sup> children is part of the title, not dropped
    for article, record in _article_pairs(sample_items):
        title_el = article.find("MedlineCitation/Article/ArticleTitle")
        for child in title_el:
            assert (child.text or "").strip() in record.title


def _oracle_pub_date(article: etree._Element) -> tuple[int | None, str | None]:
    pub_date = article.find("MedlineCitation/Article/Journal/JournalIssue/PubDate")
    medline_date = pub_date.findtext("MedlineDate")
    if medline_date:
        return int(re.findall(r"\d{4}", medline_date)[0]), medline_date.strip()
    year = pub_date.findtext("Year")
    month = pub_date.findtext("Month")
    if month is None:
        return int(year), year
    month_number = int(month) if month.isdigit() else dt.datetime.strptime(month, "%b").month
    day = pub_date.findtext("Day")
    if day is None:
        return int(year), f"{year}-{month_number:02d}"
    return int(year), dt.date(int(year), month_number, int(day)).isoformat()


def test_pub_dates_including_medline_date(sample_items: dict[Path, list]) -> None:
    kinds = Counter()
    for article, record in _article_pairs(sample_items):
        assert (record.year, record.pub_date) == _oracle_pub_date(article)
        pub_date = article.find("MedlineCitation/Article/Journal/JournalIssue/PubDate")
        kinds["medline"] += pub_date.find("MedlineDate") is not None
        kinds["name month"] += not (pub_date.findtext("Month") or "1").isdigit()
        kinds["day"] += pub_date.find("Day") is not None
    assert kinds["medline"] > 0 and kinds["name month"] > 0 and kinds["day"] > 0


def test_doi_from_elocation_or_article_id_list_and_pmcid(sample_items: dict[Path, list]) -> None:
    sources = Counter()
    for article, record in _article_pairs(sample_items):
        eloc = [e.text.strip() for e in article.findall("MedlineCitation/Article/ELocationID")
                if e.get("EIdType") == "doi" and e.get("ValidYN") != "N"]
        ids = [(a.get("IdType"), (a.text or "").strip()) for a in article.findall("PubmedData/ArticleIdList/ArticleId")]
        aids = [value for id_type, value in ids if id_type == "doi" and value]
        pmcs = [value for id_type, value in ids if id_type == "pmc" and value]
        if eloc:
            assert record.external_ids["doi"] == eloc[0]
            sources["elocation"] += 1
        elif aids:
            assert record.external_ids["doi"] == aids[0]
            sources["article id"] += 1
        else:
            assert "doi" not in record.external_ids
        assert record.external_ids.get("pmcid") == (pmcs[0] if pmcs else None)
        sources["pmc"] += bool(pmcs)
    assert sources["elocation"] > 0 and sources["article id"] > 0 and sources["pmc"] > 0


def test_mesh_major_flag_from_descriptor_or_qualifier(sample_items: dict[Path, list]) -> None:
    qualifier_only = 0
    for article, record in _article_pairs(sample_items):
        headings = article.findall("MedlineCitation/MeshHeadingList/MeshHeading")
        assert [m.name for m in record.mesh] == [h.findtext("DescriptorName").strip() for h in headings]
        for heading, mesh in zip(headings, record.mesh):
            descriptor_major = heading.find("DescriptorName").get("MajorTopicYN") == "Y"
            qualifier_major = any(q.get("MajorTopicYN") == "Y" for q in heading.findall("QualifierName"))
            assert mesh.major == (descriptor_major or qualifier_major)
            qualifier_only += qualifier_major and not descriptor_major
    assert qualifier_only > 0


def test_keywords_all_lists_in_order_without_case_duplicates(sample_items: dict[Path, list]) -> None:
    for article, record in _article_pairs(sample_items):
        expected: list[str] = []
        for keyword in article.findall("MedlineCitation/KeywordList/Keyword"):
            text = _all_text(keyword)
            if text and text.casefold() not in {k.casefold() for k in expected}:
                expected.append(text)
        assert record.keywords == expected


def test_other_fields(sample_items: dict[Path, list]) -> None:
    for article, record in _article_pairs(sample_items):
        assert record.language == article.findtext("MedlineCitation/Article/Language")
        assert record.journal == (article.findtext("MedlineCitation/Article/Journal/Title")
                                  or article.findtext("MedlineCitation/MedlineJournalInfo/MedlineTA"))
        assert record.publication_types == [
            p.text for p in article.findall("MedlineCitation/Article/PublicationTypeList/PublicationType")]
        assert record.version == int(article.find("MedlineCitation/PMID").get("Version", "1"))
        assert record.source_id in record.raw_snippet and len(record.raw_snippet) <= 500


# --- single records and the full file ----------------------------------------------------------------------


def test_single_record_files(pubmed_dir: Path) -> None:
    # pretty-printed, not gzipped: layout whitespace is collapsed inside each section
    (record,) = list(iter_medline(pubmed_dir / "single_records" / "pubmed-29768149.xml"))
    assert record.source_id == "29768149"
    assert record.title == "Inhaled Combined Budesonide-Formoterol as Needed in Mild Asthma."
    assert record.external_ids["doi"] == "10.1056/NEJMoa1715274"
    assert [line.split(":")[0] for line in record.abstract.split("\n")] == ["BACKGROUND", "METHODS", "RESULTS",
                                                                            "CONCLUSIONS"]
    assert "\t" not in record.abstract and "  " not in record.abstract
    assert "β" in record.abstract  # &#946; decoded by the parser

    current_path = pubmed_dir / "single_records" / "test_current_medline.xml.gz"
    records = list(iter_medline(current_path))
    assert len(records) == len(_oracle_root(current_path).findall("PubmedArticle"))
    current = records[0]
    assert current.source_id == "36400559"
    assert current.abstract and current.keywords and current.mesh  # data README


def test_gzip_detected_by_magic_bytes_not_name(pubmed_dir: Path, tmp_path: Path) -> None:
    source = pubmed_dir / "single_records" / "test_current_medline.xml.gz"
    plain_named_gz = tmp_path / "plain.xml.gz"
    plain_named_gz.write_bytes(gzip.decompress(source.read_bytes()))
    gz_named_xml = tmp_path / "gzipped.xml"
    gz_named_xml.write_bytes(source.read_bytes())
    expected = list(iter_medline(source))
    assert list(iter_medline(plain_named_gz)) == expected
    assert list(iter_medline(gz_named_xml)) == expected


def test_full_update_file_counts(pubmed_dir: Path) -> None:
    """pubmed21n1298.xml.gz: 20,788 records, 18,445 with abstracts (data README), in flat memory.

    The file has 18,446 ``Abstract`` elements; one (PMID 34085931) holds only an empty ``AbstractText`` and a
    copyright line, so it has no abstract text. The README's "14,683 with author keywords" counts records with
    both keywords and an abstract (15,075 have non-empty keywords).
    """
    path = pubmed_dir / "full_files" / "pubmed21n1298.xml.gz"
    scan = in_fresh_process(scan_medline_file, path)  # the RSS of a process that ran other tests is not flat
    assert scan["records"] == 20_788
    assert scan["with_abstract"] == 18_445
    assert scan["with_keywords_and_abstract"] == 14_683
    assert "34085931" in scan["without_abstract"]
    assert len(scan["without_abstract"]) == 20_788 - 18_445
    assert scan["deletions"] > 0
    assert count_records_plain(path) == scan["records"]
    # streaming: memory stays flat (the 233 MB of XML as one tree would take well over 1 GB)
    assert scan["rss_growth_mb"] < 64


# --- broken input ------------------------------------------------------------------------------------------


def _baseline_sample(pubmed_dir: Path) -> Path:
    return pubmed_dir / "medline_samples" / "baseline" / "pubmed22n1114.xml.gz"


def _pmids_in(xml: bytes) -> list[str]:
    return re.findall(rb"<PubmedArticle>\s*<MedlineCitation[^>]*>\s*<PMID[^>]*>(\d+)</PMID>", xml)


def test_truncated_gzip_keeps_complete_records_then_fails(pubmed_dir: Path, tmp_path: Path) -> None:
    source = _baseline_sample(pubmed_dir)
    compressed = source.read_bytes()
    cut = compressed[: len(compressed) * 3 // 5]
    path = tmp_path / "truncated.xml.gz"
    path.write_bytes(cut)
    prefix = zlib.decompressobj(wbits=31).decompress(cut)  # everything the cut file still holds
    complete = _pmids_in(prefix[: prefix.rfind(b"</PubmedArticle>")])
    assert 0 < len(complete) < len(_pmids_in(gzip.decompress(compressed)))

    got = []
    with pytest.raises(SourceFileError) as excinfo:
        for item in iter_medline(path):
            got.append(item)
    assert [r.source_id.encode() for r in got] == complete
    assert "truncated.xml.gz" in str(excinfo.value) and "gzip" in str(excinfo.value)
    assert excinfo.value.items_read == len(complete)
    assert isinstance(excinfo.value, BaseSourceFileError) and isinstance(excinfo.value, RuntimeError)
    with pytest.raises(SourceFileError):
        count_records_plain(path)


def _break_before_record(xml: bytes, index: int, garbage: bytes) -> tuple[bytes, int]:
    """Insert garbage on a new line before the index-th PubmedArticle; returns (bytes, that line number)."""
    starts = [m.start() for m in re.finditer(rb"<PubmedArticle>", xml)]
    at = starts[index]
    broken = xml[:at] + b"\n" + garbage + xml[at:]
    return broken, xml[:at].count(b"\n") + 2


def test_malformed_record_in_the_middle_is_quarantined_and_the_rest_read(pubmed_dir: Path, tmp_path: Path) -> None:
    xml = _raw_bytes(_baseline_sample(pubmed_dir))
    broken, line = _break_before_record(xml, 10, b"<PubmedArticle><MedlineCitation></Oops></PubmedArticle>")
    path = tmp_path / "malformed.xml"
    path.write_bytes(broken)
    items = list(iter_medline(path))  # no error: the file is read to its end
    assert [r.source_id.encode() for r in _records(items)] == _pmids_in(xml)  # every good record, in order
    (bad,) = [item for item in items if isinstance(item, BadRecord)]
    assert items.index(bad) == 10 and bad.record_id is None
    assert bad.reason.startswith(f"malformed XML at line {line}: Opening and ending tag mismatch")
    assert bad.raw_snippet.startswith("<PubmedArticle><MedlineCitation></Oops>")


def test_invalid_utf8_bytes_cost_only_their_record(pubmed_dir: Path, tmp_path: Path) -> None:
    xml = _raw_bytes(_baseline_sample(pubmed_dir))
    titles = [m.start(1) for m in re.finditer(rb"<ArticleTitle>(.)", xml)]
    at = titles[7]
    path = tmp_path / "bad-utf8.xml.gz"
    path.write_bytes(gzip.compress(xml[:at] + b"\xff\xfe" + xml[at:]))
    items = list(iter_medline(path))
    pmids = _pmids_in(xml)
    assert [r.source_id.encode() for r in _records(items)] == pmids[:7] + pmids[8:]
    (bad,) = [item for item in items if isinstance(item, BadRecord)]
    assert bad.record_id.encode() == pmids[7] and bad.reason.startswith("undecodable bytes or invalid characters")


# --- bad input costs exactly the bad record: real records broken in each way a file can be ------------------

@pytest.fixture(scope="module")
def sample_30(pubmed_dir: Path) -> tuple[bytes, list[SourceRecord]]:
    """The raw XML of a real 30-record file and its records as read from the intact file."""
    path = pubmed_dir / "medline_samples" / CORRUPTED_SAMPLE
    records = _records(list(iter_medline(path)))
    assert len(records) == 30
    return _raw_bytes(path), records


@pytest.mark.parametrize("case", list(BROKEN_RECORDS))
def test_a_broken_record_costs_exactly_that_record(case: str, sample_30, tmp_path: Path) -> None:
    xml, good = sample_30
    index, breaks, reason = BROKEN_RECORDS[case]
    path = tmp_path / "broken.xml.gz"
    path.write_bytes(gzip.compress(breaks(xml)))
    items = list(iter_medline(path))  # read to its end: no SourceFileError
    assert _records(items) == good[:index] + good[index + 1:]  # the 29 others, field for field
    (bad,) = [item for item in items if isinstance(item, BadRecord)]
    assert len(items) == 30 and items.index(bad) == index
    assert bad.record_id == good[index].source_id and reason in bad.reason and " at line " in bad.reason
    assert bad.raw_snippet.startswith("<PubmedArticle>") and len(bad.raw_snippet) <= 500
    if case == "entity bomb":
        assert not any("aaaaaaaaaa" in (r.abstract or "") for r in _records(items))


def test_oversized_record_and_stray_content_are_quarantined(sample_30, tmp_path: Path) -> None:
    xml, good = sample_30
    biggest = max(end - start for start, end in (record_span(xml, i) for i in range(30)))
    broken = in_abstract(xml, 7, b"x" * (biggest + 1000))
    start, _ = record_span(broken, 12)
    broken = broken[:start] + b"stray text <Note>not a record</Note>\n" + broken[start:]
    path = tmp_path / "odd.xml"
    path.write_bytes(broken + b"<!-- a comment after the end is fine -->\n")
    items = list(iter_medline(path, max_record_bytes=biggest + 500))
    assert _records(items) == good[:7] + good[8:]
    bad = [item for item in items if isinstance(item, BadRecord)]
    assert [(b.record_id, b.reason.split(" at line")[0]) for b in bad] == [
        (good[7].source_id, f"record larger than {biggest + 500:,} bytes"),
        (None, "unexpected content between records")]
    assert bad[1].raw_snippet.startswith("stray text <Note>")


def test_records_split_across_read_chunks_are_read_the_same(sample_30, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import kpe.sources.stream as stream

    xml, good = sample_30
    path = tmp_path / "broken.xml.gz"
    path.write_bytes(gzip.compress(without(xml, 15, b"</PubmedArticle>")))
    expected = list(iter_medline(path))
    for size in (1, 7, 100, 4096):  # every tag and record boundary falls across reads somewhere
        monkeypatch.setattr(stream, "READ_BYTES", size)
        monkeypatch.setattr(stream, "PLAIN_READ_BYTES", size)
        assert list(iter_medline(path)) == expected


def _complete_before_cut(compressed: bytes) -> int:
    """Records complete in what a cut gzip still decompresses to (an independent zlib reading)."""
    prefix = zlib.decompressobj(wbits=31).decompress(compressed)
    return prefix[: prefix.rfind(b"</PubmedArticle>")].count(b"<PubmedArticle>")


@pytest.mark.parametrize("cut", ["trailer", "crc", "half", "xml", "appended"])
def test_a_file_whose_end_cannot_be_read_keeps_every_complete_record(cut: str, sample_30, tmp_path: Path) -> None:
    xml, good = sample_30
    compressed = gzip.compress(xml)
    if cut == "trailer":  # only the 4-byte ISIZE is missing: all 30 records are complete
        data, expected, problem = compressed[:-4], 30, "truncated gzip"
    elif cut == "crc":  # the CRC-32 does not match: every record decompressed before the check is kept
        data = compressed[:-8] + bytes(b ^ 0xFF for b in compressed[-8:-4]) + compressed[-4:]
        expected, problem = 30, "corrupt gzip data"
    elif cut == "half":
        data = compressed[: len(compressed) // 2]
        expected, problem = _complete_before_cut(data), "truncated gzip"
    elif cut == "xml":  # plain XML cut inside record 21
        start, end = record_span(xml, 20)
        data, expected, problem = xml[: (start + end) // 2], 20, "truncated XML: the file ends inside"
    else:  # a second document appended to the first: its records cannot be told apart from junk
        data, expected, problem = xml + xml, 30, "unexpected content after the end of the root element"
    path = tmp_path / ("cut.xml" if cut in ("xml", "appended") else "cut.xml.gz")
    path.write_bytes(data)
    got = []
    with pytest.raises(SourceFileError) as excinfo:
        for item in iter_medline(path):
            got.append(item)
    assert 0 < expected and got == good[:expected]
    assert problem in str(excinfo.value) and str(path) in str(excinfo.value)  # the full path
    assert excinfo.value.items_read == expected


@pytest.mark.parametrize("content", [b"", b"<PubmedArticleSet>", b"not xml at all"])
def test_empty_or_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(content)
    with pytest.raises(SourceFileError):
        list(iter_medline(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match="cannot open"):
        list(iter_medline(tmp_path / "nope.xml.gz"))


def _file_of(articles: list[etree._Element], extra: bytes = b"") -> bytes:
    body = b"".join(etree.tostring(a) for a in articles)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>' + body + extra + b"</PubmedArticleSet>"


def test_bad_records_become_bad_record_items(pubmed_dir: Path, tmp_path: Path) -> None:
    articles = _oracle_root(_baseline_sample(pubmed_dir)).findall("PubmedArticle")[:4]
    no_pmid, empty_pmid, good, no_text = articles
    no_pmid.find("MedlineCitation").remove(no_pmid.find("MedlineCitation/PMID"))
    empty_pmid.find("MedlineCitation/PMID").text = "  "
    article = no_text.find("MedlineCitation/Article")
    for tag in ("ArticleTitle", "VernacularTitle", "Abstract"):
        for elem in article.findall(tag):
            article.remove(elem)
    for other in no_text.findall("MedlineCitation/OtherAbstract"):
        other.getparent().remove(other)
    book = b"<PubmedBookArticle><BookDocument><PMID Version=\"1\">20301295</PMID></BookDocument></PubmedBookArticle>"
    delete = b"<DeleteCitation><PMID Version=\"1\">123</PMID><PMID Version=\"1\"></PMID></DeleteCitation>"
    path = tmp_path / "bad-records.xml"
    path.write_bytes(_file_of(articles, book + delete))

    items = list(iter_medline(path))
    assert [type(i).__name__ for i in items] == ["BadRecord", "BadRecord", "SourceRecord", "SourceRecord",
                                                 "BadRecord", "Deletion", "BadRecord"]
    assert (items[0].record_id, items[0].reason) == (None, "missing PMID")
    assert (items[1].record_id, items[1].reason) == (None, "missing PMID")
    assert "<PubmedArticle" in items[0].raw_snippet and len(items[0].raw_snippet) == 500
    assert items[2].source_id == good.findtext("MedlineCitation/PMID")
    assert (items[4].record_id, items[4].reason) == ("20301295", "book article not supported")
    assert items[5] == Deletion("pubmed", "123")
    assert items[6].reason == "empty PMID in DeleteCitation"

    cleaned = clean_record(items[3], min_abstract_words=5)
    assert isinstance(cleaned, Quarantined)
    assert cleaned.reason == "no title and no abstract"
    assert cleaned.record_id == no_text.findtext("MedlineCitation/PMID")


def test_external_entities_and_dtds_are_not_loaded(pubmed_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    article = _oracle_root(_baseline_sample(pubmed_dir)).find("PubmedArticle")
    xml = etree.tostring(article).replace(b"<ArticleTitle>", b"<ArticleTitle>&xxe;", 1)
    doc = (b'<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet SYSTEM "http://127.0.0.1:9/pubmed.dtd" [\n'
           b'<!ENTITY xxe SYSTEM "' + secret.as_uri().encode() + b'">]>\n<PubmedArticleSet>' + xml
           + b"</PubmedArticleSet>")
    path = tmp_path / "xxe.xml"
    path.write_bytes(doc)
    items = list(iter_medline(path))
    assert len(items) == 1 and isinstance(items[0], SourceRecord)
    assert "TOP-SECRET" not in (items[0].title or "")
