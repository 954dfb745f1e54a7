"""The nightly's annotation step on real MEDLINE samples: entities whose offsets slice the text exactly, a second
run that adds nothing, a SIGKILL mid-run that resumes to the rows of an uninterrupted run, deletions, changed text,
a model change; MeSH suggestions only for documents without MeSH, kept when MeSH arrives.

The step's loop is ``flows.annotate.annotate_all``, run here with its Prefect tasks' plain functions (``.fn``): the
same code without a Prefect server (the nightly's own Prefect wiring is covered by tests/flows/test_nightly.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from support.environment import isolated_env
from support.registry import register_model
from support.warehouse import rows

from kpe.encoders import packaged_encoder_path
from kpe.extract.methods import document_text

ROOT = Path(__file__).resolve().parents[2]
ENTITY_ROWS = "SELECT doc_id, start_char, end_char, entity, type, score FROM entities ORDER BY doc_id, start_char"
TASKS = ("prepare_annotation_task", "annotate_batch_task", "write_annotations_task", "finish_annotation_task")
FILES = ("baseline/pubmed24n1219.xml.gz", "updatefiles/pubmed26n1335.xml.gz")
DRIVER = """
import sys
import flows.annotate as fa
for name in {tasks!r}:
    setattr(fa, name, getattr(fa, name).fn)
class Log:
    def info(self, msg, *args):
        print(msg % args, flush=True)
fa.annotate_all("run-killed", limit=None, batch_size=8, logger=Log(), kinds=["ner"])
"""


def execute(db: Path, sql: str, params: list | None = None) -> None:
    con = duckdb.connect(str(db))
    try:
        con.execute(sql, params or [])
    finally:
        con.close()


def use_warehouse(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    from kpe.settings import get_settings

    monkeypatch.setenv("KPE_WAREHOUSE_PATH", str(db))
    get_settings.cache_clear()


def make_ner_model(path: Path, seed: int) -> Path:
    """A small ner model dir: the packaged encoder's first layer and a seeded, untrained head (plumbing only:
    it tags plenty of spans, deterministically)."""
    import torch
    from transformers import AutoTokenizer

    from kpe.train.ner import load_ner_model, save_ner

    torch.manual_seed(seed)
    model = load_ner_model(packaged_encoder_path(), num_hidden_layers=1)
    with torch.no_grad():  # most words "O", as in real text (a few entities per abstract, not every word)
        model.classifier.bias[0] += 0.8
    save_ner(model, AutoTokenizer.from_pretrained(packaged_encoder_path()), path, max_length=128)
    return path


def promote_model(db: Path, kind: str, path: Path, minute: int) -> str:
    from warehouse.db import connect
    from warehouse.models import promote

    with connect(db) as con:
        version = register_model(con, kind, minute, path=path)
        promote(con, version, reason="test")
    return version


def run_annotations(kinds: list[str], batch_size: int, run_id: str) -> dict:
    import flows.annotate as fa

    return fa.annotate_all(run_id, limit=None, batch_size=batch_size, logger=logging.getLogger("test"), kinds=kinds)


@pytest.fixture()
def plain_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.annotate as fa

    for name in TASKS:
        monkeypatch.setattr(fa, name, getattr(fa, name).fn)


def ingest(root: Path, shared_data: Path, files: tuple[str, ...]) -> Path:
    """Sample files ingested into the test's warehouse (no Prefect)."""
    from support.ingest import ingest_specs

    from kpe.inputs import pubmed_specs
    from warehouse.db import connect

    db = root / "warehouse.duckdb"
    samples = shared_data / "pubmed" / "medline_samples"
    with connect(db) as con:
        ingest_specs(con, pubmed_specs([str(samples / f) for f in files], root / "dl"), root / "lake")
    return db


@pytest.fixture()
def warehouse(kpe_env: Path, shared_data: Path) -> Path:
    """One sample file (30 records; the encoder work is what costs)."""
    return ingest(kpe_env, shared_data, FILES[:1])


def test_entities_nightly_offsets_resume_deletions_changes_and_model_change(
        warehouse: Path, kpe_env: Path, plain_tasks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    db = warehouse
    # no production ner model: the step is skipped
    assert run_annotations(["ner"], 50, "run-0")["ner"]["model_version"] is None
    model = make_ner_model(kpe_env / "ner-a", seed=0)
    version = promote_model(db, "ner", model, minute=1)
    reference = kpe_env / "reference.duckdb"
    shutil.copy(db, reference)

    # the uninterrupted run, in batches of 50
    use_warehouse(monkeypatch, reference)
    done = run_annotations(["ner"], 50, "run-reference")["ner"]
    docs = rows(reference, "SELECT count(*) FROM documents WHERE NOT deleted AND (title IS NOT NULL "
                           "OR abstract IS NOT NULL)")[0][0]
    assert done["model_version"] == version and done["documents"] == docs > 20 and done["backlog"] == 0
    want = rows(reference, ENTITY_ROWS)
    assert done["rows"] == len(want) > docs
    # offsets slice the text the model saw, in Python and in SQL (the document_text view)
    texts = {d: document_text(t, a) for d, t, a in rows(reference, "SELECT doc_id, title, abstract FROM documents")}
    assert all(texts[d][s:e] == entity for d, s, e, entity, _, _ in want)
    assert rows(reference, "SELECT count(*) FROM entities JOIN document_text USING (doc_id) "
                           "WHERE substring(text, start_char + 1, end_char - start_char) <> entity")[0][0] == 0
    assert rows(reference, "SELECT count(DISTINCT run_id), min(model_version) FROM entities") == [(1, version)]
    assert rows(reference, "SELECT n_docs, n_rows, status FROM annotation_runs WHERE run_id = 'run-reference'") == [
        (docs, len(want), "completed")]

    # killed with SIGKILL after 2 batches of 8, resumed in batches of 13: exactly the reference rows
    env = isolated_env(kpe_env, KPE_WAREHOUSE_PATH=str(db), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER.format(tasks=TASKS)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    seen, deadline = [], time.monotonic() + 300
    for line in proc.stdout:
        seen.append(line)
        if "annotated 16/" in line:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(seen[-20:])
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])
    annotated = rows(db, "SELECT count(*) FROM annotation_state WHERE kind = 'ner'")[0][0]
    assert 16 <= annotated < docs
    assert rows(db, "SELECT status FROM annotation_runs WHERE kind = 'ner'") == [("running",)]
    use_warehouse(monkeypatch, db)
    resumed = run_annotations(["ner"], 13, "run-resumed")["ner"]
    assert resumed["documents"] == docs - annotated
    got = rows(db, ENTITY_ROWS)
    assert [r[:5] for r in got] == [r[:5] for r in want]
    assert all(abs(a[5] - b[5]) < 1e-5 for a, b in zip(got, want, strict=True))
    assert [r[0] for r in rows(db, "SELECT status FROM annotation_runs ORDER BY started_at")] == [
        "interrupted", "completed"]

    # a second run adds nothing
    again = run_annotations(["ner"], 13, "run-again")["ner"]
    assert (again["documents"], again["rows"], again["removed"]) == (0, 0, 0)
    assert rows(db, ENTITY_ROWS) == got

    # a deleted document loses its entities; a changed one is annotated again from its new text
    gone, changed = [r[0] for r in rows(db, "SELECT DISTINCT doc_id FROM entities ORDER BY doc_id LIMIT 2")]
    n_gone = rows(db, "SELECT count(*) FROM entities WHERE doc_id = ?", [gone])[0][0]
    execute(db, "UPDATE documents SET deleted = TRUE WHERE doc_id = ?", [gone])
    execute(db, "UPDATE documents SET abstract = 'Cisplatin nephrotoxicity in rats. ' || abstract, "
                "content_hash = 'changed' WHERE doc_id = ?", [changed])
    after = run_annotations(["ner"], 13, "run-changes")["ner"]
    assert (after["documents"], after["removed"]) == (1, n_gone)
    assert rows(db, "SELECT count(*) FROM entities WHERE doc_id = ?", [gone])[0][0] == 0
    assert rows(db, "SELECT count(*) FROM annotation_state WHERE doc_id = ?", [gone])[0][0] == 0
    (title, abstract), = rows(db, "SELECT title, abstract FROM documents WHERE doc_id = ?", [changed])
    new_rows = rows(db, "SELECT start_char, end_char, entity, content_hash, run_id FROM entities WHERE doc_id = ?",
                    [changed])
    assert new_rows and {r[3:] for r in new_rows} == {("changed", "run-changes")}
    assert all(document_text(title, abstract)[s:e] == entity for s, e, entity, _, _ in new_rows)

    # a model change annotates every document again with the new model
    version_b = promote_model(db, "ner", make_ner_model(kpe_env / "ner-b", seed=1), minute=2)
    changed_model = run_annotations(["ner"], 50, "run-model")["ner"]
    assert changed_model["model_version"] == version_b and changed_model["documents"] == docs - 1
    assert rows(db, "SELECT DISTINCT model_version FROM entities") == [(version_b,)]

    # the views answer the usual questions
    top = rows(db, "SELECT entity_lower, type FROM document_entities ORDER BY entity_lower LIMIT 1")[0]
    assert rows(db, "SELECT count(*) FROM documents_with_entity(?)", [top[0].upper()])[0][0] == rows(
        db, "SELECT count(DISTINCT doc_id) FROM entities WHERE lower(entity) = ?", [top[0]])[0][0] > 0
    assert rows(db, "SELECT count(*) FROM top_entities_by_year")[0][0] > 0
    assert rows(db, "SELECT count(*) FROM chemical_disease_cooccurrence")[0][0] > 0
    assert rows(db, "SELECT count(DISTINCT doc_id) FROM chemical_disease_pairs")[0][0] > 0


class WordLabeler:
    """A stand-in MeSH labeler (``kpe.train.classify.Labeler.predict``'s contract): the three longest words."""

    scheme = "mesh"

    def predict(self, texts: list[str], top_k: int = 10) -> list[list[tuple[str, float]]]:
        out = []
        for text in texts:
            words = sorted({w.strip(".,;:()").capitalize() for w in text.split() if len(w) > 8},
                           key=lambda w: (-len(w), w))
            out.append([(w, round(1 / (i + 2), 6)) for i, w in enumerate(words[:min(3, top_k)])])
        return out


def test_mesh_suggestions_only_without_mesh_and_kept_when_mesh_arrives(
        kpe_env: Path, shared_data: Path, plain_tasks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.annotate as ta
    from kpe.annotate import LabelAnnotator

    db = ingest(kpe_env, shared_data, FILES)  # 2026 records without MeSH, older ones with it
    monkeypatch.setattr(ta, "cached_annotator", lambda kind, path: LabelAnnotator(WordLabeler()))
    (kpe_env / "classify-model").mkdir()
    version = promote_model(db, "classify", kpe_env / "classify-model", minute=3)
    without = {r[0] for r in rows(db, "SELECT doc_id FROM documents WHERE NOT deleted AND coalesce(len(mesh), 0) = 0 "
                                      "AND (title IS NOT NULL OR abstract IS NOT NULL)")}
    with_mesh = rows(db, "SELECT count(*) FROM documents WHERE coalesce(len(mesh), 0) > 0")[0][0]
    assert without and with_mesh
    done = run_annotations(["classify"], 7, "run-labels")["classify"]
    assert done["model_version"] == version and done["documents"] == len(without)
    labelled = {r[0] for r in rows(db, "SELECT DISTINCT doc_id FROM doc_labels")}
    assert labelled and labelled <= without
    assert rows(db, "SELECT count(*) FROM doc_labels WHERE scheme <> 'mesh' OR rank < 1")[0][0] == 0
    before = rows(db, "SELECT * FROM doc_labels ORDER BY doc_id, rank")

    again = run_annotations(["classify"], 7, "run-labels-2")["classify"]
    assert again["documents"] == 0 and rows(db, "SELECT * FROM doc_labels ORDER BY doc_id, rank") == before

    # the indexers' MeSH arrives for one document: its suggestions stay, and the view compares them
    doc_id, label = rows(db, "SELECT doc_id, label FROM doc_labels WHERE rank = 1 ORDER BY doc_id LIMIT 1")[0]
    n_suggested = rows(db, "SELECT count(*) FROM doc_labels WHERE doc_id = ?", [doc_id])[0][0]
    execute(db, "UPDATE documents SET mesh = [{'name': ?, 'major': false}, {'name': 'Humans', 'major': false}] "
                "WHERE doc_id = ?", [label, doc_id])
    # and another is deleted
    gone = sorted(labelled - {doc_id})[0]
    execute(db, "UPDATE documents SET deleted = TRUE WHERE doc_id = ?", [gone])
    after = run_annotations(["classify"], 7, "run-labels-3")["classify"]
    assert after["documents"] == 0 and after["removed"] > 0
    assert rows(db, "SELECT count(*) FROM doc_labels WHERE doc_id = ?", [gone])[0][0] == 0
    assert rows(db, "SELECT count(*) FROM doc_labels WHERE doc_id = ?", [doc_id])[0][0] == n_suggested
    assert rows(db, "SELECT label, indexed FROM mesh_suggestions WHERE doc_id = ? AND rank = 1", [doc_id]) == [
        (label, True)]
    assert rows(db, "SELECT suggested, confirmed, indexed_headings FROM mesh_suggestions_vs_indexed "
                    "WHERE doc_id = ?", [doc_id]) == [(n_suggested, 1, 2)]


def test_nightly_report_lists_each_kind() -> None:
    from flows.nightly import report_markdown

    summary = {"run_id": "r", "model_version": "m", "method": "kpe", "config_hash": "c", "documents": 3,
               "keyphrases": 30, "backfilled": 0, "removed": 0, "backlog": 0,
               "backlog_by_phase": {"fresh": 0, "stale": 0}, "precision": "fp32", "device": "cpu", "seconds": 1.0,
               "ingest": [], "ingest_problems": {"partial": 0, "failed": 0}, "stage_seconds": {"extract": 1.0},
               "top_keyphrases": [],
               "annotations": {"ner": {"output": "entities", "model_version": "ner-x", "documents": 3, "rows": 17,
                                       "removed": 2, "backlog": 0, "seconds": 1.0},
                               "classify": {"output": "doc_labels", "model_version": None, "documents": 0, "rows": 0,
                                            "removed": 0, "backlog": 0, "seconds": 0.0}}}
    text = report_markdown(summary)
    assert "| ner | entities | ner-x | 3 | 17 | 2 | 0 |" in text
    assert "| classify | doc_labels | none (skipped) | 0 | 0 | 0 | 0 |" in text
