"""Ingestion end to end on the real MEDLINE samples: counts, idempotence, deletions, crash/resume, shards."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import os
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from lxml import etree
from support.ingest import ingest_specs

from kpe.ingest import ingest_unit
from kpe.inputs import InputSpec, pubmed_specs, unit_from_spec
from warehouse.db import connect
from warehouse.ingest_store import DuckDBIngestStore


def medline_sample_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "pubmed" / "medline_samples").rglob("*.xml.gz"), key=lambda p: p.name)


def plain_counts(files: list[Path]) -> tuple[int, int, set[str]]:
    """PubmedArticle count, DeleteCitation PMID count and the last-seen set of live PMIDs, by plain lxml."""
    articles, deletions, live = 0, 0, set()
    for path in files:
        root = etree.parse(gzip.open(path)).getroot()
        for el in root.iter("PubmedArticle", "DeleteCitation"):
            if el.tag == "PubmedArticle":
                articles += 1
                live.add(el.findtext("MedlineCitation/PMID").strip())
            else:
                pmids = [p.text.strip() for p in el.findall("PMID")]
                deletions += len(pmids)
                live.difference_update(pmids)
    return articles, deletions, live


def test_medline_samples_ingest_counts_and_rerun_is_a_no_op(shared_data: Path, tmp_path: Path) -> None:
    files = medline_sample_files(shared_data)
    articles, n_deletions, live = plain_counts(files)
    con = connect(tmp_path / "w.duckdb")
    specs = pubmed_specs([str(shared_data / "pubmed" / "medline_samples")], tmp_path / "dl")
    assert [s.name for s in specs] == [f.name for f in files]

    reports = ingest_specs(con, specs, tmp_path / "lake")
    assert all(r.status == "done" for r in reports)
    records = sum(r.records for r in reports)
    assert records == articles == 445
    # every record is a document (new/updated/unchanged) or a quarantine row; deletions are counted apart
    assert records == sum(r.new + r.updated + r.unchanged + r.quarantined for r in reports)
    assert sum(r.deleted for r in reports) == n_deletions > 0
    assert con.execute("SELECT count(*) FROM deletions").fetchone()[0] == n_deletions
    quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert quarantined == sum(r.quarantined for r in reports)

    current = {r[0] for r in con.execute("SELECT pmid FROM documents WHERE NOT deleted").fetchall()}
    quarantined_ids = {r[0] for r in con.execute("SELECT record_id FROM quarantine").fetchall()}
    # live PMIDs are current documents unless their latest record was quarantined
    assert current <= live
    assert live - current <= quarantined_ids
    # the sampled update files delete PMIDs outside the sample: recorded, with no document to delete
    assert con.execute("SELECT count(*) FROM deletions WHERE doc_id IS NULL").fetchone()[0] == n_deletions

    before = con.execute("SELECT count(*), sum(hash(content_hash)), max(updated_at) FROM documents").fetchone()
    shards_before = con.execute("SELECT count(*) FROM shards").fetchone()[0]
    again = ingest_specs(con, specs, tmp_path / "lake")
    assert {r.status for r in again} == {"skipped"}
    assert con.execute("SELECT count(*), sum(hash(content_hash)), max(updated_at) FROM documents").fetchone() == before
    assert con.execute("SELECT count(*) FROM shards").fetchone()[0] == shards_before
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == quarantined


def test_shards_are_recorded_with_checksums_and_replay_the_documents(shared_data: Path, tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    lake = tmp_path / "lake"
    ingest_specs(con, pubmed_specs([str(shared_data / "pubmed" / "medline_samples")], tmp_path / "dl"), lake)
    rows = con.execute("SELECT path, rows, bytes, sha256, kind FROM shards").fetchall()
    assert rows and {r[4] for r in rows} == {"documents", "deletions"}
    for path, n, size, sha, _kind in rows:
        file = lake / path
        assert file.stat().st_size == size
        assert hashlib.sha256(file.read_bytes()).hexdigest() == sha
        assert pq.ParquetFile(file).metadata.num_rows == n
        assert pq.ParquetFile(file).metadata.row_group(0).column(0).compression == "ZSTD"
    assert not list(lake.rglob("*.tmp"))
    # replay: the latest shard row per doc_id minus deleted ids gives the current documents
    replay = con.execute(
        f"""WITH docs AS (SELECT doc_id, content_hash, row_number() OVER (PARTITION BY doc_id
                ORDER BY ingested_at DESC, filename DESC, file_row_number DESC) AS rn
              FROM read_parquet('{lake}/documents/**/*.parquet', filename=true, file_row_number=true,
                                hive_partitioning=false))
            SELECT doc_id, content_hash FROM docs WHERE rn = 1
              AND doc_id NOT IN (SELECT doc_id FROM documents WHERE deleted) ORDER BY doc_id""").fetchall()
    assert replay == con.execute(
        "SELECT doc_id, content_hash FROM documents WHERE NOT deleted ORDER BY doc_id"
    ).fetchall()


def test_crash_mid_file_resumes_without_duplicates_or_gaps(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "pubmed" / "full_files" / "pubmed20n0014.xml.gz"
    spec = InputSpec(source="pubmed", name=path.name, uri=str(path), paths=[str(path)])
    limit = 1200  # first 1,200 records keep the test fast

    def unit(fail_at: int | None):
        u = unit_from_spec(spec)
        read = u.read

        def reader():
            for i, item in enumerate(itertools.islice(read(), limit)):
                if fail_at is not None and i == fail_at:
                    raise RuntimeError("simulated crash")
                yield item
        u.read = reader
        return u

    reference = connect(tmp_path / "ref.duckdb")
    ingest_unit(unit(None), DuckDBIngestStore(reference), lake_dir=tmp_path / "ref", batch_size=500,
                min_abstract_words=5, log=lambda _m: None)

    con = connect(tmp_path / "w.duckdb")
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingest_unit(unit(700), DuckDBIngestStore(con), lake_dir=tmp_path / "lake", batch_size=500,
                    min_abstract_words=5, log=lambda _m: None)
    row = con.execute("SELECT status, records_done, batches_done FROM ingest_files").fetchone()
    assert row == ("failed", 500, 1)  # the half-read second batch left nothing behind
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] + \
        con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 500

    report = ingest_unit(unit(None), DuckDBIngestStore(con), lake_dir=tmp_path / "lake", batch_size=500,
                         min_abstract_words=5, log=lambda _m: None)
    assert report.status == "done" and report.records == limit
    query = "SELECT doc_id, content_hash FROM documents ORDER BY doc_id"
    assert con.execute(query).fetchall() == reference.execute(query).fetchall()
    q2 = "SELECT record_id, reason FROM quarantine ORDER BY record_id"
    assert con.execute(q2).fetchall() == reference.execute(q2).fetchall()
    assert con.execute("SELECT count(*) FROM shards").fetchone()[0] == 3


def test_delete_citation_deletes_ingested_documents(shared_data: Path, tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    baseline = medline_sample_files(shared_data)[0]
    ingest_specs(con, pubmed_specs([str(baseline)], tmp_path), tmp_path / "lake")
    victims = [r[0] for r in con.execute("SELECT pmid FROM documents ORDER BY pmid LIMIT 3").fetchall()]
    update = tmp_path / "pubmed99n9999.xml"
    update.write_text("<PubmedArticleSet><DeleteCitation>" + "".join(f"<PMID Version=\"1\">{p}</PMID>" for p in victims)
                      + "</DeleteCitation></PubmedArticleSet>", encoding="utf-8")
    report = ingest_specs(con, pubmed_specs([str(update)], tmp_path), tmp_path / "lake")[0]
    assert report.deleted == 3 and report.records == 0
    rows = con.execute("SELECT pmid, deleted, deleted_at IS NOT NULL FROM documents WHERE pmid IN (SELECT unnest(?))",
                       [victims]).fetchall()
    assert sorted(rows) == [(p, True, True) for p in sorted(victims)]
    assert con.execute("SELECT count(*) FROM deletions WHERE doc_id IS NOT NULL").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM shards WHERE kind = 'deletions'").fetchone()[0] == 1


def test_revised_record_replaces_earlier_version_and_changes_content_hash(shared_data: Path, tmp_path: Path) -> None:
    original = shared_data / "pubmed" / "single_records" / "pubmed-29768149.xml"
    text = original.read_text(encoding="utf-8")
    revised = tmp_path / "pubmed99n9999.xml"
    revised.write_text(
        text.replace("<AbstractText", "<AbstractText>Revised opening sentence.</AbstractText><AbstractText", 1),
        encoding="utf-8",
    )
    con = connect(tmp_path / "w.duckdb")
    ingest_specs(con, pubmed_specs([str(original)], tmp_path), tmp_path / "lake")
    first = con.execute("SELECT doc_id, content_hash, first_seen FROM documents").fetchall()
    report = ingest_specs(con, pubmed_specs([str(revised)], tmp_path), tmp_path / "lake")[0]
    assert report.updated == 1 and report.new == 0
    second = con.execute("SELECT doc_id, content_hash, first_seen, abstract FROM documents").fetchall()
    assert len(second) == 1 and second[0][0] == first[0][0] and second[0][2] == first[0][2]
    assert second[0][1] != first[0][1] and "Revised opening sentence." in second[0][3]


def test_bad_inputs_give_partial_files_and_quarantine_rows_and_keep_stored_data(shared_data: Path,
                                                                                tmp_path: Path) -> None:
    """A truncated file is partial with the records before the cut; a malformed record costs only itself (the
    file is done, the record quarantined with its reason); a record without text is quarantined."""
    good = medline_sample_files(shared_data)[0]
    raw = gzip.decompress(good.read_bytes())
    cut = raw.index(b"</PubmedArticle>", len(raw) // 2) + len(b"</PubmedArticle>")
    n_records = raw.count(b"<PubmedArticle>")

    truncated = tmp_path / "pubmed90n0001.xml.gz"
    truncated.write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) * 2 // 3])
    malformed = tmp_path / "pubmed90n0002.xml"
    malformed.write_bytes(raw[:cut] + b"<PubmedArticle><broken></PubmedArticle>" + raw[cut:])
    no_text = tmp_path / "pubmed90n0003.xml"
    article = raw[raw.index(b"<PubmedArticle>"): raw.index(b"</PubmedArticle>") + len(b"</PubmedArticle>")]
    stripped = etree.fromstring(article)
    for tag in ("ArticleTitle", "Abstract"):
        for el in stripped.iter(tag):
            el.getparent().remove(el)
    no_text.write_bytes(b"<PubmedArticleSet>" + etree.tostring(stripped) + b"</PubmedArticleSet>")

    con = connect(tmp_path / "w.duckdb")
    lake = tmp_path / "lake"
    stored_quarantined = ingest_specs(con, pubmed_specs([str(good)], tmp_path), lake)[0].quarantined
    stored = con.execute("SELECT doc_id, content_hash FROM documents ORDER BY doc_id").fetchall()

    reports = {r.name: r for r in ingest_specs(con, pubmed_specs([str(truncated), str(malformed), str(no_text)],
                                                                 tmp_path), lake)}
    assert reports[truncated.name].status == "partial" and reports[truncated.name].error
    assert str(truncated) in reports[truncated.name].error  # named by its full path
    assert reports[malformed.name].status == "done" and reports[malformed.name].error is None
    assert reports[malformed.name].records == n_records + 1  # every record, before and after the bad one
    assert reports[malformed.name].quarantined == 1 + stored_quarantined
    reason, record_id = con.execute("SELECT reason, record_id FROM quarantine WHERE file_name = ? AND reason LIKE "
                                    "'malformed XML%'", [malformed.name]).fetchone()
    assert reason.startswith("malformed XML at line 4: ") and record_id is None
    assert reports[no_text.name].quarantined == 1
    reason = con.execute("SELECT reason FROM quarantine WHERE file_name = ?", [no_text.name]).fetchone()[0]
    assert "no title and no abstract" in reason
    after = dict(con.execute("SELECT doc_id, content_hash FROM documents").fetchall())
    assert all(after[doc_id] == h for doc_id, h in stored)  # nothing already stored is lost
    statuses = dict(con.execute("SELECT name, status FROM ingest_files").fetchall())
    assert statuses[malformed.name] == "done" and statuses[truncated.name] == "partial"


# --- the reader process (ingest_unit(parallel=True)) ---------------------------------------------------------


def _full_file_unit(shared_data: Path, limit: int, pid_file: Path | None = None, fail_at: int | None = None,
                    kill_at: int | None = None):
    """The first ``limit`` items of a real full MEDLINE file; the reader notes the process it runs in and can
    raise (``fail_at``) or kill its own process (``kill_at``) at an item."""
    path = shared_data / "pubmed" / "full_files" / "pubmed20n0014.xml.gz"
    unit = unit_from_spec(InputSpec(source="pubmed", name=path.name, uri=str(path), paths=[str(path)]))
    read = unit.read

    def reader():
        if pid_file is not None:
            pid_file.write_text(str(os.getpid()))
        for i, item in enumerate(itertools.islice(read(), limit)):
            if i == fail_at:
                raise RuntimeError("simulated crash")
            if i == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            yield item
    unit.read = reader
    return unit


def _state(con, lake: Path) -> dict:  # noqa: ANN001
    """Everything an ingest leaves behind, without timestamps: warehouse rows and shard contents."""
    shards = con.execute("SELECT path, kind, rows, batch FROM shards ORDER BY path").fetchall()
    return {
        "documents": con.execute("SELECT * EXCLUDE (first_seen, updated_at, deleted_at, last_file_id) "
                                 "FROM documents ORDER BY doc_id").fetchall(),
        "aliases": con.execute("SELECT alias, doc_id FROM doc_aliases ORDER BY alias").fetchall(),
        "quarantine": con.execute("SELECT source, file_name, record_id, reason, raw_snippet FROM quarantine "
                                  "ORDER BY quarantine_id").fetchall(),
        "deletions": con.execute("SELECT source, source_id, doc_id FROM deletions ORDER BY ALL").fetchall(),
        "files": con.execute("SELECT name, status, records_done, batches_done, n_records, n_new, n_updated, "
                             "n_unchanged, n_deleted, n_quarantined, error "
                             "FROM ingest_files ORDER BY file_id").fetchall(),
        "shards": shards,
        "shard_rows": {path: pq.read_table(lake / path).drop(["ingested_at"]).to_pylist() for path, *_ in shards},
    }


@pytest.fixture()
def no_new_children() -> Callable[[], bool]:
    """Whether this process has no child process the test started (the session's Prefect server may be older)."""
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    return lambda: not [child for child in psutil.Process().children(recursive=True) if child.pid not in before]


def test_reader_process_gives_the_same_documents_quarantine_and_shards(shared_data: Path, tmp_path: Path,
                                                                       no_new_children: Callable[[], bool]) -> None:
    samples = pubmed_specs([str(shared_data / "pubmed" / "medline_samples")], tmp_path / "dl")
    states, readers = {}, {}
    for parallel in (False, True):
        con, lake = connect(tmp_path / f"{parallel}.duckdb"), tmp_path / f"lake-{parallel}"
        pid_file = tmp_path / f"reader-{parallel}.pid"
        # revised records, deletions and bad records (samples), then 2,600 records of a full file in batches
        # of 400 (the last one partial)
        units = [unit_from_spec(s) for s in samples] + [_full_file_unit(shared_data, 2600, pid_file)]
        reports = [ingest_unit(u, DuckDBIngestStore(con), lake_dir=lake, batch_size=400, min_abstract_words=5,
                               log=lambda _m: None, parallel=parallel) for u in units]
        assert {r.status for r in reports} == {"done"}
        states[parallel], readers[parallel] = _state(con, lake), int(pid_file.read_text())
    assert readers[False] == os.getpid() != readers[True]  # the parallel run really read in another process
    assert states[True]["files"][-1][2:4] == (2600, 7)
    assert states[True]["deletions"] and states[True]["quarantine"] and len(states[True]["documents"]) > 2500
    assert states[True] == states[False]
    assert no_new_children()


def test_crash_in_the_reader_process_fails_the_file_and_a_rerun_resumes_exactly(
        shared_data: Path, tmp_path: Path, no_new_children: Callable[[], bool]) -> None:
    reference = connect(tmp_path / "ref.duckdb")
    ingest_unit(_full_file_unit(shared_data, 1500), DuckDBIngestStore(reference), lake_dir=tmp_path / "ref",
                batch_size=500, min_abstract_words=5, log=lambda _m: None, parallel=False)

    con, lake = connect(tmp_path / "w.duckdb"), tmp_path / "lake"
    with pytest.raises(RuntimeError, match="simulated crash") as raised:
        ingest_unit(_full_file_unit(shared_data, 1500, fail_at=1200), DuckDBIngestStore(con), lake_dir=lake,
                    batch_size=500, min_abstract_words=5, log=lambda _m: None, parallel=True)
    assert any("reader process" in note for note in raised.value.__notes__)  # with the reader's traceback
    assert con.execute("SELECT status, records_done, batches_done FROM ingest_files").fetchone() == ("failed", 1000, 2)
    assert no_new_children()

    # resume in a reader process again: it skips the 1,000 committed items and writes batch 3 only
    report = ingest_unit(_full_file_unit(shared_data, 1500), DuckDBIngestStore(con), lake_dir=lake,
                         batch_size=500, min_abstract_words=5, log=lambda _m: None, parallel=True)
    assert report.status == "done" and report.records == 1500
    assert _state(con, lake) == _state(reference, tmp_path / "ref")


def test_reader_process_file_error_keeps_the_records_before_it(shared_data: Path, tmp_path: Path,
                                                               no_new_children: Callable[[], bool]) -> None:
    raw = gzip.decompress(medline_sample_files(shared_data)[0].read_bytes())
    cut = raw.index(b"</PubmedArticle>", len(raw) // 2) + len(b"</PubmedArticle>")
    malformed = tmp_path / "pubmed90n0002.xml"  # a bad record in the middle, then the file cut in a record
    malformed.write_bytes(raw[:cut] + b"<PubmedArticle><broken></PubmedArticle>" + raw[cut:cut + (len(raw) - cut) // 2])
    reports, quarantine = {}, {}
    for parallel in (False, True):
        con = connect(tmp_path / f"{parallel}.duckdb")
        spec = InputSpec(source="pubmed", name=malformed.name, uri=str(malformed), paths=[str(malformed)])
        reports[parallel] = ingest_unit(unit_from_spec(spec), DuckDBIngestStore(con), lake_dir=tmp_path / "lake",
                                        batch_size=7, min_abstract_words=5, log=lambda _m: None, parallel=parallel)
        quarantine[parallel] = con.execute("SELECT record_id, reason FROM quarantine ORDER BY ALL").fetchall()
    complete = raw[cut:cut + (len(raw) - cut) // 2]
    complete = complete[:complete.rfind(b"</PubmedArticle>")].count(b"<PubmedArticle>")
    assert reports[True].status == "partial" and "truncated XML" in reports[True].error
    assert reports[True].records == raw[:cut].count(b"<PubmedArticle>") + 1 + complete
    assert (reports[True].error, reports[True].records) == (reports[False].error, reports[False].records)
    assert quarantine[True] == quarantine[False] and any("malformed XML" in r for _, r in quarantine[True])
    assert no_new_children()


def test_reader_process_is_stopped_when_committing_fails_or_it_dies(shared_data: Path, tmp_path: Path,
                                                                    no_new_children: Callable[[], bool]) -> None:
    class FailingStore(DuckDBIngestStore):
        def commit(self, file_id, batch, now):  # noqa: ANN001, ANN201
            if batch.number == 2:
                raise OSError("disk full")
            return super().commit(file_id, batch, now)

    con = connect(tmp_path / "w.duckdb")
    pid_file = tmp_path / "reader.pid"
    with pytest.raises(OSError, match="disk full"):
        ingest_unit(_full_file_unit(shared_data, 30000, pid_file), FailingStore(con), lake_dir=tmp_path / "lake",
                    batch_size=300, min_abstract_words=5, log=lambda _m: None, parallel=True)
    assert not psutil.pid_exists(int(pid_file.read_text())) and no_new_children()
    assert con.execute("SELECT status, records_done FROM ingest_files").fetchone() == ("failed", 300)

    # a reader process that dies without a word (killed, out of memory) fails the file instead of hanging
    con = connect(tmp_path / "w2.duckdb")
    with pytest.raises(RuntimeError, match="reader process died"):
        ingest_unit(_full_file_unit(shared_data, 1500, kill_at=700), DuckDBIngestStore(con),
                    lake_dir=tmp_path / "lake2", batch_size=500, min_abstract_words=5, log=lambda _m: None,
                    parallel=True)
    assert con.execute("SELECT status, records_done FROM ingest_files").fetchone() == ("failed", 500)
    assert no_new_children()
