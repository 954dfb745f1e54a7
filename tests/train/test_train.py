"""Fine-tuning on real data, kept small: data from benchmarks and MEDLINE shards, tagger / joint / MLM runs,
checkpoint resume, save / reload / extract."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from kpe.datasets import load_benchmark, load_jsonl
from kpe.encoders import resolve_encoder
from kpe.extract.methods import Keyphrase, build_extractor
from kpe.splits import split_of
from kpe.train import TrainConfig, train
from kpe.train.data import load_lake_documents, silver_docs, split_docs

FAST = {"max_length": 128, "stride": 32, "batch_size": 4, "eval_batch_size": 16, "log_with": "none",
        "max_val_docs": 4, "tune_hybrid": False, "fit_span_ranker": False, "num_threads": 1}


# --------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def medline_documents(shared_data: Path) -> list:
    """Cleaned documents of the real MEDLINE sample files."""
    from kpe.clean import clean_record
    from kpe.records import Document, SourceRecord
    from kpe.sources.pubmed import iter_medline

    docs = []
    for path in sorted((shared_data / "pubmed" / "medline_samples").rglob("*.xml.gz")):
        for item in iter_medline(path):
            if isinstance(item, SourceRecord):
                doc = clean_record(item, 5)
                if isinstance(doc, Document):
                    docs.append(doc)
    assert len(docs) > 300
    return docs


def write_lake(lake: Path, docs: list, ingested_at: dt.datetime, name: str) -> None:
    from kpe.shards import documents_table, shard_relpath, write_shard

    day = ingested_at.date()
    table = documents_table(docs, input_file=name, ingested_at=ingested_at)
    relpath = shard_relpath("documents", "pubmed", day, name, hashlib.sha256(name.encode()).hexdigest(), 0)
    write_shard(table, lake, relpath, kind="documents", source="pubmed", ingest_date=day, batch=0)


def warehouse_with_deletion(path: Path, docs: list, deleted: list) -> None:
    """A warehouse holding ``docs`` where the documents of ``deleted`` were withdrawn (warehouse API only)."""
    from warehouse.db import connect, transaction
    from warehouse.documents import apply_deletions, write_documents

    now = dt.datetime(2026, 1, 2)
    latest = {d.doc_id: d for d in docs}  # the samples repeat some PMIDs (revised records)
    rows = [{**asdict(d), "sources": [d.source], "first_seen": now, "updated_at": now, "deleted": False,
             "deleted_at": None, "last_file_id": 1} for d in latest.values()]
    con = connect(path)
    with transaction(con):
        write_documents(con, rows)
        apply_deletions(con, [(d.source, d.source_id) for d in deleted], file_id=2, now=now)
    con.close()


def warehouse_deleted(path: Path) -> set[str]:
    """The doc_ids the warehouse marks deleted, read as the train tasks read them (warehouse API only)."""
    from warehouse.db import connect
    from warehouse.documents import deleted_doc_ids

    with connect(path, read_only=True) as con:
        return deleted_doc_ids(con)


# --------------------------------------------------------------------------------------------- data

def test_lake_keeps_latest_row_and_drops_deleted(tmp_path: Path, medline_documents: list):
    lake = tmp_path / "lake"
    first, later = medline_documents[:60], medline_documents[60:120]
    revised = replace(first[0], title="A revised title about cardiac surgery", content_hash="changed")
    write_lake(lake, first, dt.datetime(2026, 1, 1), "pubmed26n0001.xml.gz")
    write_lake(lake, [revised, *later], dt.datetime(2026, 1, 2), "pubmed26n0002.xml.gz")
    rows = load_lake_documents(lake, cache_dir=tmp_path / "cache")
    by_id = {r["doc_id"]: r for r in rows}
    assert len(rows) == len({d.doc_id for d in [*first, *later]})
    assert by_id[revised.doc_id]["title"] == "A revised title about cardiac surgery"

    gone = first[1]
    warehouse_with_deletion(tmp_path / "wh.duckdb", [revised, *first[1:], *later], [gone])
    rows = load_lake_documents(lake, warehouse_deleted(tmp_path / "wh.duckdb"), cache_dir=tmp_path / "cache")
    assert gone.doc_id not in {r["doc_id"] for r in rows}
    assert len(rows) == len(by_id) - 1


def test_silver_documents_have_present_author_keywords(tmp_path: Path, medline_documents: list):
    from kpe.evaluate.metrics import occurs_in, phrase_key

    write_lake(tmp_path / "lake", medline_documents, dt.datetime(2026, 1, 1), "samples.xml.gz")
    docs = silver_docs(tmp_path / "lake", cache_dir=tmp_path / "cache")
    with_keywords = [d for d in medline_documents if d.keywords and d.abstract]
    assert 0 < len(docs) <= len(with_keywords)
    for doc in docs:
        assert doc.dataset == "pubmed" and doc.doc_id.startswith("pmid:")
        assert any(occurs_in(phrase_key(k), phrase_key(doc.text)) for k in doc.keyphrases)
    train_docs, val_docs = split_docs(docs)
    held_out = [d for d in docs if split_of(d.doc_id) == "dev"]  # the gate's PubMed silver dev set
    assert train_docs and len(train_docs) + len(val_docs) + len(held_out) == len(docs)
    assert not {d.doc_id for d in held_out} & {d.doc_id for d in train_docs + val_docs}


def test_bad_jsonl_gets_a_clear_error(tmp_path: Path, shared_data: Path):
    good = (shared_data / "keyphrase" / "inspec_dev.jsonl").read_text().splitlines()[:2]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([*good, "{not json"]) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not JSON"):
        load_jsonl(path)


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="stride"):
        TrainConfig(max_length=64, stride=62)
    with pytest.raises(ValueError, match="lake_dir"):
        TrainConfig(train_data=["pubmed"])


# --------------------------------------------------------------------------------------------- tagger

def test_tagger_trains_saves_reloads_and_extracts(tmp_path: Path, shared_data: Path):
    config = TrainConfig(kind="tagger", train_data=["inspec"], max_docs=16, max_steps=3, output_dir=tmp_path / "run",
                         shared_data_dir=shared_data, learning_rate=1e-4, **FAST)
    result = train(config)
    assert result.steps == 3 and result.kind == "tagger"
    assert result.data_summary["inspec"]["docs"] == 16
    alignment = result.data_summary["inspec"]["alignment"]
    assert alignment["phrases"] > alignment["unaligned"] > 0
    model_dir = result.model_dir
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "modules.json"):
        assert (model_dir / name).is_file(), name
    card = (model_dir / "README.md").read_text()
    assert "f1@5" in card and "transformers" in card and "cpu" in card.lower()
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["id2label"] == {"0": "O", "1": "B", "2": "I"}
    assert saved["attention_probs_dropout_prob"] == 0.0  # trained without attention dropout (the default)

    docs = load_benchmark("inspec", "dev", shared_data)[:3]
    tagger = build_extractor("tagger", str(model_dir), {"top_n": 7})
    ranked = tagger.extract([d.text for d in docs] + [""])
    assert len(ranked) == 4 and ranked[-1] == []
    for doc, phrases in zip(docs, ranked[:3]):
        assert 0 < len(phrases) <= 7 and all(isinstance(k, Keyphrase) for k in phrases)
        assert [k.score for k in phrases] == sorted((k.score for k in phrases), reverse=True)
        for k in phrases:  # spans are copied from the text
            assert k.phrase.lower() in doc.text.lower()



def test_keybert_ft_and_hybrid_use_the_fine_tuned_encoder(kpe_env: Path, tmp_path: Path, shared_data: Path,
                                                         tiny_encoder: Path):
    from sentence_transformers import SentenceTransformer

    from kpe.train.tagger import HYBRID_FILE, tune_hybrid_weight

    result = train(TrainConfig(kind="tagger", base=str(tiny_encoder), train_data=["inspec"], max_docs=8,
                               max_steps=1, output_dir=tmp_path / "run", shared_data_dir=shared_data, **FAST))
    model_dir = str(result.model_dir)
    # the tagger dir is also a SentenceTransformer (mean pooling over its fine-tuned encoder)
    assert SentenceTransformer(model_dir).encode(["keyphrase"]).shape == (1, 32)
    docs = load_benchmark("inspec", "dev", shared_data)[:3]
    keybert_ft = build_extractor("keybert-ft", model_dir, {"top_n": 5})
    assert keybert_ft.name == "keybert-ft" and 0 < len(keybert_ft.extract([docs[0].text])[0]) <= 5

    summary = tune_hybrid_weight(result.model_dir, docs)
    assert summary["weight"] in [round(0.1 * i, 1) for i in range(11)] and summary["docs"] == 3
    assert json.loads((result.model_dir / HYBRID_FILE).read_text())["weight"] == summary["weight"]
    hybrid = build_extractor("hybrid", model_dir, {"top_n": 5, "hybrid_ngrams": True})
    assert hybrid.weight == summary["weight"]
    out = hybrid.extract([docs[0].text, ""])
    assert 0 < len(out[0]) <= 5 and out[1] == []
    assert [k.score for k in out[0]] == sorted((k.score for k in out[0]), reverse=True)


def test_every_setting_is_an_option_with_readable_help():
    from kpe.train.loop import _parser

    text = _parser().format_help()  # argparse formats each help text with %: a stray % breaks --help
    assert "--attention-dropout" in text and "--max-length" in text


def test_attention_dropout_is_set_on_every_self_attention_layer_only(tiny_encoder: Path):
    from kpe.train.loop import set_attention_dropout
    from kpe.train.tagger import load_tagger_model

    assert TrainConfig().attention_dropout == 0.0
    model = load_tagger_model(str(tiny_encoder))
    assert model.config.attention_probs_dropout_prob == 0.1
    assert set_attention_dropout(model, 0.0) == 2  # two layers
    for layer in model.bert.encoder.layer:
        assert layer.attention.self.dropout.p == 0.0
        assert layer.attention.output.dropout.p == layer.output.dropout.p == 0.1  # hidden-state dropout stays
    assert model.config.attention_probs_dropout_prob == 0.0


def test_resume_continues_step_count_and_scheduler(tmp_path: Path, shared_data: Path, tiny_encoder: Path):
    from safetensors.torch import load_file

    common = dict(kind="tagger", base=str(tiny_encoder), train_data=["inspec"], max_docs=24, epochs=2,
                  shared_data_dir=shared_data, **{**FAST, "patience": 5})
    straight = train(TrainConfig(output_dir=tmp_path / "a", **common))
    checkpoints = sorted((tmp_path / "a" / "checkpoints").glob("step_*"))
    assert len(checkpoints) == 2  # one per epoch
    per_epoch = int(checkpoints[0].name.removeprefix("step_"))
    assert straight.steps == 2 * per_epoch

    # resume the second epoch from the first epoch's checkpoint: the same steps, schedule and weights
    resumed = train(TrainConfig(output_dir=tmp_path / "b", resume_from=str(checkpoints[0]), **common))
    assert resumed.steps == straight.steps
    assert [h["step"] for h in resumed.history] == [per_epoch, 2 * per_epoch]  # history came with the checkpoint
    last = tmp_path / "b" / "checkpoints" / f"step_{resumed.steps:07d}"
    sched = torch.load(last / "scheduler.bin", weights_only=False)
    assert sched["last_epoch"] == resumed.steps
    assert sched == torch.load(checkpoints[1] / "scheduler.bin", weights_only=False)
    a, b = load_file(checkpoints[1] / "model.safetensors"), load_file(last / "model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0

    # "latest" picks the newest checkpoint of the run folder and continues its step count
    more = train(TrainConfig(output_dir=tmp_path / "a", resume_from="latest", max_steps=straight.steps + 2,
                             **{**common, "epochs": 3}))
    assert more.steps == straight.steps + 2


# --------------------------------------------------------------------------------------------- joint

def test_joint_forward_backward_and_save_load(tmp_path: Path, shared_data: Path, tiny_encoder: Path):
    from transformers import AutoTokenizer

    from kpe.train.joint import JointCollator, JointKPE, joint_features, score_candidates

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    docs = load_benchmark("inspec", "train", shared_data)[:6]
    features, stats = joint_features(docs, tokenizer, max_length=96, stride=24, max_ngram=5)
    assert features and stats["inspec"].n_docs == 6
    assert sum(sum(f["phrase_labels"]) for f in features) > 0  # gold n-grams found
    torch.manual_seed(0)
    model = JointKPE.from_base(str(tiny_encoder), max_ngram=5)
    batch = JointCollator(tokenizer, 5)(features[:4])
    out = model(**batch)
    assert out.loss is not None and torch.isfinite(out.loss) and out.rank_loss > 0
    out.loss.backward()
    for name in ("convs.4.weight", "chunk_head.weight", "rank_head.weight"):
        assert dict(model.named_parameters())[name].grad.abs().sum() > 0, name
    assert model.encoder.embeddings.word_embeddings.weight.grad is not None

    model.eval()
    model.save_pretrained(tmp_path / "joint")
    tokenizer.save_pretrained(tmp_path / "joint")
    loaded = JointKPE.from_pretrained(tmp_path / "joint").eval()
    texts = [d.text for d in docs[:2]]
    a = score_candidates(model, tokenizer, texts, max_length=96, stride=24)
    b = score_candidates(loaded, tokenizer, texts, max_length=96, stride=24)
    assert [c.key for c in a[0][:10]] == [c.key for c in b[0][:10]]
    assert a[0][0].score == pytest.approx(b[0][0].score, abs=1e-5)


def test_joint_training_run_extracts(tmp_path: Path, shared_data: Path, tiny_encoder: Path):
    result = train(TrainConfig(kind="joint", base=str(tiny_encoder), train_data=["semeval2017"], max_docs=8,
                               max_steps=2, output_dir=tmp_path / "run", shared_data_dir=shared_data, **FAST))
    assert result.steps == 2 and (result.model_dir / "joint_heads.safetensors").is_file()
    ranked = build_extractor("joint", str(result.model_dir), {"top_n": 5}).extract(["Deep learning for protein "
                                                                                   "structure prediction."])
    assert 0 < len(ranked[0]) and all(k.phrase for k in ranked[0])


# --------------------------------------------------------------------------------------------- mlm

def test_mlm_produces_an_encoder_the_tagger_starts_from(tmp_path: Path, shared_data: Path, tiny_encoder: Path,
                                                        medline_documents: list):
    lake = tmp_path / "lake"
    write_lake(lake, medline_documents, dt.datetime(2026, 1, 1), "samples.xml.gz")
    mlm = train(TrainConfig(kind="mlm", base=str(tiny_encoder), train_data=[], lake_dir=lake, max_docs=40,
                            max_steps=2, whole_word_mask=True, output_dir=tmp_path / "mlm",
                            shared_data_dir=shared_data, **FAST))
    assert mlm.steps == 2 and mlm.data_summary["lake"]["docs"] == 40
    first_40 = [r["doc_id"] for r in load_lake_documents(lake, cache_dir=tmp_path / "cache")][:40]
    held_out = sum(split_of(d) == "dev" for d in first_40)  # the PubMed dev split never feeds pretraining
    corpus = mlm.data_summary["corpus"]
    assert corpus["train_docs"] + corpus["val_docs"] == 40 - held_out
    assert mlm.metrics["val_loss"] > 0
    assert json.loads((mlm.model_dir / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]

    tagger = train(TrainConfig(kind="tagger", base=str(mlm.model_dir), train_data=["inspec"], max_docs=8,
                               max_steps=1, output_dir=tmp_path / "tagger", shared_data_dir=shared_data, **FAST))
    assert tagger.steps == 1
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(tagger.model_dir)
    assert model.config.hidden_size == 32 and model.config.num_labels == 3


def test_mlm_with_next_sentence_prediction(tmp_path: Path, shared_data: Path, tiny_encoder: Path):
    result = train(TrainConfig(kind="mlm", base=str(tiny_encoder), train_data=["semeval2017"], max_docs=12,
                               max_steps=1, nsp=True, output_dir=tmp_path / "nsp", shared_data_dir=shared_data, **FAST))
    assert result.steps == 1 and result.data_summary["semeval2017"]["docs"] == 12
    assert json.loads((result.model_dir / "config.json").read_text())["architectures"] == ["BertForPreTraining"]


@pytest.mark.parametrize("nsp", [False, True])
def test_mlm_loss_on_masked_positions_only_equals_the_full_heads(shared_data: Path, tiny_encoder: Path, nsp: bool):
    from transformers import AutoTokenizer

    from kpe.train.mlm import MaskedPositionsMLM, MLMCollator, load_mlm_model, mlm_features, nsp_features

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    docs = load_benchmark("semeval2017", "train", shared_data)[:6]
    features = nsp_features(docs, tokenizer, 128) if nsp else mlm_features(docs, tokenizer, 128, 32)
    batch = MLMCollator(tokenizer, seed=3)(features[:6])
    model = load_mlm_model(str(tiny_encoder), nsp=nsp).eval()
    assert MaskedPositionsMLM.supports(model)
    with torch.no_grad():
        full = model(**batch).loss
        fast = MaskedPositionsMLM(model)(**batch).loss
    assert float(full) > 1.0 and float(fast) == pytest.approx(float(full), rel=1e-5)


# --------------------------------------------------------------------------------------------- decoding

def test_span_decoding_scores_dedupes_and_fills(shared_data: Path):
    from transformers import AutoTokenizer

    from kpe.train.alignment import B, I, O, tokenize_windows
    from kpe.train.tagger import decode_spans, rank_keyphrases

    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(None))
    text = "Neural networks for ship control. Neural Networks, fuzzy logic and ship control systems."
    (window,) = tokenize_windows(tokenizer, text, max_length=64, stride=8)
    words = window.words()
    surface = {w: text[slice(*window.word_spans[w])].lower() for w in words}
    tags = {"neural": B, "networks": I, "fuzzy": B, "logic": I}
    confidence = iter([0.6, 0.7, 0.9, 0.8, 0.5, 0.95])
    probs = {}
    for w in words:
        tag = tags.get(surface[w], O)
        p = torch.full((3,), 0.05)
        p[tag] = next(confidence) if tag != O else 0.9
        probs[w] = p
    spans = decode_spans(text, window.word_spans, probs, "mean")
    assert [s.phrase for s in spans] == ["Neural networks", "Neural Networks", "fuzzy logic"]
    assert [s.score for s in spans] == pytest.approx([0.65, 0.85, 0.725])
    assert [s.score for s in decode_spans(text, window.word_spans, probs, "min")] == pytest.approx([0.6, 0.8, 0.5])
    ranked = rank_keyphrases(text, window.word_spans, probs, "mean")
    # "neural networks" twice: one entry, the occurrence with the better score; best first
    assert [(k.phrase, round(k.score, 3)) for k in ranked] == [("Neural Networks", 0.85), ("fuzzy logic", 0.725)]
    filled = rank_keyphrases(text, window.word_spans, probs, "mean", fill_to=5)
    assert len(filled) == 5 and [k.phrase for k in filled[:2]] == [k.phrase for k in ranked]
    assert all(a.score >= b.score for a, b in zip(filled, filled[1:]))
    assert all("," not in k.phrase and "." not in k.phrase for k in filled)
