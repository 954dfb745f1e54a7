"""Sharing the warehouse: readers answer during a nightly run, a second run refuses, the backlog streams in order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from support.environment import isolated_env
from support.ingest import ingest_specs

from kpe.inputs import pubmed_specs
from warehouse import extraction
from warehouse.db import WarehouseBusy, connect, writer_lock

ROOT = Path(__file__).resolve().parents[2]


def _env(root: Path, shared_data: Path, **extra: str) -> dict[str, str]:
    return isolated_env(root, shared_data, **extra)


def _kpe(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def _committed_docs(db: Path) -> int:
    """Documents the running extraction has committed (read the way any reader would: briefly, read-only)."""
    if not db.exists():
        return 0
    try:
        with connect(db, read_only=True, wait_s=0) as con:
            row = con.execute("SELECT max(n_docs) FROM extraction_runs WHERE status = 'running'").fetchone()
    except (WarehouseBusy, duckdb.Error):
        return 0
    return row[0] or 0


def test_readers_answer_and_a_second_run_refuses_while_the_nightly_runs(tmp_path: Path, shared_data: Path,
                                                                        prefect_api: str) -> None:
    db = tmp_path / "w.duckdb"
    env = _env(tmp_path, shared_data, KPE_EXTRACT_BATCH_SIZE="8", PREFECT_API_URL=prefect_api)
    samples = shared_data / "pubmed" / "medline_samples"
    log = (tmp_path / "nightly.log").open("w")  # a file, not a pipe: its logs never fill a buffer and block it
    nightly = subprocess.Popen([sys.executable, "-m", "flows.cli", "nightly", "--pubmed", str(samples), "--limit",
                                "160", "--fast"], cwd=ROOT, env=env, text=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 420
        while _committed_docs(db) < 16:
            assert nightly.poll() is None, (tmp_path / "nightly.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the nightly committed no batch in time"
            time.sleep(0.5)

        # at the same time: two readers (kpe sql, kpe status) and a second writer (another nightly)
        sql = _kpe(["sql", "SELECT count(DISTINCT doc_id) AS n FROM keyphrases", "--format", "json"], env)
        status = _kpe(["status"], env)
        second = _kpe(["nightly", "--pubmed", str(samples)], env)
        outputs = {name: proc.communicate(timeout=300)[0] for name, proc in
                   (("sql", sql), ("status", status), ("second", second))}
        assert nightly.poll() is None, "the nightly ended before the readers were tried: make it longer"
        assert sql.returncode == 0, outputs["sql"]
        seen = int(outputs["sql"].strip().splitlines()[-1].split(":")[1].strip(" }"))
        assert status.returncode == 0 and "keyphrases" in outputs["status"], outputs["status"]
        # the second writer refuses at once with a clear message naming the first
        assert second.returncode == 1, outputs["second"][-3000:]
        assert "another run is writing the warehouse" in outputs["second"] and "kpe nightly" in outputs["second"]
        (tmp_path / "second.log").write_text(outputs["second"])
        assert "Conflicting lock" not in outputs["second"] and "Traceback" not in outputs["second"]
        nightly.wait(timeout=600)
    finally:
        if nightly.poll() is None:
            nightly.kill()
        log.close()
    assert nightly.returncode == 0, (tmp_path / "nightly.log").read_text()[-3000:]
    assert 16 <= seen < 160
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT doc_id) FROM keyphrases").fetchone()[0] == 160
        assert con.execute("SELECT count(*) FROM extraction_runs").fetchone()[0] == 1  # the refused run left none


def test_a_writer_waits_for_a_reader_and_a_reader_for_a_writer(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    connect(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('ready', flush=True); time.sleep(3)", str(db)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    with pytest.raises(WarehouseBusy, match="is busy: process .* holds it; waited 0.5 s to write it"):
        connect(db, wait_s=0.5)
    started = time.monotonic()
    with connect(db, wait_s=60) as con:  # waits for the reader to let go
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert time.monotonic() - started > 1
    holder.wait(timeout=30)


def test_writer_lock_is_reentrant_and_refuses_a_second_process(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    code = ("import sys; from warehouse.db import writer_lock, WarehouseBusy\n"
            "try:\n    with writer_lock(sys.argv[1], wait_s=0.2): pass\n"
            "except WarehouseBusy as exc:\n    print(exc); sys.exit(3)\n")
    with writer_lock(db, command="kpe nightly"):
        with writer_lock(db):  # the ingest subflow inside the nightly takes it again
            pass
        other = subprocess.run([sys.executable, "-c", code, str(db)], cwd=ROOT, capture_output=True, text=True)
        assert other.returncode == 3, other.stdout + other.stderr
        assert "another run is writing the warehouse" in other.stdout and f"PID {os.getpid()}" in other.stdout
    assert subprocess.run([sys.executable, "-c", code, str(db)], cwd=ROOT).returncode == 0  # free again


@pytest.fixture()
def backlog(kpe_env: Path, shared_data: Path) -> Path:
    """The 15 sample files ingested; 100 documents extracted by an older model, 20 of those since changed."""
    db = kpe_env / "warehouse.duckdb"
    with connect(db) as con:
        ingest_specs(con, pubmed_specs([str(shared_data / "pubmed" / "medline_samples")], kpe_env), kpe_env / "lake")
        con.execute("INSERT INTO extraction_state SELECT doc_id, content_hash, 'old@1', 'cfg', 'r0', 5, now() "
                    "FROM documents ORDER BY doc_id DESC LIMIT 100")
        con.execute("UPDATE extraction_state SET content_hash = 'before-the-change' WHERE doc_id IN "
                    "(SELECT doc_id FROM extraction_state ORDER BY doc_id LIMIT 20)")
    return db


def test_backlog_streams_fresh_before_stale_in_bounded_batches(backlog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with connect(backlog, read_only=True) as con:
        counts = extraction.count_pending_by_phase(con, "new@2", "cfg")
        n_docs = con.execute("SELECT count(*) FROM documents WHERE NOT deleted AND "
                             "(title IS NOT NULL OR abstract IS NOT NULL)").fetchone()[0]
    assert counts == {"fresh": n_docs - 80, "stale": 80}

    pages: list[int] = []
    real_page = extraction.pending_ids

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        ids = real_page(*args, **kwargs)
        pages.append(len(ids))
        return ids

    monkeypatch.setattr(extraction, "pending_ids", spy)
    batches = list(extraction.iter_pending_batches(backlog, "new@2", "cfg", batch_size=16, page_size=50))
    phases = [b.phase for b in batches]
    ids = [d.doc_id for b in batches for d in b.documents]
    assert phases == sorted(phases, key=["fresh", "stale"].index)  # every fresh batch before any stale one
    assert max(len(b.documents) for b in batches) <= 16 and max(pages) <= 50  # never the whole backlog at once
    assert len(ids) == len(set(ids)) == n_docs
    fresh = [d.doc_id for b in batches if b.phase == "fresh" for d in b.documents]
    assert fresh == sorted(fresh) and len(fresh) == counts["fresh"]

    # the budgets: --limit over both phases, the backfill by documents and by time
    limited = list(extraction.iter_pending_batches(backlog, "new@2", "cfg", batch_size=16, limit=counts["fresh"] + 5))
    assert sum(len(b.documents) for b in limited) == counts["fresh"] + 5 and limited[-1].phase == "stale"
    capped = list(extraction.iter_pending_batches(backlog, "new@2", "cfg", batch_size=16, backfill_max_docs=30))
    assert sum(len(b.documents) for b in capped if b.phase == "stale") == 30
    no_time = list(extraction.iter_pending_batches(backlog, "new@2", "cfg", batch_size=16, backfill_seconds=0))
    assert {b.phase for b in no_time} == {"fresh"}
    # the current model and config: only fresh documents are pending
    with connect(backlog, read_only=True) as con:
        assert extraction.count_pending_by_phase(con, "old@1", "cfg") == {"fresh": counts["fresh"], "stale": 0}
