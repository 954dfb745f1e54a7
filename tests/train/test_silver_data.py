"""Training data at corpus scale on a real MEDLINE slice: silver documents from the Parquet shards with
``datasets``, tokenisation and alignment as one cached ``Dataset.map``, length-grouped batches with dynamic
padding, and the training precision (bf16 only where the CPU computes it natively)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from support.medline import ingested_slice

from kpe.encoders import resolve_encoder
from kpe.evaluate.metrics import occurs_in, phrase_key
from kpe.extract.methods import document_text
from kpe.splits import split_of
from kpe.train import TrainConfig, train
from kpe.train.data import map_features, silver_dataset, silver_docs, train_val_docs
from kpe.train.loop import LengthGroupedEpochSampler, feature_lengths, training_precision
from kpe.train.tagger import tagger_features

N_RECORDS = 400  # the first records of the 2021 update file: most have author keywords


@pytest.fixture(scope="module")
def silver_lake(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, dict[str, int]]:
    """A lake and warehouse holding a real MEDLINE slice ingested by the project's ingest code; returns the root
    and the silver set computed independently from the warehouse rows: ``{doc_id: number of author keywords}``
    for every current document with an abstract and an author keyword present in title + abstract."""
    root = tmp_path_factory.mktemp("silver")
    con = ingested_slice(shared_data / "pubmed" / "full_files" / "pubmed21n1298.xml.gz", root, N_RECORDS, 150)
    rows = con.execute("SELECT doc_id, title, abstract, keywords FROM documents WHERE NOT deleted").fetchall()
    con.close()
    expected = {}
    for doc_id, title, abstract, keywords in rows:
        phrases = list(dict.fromkeys(" ".join(k.split()) for k in keywords or [] if k.strip()))
        text = phrase_key(document_text(title, abstract))
        if abstract and abstract.strip() and any(occurs_in(phrase_key(k), text) for k in phrases):
            expected[doc_id] = len(phrases)
    assert 100 < len(expected) < len(rows)
    return root, expected


@pytest.fixture(scope="module")
def one_layer_encoder(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    """The packaged MiniLM cut to its first layer: pretrained embeddings (a tagger learns spans in a few steps),
    fast steps."""
    from transformers import AutoModel

    path = tmp_path_factory.mktemp("minilm-1")
    AutoModel.from_pretrained(resolve_encoder(None), num_hidden_layers=1).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_silver_set_from_parquet_shards_matches_the_definition(silver_lake, tmp_path: Path):
    root, expected = silver_lake
    ds = silver_dataset(root / "lake", cache_dir=tmp_path / "cache")
    assert ds.column_names == ["doc_id", "text", "keyphrases", "dataset"]
    assert ds.cache_files and Path(ds.cache_files[0]["filename"]).is_relative_to(tmp_path / "cache")
    assert dict(zip(ds["doc_id"], (len(k) for k in ds["keyphrases"]))) == expected  # documents and phrases
    silver_file = Path(ds.cache_files[0]["filename"])
    written = silver_file.stat().st_mtime_ns
    again = silver_dataset(root / "lake", cache_dir=tmp_path / "cache")  # the cached map, not computed again
    assert again.cache_files == ds.cache_files and silver_file.stat().st_mtime_ns == written

    # the training sources: the PubMed dev split is held out of training and of checkpoint selection
    config = TrainConfig(train_data=["pubmed"], lake_dir=root / "lake", max_val_docs=None)
    train_docs, val_docs, summary = train_val_docs(config)
    dev = {d for d in expected if split_of(d) == "dev"}
    assert dev and not dev & {d.doc_id for d in train_docs + val_docs}
    assert len(train_docs) + len(val_docs) == len(expected) - len(dev)
    pubmed = summary["pubmed"]
    assert (pubmed["docs"], pubmed["held_out_dev"], pubmed["phrases"]) == (len(expected), len(dev),
                                                                           sum(expected.values()))


def test_features_are_one_cached_datasets_map(silver_lake, tmp_path: Path, tokenizer):
    root, expected = silver_lake
    docs = [d for d in silver_docs(root / "lake", cache_dir=tmp_path / "c") if split_of(d.doc_id) == "train"][:60]
    calls = []

    def featurize(batch):
        calls.append(len(batch))
        return tagger_features(batch, tokenizer, 96, 24)

    settings = {"max_length": 96, "stride": 24}
    first = map_features(docs, featurize, tokenizer=tokenizer, settings=settings, name="t", cache_dir=tmp_path / "c")
    assert not first.from_cache and sum(calls) == len(docs)
    direct, direct_stats = tagger_features(docs, tokenizer, 96, 24)
    assert len(first) == len(direct) > len(docs)  # abstracts of more than 96 tokens are cut into windows
    assert first.dataset[:]["labels"] == [f["labels"] for f in direct]
    assert first.stats["pubmed"].as_dict() == direct_stats["pubmed"].as_dict()
    phrases = first.stats["pubmed"]
    assert (phrases.n_docs, phrases.n_phrases) == (len(docs), sum(expected[d.doc_id] for d in docs))
    assert 0 < phrases.n_unaligned < phrases.n_phrases

    calls.clear()
    again = map_features(docs, featurize, tokenizer=tokenizer, settings=settings, name="t", cache_dir=tmp_path / "c")
    assert again.from_cache and calls == []  # nothing tokenised the second time
    assert again.dataset.cache_files == first.dataset.cache_files == [{"filename": str(first.cache_file)}]
    assert again.dataset._fingerprint == first.dataset._fingerprint
    assert again.stats["pubmed"].as_dict() == phrases.as_dict()
    # another setting is another cache file
    other = map_features(docs, partial(tagger_features, tokenizer=tokenizer, max_length=64, stride=16),
                         tokenizer=tokenizer, settings={"max_length": 64, "stride": 16}, name="t",
                         cache_dir=tmp_path / "c")
    assert not other.from_cache and other.cache_file != first.cache_file and len(other) > len(first)


def test_length_grouped_batches_with_dynamic_padding(silver_lake, tmp_path: Path, tokenizer):
    from torch.utils.data import DataLoader
    from transformers import DataCollatorForTokenClassification

    root, _ = silver_lake
    docs = silver_docs(root / "lake", cache_dir=tmp_path / "c")
    feats = map_features(docs, partial(tagger_features, tokenizer=tokenizer, max_length=128, stride=32),
                         tokenizer=tokenizer, settings={"max_length": 128, "stride": 32}, name="t",
                         cache_dir=tmp_path / "c")
    lengths = feature_lengths(feats.dataset)
    assert lengths == [len(ids) for ids in feats.dataset["input_ids"]] and min(lengths) < max(lengths)
    batch_size = 8
    sampler = LengthGroupedEpochSampler(lengths, batch_size, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths))) and order == list(sampler)  # a reproducible permutation
    sampler.set_epoch(1)
    assert list(sampler) != order

    def padding(indices: list[int]) -> int:
        batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
        return sum(max(lengths[j] for j in b) * len(b) - sum(lengths[j] for j in b) for b in batches)

    shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(1)).tolist()
    assert padding(order) < 0.25 * padding(shuffled)  # length-homogeneous batches

    sampler.set_epoch(0)
    loader = DataLoader(feats.dataset, batch_size=batch_size, sampler=sampler,
                        collate_fn=DataCollatorForTokenClassification(tokenizer))
    for i, batch in enumerate(loader):
        expected = [lengths[j] for j in order[i * batch_size:(i + 1) * batch_size]]
        assert batch["input_ids"].shape == (len(expected), max(expected))  # padded to the batch's longest
        assert batch["attention_mask"].sum(dim=1).tolist() == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU, auto precision follows the GPU")
def test_bf16_only_where_the_cpu_computes_it(monkeypatch: pytest.MonkeyPatch):
    from kpe.extract.encoder import cpu_flags
    from kpe.settings import get_settings

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    try:
        for forced, auto in (("no", "fp32"), ("yes", "bf16"),
                             ("auto", "bf16" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "fp32")):
            monkeypatch.setenv("KPE_NATIVE_BF16", forced)
            get_settings.cache_clear()
            assert training_precision(TrainConfig()) == auto, forced
            assert training_precision(TrainConfig(precision="fp32")) == "fp32"
            assert training_precision(TrainConfig(precision="bf16")) == "bf16"
            assert training_precision(TrainConfig(mixed_precision="no")) == "fp32"
        with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
            training_precision(TrainConfig(precision="fp16"))
    finally:
        get_settings.cache_clear()


def test_fp32_and_bf16_training_decode_the_same_spans(silver_lake, tmp_path: Path, one_layer_encoder: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    from transformers import AutoTokenizer

    from kpe.settings import get_settings
    from kpe.train.tagger import decode_spans, load_tagger_model, word_probabilities

    root, _ = silver_lake
    monkeypatch.setenv("KPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KPE_NATIVE_BF16", "no")  # auto must then be fp32, whatever this CPU is
    get_settings.cache_clear()
    common = dict(kind="tagger", base=str(one_layer_encoder), train_data=["pubmed"], lake_dir=root / "lake",
                  max_steps=15, batch_size=8, learning_rate=2e-3, warmup_ratio=0.0, max_length=64, stride=16,
                  max_val_docs=4, log_with="none", tune_hybrid=False, fit_span_ranker=False, num_threads=1)
    try:
        auto = train(TrainConfig(output_dir=tmp_path / "fp32", **common))
        bf16 = train(TrainConfig(output_dir=tmp_path / "bf16", precision="bf16", **common))
    finally:
        get_settings.cache_clear()
    assert (auto.precision, bf16.precision) == ("fp32", "bf16")
    assert bf16.data_summary["examples"]["from_cache"]  # the second run read the first one's features
    assert bf16.data_summary["pubmed"]["alignment"] == auto.data_summary["pubmed"]["alignment"]
    for result in (auto, bf16):
        card = (result.model_dir / "README.md").read_text()
        facts = json.loads(card.split("## Machine-readable", 1)[1].split("```json", 1)[1].rsplit("```", 1)[0])
        assert facts["precision"] == result.precision and facts["samples_per_second"] > 0
        assert facts["training_data"][0]["source"] == "pubmed"
        assert f"precision {result.precision}" in card and "| pubmed |" in card

    # the gate's decision and numbers go into the card once the gate has run (what the train flow does)
    from kpe.evaluate.gate import decide
    from kpe.train.model_card import read_model_card
    from tasks.train import add_gate_to_model_card_task

    candidate = {"inspec_dev": {"f1@5": auto.metrics["f1@5"] + 0.1}, "pubmed_silver_dev": {"f1@5": 0.2}}
    decision = decide(candidate, {"inspec_dev": {"f1@5": auto.metrics["f1@5"]}, "pubmed_silver_dev": {"f1@5": 0.1}})
    outcome = {"version": auto.model_dir.parent.name, "status": "production",
               "decision": {**decision.to_dict(), "production_version": "all-MiniLM-L6-v2@packaged",
                            "sets": {"inspec_dev": 4, "pubmed_silver_dev": 4},
                            "method_choice": {"chosen": "tagger", "mean_f1@5_present": {"tagger": 0.3}}}}
    add_gate_to_model_card_task.fn(str(auto.model_dir), outcome, "tagger")
    facts = read_model_card(auto.model_dir)
    assert facts["gate"]["status"] == "production" and facts["gate"]["delta"] == pytest.approx(0.1)
    assert facts["precision"] == "fp32" and facts["training_data"]  # the rest of the card is kept
    card = (auto.model_dir / "README.md").read_text()
    assert "## Gate decision" in card and "| pubmed_silver_dev | 4 | 0.2 | 0.1 | 0.1 |" in card

    tokenizer = AutoTokenizer.from_pretrained(auto.model_dir)
    texts = [d.text for d in silver_docs(root / "lake", cache_dir=tmp_path / "cache")[:10]]
    decoded = {}
    for result in (auto, bf16):
        model = load_tagger_model(str(result.model_dir)).eval()
        decoded[result.precision] = [(probs, [s.phrase for s in decode_spans(text, spans, probs)])
                                     for text, (spans, probs) in zip(texts, word_probabilities(model, tokenizer,
                                                                                               texts, 64, 16))]
    # the model trained in fp32 and the one trained under bf16 autocast: close probabilities, and a word's tag may
    # differ only at a near tie (top two probabilities closer than twice the largest difference); without one,
    # the same spans
    same = 0
    for (p32, s32), (p16, s16) in zip(decoded["fp32"], decoded["bf16"]):
        diff = max(float(np.abs(p32[w] - p16[w]).max()) for w in p32)
        assert diff < 0.03
        flips = [w for w in p32 if int(p32[w].argmax()) != int(p16[w].argmax())]
        for w in flips:
            top = np.sort(p32[w])[::-1]
            assert float(top[0] - top[1]) < 2 * diff
        if not flips:
            assert s32 == s16
            same += 1
    assert same >= 8 and any(s for _, s in decoded["fp32"])
