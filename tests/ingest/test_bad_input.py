"""Bad input costs exactly the bad input (issue 11): real MEDLINE files broken record by record, truncated,
empty, symlink loops and unsupported files beside good ones, leftovers of a killed run, and the state a
scheduler sees (``kpe ingest`` exit code, the Prefect flow-run state and its artifacts).
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.environment import isolated_env
from support.ingest import ingest_specs
from support.medline_corruption import BROKEN_RECORDS, CORRUPTED_SAMPLE, in_abstract

from kpe.inputs import pubmed_specs, s2_specs
from kpe.shards import find_orphans, shard_key
from warehouse.db import connect

ROOT = Path(__file__).resolve().parents[2]


def _state(con) -> tuple[set[str], set[tuple[str | None, str]]]:  # noqa: ANN001
    documents = {row[0] for row in con.execute("SELECT doc_id FROM documents").fetchall()}
    quarantine = {(r[0], r[1]) for r in con.execute("SELECT record_id, reason FROM quarantine").fetchall()}
    return documents, quarantine


@pytest.fixture(scope="module")
def sample(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The real 30-record file, its raw XML and what ingesting it intact gives."""
    path = shared_data / "pubmed" / "medline_samples" / CORRUPTED_SAMPLE
    tmp = tmp_path_factory.mktemp("reference")
    con = connect(tmp / "w.duckdb")
    (report,) = ingest_specs(con, pubmed_specs([str(path)], tmp), tmp / "lake")
    documents, quarantine = _state(con)
    con.close()
    assert report.status == "done" and report.records == 30
    return {"path": path, "xml": gzip.decompress(path.read_bytes()), "documents": documents,
            "quarantine": quarantine, "report": report}


def _ingest(tmp_path: Path, *paths: Path, name: str = "w.duckdb"):  # noqa: ANN202
    con = connect(tmp_path / name)
    return con, ingest_specs(con, pubmed_specs([str(p) for p in paths], tmp_path), tmp_path / "lake")


CASES = {**{case: (index, breaks) for case, (index, breaks, _reason) in BROKEN_RECORDS.items()},
         "5 MB abstract": (7, lambda x: in_abstract(x, 7, b"word " * 1_000_000))}
REASONS = {**{case: reason for case, (_i, _b, reason) in BROKEN_RECORDS.items()},
           "5 MB abstract": "abstract longer than 100,000 characters"}


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_record_is_quarantined_and_every_other_record_ingested(case: str, sample: dict,
                                                                          tmp_path: Path) -> None:
    index, breaks = CASES[case]
    broken = tmp_path / sample["path"].name
    broken.write_bytes(gzip.compress(breaks(sample["xml"])))
    con, (report,) = _ingest(tmp_path, broken)
    documents, quarantine = _state(con)
    pmid = _pmid_of(sample["xml"], index)
    assert report.status == "done" and report.error is None  # the file was read to its end
    assert report.records == 30 and report.quarantined == len(sample["quarantine"]) + 1
    assert documents == sample["documents"] - {f"pmid:{pmid}"}  # exactly the bad record is missing
    (added,) = quarantine - sample["quarantine"]
    assert added[0] == pmid and REASONS[case] in added[1]


def _pmid_of(xml: bytes, index: int) -> str:
    return re.findall(rb"<PubmedArticle>\s*<MedlineCitation[^>]*>\s*<PMID[^>]*>(\d+)</PMID>", xml)[index].decode()


def test_truncated_file_is_partial_keeps_complete_records_and_is_retried_once_it_changes(sample: dict,
                                                                                          tmp_path: Path) -> None:
    path = tmp_path / sample["path"].name
    compressed = gzip.compress(sample["xml"])
    path.write_bytes(compressed[:-4])  # only the gzip trailer is missing
    con, (report,) = _ingest(tmp_path, path)
    assert report.status == "partial" and report.records == 30 and "truncated gzip" in report.error
    assert str(path) in report.error
    assert _state(con)[0] == sample["documents"]  # every record was complete: nothing lost

    path.write_bytes(compressed[: len(compressed) // 2])  # cut in the middle: the complete records are kept
    (report,) = ingest_specs(con, pubmed_specs([str(path)], tmp_path), tmp_path / "lake")
    assert report.status == "partial" and 0 < report.records < 30 and report.new == 0  # all known already
    (again,) = ingest_specs(con, pubmed_specs([str(path)], tmp_path), tmp_path / "lake")
    assert again.status == "skipped"  # the same bytes are not read again...

    path.write_bytes(compressed)  # ...but the complete file (a new checksum) is, without duplicates
    (fixed,) = ingest_specs(con, pubmed_specs([str(path)], tmp_path), tmp_path / "lake")
    assert fixed.status == "done" and fixed.records == 30 and fixed.new == 0
    assert _state(con)[0] == sample["documents"]
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == len(sample["documents"])


def test_empty_and_non_medline_files_fail_naming_their_full_path_and_are_retried(tmp_path: Path) -> None:
    empty, html = tmp_path / "pubmed99n0001.xml", tmp_path / "pubmed99n0002.xml.gz"
    empty.write_bytes(b"")
    html.write_bytes(gzip.compress(b"<?xml version='1.0'?><html><body>moved</body></html>"))
    con, reports = _ingest(tmp_path, empty, html)
    assert [(r.status, r.records) for r in reports] == [("failed", 0), ("failed", 0)]
    assert f"{empty}: empty file" in reports[0].error
    assert str(html) in reports[1].error and "not a MEDLINE file: the root element is <html>" in reports[1].error
    again = ingest_specs(con, pubmed_specs([str(empty)], tmp_path), tmp_path / "lake")
    assert again[0].status == "failed"  # failed inputs are tried again by the next run


def test_symlink_loops_beside_good_files_fail_alone(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    samples = sorted((shared_data / "pubmed" / "medline_samples" / "baseline").glob("*.xml.gz"))[:2]
    for sample_file in samples:
        shutil.copy(sample_file, folder / sample_file.name)
    (folder / "loop.xml.gz").symlink_to("loop.xml.gz")  # a link to itself
    (folder / "a.xml").symlink_to("b.xml")  # two links to each other
    (folder / "b.xml").symlink_to("a.xml")
    (folder / "sub" / "up").symlink_to("..")  # a folder loop
    (folder / "gone.xml").symlink_to("nowhere.xml")  # a broken link

    specs = pubmed_specs([str(folder)], tmp_path)
    failed = {s.uri: s.error for s in specs if s.error}
    assert set(failed) == {str(folder / n) for n in ("loop.xml.gz", "a.xml", "b.xml", "gone.xml")}
    assert all(error.startswith(f"{uri}: cannot read: ") for uri, error in failed.items())
    assert "Too many levels of symbolic links" in failed[str(folder / "loop.xml.gz")]

    con, reports = _ingest(tmp_path, folder)
    by_name = {r.name: r for r in reports}
    assert {r.name for r in reports if r.status == "failed"} == {"loop.xml.gz", "a.xml", "b.xml", "gone.xml"}
    for sample_file in samples:  # the good files beside them are ingested whole
        report = by_name[sample_file.name]
        assert report.status == "done"
        assert report.records == gzip.decompress(sample_file.read_bytes()).count(b"<PubmedArticle>")


def test_an_unsupported_or_missing_s2_input_fails_alone(shared_data: Path, tmp_path: Path) -> None:
    samples = shared_data / "semantic_scholar" / "datasets_api_samples"
    papers = samples / "papers" / "papers-sample.jsonl.gz"
    authors = samples / "authors" / "authors-sample.jsonl.gz"
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop.name)
    missing = tmp_path / "nope.jsonl.gz"
    specs = s2_specs([str(papers), str(authors), str(loop), str(missing)], tmp_path)
    failed = {s.uri: s.error for s in specs if s.error}
    assert set(failed) == {str(authors), str(loop), str(missing)}
    assert "not a Semantic Scholar paper file" in failed[str(authors)] and failed[str(authors)].startswith(str(authors))
    assert "Too many levels of symbolic links" in failed[str(loop)]
    assert str(missing) in failed[str(missing)]
    con = connect(tmp_path / "w.duckdb")
    reports = ingest_specs(con, specs, tmp_path / "lake")
    assert sorted(r.status for r in reports) == ["done", "failed", "failed", "failed"]
    (good,) = [r for r in reports if r.status == "done"]
    assert good.records == 100  # the official papers sample


# --- leftovers of a killed run --------------------------------------------------------------------------------


def test_orphans_are_temporary_files_of_dead_writers_and_unlisted_shards_of_known_files(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    part = lake / "documents" / "source=pubmed" / "ingest_date=2026-01-01"
    part.mkdir(parents=True)
    key = shard_key("pubmed26n0001.xml.gz", "ab" * 32)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    files = {
        "listed": part / f"{key}-b00001.parquet",
        "unlisted": part / f"{key}-b00002.parquet",  # renamed into place, its batch never committed
        "unknown": part / f"{shard_key('other.xml.gz', 'cd' * 32)}-b00001.parquet",  # the warehouse lost it: kept
        "dead tmp": part / f".{key}-b00003.parquet.{dead.pid}.tmp",
        "live tmp": part / f".{key}-b00003.parquet.{os.getppid()}.tmp",
    }
    for path in files.values():
        path.write_bytes(b"x")
    listed = {files["listed"].relative_to(lake).as_posix()}
    now = time.time()
    assert find_orphans(lake, listed, {key}, now=now) == [files["dead tmp"]]  # fresh unlisted: maybe in flight
    later = find_orphans(lake, listed, {key}, now=now + 601)
    assert sorted(later) == sorted([files["dead tmp"], files["unlisted"]])
    much_later = find_orphans(lake, listed, {key}, now=now + 7200)
    assert sorted(much_later) == sorted([files["dead tmp"], files["live tmp"], files["unlisted"]])


def _killed_while_writing_a_shard(db: Path, lake: Path, source: str, download: Path) -> None:
    """Child process: ingest ``source`` and die by SIGKILL right after the first shard's temporary file is
    written (before its rename)."""
    import pyarrow.parquet as pq

    real = pq.write_table

    def write_then_die(table, where, **kwargs):  # noqa: ANN001, ANN202
        real(table, where, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    pq.write_table = write_then_die
    ingest_specs(connect(db), pubmed_specs([source], download), lake)


FLOW_SCRIPT = """
import json, sys
from typer.testing import CliRunner
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, FlowFilter
from flows.cli import app

run = CliRunner().invoke(app, ["ingest", *sum((["--pubmed", p] for p in sys.argv[1:]), [])])
with get_client(sync_client=True) as client:
    flow_run = client.read_flow_runs(flow_filter=FlowFilter(name={"any_": ["ingest"]}))[0]
    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id={"any_": [flow_run.id]}))
print("RESULT" + json.dumps({
    "exit_code": run.exit_code, "output": run.output,
    "state": [flow_run.state.type.value, flow_run.state.name, flow_run.state.message],
    "artifacts": {a.key: [a.description, a.data] for a in artifacts},
}))
"""


def test_truncated_input_fails_the_flow_run_and_the_command_and_leftovers_are_removed(sample: dict,
                                                                                        tmp_path: Path) -> None:
    good = sample["path"]
    truncated = tmp_path / "pubmed24n9999.xml.gz"
    truncated.write_bytes(gzip.compress(sample["xml"])[:-4])
    db, lake = tmp_path / "w.duckdb", tmp_path / "lake"

    child = multiprocessing.get_context("fork").Process(target=_killed_while_writing_a_shard,
                                                        args=(db, lake, str(good), tmp_path))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    leftovers = list(lake.rglob("*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".")

    env = isolated_env(tmp_path, KPE_WAREHOUSE_PATH=str(db), KPE_LAKE_DIR=str(lake),
                       PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", FLOW_SCRIPT, str(good), str(truncated)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert "RESULT" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])

    # the command exits non-zero and names the file by its full path
    assert out["exit_code"] == 1, out["output"]
    assert f"partial: {truncated}: truncated gzip" in out["output"].replace("\n", "")
    assert "1 partial, 0 failed input(s)" in out["output"]
    # the flow run is Failed (not Completed), with the counts in its message and its artifacts
    state_type, state_name, message = out["state"]
    assert (state_type, state_name) == ("FAILED", "Failed")
    assert message.startswith("1 partial and 0 failed of 2 inputs") and str(truncated) in message
    description, table = out["artifacts"]["ingest-summary"]
    assert "1 partial, 0 failed" in description
    rows = json.loads(table) if isinstance(table, str) else table
    assert rows[0]["partial"] == 1 and rows[0]["failed"] == 0 and rows[0]["records"] == 60
    assert str(truncated) in out["artifacts"]["ingest-problems"][1]

    # the killed run's temporary shard is gone; the lake holds exactly the listed shards; nothing was lost
    con = connect(db)
    assert not list(lake.rglob("*.tmp"))
    listed = {row[0] for row in con.execute("SELECT path FROM shards").fetchall()}
    assert {p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet")} == listed
    assert con.execute("SELECT name, status, n_records FROM ingest_files ORDER BY name").fetchall() == [
        (good.name, "done", 30), (truncated.name, "partial", 30)]
    assert _state(con)[0] == sample["documents"]


def test_the_alerting_automation_in_the_docs_is_valid() -> None:
    import yaml
    from prefect.events.schemas.automations import AutomationCore

    data = yaml.safe_load((ROOT / "docs" / "automations" / "ingest-problems.yaml").read_text(encoding="utf-8"))
    automation = AutomationCore.model_validate(data)  # what `prefect automation create --from-file` does
    assert automation.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert "ingest" in automation.trigger.match_related.model_dump()["prefect.resource.name"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/automations/ingest-problems.yaml" in readme and "prefect.flow-run.Failed" in readme
