"""Cleaning: text normalisation, ids and aliases, content hash, documents and quarantine reasons."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import pytest

from kpe.clean import (
    aliases_of,
    clean_item,
    clean_record,
    clean_text,
    content_hash,
    is_valid_text,
    normalize_arxiv,
    normalize_doi,
    normalize_pmcid,
    normalize_pmid,
    primary_doc_id,
    quarantine_of,
)
from kpe.records import BadRecord, Deletion, Document, Quarantined, SourceRecord
from kpe.sources.pubmed import iter_medline


@pytest.fixture(scope="module")
def sample_records(shared_data: Path) -> list[SourceRecord]:
    files = sorted((shared_data / "pubmed" / "medline_samples").rglob("*.xml.gz"))
    records = [item for path in files for item in iter_medline(path) if isinstance(item, SourceRecord)]
    assert len(records) == 445
    return records


def _record(**fields) -> SourceRecord:
    base = {"source": "pubmed", "source_id": "12345", "title": "A title about things",
            "abstract": "An abstract that is long enough to keep here."}
    return SourceRecord(**{**base, **fields})


# --- clean_text --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("<i>Escherichia coli</i> in <b>raw</b> milk", "Escherichia coli in raw milk"),
    ("Prostaglandin D<sub>2</sub> and Ca<sup>2+</sup>", "Prostaglandin D2 and Ca2+"),
    ('<span class="x">spanned</span> text', "spanned text"),
    ("<jats:p>First <jats:italic>part</jats:italic>.</jats:p>", "First part."),
    ('<mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML"><mml:msup><mml:mi>x</mml:mi><mml:mn>2</mml:mn>'
     "</mml:msup></mml:math> grows", "x2 grows"),
    ("<math><mrow><mi>T</mi><mn>1</mn></mrow><annotation encoding='TeX'>T_1</annotation></math> maps", "T1 maps"),
    ("&lt;i&gt;escaped&lt;/i&gt; markup", "escaped markup"),
])
def test_markup_is_removed_and_inner_text_kept(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


@pytest.mark.parametrize("text", [
    "p < 0.05 and p<0.01", "patients without <5mm or >9mm polyps", "a<b and c>d", "$\\Delta$GQS $<$0",
    "John Wiley & Sons", "x <y> z",
])
def test_comparison_signs_and_ampersands_are_not_markup(text: str) -> None:
    assert clean_text(text) == text


def test_block_tags_become_line_breaks_in_abstracts_and_spaces_in_titles() -> None:
    raw = "<jats:title>Background</jats:title><jats:p>One.</jats:p><jats:p>Two.<br/>Three.</jats:p>"
    assert clean_text(raw) == "Background\nOne.\nTwo.\nThree."
    assert clean_text(raw, keep_newlines=False) == "Background One. Two. Three."


@pytest.mark.parametrize(("raw", "expected"), [
    ("&amp; &lt; &gt; &quot;", '& < > "'),
    ("&#946;-agonist &#x3b1;-helix", "β-agonist α-helix"),
    ("&amp;#945;- glucosidase", "α- glucosidase"),  # double-escaped, as in a real MEDLINE title
    ("caf&eacute; na&iuml;ve", "café naïve"),
])
def test_entities_are_unescaped(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("patientsâ€™ clinical characteristics", "patients’ clinical characteristics"),
    ("â€œquotedâ€\x9d text", "“quoted” text"),
    ("cafÃ© and naÃ¯ve", "café and naïve"),
])
def test_mojibake_is_fixed(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


def test_mojibake_made_from_real_keywords_is_undone(sample_records: list[SourceRecord]) -> None:
    keywords = [k for r in sample_records for k in r.keywords if not k.isascii() and "’" in k]
    assert keywords
    for keyword in keywords:
        broken = keyword.encode("utf-8").decode("cp1252", errors="replace")
        assert broken != keyword
        assert clean_text(broken) == clean_text(keyword)


@pytest.mark.parametrize(("raw", "expected"), [
    ("ﬁbrosis and ﬂow", "fibrosis and flow"),  # ligatures
    ("ＡＢＣ１２３", "ABC123"),  # full width
    ("5\u00a0mg\u2009kg\u202f×", "5 mg kg ×"),  # NBSP / thin spaces
    ("Ångström", "Ångström"),
    ("soft\u00adhyphen zero\u200bwidth", "softhyphen zerowidth"),
])
def test_nfkc_and_invisible_characters(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


def test_whitespace_rules() -> None:
    assert clean_text("  a \t b\n\n   c \r\n d  ") == "a b\nc\nd"
    assert clean_text("  a \t b\n\n   c \r\n d  ", keep_newlines=False) == "a b c d"
    assert clean_text("BACKGROUND: x.\nMETHODS: y.") == "BACKGROUND: x.\nMETHODS: y."
    assert clean_text("plain ascii") == "plain ascii"
    for empty in (None, "", "   ", "\n\t", "<i> </i>"):
        assert clean_text(empty) is None


def test_clean_text_is_idempotent_on_real_records(sample_records: list[SourceRecord]) -> None:
    for record in sample_records:
        for text, keep in ((record.title, False), (record.abstract, True)):
            once = clean_text(text, keep_newlines=keep)
            assert clean_text(once, keep_newlines=keep) == once


def test_real_abstracts_keep_their_comparison_signs_and_sections(sample_records: list[SourceRecord]) -> None:
    with_signs = 0
    for record in sample_records:
        if record.abstract is None:
            continue
        cleaned = clean_text(record.abstract)
        assert cleaned.count("<") == record.abstract.count("<")
        assert cleaned.count("&") == record.abstract.count("&")
        assert cleaned.count("\n") == record.abstract.count("\n")  # one line per section
        assert "  " not in cleaned and "\u00a0" not in cleaned
        with_signs += "<" in record.abstract
    assert with_signs > 10


def test_is_valid_text() -> None:
    assert is_valid_text("ordinary text\nwith a section")
    assert is_valid_text(None)
    assert not is_valid_text("bad \ufffd byte")
    assert not is_valid_text("control \x01 char")
    assert not is_valid_text("c1 \x9c char")


# --- ids -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("10.1056/NEJMoa1715274", "10.1056/nejmoa1715274"),
    (" https://doi.org/10.1016/J.NCL.2022.07.002 ", "10.1016/j.ncl.2022.07.002"),
    ("http://dx.doi.org/10.1000/xyz", "10.1000/xyz"),
    ("doi:10.1000/ABC", "10.1000/abc"),
    ("DOI: 10.1000/a b", "10.1000/ab"),
    ("", None), (None, None), ("not a doi", None), ("S0733-8619(22)00058-5", None),
])
def test_normalize_doi(raw, expected) -> None:
    assert normalize_doi(raw) == expected


def test_normalize_pmid_pmcid_arxiv() -> None:
    assert normalize_pmid("36400559") == "36400559"
    assert normalize_pmid(" 0012345 ") == "12345"
    assert normalize_pmid(12345) == "12345"
    assert normalize_pmid("PMID:42") == "42"
    assert [normalize_pmid(x) for x in ("", None, "0", "12a", "١٢٣", "-5")] == [None] * 6
    assert normalize_pmcid("PMC1306303") == "PMC1306303"
    assert normalize_pmcid("pmc0042.1") == "PMC42"
    assert normalize_pmcid("42") == "PMC42"
    assert normalize_pmcid("PMCX") is None
    assert normalize_arxiv("arXiv:2101.00001v3") == "2101.00001"
    assert normalize_arxiv("https://arxiv.org/abs/hep-th/9901001") == "hep-th/9901001"


def test_aliases_and_primary_id_of_real_pubmed_records(sample_records: list[SourceRecord]) -> None:
    for record in sample_records:
        aliases = aliases_of(record)
        assert aliases == sorted(set(aliases))
        assert primary_doc_id(record) == f"pmid:{int(record.source_id)}"
        assert f"pmid:{int(record.source_id)}" in aliases
        doi = record.external_ids.get("doi")
        assert any(a.startswith("doi:") for a in aliases) == bool(doi)
        if doi:
            assert f"doi:{doi.strip().lower()}" in aliases
        assert any(a.startswith("pmcid:PMC") for a in aliases) == ("pmcid" in record.external_ids)


def test_aliases_of_s2_records_with_s2_style_keys() -> None:
    record = SourceRecord(source="s2", source_id="215416146", external_ids={
        "CorpusId": 215416146, "DOI": "10.1145/3357713.3384290", "ArXiv": "2004.00001v2", "MAG": "3016216224",
        "PubMedCentral": "7151234", "DBLP": "conf/stoc/Foo20"})
    assert aliases_of(record) == sorted([
        "s2:215416146", "doi:10.1145/3357713.3384290", "arxiv:2004.00001", "mag:3016216224", "pmcid:PMC7151234",
        "dblp:conf/stoc/Foo20"])
    assert primary_doc_id(record) == "s2:215416146"
    with_pmid = dataclasses.replace(record, external_ids={**record.external_ids, "PubMed": "0031810487"})
    assert primary_doc_id(with_pmid) == "pmid:31810487"
    assert "pmid:31810487" in aliases_of(with_pmid)


def test_primary_id_falls_back_to_doi_then_fails() -> None:
    other = SourceRecord(source="crossref", source_id="x", external_ids={"doi": "https://doi.org/10.1/ABC"})
    assert primary_doc_id(other) == "doi:10.1/abc"
    with pytest.raises(ValueError, match="no PMID"):
        primary_doc_id(SourceRecord(source="s2", source_id="not-a-number"))


# --- content hash ------------------------------------------------------------------------------------------


def test_content_hash_is_stable_and_sensitive(sample_records: list[SourceRecord]) -> None:
    record = next(r for r in sample_records if r.abstract)
    title, abstract = clean_text(record.title, keep_newlines=False), clean_text(record.abstract)
    digest = content_hash(title, abstract)
    assert digest == content_hash(title, abstract)
    assert digest == hashlib.sha256(f"{title}\x1f{abstract}".encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert content_hash(title, abstract[:-1] + "!") != digest
    assert content_hash(title + " ", abstract) != digest
    assert content_hash("a b", "c") != content_hash("a", "b c")
    assert content_hash(None, "x") == content_hash("", "x") != content_hash("x", None)
    hashes = {content_hash(r.title, r.abstract) for r in sample_records}
    assert len(hashes) > 400  # distinct papers give distinct hashes (some PMIDs repeat across files)


# --- records -----------------------------------------------------------------------------------------------


def test_clean_record_on_real_records(sample_records: list[SourceRecord]) -> None:
    short = 0
    for record in sample_records:
        result = clean_record(record, min_abstract_words=5)
        words = len(clean_text(record.abstract).split()) if record.abstract else None
        if isinstance(result, Quarantined):
            # real short "abstracts" exist, e.g. a correction notice whose abstract is "References Correction [...]."
            assert result.record_id == record.source_id
            assert result.reason == "abstract shorter than 5 words" and words < 5
            assert result.raw_snippet == record.raw_snippet
            short += 1
            continue
        assert isinstance(result, Document)
        assert words is None or words >= 5
        assert result.doc_id == f"pmid:{result.pmid}" and result.pmid == str(int(record.source_id))
        assert result.source == "pubmed" and result.source_id == result.pmid
        assert result.doc_id in result.aliases and result.aliases == aliases_of(record)
        assert result.content_hash == content_hash(result.title, result.abstract)
        assert result.title == clean_text(record.title, keep_newlines=False)
        assert result.abstract == clean_text(record.abstract)
        assert result.doi == normalize_doi(record.external_ids.get("doi"))
        assert len(result.keywords) == len({k.casefold() for k in result.keywords})
        assert [m.name for m in result.mesh] == [m.name for m in record.mesh]
        assert (result.year, result.pub_date, result.version) == (record.year, record.pub_date, record.version)
    assert short > 0


def _quarantine_reason(record: SourceRecord, min_words: int = 5) -> str | None:
    result = clean_record(record, min_abstract_words=min_words)
    return result.reason if isinstance(result, Quarantined) else None


def test_quarantine_reasons(sample_records: list[SourceRecord]) -> None:
    real = next(r for r in sample_records if r.abstract and r.title)
    assert _quarantine_reason(real) is None
    assert _quarantine_reason(dataclasses.replace(real, title=None, abstract=None)) == "no title and no abstract"
    assert _quarantine_reason(dataclasses.replace(real, title="<i> </i>", abstract="  ")) == "no title and no abstract"
    assert _quarantine_reason(dataclasses.replace(real, abstract="Too short here.")) == "abstract shorter than 5 words"
    assert _quarantine_reason(dataclasses.replace(real, abstract="Too short here."), min_words=3) is None
    assert _quarantine_reason(dataclasses.replace(real, abstract="Too short."), min_words=0) is None
    assert _quarantine_reason(dataclasses.replace(real, title=None)) is None  # an abstract alone is enough
    assert _quarantine_reason(dataclasses.replace(real, abstract=None)) is None  # so is a title
    assert _quarantine_reason(dataclasses.replace(real, abstract=real.abstract + " \ufffd\ufffd")) == "undecodable text"
    assert _quarantine_reason(dataclasses.replace(real, title=real.title + "\x00")) == "undecodable text"
    assert _quarantine_reason(dataclasses.replace(real, source_id="abc", external_ids={})).startswith("invalid PMID")
    result = clean_record(dataclasses.replace(real, abstract="x y"), min_abstract_words=5)
    assert result.raw_snippet == real.raw_snippet and result.record_id == real.source_id and result.source == "pubmed"


def test_clean_item_and_quarantine_of() -> None:
    bad = BadRecord(source="pubmed", record_id=None, reason="missing PMID", raw_snippet="<PubmedArticle>")
    assert quarantine_of(bad) == Quarantined("pubmed", None, "missing PMID", "<PubmedArticle>")
    assert clean_item(bad, 5) == quarantine_of(bad)
    assert clean_item(Deletion("pubmed", " 0031810487 "), 5) == Deletion("pubmed", "31810487")
    bad_deletion = clean_item(Deletion("pubmed", "x1"), 5)
    assert isinstance(bad_deletion, Quarantined) and "invalid PMID" in bad_deletion.reason
    assert isinstance(clean_item(_record(), 5), Document)
    with pytest.raises(TypeError):
        clean_item("not an item", 5)  # type: ignore[arg-type]


def test_keywords_journal_and_language_are_cleaned() -> None:
    record = _record(keywords=["NF-&#954;B", "nf-κb", " <i>E. coli</i> ", "", "Track &amp; trigger"],
                     journal=" The  Journal\nof Things ", language=" ENG ",
                     external_ids={"doi": "DOI:10.1/X", "pmcid": "pmc7"})
    document = clean_record(record, min_abstract_words=5)
    assert document.keywords == ["NF-κB", "E. coli", "Track & trigger"]
    assert document.journal == "The Journal of Things"
    assert document.language == "eng"
    assert document.doi == "10.1/x"
    assert document.aliases == ["doi:10.1/x", "pmcid:PMC7", "pmid:12345"]


# --- what we store is validated: id ranges and field sizes ---------------------------------------------------


def test_numeric_ids_must_fit_a_bigint_and_text_ids_are_bounded() -> None:
    assert normalize_pmid(str(2**63 - 1)) == str(2**63 - 1)
    assert [normalize_pmid(x) for x in (str(2**63), str(10**30), "9" * 40)] == [None] * 3
    assert normalize_pmcid(f"PMC{2**63}") is None
    assert normalize_doi("10.1000/" + "x" * 600) is None and normalize_doi("10.1000/" + "x" * 400)
    assert normalize_arxiv("2101." + "1" * 600) is None
    record = _record(external_ids={"s2": str(10**30), "mag": str(2**63), "doi": "10.1/ok"})
    assert aliases_of(record) == ["doi:10.1/ok", "pmid:12345"]  # the out-of-range ids are not aliases

    too_big = clean_record(_record(source_id=str(2**63)), min_abstract_words=5)
    assert isinstance(too_big, Quarantined) and too_big.reason.startswith("invalid PMID")
    s2 = clean_record(_record(source="s2", source_id=str(10**30), external_ids={"doi": "10.1/ok"}), 5)
    assert isinstance(s2, Quarantined) and s2.reason.startswith("invalid S2 corpus id '1000000000000000")
    deletion = clean_item(Deletion("s2", str(2**63)), 5)
    assert isinstance(deletion, Quarantined) and "invalid S2 corpus id in deletion" in deletion.reason
    assert clean_item(Deletion("s2", "0042"), 5) == Deletion("s2", "42")


@pytest.mark.parametrize(("fields", "reason"), [
    ({"abstract": "word " * 1_000_000}, "abstract longer than 100,000 characters (4,999,999)"),
    ({"title": "t" * 4001}, "title longer than 4,000 characters (4,001)"),
    ({"keywords": ["k" * 1001]}, "keyword longer than 1,000 characters (1,001)"),
    ({"keywords": [f"k{i}" for i in range(2001)]}, "too many keywords: 2,001 (at most 2,000)"),
    ({"journal": "j" * 5000}, "journal longer than 1,000 characters (5,000)"),
    ({"year": 20201}, "year out of range: 20201"),
    ({"version": 2**40}, "version out of range: 1099511627776"),
])
def test_oversized_or_out_of_range_fields_are_quarantined_with_the_reason(fields: dict, reason: str) -> None:
    result = clean_record(_record(**fields), min_abstract_words=5)
    assert isinstance(result, Quarantined) and result.reason == reason and result.record_id == "12345"
    assert isinstance(clean_record(_record(), min_abstract_words=5), Document)
    longer = clean_record(_record(abstract="word " * 30_000), min_abstract_words=5, max_abstract_chars=200_000)
    assert isinstance(longer, Document)  # the limits are settings (KPE_MAX_ABSTRACT_CHARS, KPE_MAX_TITLE_CHARS)
