"""The ``embed`` kind on real Inspec documents: the contrastive loss falls, the fine-tuned encoder changes the
engine's ranking, a saved dir is what the engine and SentenceTransformer load, and the kind is registered with its
methods. Numbers are compared in fp32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kpe.datasets import load_benchmark
from kpe.encoders import resolve_encoder
from kpe.extract.methods import METHODS, build_extractor
from kpe.train import TrainConfig, train
from kpe.train.kinds import KINDS, check_kind_and_method, get_kind

FP32 = {"precision": "fp32", "use_cache": False, "device": "cpu"}


@pytest.fixture()
def one_thread():
    """One torch thread (a busy shared CPU makes two spinning threads several times slower), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_embed_is_registered_with_its_methods():
    kind = get_kind("embed")
    assert list(kind.methods) == ["keybert-ft", "keybert-ft-fast"]
    assert kind.main_metric == "f1@5"
    assert METHODS["keybert-ft"] == KINDS["tagger"].methods["keybert-ft"] == kind.methods["keybert-ft"]
    assert METHODS["keybert-ft-fast"] == "kpe.train.embed:build_keybert_ft_fast"
    assert check_kind_and_method("embed", None) == "keybert-ft"
    with pytest.raises(ValueError, match="cannot use a embed model"):
        check_kind_and_method("embed", "hybrid")


def test_features_hold_present_gold_as_positives_and_candidates_as_negatives(shared_data: Path, tokenizer):
    from kpe.train.embed import EmbedCollator, embed_features

    docs = load_benchmark("inspec", "train", shared_data)[:6]
    features, stats = embed_features(docs, tokenizer, 128)
    assert stats["inspec"].n_docs == 6 and stats["inspec"].n_phrases > stats["inspec"].n_unaligned  # absent gold
    assert 0 < len(features) <= 6 and {f["source"] for f in features} == {"inspec"}
    for f in features:
        keys = f["phrase_keys"]
        assert 0 < f["n_pos"] < len(keys) and len(set(keys)) == len(keys)
        assert set(keys[: f["n_pos"]]) <= set(f["gold_keys"])  # positives are gold ...
        assert not set(keys[f["n_pos"]:]) & set(f["gold_keys"])  # ... negatives never are
        assert all(p < len(f["input_ids"]) for pos in f["positions"] for p in pos)
    batch = EmbedCollator(tokenizer, max_positives=3, max_negatives=5, seed=0)(features[:3])
    n_phrases = batch["phrase_input_ids"].shape[0]
    assert batch["positive"].shape == (3, n_phrases) and batch["phrase_doc"].shape == (n_phrases,)
    own = batch["positive"][batch["phrase_doc"], torch.arange(n_phrases)]
    assert 3 <= int(own.sum()) <= 9  # each document's drawn positives are marked positive for it


def test_contrastive_steps_lower_the_loss_and_change_the_ranking(shared_data: Path, tmp_path: Path, tokenizer,
                                                                 one_thread: None):
    from sentence_transformers import SentenceTransformer

    from kpe.train.embed import EmbedCollator, EmbedModel, embed_features, save_embed

    torch.manual_seed(0)
    docs = load_benchmark("inspec", "train", shared_data)[:4]
    features, _ = embed_features(docs, tokenizer, 128)
    batch = EmbedCollator(tokenizer, max_positives=3, max_negatives=6, seed=0)(features)
    model = EmbedModel.from_base(resolve_encoder(None))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(4):
        out = model(**batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(out.loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    model.eval()

    model_dir = tmp_path / "embed"
    save_embed(model, tokenizer, model_dir)
    # the saved dir is a SentenceTransformer computing exactly the in-training model's mean pooling
    texts = [docs[0].text[:300], "keyphrase extraction"]
    loaded = SentenceTransformer(str(model_dir), device="cpu").encode(texts, convert_to_tensor=True)
    ids = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        pooled, _ = model.embed(ids["input_ids"], ids["attention_mask"])
    torch.testing.assert_close(loaded.cpu(), F.normalize(pooled, dim=-1), atol=1e-5, rtol=1e-4)

    texts = [d.text for d in docs]
    stock = build_extractor("kpe", None, {**FP32, "top_n": 5}).extract(texts)
    tuned = build_extractor("keybert-ft", str(model_dir), {**FP32, "top_n": 5})
    assert tuned.name == "keybert-ft"
    ranked = tuned.extract(texts)
    assert [[k.phrase for k in r] for r in ranked] != [[k.phrase for k in r] for r in stock]
    fast = build_extractor("keybert-ft-fast", str(model_dir), {"precision": "fp32", "top_n": 5})
    assert fast.name == "keybert-ft-fast" and fast.config.candidate_embedding == "contextual"
    assert all(0 < len(r) <= 5 for r in fast.extract(texts))


def test_embed_trains_in_the_loop_and_saves_an_engine_model(kpe_env: Path, shared_data: Path, tmp_path: Path):
    from transformers import AutoTokenizer, BertConfig, BertModel

    tiny = tmp_path / "tiny"
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(None))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(tiny)
    tokenizer.save_pretrained(tiny)
    result = train(TrainConfig(kind="embed", base=str(tiny), train_data=["inspec"], max_docs=12, max_steps=2,
                               batch_size=4, max_length=128, stride=32, max_val_docs=3, log_with="none",
                               mixed_precision="no", num_threads=1, output_dir=tmp_path / "run",
                               shared_data_dir=shared_data))
    assert result.kind == "embed" and result.steps == 2
    assert 0.0 <= result.metrics["f1@5"] <= 1.0 and result.metrics["docs_scored"] > 0
    contrastive = result.data_summary["inspec"]["contrastive"]
    assert contrastive["positives"] > 0 and contrastive["negatives"] > contrastive["positives"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json",
                 "README.md"):
        assert (result.model_dir / name).is_file(), name
    docs = load_benchmark("inspec", "dev", shared_data)[:2]
    out = build_extractor("keybert-ft", str(result.model_dir), {**FP32, "top_n": 4}).extract([d.text for d in docs])
    assert all(0 < len(r) <= 4 for r in out)
