"""MeSH classification (model kind ``classify``) on a real MEDLINE slice: training data from the Parquet shards,
the label vocabulary, a few CPU training steps, save / reload / predict, metrics and the TF-IDF baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.medline import ingested_slice

from kpe.mesh_data import build_mesh_data, label_vocabulary
from kpe.splits import split_of

N_RECORDS = 500  # the first records of the 1976-79 baseline file: MeSH on nearly all, about half with abstracts


# --------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def mesh_lake(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, list[tuple]]:
    """A lake (and warehouse) with a real MEDLINE slice ingested by the project's ingest code; returns the lake
    and the warehouse's current documents ``(doc_id, abstract, [mesh names], year)``: the independent count."""
    root = tmp_path_factory.mktemp("mesh")
    con = ingested_slice(shared_data / "pubmed" / "full_files" / "pubmed20n0014.xml.gz", root, N_RECORDS, 200)
    rows = con.execute("SELECT doc_id, abstract, [m.name FOR m IN mesh], year FROM documents "
                       "WHERE NOT deleted ORDER BY doc_id").fetchall()
    con.close()
    return root / "lake", rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mesh_lake: tuple, tiny_encoder: Path) -> Path:
    """A classify model after a few CPU steps on the slice (labels: descriptors of >= 3 training documents)."""
    from kpe.train import TrainConfig, train

    out = tmp_path_factory.mktemp("classify-run")
    result = train(TrainConfig(kind="classify", lake_dir=mesh_lake[0], output_dir=out, base=str(tiny_encoder),
                               min_label_docs=3, max_steps=4, batch_size=8, max_length=64, stride=16,
                               head_learning_rate=1e-2, log_with="none", num_threads=1, mixed_precision="no"))
    assert result.kind == "classify" and result.steps == 4
    assert {"micro_f1", "macro_f1", "p@5", "r@5"} <= set(result.metrics)
    return result.model_dir


# --------------------------------------------------------------------------------------------- data

def test_mesh_documents_come_from_the_shards(mesh_lake: tuple):
    lake, rows = mesh_lake
    expected = {doc_id: tuple(dict.fromkeys(names)) for doc_id, abstract, names, _ in rows
                if names and abstract and abstract.strip()}
    assert 100 < len(expected) < len(rows)  # about half of the 1970s records have an abstract
    data = build_mesh_data(lake, min_docs=3)
    assert {d.doc_id: d.labels for d in data.documents} == expected
    assert all(d.text.endswith(next(r[1] for r in rows if r[0] == d.doc_id).strip()) for d in data.documents[:20])
    splits = {d.doc_id: d.split for d in data.documents}
    assert {i for i, s in splits.items() if s == "test"} == {i for i in expected if split_of(i) == "dev"}
    assert set(splits.values()) == {"train", "validation", "test"}
    assert data.summary["labelled_docs"] == len(expected)
    assert sum(s["docs"] for s in data.summary["splits"].values()) == len(expected)


def test_current_rows_are_the_latest_per_document_less_the_deleted():
    """The one rule both lake readers (MeSH rows, the silver ``datasets`` side) use: the latest ``ingested_at``
    wins, a tie goes to the later row (a later shard), deleted documents are left out, ``doc_id`` order."""
    from kpe.shards import current_rows

    ids = ["pmid:3", "pmid:1", "pmid:3", "pmid:2", "pmid:1", "pmid:3"]
    at = [1, 1, 2, 1, 1, 1]  # pmid:3 re-ingested later (row 2), then an older copy (row 5) that must not win
    assert current_rows(ids, at) == [4, 3, 2]
    assert current_rows(ids, at, exclude_doc_ids={"pmid:2"}) == [4, 2]


def test_label_vocabulary_respects_min_docs(mesh_lake: tuple):
    lake, rows = mesh_lake
    data = build_mesh_data(lake, min_docs=1)
    train_ids = {d.doc_id for d in data.split("train")}
    counts: dict[str, int] = {}
    for doc_id, _abstract, names, _ in rows:
        if doc_id in train_ids:
            for name in set(names):
                counts[name] = counts.get(name, 0) + 1
    previous = None
    for min_docs in (1, 3, 10):
        vocab = label_vocabulary(data.documents, min_docs)
        assert vocab == sorted(n for n, c in counts.items() if c >= min_docs)
        assert build_mesh_data(lake, min_docs=min_docs).labels == vocab
        if previous is not None:
            assert set(vocab) < set(previous)
        previous = vocab
    assert "Humans" in previous  # a check tag: on most records
    with pytest.raises(ValueError, match="min_docs"):
        label_vocabulary(data.documents, 0)


def test_holdout_year_keeps_later_documents_out_of_training(mesh_lake: tuple):
    lake, rows = mesh_lake
    years = sorted({r[3] for r in rows if r[3]})
    cut = years[len(years) // 2]
    data = build_mesh_data(lake, min_docs=3, holdout_from_year=cut)
    recent = data.split("recent")
    assert recent and all(d.year >= cut for d in recent)
    assert all(d.year is None or d.year < cut for d in data.documents if d.split != "recent")


# --------------------------------------------------------------------------------------------- model

def test_classify_saves_reloads_and_honours_threshold_and_top_k(trained: Path, mesh_lake: tuple):
    from kpe.train.classify import load_labeler

    meta = json.loads((trained / "labels.json").read_text())
    assert meta["labels"] == build_mesh_data(mesh_lake[0], min_docs=3).labels
    thresholds = json.loads((trained / "thresholds.json").read_text())
    assert 0 < thresholds["global"] < 1 and thresholds["mode"] == "global"

    texts = [d.text for d in build_mesh_data(mesh_lake[0], min_docs=3).split("test")[:6]] + [""]
    labeler = load_labeler(trained)
    scores = labeler.scores(texts[:-1])
    assert scores.shape == (6, len(meta["labels"]))
    np.testing.assert_allclose(load_labeler(trained).scores(texts[:-1]), scores, atol=1e-6)  # reload: same model

    for threshold, top_k in ((thresholds["global"], 10), (float(np.median(scores)), 3), (1.01, 10)):
        (trained / "thresholds.json").write_text(json.dumps({**thresholds, "global": threshold}))
        predicted = load_labeler(trained).predict(texts, top_k=top_k)
        assert len(predicted) == len(texts) and predicted[-1] == []
        for row, doc_scores in zip(predicted, scores):
            above = np.sort(doc_scores[doc_scores >= threshold])[::-1][:top_k]
            assert [s for _, s in row] == pytest.approx(above.tolist(), abs=1e-6)
            assert len(row) <= top_k and all(label in meta["labels"] for label, _ in row)
    (trained / "thresholds.json").write_text(json.dumps(thresholds))


def test_baseline_and_classifier_on_the_same_split(trained: Path, mesh_lake: tuple):
    from kpe.evaluate.labels import TfidfBaseline, compare_label_models, label_matrix, label_metrics, prior_scores

    data = build_mesh_data(mesh_lake[0], min_docs=3)
    report = compare_label_models(data, trained)
    rows = {(r["model"], r["thresholds"], r["split"]): r for r in report["results"]}
    assert set(rows) == {("classifier", "global", "test"), ("classifier", "per_label", "test"),
                         ("tfidf-logreg", "global", "test"), ("tfidf-logreg", "per_label", "test"),
                         ("label-prior", "global", "test")}
    assert all(r["docs"] == len(data.split("test")) for r in rows.values())
    assert all(0 <= r[m] <= 1 for r in rows.values() for m in ("micro_f1", "macro_f1", "p@5", "r@5"))

    every = build_mesh_data(mesh_lake[0], min_docs=1)  # hundreds of labels (an int8 label matrix broke at 128)
    assert len(every.labels) > 200
    train = every.split("train")
    model = TfidfBaseline(every.labels).fit([d.text for d in train], [d.labels for d in train])
    gold = label_matrix([d.labels for d in train], every.labels)
    fitted = label_metrics(model.scores([d.text for d in train]), gold, 0.5)
    floor = label_metrics(prior_scores([d.labels for d in train], every.labels, len(train)), gold, 0.5)
    assert fitted["p@5"] > floor["p@5"] + 0.1  # it learns from the text, not only the label frequencies


def test_label_metrics_against_hand_computed_values():
    from kpe.evaluate.labels import best_global_threshold, label_metrics

    scores = np.array([[0.9, 0.6, 0.1], [0.2, 0.8, 0.7]], dtype=np.float32)
    gold = np.array([[1, 0, 0], [0, 1, 1]], dtype=np.int8)
    m = label_metrics(scores, gold, 0.5, k=2)
    # predicted {0, 1} and {1, 2}: tp 3, fp 1, fn 0
    assert m["micro_precision"] == pytest.approx(3 / 4) and m["micro_recall"] == 1.0
    assert m["micro_f1"] == pytest.approx(6 / 7)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 1) / 3)  # label 1: tp 1, fp 1
    assert m["p@2"] == pytest.approx((1 / 2 + 2 / 2) / 2) and m["r@2"] == 1.0
    assert best_global_threshold(scores, gold)[1] == pytest.approx(1.0)  # 0.62 .. 0.7 separates them


def test_cli_prints_the_comparison_as_json(trained: Path, mesh_lake: tuple, kpe_env: Path):
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["evaluate-classify", str(trained), "--lake", str(mesh_lake[0]), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"] == len(json.loads((trained / "labels.json").read_text())["labels"])
    assert {r["model"] for r in report["results"]} == {"classifier", "tfidf-logreg", "label-prior"}
    missing = CliRunner().invoke(app, ["evaluate-classify", str(kpe_env)])
    assert missing.exit_code == 1 and "not a classify model dir" in missing.output


def test_gate_measures_micro_f1_on_the_held_out_split(trained: Path, mesh_lake: tuple):
    from kpe.evaluate.labels import compare_label_models
    from kpe.train.classify import gate_evaluate

    result = gate_evaluate(trained, lake_dir=mesh_lake[0])
    data = build_mesh_data(mesh_lake[0], min_docs=3)
    assert result["docs"] == len(data.split("test")) and result["main_metric"] == "micro_f1"
    row = next(r for r in compare_label_models(data, trained, baseline=False)["results"]
               if r["model"] == "classifier" and r["thresholds"] == "global")
    assert result["main"] == pytest.approx(row["micro_f1"])
    assert gate_evaluate(trained, limit=5, lake_dir=mesh_lake[0])["docs"] == 5
