"""The nightly job on real MEDLINE samples: extraction, no-op rerun, deletions, changes, kill and resume."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import etree
from support.environment import isolated_env
from support.warehouse import rows

ROOT = Path(__file__).resolve().parents[2]
KEYPHRASE_ROWS = "SELECT doc_id, rank, keyphrase, normalized, score FROM keyphrases ORDER BY doc_id, rank"


def kpe_cli(args: list[str], env_root: Path, shared_data: Path, extra_env: dict[str, str] | None = None,
            **kwargs) -> subprocess.Popen:
    # os.environ passes on: KPE_NATIVE_BF16=yes|no reaches the nightly process (and its precision "auto")
    env = isolated_env(env_root, shared_data, **(extra_env or {}))
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def finish(proc: subprocess.Popen, timeout: int = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def samples(shared_data: Path) -> Path:
    return shared_data / "pubmed" / "medline_samples"


def test_nightly_extracts_then_does_nothing_then_follows_deletions_and_changes(samples: Path, shared_data: Path,
                                                                                tmp_path: Path,
                                                                                prefect_api: str) -> None:
    db = tmp_path / "w.duckdb"
    baseline = samples / "baseline"  # the 7 baseline sample files (215 records)
    # the first run as the main job runs (no Prefect server: a temporary one), the next ones on the session's server
    out = finish(kpe_cli(["nightly", "--pubmed", str(baseline)], tmp_path, shared_data))
    on_server = {"PREFECT_API_URL": prefect_api}
    assert "keyphrases written" in out and "kpe sql" in out
    docs = rows(
        db, "SELECT count(*) FROM documents WHERE NOT deleted AND (title IS NOT NULL OR abstract IS NOT NULL)"
    )[0][0]
    extracted, n_phrases = rows(db, "SELECT count(DISTINCT doc_id), count(*) FROM keyphrases")[0]
    assert rows(db, "SELECT count(*) FROM extraction_state")[0][0] == docs > 200
    assert extracted >= docs - 5 and n_phrases >= 5 * extracted
    (run_id, model, config_hash, status, n_docs), = rows(
        db, "SELECT run_id, model_version, config_hash, status, n_docs FROM extraction_runs")
    assert status == "completed" and n_docs == docs
    assert rows(db, "SELECT count(*) FROM keyphrases WHERE run_id <> ? OR model_version <> ? OR config_hash <> ?",
                [run_id, model, config_hash])[0][0] == 0
    before = rows(db, KEYPHRASE_ROWS)

    # the views answer the usual questions over the same rows
    top = rows(db, "SELECT normalized, doc_freq FROM keyphrase_frequency ORDER BY doc_freq DESC, normalized LIMIT 1")[0]
    assert top[1] == rows(db, "SELECT count(DISTINCT doc_id) FROM keyphrases WHERE normalized = ?", [top[0]])[0][0] > 1
    assert len(rows(db, "SELECT * FROM documents_for(?)", [top[0]])) == top[1]
    assert rows(db, "SELECT count(*) FROM cooccurring(?)", [top[0]])[0][0] > 0
    assert rows(db, "SELECT count(*) FROM keyphrase_frequency_by_year")[0][0] > 0
    assert rows(db, "SELECT count(*) FROM trending_by_year(1, 1)")[0][0] > 0
    doc_id = before[0][0]
    shown = finish(kpe_cli(["keyphrases", doc_id], tmp_path, shared_data))
    assert before[0][2] in shown

    # a second run with nothing new extracts nothing and says so
    out = finish(kpe_cli(["nightly", "--pubmed", str(baseline)], tmp_path, shared_data, on_server))
    assert "extracted 0 documents" in out
    assert rows(db, KEYPHRASE_ROWS) == before
    assert rows(db, "SELECT n_docs, status FROM extraction_runs ORDER BY started_at DESC LIMIT 1")[0] == (
        0,
        "completed",
    )

    # an update file deletes two documents and revises the abstract of a third
    victims = [r[0] for r in rows(db, "SELECT DISTINCT d.pmid FROM keyphrases k JOIN documents d USING (doc_id) "
                                      "ORDER BY d.pmid LIMIT 3")]
    changed = victims.pop()
    article = None
    for path in sorted(baseline.rglob("*.xml.gz")):
        for el in etree.parse(gzip.open(path)).getroot().iter("PubmedArticle"):
            if el.findtext("MedlineCitation/PMID").strip() == changed:
                article = el
    abstract = article.find(".//Abstract/AbstractText")
    abstract.text = "Intracranial aneurysm rupture risk was assessed with computational fluid dynamics. " + (
        abstract.text or ""
    )
    update = tmp_path / "pubmed99n9999.xml"
    update.write_bytes(b"<PubmedArticleSet>" + etree.tostring(article) + b"<DeleteCitation>"
                       + b"".join(f'<PMID Version="1">{p}</PMID>'.encode() for p in victims)
                       + b"</DeleteCitation></PubmedArticleSet>")
    old_changed = rows(db, "SELECT keyphrase FROM keyphrases WHERE doc_id = ?", [f"pmid:{changed}"])
    finish(kpe_cli(["nightly", "--pubmed", str(baseline), "--pubmed", str(update)], tmp_path, shared_data, on_server))
    for pmid in victims:
        assert rows(db, "SELECT count(*) FROM keyphrases WHERE doc_id = ?", [f"pmid:{pmid}"])[0][0] == 0
        assert rows(db, "SELECT count(*) FROM keyphrases_history WHERE doc_id = ? AND reason = 'deleted'",
                    [f"pmid:{pmid}"])[0][0] > 0
    new_changed = rows(db, "SELECT keyphrase, run_id FROM keyphrases WHERE doc_id = ?", [f"pmid:{changed}"])
    last_run = rows(db, "SELECT run_id, n_docs FROM extraction_runs ORDER BY started_at DESC LIMIT 1")[0]
    assert last_run[1] == 1 and {r[1] for r in new_changed} == {last_run[0]}
    assert [r[0] for r in new_changed] != [r[0] for r in old_changed]
    ((new_hash, abstract),) = rows(
        db, "SELECT content_hash, abstract FROM documents WHERE doc_id = ?", [f"pmid:{changed}"]
    )
    assert abstract.startswith("Intracranial aneurysm rupture risk")
    assert rows(
        db, "SELECT DISTINCT content_hash FROM keyphrases WHERE doc_id = ?", [f"pmid:{changed}"]
    ) == [(new_hash,)]
    assert rows(db, "SELECT content_hash FROM extraction_state WHERE doc_id = ?", [f"pmid:{changed}"]) == [(new_hash,)]
    assert rows(db, "SELECT count(*) FROM keyphrases_history WHERE doc_id = ? AND reason = 'changed'",
                [f"pmid:{changed}"])[0][0] == len(old_changed)


def test_killed_runs_resume_to_exactly_the_rows_of_an_uninterrupted_run(samples: Path, shared_data: Path,
                                                                          tmp_path: Path, prefect_api: str) -> None:
    """A run in batches of 8 is SIGKILLed after its first batch, its resumption in batches of 13 after its second,
    and a third run finishes in batches of 13; against one uninterrupted run in batches of 50: every document's batch
    differs between the runs, and yet the same phrases at the same ranks (a document's keyphrases are a function of
    the document, the model and the config, not of its batch). At the machine's own precision (auto: bf16 where the
    CPU has it, KPE_NATIVE_BF16 decides otherwise). The runs report to the session's Prefect server."""
    files = [str(p) for p in sorted(samples.rglob("*.xml.gz"))[:4]]
    args = ["nightly", *[a for f in files for a in ("--pubmed", f)]]
    reference = tmp_path / "reference"
    ref_proc = kpe_cli(args, reference, shared_data, {"KPE_EXTRACT_BATCH_SIZE": "50", "PREFECT_API_URL": prefect_api})
    killed = tmp_path / "killed"
    want, done = None, 0
    for attempt, (batch_size, kill_after) in enumerate(((8, 1), (13, 2))):
        # its own group: all its processes
        proc = kpe_cli(args, killed, shared_data, {"KPE_EXTRACT_BATCH_SIZE": str(batch_size),
                                                   "PREFECT_API_URL": prefect_api}, start_new_session=True)
        seen = []
        deadline = time.monotonic() + 600
        for line in proc.stdout:  # kill -9 right after batch number kill_after committed
            seen.append(line)
            if f"extracted {batch_size * kill_after}/" in line:
                os.killpg(proc.pid, signal.SIGKILL)  # like a crash of the machine: no process of the run survives
                break
            assert time.monotonic() < deadline, "".join(seen[-50:])
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "".join(seen[-50:])
        if want is None:
            finish(ref_proc)
            want = rows(reference / "w.duckdb", KEYPHRASE_ROWS)
            total = rows(reference / "w.duckdb", "SELECT count(*) FROM extraction_state")[0][0]
        before, done = done, rows(killed / "w.duckdb", "SELECT count(*) FROM extraction_state")[0][0]
        # the killed batch's successor may have committed before the signal
        assert before + batch_size * kill_after <= done < total
        statuses = [r[0] for r in rows(killed / "w.duckdb", "SELECT status FROM extraction_runs ORDER BY started_at")]
        assert statuses == ["interrupted"] * attempt + ["running"]

    finish(kpe_cli(args, killed, shared_data, {"KPE_EXTRACT_BATCH_SIZE": "13", "PREFECT_API_URL": prefect_api}))
    got = rows(killed / "w.duckdb", KEYPHRASE_ROWS)
    assert len(got) == len(want) > 5 * total
    mismatched = sorted({g[0] for g, w in zip(got, want) if g[:4] != w[:4]})
    assert not mismatched, f"documents whose phrases or ranks differ after two kills: {mismatched}"
    assert [r[:4] for r in got] == [r[:4] for r in want]  # doc_id, rank, keyphrase, normalized: exactly
    assert all(abs(a[4] - b[4]) < 1e-4 for a, b in zip(got, want, strict=True))
    statuses = [r[0] for r in rows(killed / "w.duckdb", "SELECT status FROM extraction_runs ORDER BY started_at")]
    assert statuses == ["interrupted", "interrupted", "completed"]
