"""Cross-source dedupe: S2 records that carry a known PMID or DOI merge into the PubMed document."""

from __future__ import annotations

import json
from pathlib import Path

from support.ingest import ingest_specs

from kpe.inputs import pubmed_specs, s2_specs
from warehouse.db import connect


def s2_page_with_ids(shared_data: Path, out: Path, ids: list[dict]) -> Path:
    """A Graph API bulk-search page made of real citing papers (with abstracts), re-keyed to the given ids."""
    paper = json.loads((shared_data / "semantic_scholar" / "graph_api_responses" / "Paper.json").read_text())
    with_abstract = [c for c in paper["citations"] if c.get("abstract") and c.get("corpusId")]
    data = []
    for citing, external in zip(with_abstract, ids, strict=False):
        record = dict(citing)
        record["externalIds"] = {"CorpusId": record["corpusId"], **external}
        data.append(record)
    out.write_text(json.dumps({"total": len(data), "data": data}), encoding="utf-8")
    return out


def test_s2_records_merge_into_pubmed_documents_by_pmid_and_doi(shared_data: Path, tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    lake = tmp_path / "lake"
    medline = sorted((shared_data / "pubmed" / "medline_samples").rglob("*.xml.gz"), key=lambda p: p.name)[:2]
    ingest_specs(con, pubmed_specs([str(p) for p in medline], tmp_path), lake)
    by_pmid, by_doi = con.execute(
        "SELECT doc_id, pmid, doi, title, content_hash FROM documents WHERE doi IS NOT NULL ORDER BY doc_id LIMIT 2"
    ).fetchall()
    n_docs = con.execute("SELECT count(*) FROM documents").fetchone()[0]

    page = s2_page_with_ids(shared_data, tmp_path / "bulk_page.json", [
        {"PubMed": by_pmid[1]},
        {"DOI": by_doi[2].upper()},  # DOIs match case-insensitively
        {"DOI": "10.9999/not-in-pubmed"},
    ])
    report = ingest_specs(con, s2_specs([str(page)], tmp_path), lake)[0]
    assert report.status == "done" and report.records == 3
    assert report.updated == 2 and report.new == 1
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == n_docs + 1

    for doc_id, _pmid, _doi, title, content_hash in (by_pmid, by_doi):
        row = con.execute("SELECT sources, aliases, title, content_hash FROM documents WHERE doc_id = ?",
                          [doc_id]).fetchone()
        assert row[0] == ["pubmed", "s2"]
        assert any(a.startswith("s2:") for a in row[1])  # the S2 corpus id is kept as an alias
        assert row[2] == title and row[3] == content_hash  # PubMed text stays the reference
    aliases = con.execute("SELECT count(*) FROM doc_aliases WHERE alias LIKE 's2:%'").fetchone()[0]
    assert aliases == 3

    # the same S2 file again: skipped by the watermark; a copy under another name: every record unchanged
    assert ingest_specs(con, s2_specs([str(page)], tmp_path), lake)[0].status == "skipped"
    copy = tmp_path / "bulk_page_copy.json"
    copy.write_bytes(page.read_bytes())
    again = ingest_specs(con, s2_specs([str(copy)], tmp_path), lake)[0]
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)


def test_s2_samples_ingest_with_quarantine_reasons(shared_data: Path, tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    reports = ingest_specs(con, s2_specs([str(shared_data / "semantic_scholar")], tmp_path), tmp_path / "lake",
                           batch_size=500)
    assert reports and all(r.status == "done" for r in reports)
    total = sum(r.records for r in reports)
    assert total == sum(r.new + r.updated + r.unchanged + r.quarantined for r in reports)
    reasons = dict(con.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall())
    # the official papers and abstracts samples share no corpus id: every abstract is an orphan
    assert reasons["abstract without paper metadata"] == 100
    assert sum(reasons.values()) == sum(r.quarantined for r in reports)
    s2_with_pmid = con.execute("SELECT count(*) FROM documents WHERE source = 's2' AND pmid IS NOT NULL").fetchone()[0]
    assert s2_with_pmid > 0
