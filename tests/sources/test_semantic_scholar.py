"""Semantic Scholar readers on the real sample files (Datasets API, S2ORC, Graph API, diffs)."""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from kpe.records import BadRecord, Deletion, SourceRecord
from kpe.sources.errors import SourceFileError
from kpe.sources.semantic_scholar import (
    ABSTRACT_ORPHAN_REASON,
    detect_s2_format,
    expand_s2_inputs,
    iter_graph_papers,
    iter_s2_datasets,
    iter_s2_delete_file,
    iter_s2_file,
    iter_s2orc_metadata,
    plan_diff,
    read_s2_unit,
)

ALLOWED_ID_KEYS = {"pmid", "doi", "pmcid", "s2", "mag", "arxiv", "acl", "dblp"}


@pytest.fixture(scope="module")
def s2(shared_data: Path) -> Path:
    return shared_data / "semantic_scholar"


@pytest.fixture(scope="module")
def papers_file(s2: Path) -> Path:
    return s2 / "datasets_api_samples" / "papers" / "papers-sample.jsonl.gz"


@pytest.fixture(scope="module")
def abstracts_file(s2: Path) -> Path:
    return s2 / "datasets_api_samples" / "abstracts" / "abstracts-sample.jsonl.gz"


def _jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write_gz_lines(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    return path


def _kinds(items) -> Counter:
    return Counter(type(i).__name__ for i in items)


def test_papers_abstracts_sample_join(papers_file, abstracts_file):
    papers, abstracts = _jsonl(papers_file), _jsonl(abstracts_file)
    paper_ids = {p["corpusid"] for p in papers}
    abstract_ids = {a["corpusid"] for a in abstracts}
    items = list(iter_s2_datasets([papers_file], [abstracts_file]))
    records = [i for i in items if isinstance(i, SourceRecord)]
    orphans = [i for i in items if isinstance(i, BadRecord)]
    assert [r.source_id for r in records] == [str(p["corpusid"]) for p in papers]
    assert sum(1 for r in records if r.abstract) == len(paper_ids & abstract_ids)
    assert {o.record_id for o in orphans} == {str(i) for i in abstract_ids - paper_ids}
    assert all(o.reason == ABSTRACT_ORPHAN_REASON for o in orphans)
    assert [o.record_id for o in orphans] == sorted((o.record_id for o in orphans), key=int)
    by_id = {str(p["corpusid"]): p for p in papers}
    for record in records:
        raw = by_id[record.source_id]
        assert record.source == "s2" and record.title == (raw["title"] or None) and record.year == raw["year"]
        assert record.pub_date == raw["publicationdate"]
        assert record.journal == ((raw["journal"] or {}).get("name") or raw["venue"] or None)


def test_join_gives_each_paper_its_abstract_in_memory_and_in_sqlite(tmp_path, papers_file, abstracts_file):
    """Real abstract texts re-keyed onto the first 60 real papers (the samples share no corpus id)."""
    papers, abstracts = _jsonl(papers_file), _jsonl(abstracts_file)
    rekeyed = []
    for paper, abstract in zip(papers[:60], abstracts[:60]):
        rekeyed.append({**abstract, "corpusid": paper["corpusid"]})
    rekeyed += abstracts[60:]  # still orphans
    abstracts_path = _write_gz_lines(tmp_path / "abstracts-rekeyed.jsonl.gz",
                                     [json.dumps(a).encode() for a in rekeyed])
    expected = {str(a["corpusid"]): a["abstract"] for a in rekeyed[:60]}

    in_memory = list(iter_s2_datasets([papers_file], [abstracts_path]))
    on_disk = list(iter_s2_datasets([papers_file], [abstracts_path], work_dir=tmp_path, in_memory_max_bytes=0))
    assert in_memory == on_disk
    records = [i for i in in_memory if isinstance(i, SourceRecord)]
    assert {r.source_id: r.abstract for r in records if r.abstract} == expected
    assert sum(1 for i in in_memory if isinstance(i, BadRecord)) == len(abstracts) - 60
    assert [p.name for p in tmp_path.iterdir()] == ["abstracts-rekeyed.jsonl.gz"]  # sqlite index removed


def test_external_ids_mapping(papers_file):
    papers = _jsonl(papers_file)
    records = [i for i in iter_s2_datasets([papers_file], []) if isinstance(i, SourceRecord)]
    assert len(records) == len(papers)
    with_pmid = sum(1 for p in papers if p["externalids"].get("PubMed"))
    with_doi = sum(1 for p in papers if p["externalids"].get("DOI"))
    assert with_pmid > 0 and with_doi > 0
    assert sum(1 for r in records if "pmid" in r.external_ids) == with_pmid
    assert sum(1 for r in records if "doi" in r.external_ids) == with_doi
    for record, paper in zip(records, papers):
        assert set(record.external_ids) <= ALLOWED_ID_KEYS
        assert record.external_ids["s2"] == record.source_id == str(paper["corpusid"])
        if paper["externalids"].get("DOI"):
            assert record.external_ids["doi"] == paper["externalids"]["DOI"]
        if paper["externalids"].get("PubMed"):
            assert record.external_ids["pmid"] == paper["externalids"]["PubMed"]


def test_s2orc_metadata_sample(s2):
    path = s2 / "s2orc_2020_samples" / "metadata_sample.jsonl"
    items = list(iter_s2orc_metadata(path))
    assert _kinds(items) == Counter(SourceRecord=1000)
    assert sum(1 for r in items if r.abstract) == 488
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert sum(1 for r in items if "pmid" in r.external_ids) == sum(1 for x in raw if x["pubmed_id"])
    assert sum(1 for r in items if "doi" in r.external_ids) == sum(1 for x in raw if x["doi"])
    assert all(r.external_ids["s2"] == r.source_id for r in items)
    assert list(iter_s2_file(path)) == items


def test_graph_paper_with_citations(s2):
    paper = json.loads((s2 / "graph_api_responses" / "Paper.json").read_text())
    items = list(iter_graph_papers(paper))
    assert all(isinstance(i, SourceRecord) for i in items)
    assert items[0].source_id == str(paper["corpusId"]) and items[0].title == paper["title"]
    assert items[0].journal == paper["journal"]["name"] and items[0].external_ids["doi"] == paper["externalIds"]["DOI"]
    citing_ids = {str(c["corpusId"]) for c in paper["citations"] if c.get("paperId")}
    citing = [r for r in items if r.source_id in citing_ids]
    assert len(citing) == 1000
    assert sum(1 for r in citing if r.abstract) == 774
    referenced = {str(r["corpusId"]) for r in paper["references"] if r.get("paperId")}
    assert {r.source_id for r in items} == {str(paper["corpusId"])} | citing_ids | referenced
    assert list(iter_s2_file(s2 / "graph_api_responses" / "Paper.json")) == items


def test_graph_paper_with_null_values(s2):
    path = s2 / "graph_api_responses" / "PaperWithNullValues.json"
    paper = json.loads(path.read_text())
    items = list(iter_s2_file(path))
    assert len(items) == 1
    record = items[0]
    assert isinstance(record, SourceRecord)
    assert record.source_id == paper["paperId"] and record.title is None and record.external_ids == {}
    assert list(iter_graph_papers({"title": "no id"})) == [BadRecord("s2", None, "Graph API paper without paperId",
                                                                     '{"title": "no id"}')]


def test_dataset_diff_plan_order(s2):
    diff = json.loads((s2 / "graph_api_responses" / "DatasetDiff.json").read_text())
    steps = plan_diff(diff)
    expected = []
    for d in diff["diffs"]:
        expected += [(d["from_release"], d["to_release"], "update", u) for u in d["update_files"]]
        expected += [(d["from_release"], d["to_release"], "delete", u) for u in d["delete_files"]]
    assert [(s.from_release, s.to_release, s.action, s.url) for s in steps] == expected
    assert len({s.filename for s in steps}) == len(steps)
    gap = copy.deepcopy(diff)
    gap["diffs"][1]["from_release"] = "2024-10-16"
    with pytest.raises(ValueError, match="gap"):
        plan_diff(gap)
    with pytest.raises(ValueError):
        plan_diff({"dataset": "papers"})


def test_delete_file(tmp_path, papers_file):
    ids = [p["corpusid"] for p in _jsonl(papers_file)][:5]
    lines = [json.dumps({"corpusid": i}).encode() for i in ids] + [b'{"updated": "2024-01-01"}']
    path = _write_gz_lines(tmp_path / "20241018_1.gz", lines)
    assert detect_s2_format(path) == "deletes"
    items = list(iter_s2_delete_file(path))
    assert items[:5] == [Deletion("s2", str(i)) for i in ids]
    assert isinstance(items[5], BadRecord) and "line 6" in items[5].reason
    units = expand_s2_inputs([path, papers_file])
    assert [u.kind for u in units] == ["datasets", "deletes"]  # deletes after updates


def test_invalid_json_line_is_a_bad_record_and_neighbours_survive(tmp_path, papers_file):
    lines = gzip.open(papers_file).read().splitlines()[:20]
    garbage = b'{"corpusid": 12345, "title": "cut here'
    path = _write_gz_lines(tmp_path / "papers-broken.jsonl.gz", lines[:10] + [garbage] + lines[10:])
    items = list(iter_s2_file(path))
    assert _kinds(items) == Counter(SourceRecord=20, BadRecord=1)
    bad = items[10]
    assert isinstance(bad, BadRecord) and bad.reason.startswith("invalid JSON at line 11:")
    assert bad.raw_snippet == garbage.decode()[:300] and bad.record_id == "12345"
    assert [i.source_id for i in items if isinstance(i, SourceRecord)] == [
        str(json.loads(line)["corpusid"]) for line in lines
    ]


def test_invalid_utf8_line_is_a_bad_record(tmp_path, papers_file):
    lines = gzip.open(papers_file).read().splitlines()[:6]
    broken = lines[3].replace(b'"title":"', b'"title":"\xff\xfe', 1)
    assert broken != lines[3]
    path = _write_gz_lines(tmp_path / "papers-utf8.jsonl.gz", lines[:3] + [broken] + lines[4:])
    items = list(iter_s2_file(path))
    assert _kinds(items) == Counter(SourceRecord=5, BadRecord=1)
    assert items[3].reason.startswith("invalid UTF-8 at line 4")
    assert items[3].record_id == str(json.loads(lines[3])["corpusid"])


def test_truncated_gzip_yields_what_came_before_then_raises(tmp_path, papers_file):
    data = papers_file.read_bytes()
    path = tmp_path / "papers-truncated.jsonl.gz"
    path.write_bytes(data[: int(len(data) * 0.6)])
    full = list(iter_s2_file(papers_file))
    got = []
    with pytest.raises(SourceFileError) as info:
        for item in iter_s2_file(path):
            got.append(item)
    assert 0 < len(got) < len(full)
    assert got == full[: len(got)]
    assert info.value.items_read == len(got) and "truncated or corrupt" in str(info.value)


def test_gzip_missing_only_its_trailer_keeps_every_line(tmp_path, papers_file):
    data = papers_file.read_bytes()
    path = tmp_path / "papers-no-trailer.jsonl.gz"
    path.write_bytes(data[:-4])  # gzip.open would drop the last block's lines with the EOFError
    full = list(iter_s2_file(papers_file))
    got = []
    with pytest.raises(SourceFileError) as info:
        for item in iter_s2_file(path):
            got.append(item)
    assert got == full and len(got) == 100 and str(path) in str(info.value)


@pytest.mark.parametrize("corpusid, valid", [
    (10**30, False), (2**63, False), ("12345678901234567890123", False), (0, False), (-5, False), ("12a", False),
    (2**63 - 1, True), ("215416146", True),
])
def test_corpus_ids_are_validated(tmp_path, papers_file, corpusid, valid):
    line = json.loads(gzip.open(papers_file).read().splitlines()[0])
    line["corpusid"] = corpusid
    path = _write_gz_lines(tmp_path / "papers-ids.jsonl.gz", [json.dumps(line).encode()])
    (item,) = list(iter_s2_file(path))
    if valid:
        assert isinstance(item, SourceRecord) and item.source_id == str(int(corpusid))
    else:
        assert isinstance(item, BadRecord)
        assert item.reason.startswith("papers record without a valid corpusid at line 1: ")
        assert str(corpusid)[:20] in item.reason and "1..2^63-1" in item.reason
    deletes = _write_gz_lines(tmp_path / "deletes.jsonl.gz", [json.dumps({"corpusid": corpusid}).encode()])
    (deletion,) = list(iter_s2_delete_file(deletes))
    assert isinstance(deletion, Deletion) == valid


def test_truncated_abstracts_fail_before_any_paper(tmp_path, papers_file, abstracts_file):
    data = abstracts_file.read_bytes()
    path = tmp_path / "abstracts-truncated.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(SourceFileError, match="abstracts-truncated"):
        for item in iter_s2_datasets([papers_file], [path]):
            got.append(item)
    assert not any(isinstance(i, SourceRecord) for i in got)  # no paper is joined against a partial index


def test_format_detection_and_lone_abstracts(tmp_path, s2, papers_file, abstracts_file):
    samples = s2 / "datasets_api_samples"
    assert detect_s2_format(papers_file) == "papers"
    assert detect_s2_format(abstracts_file) == "abstracts"
    assert detect_s2_format(samples / "s2orc" / "s2orc-sample.jsonl.gz") == "s2orc"
    assert detect_s2_format(samples / "authors" / "authors-sample.jsonl.gz") == "unsupported"
    assert detect_s2_format(samples / "README.txt") == "unsupported"
    assert detect_s2_format(s2 / "graph_api_responses" / "PaperWithNullValues.json") == "graph"
    # Release files from S3 have names such as 20250822_29: detection reads the content.
    renamed = tmp_path / "20250822_29"
    shutil.copy(papers_file, renamed)
    assert detect_s2_format(renamed) == "papers"
    with pytest.raises(SourceFileError, match="needs its papers"):
        iter_s2_file(abstracts_file)
    with pytest.raises(ValueError, match="need their papers"):
        expand_s2_inputs([abstracts_file])
    with pytest.raises(SourceFileError, match="not a Semantic Scholar paper file"):
        expand_s2_inputs([samples / "authors" / "authors-sample.jsonl.gz"])


def test_s2orc_fulltext_sample(s2):
    path = s2 / "datasets_api_samples" / "s2orc" / "s2orc-sample.jsonl.gz"
    raw = _jsonl(path)
    items = list(iter_s2_file(path))
    assert _kinds(items) == Counter(SourceRecord=len(raw))
    for record, obj in zip(items, raw):
        text = obj["content"]["text"]
        span = json.loads(obj["content"]["annotations"]["title"])[0]
        assert record.title == text[span["start"] : span["end"]].strip()
        assert record.abstract and record.abstract in text
        assert record.external_ids["s2"] == str(obj["corpusid"])


def test_expand_folder_and_glob(s2, papers_file, abstracts_file):
    units = expand_s2_inputs([s2])
    by_kind = {u.kind: u for u in units}
    assert set(by_kind) == {"datasets", "s2orc", "graph", "s2orc_metadata"}
    datasets = by_kind["datasets"]
    assert set(datasets.paths) == {papers_file, abstracts_file} and datasets.abstract_paths == (abstracts_file,)
    assert list(read_s2_unit(datasets.kind, [str(p) for p in datasets.paths])) == list(datasets.iter_items())
    assert datasets.name == "papers-sample.jsonl.gz+abstracts-sample.jsonl.gz"
    assert len({u.name for u in units}) == len(units)
    assert units == expand_s2_inputs([s2])  # stable
    graph_names = sorted(u.name for u in units if u.kind == "graph")
    assert graph_names == ["Paper.json", "PaperWithNullValues.json"]
    globbed = expand_s2_inputs([str(s2 / "datasets_api_samples" / "*" / "*.jsonl.gz")])
    assert [u.kind for u in globbed] == ["datasets", "s2orc"]
    assert len(datasets.sha256()) == 64 and datasets.sha256() != by_kind["s2orc"].sha256()
    items = list(iter_s2_file(s2 / "datasets_api_samples"))
    s2orc_sample = s2 / "datasets_api_samples" / "s2orc" / "s2orc-sample.jsonl.gz"
    assert _kinds(items)["SourceRecord"] == len(_jsonl(papers_file)) + len(_jsonl(s2orc_sample))
