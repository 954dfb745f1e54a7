"""The extraction engine on real abstracts with the packaged all-MiniLM-L6-v2 (and other model directories)."""

from __future__ import annotations

import itertools
import shutil
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from kpe.encoders import resolve_encoder
from kpe.extract.candidates import STOP_WORDS, KeyBERTCandidates, candidate_phrases
from kpe.extract.config import ExtractionConfig
from kpe.extract.embedding_cache import EmbeddingCache
from kpe.extract.encoder import model_fingerprint
from kpe.extract.engine import KeyBERTRanker, KeyphraseEngine, build_kpe, locate
from kpe.extract.methods import Keyphrase, build_extractor, document_text
from kpe.extract.ranking import cosine_scores, max_sum, mmr, normalize_rows, top_by_score
from kpe.records import SourceRecord
from kpe.sources.pubmed import iter_medline


@pytest.fixture(scope="module")
def abstracts(shared_data: Path) -> list[str]:
    """The first 20 real MEDLINE abstracts (title + abstract) of an NLM update file."""
    path = shared_data / "pubmed" / "full_files" / "pubmed21n1298.xml.gz"
    records = (r for r in iter_medline(path) if isinstance(r, SourceRecord) and r.abstract and r.abstract.strip())
    return [document_text(r.title, r.abstract) for r in islice(records, 20)]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> KeyphraseEngine:
    """The default engine with a private embedding cache."""
    eng = KeyphraseEngine(ExtractionConfig(threads=2), cache_dir=tmp_path_factory.mktemp("cache"))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def ranked(engine: KeyphraseEngine, abstracts: list[str]) -> list[list[Keyphrase]]:
    return engine.extract(abstracts)


def test_top10_on_real_abstracts_reads_as_phrases(engine: KeyphraseEngine, abstracts: list[str], ranked) -> None:
    assert len(ranked) == len(abstracts)
    for text, phrases in zip(abstracts, ranked):
        assert len(phrases) == 10
        scores = [kp.score for kp in phrases]
        assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
        own = {p.lower() for p in candidate_phrases(text)}
        names = [kp.phrase for kp in phrases]
        assert len({n.lower() for n in names}) == 10
        for name in names:
            assert name.lower() in own  # a real n-gram of this text, never glued across removed stop words
            words = name.lower().split()
            assert words[0] not in STOP_WORDS and words[-1] not in STOP_WORDS
            assert locate(text, name), name
    # the document's own subject tends to come first: for most documents the top phrase shares a word with the title
    titles_hit = sum(
        any(w in text.split(". ")[0].lower() for w in phrases[0].phrase.lower().split()) for text, phrases in zip(abstracts, ranked)
    )
    assert titles_hit > len(abstracts) // 2
    assert engine.name == "kpe" and len(engine.config_hash) == 16 and len(engine.model_fingerprint) == 16


def test_registry_builds_the_engine_and_handles_empty_documents(tmp_path: Path, abstracts: list[str], monkeypatch) -> None:
    monkeypatch.setenv("KPE_CACHE_DIR", str(tmp_path / "cache"))
    from kpe.settings import get_settings

    get_settings.cache_clear()
    try:
        extractor = build_extractor("kpe", None, ExtractionConfig(top_n=3, prefilter="none"))
        out = extractor.extract(["", "   ", "; , ( ) .", abstracts[0]])
    finally:
        get_settings.cache_clear()
    assert out[:3] == [[], [], []]
    assert len(out[3]) == 3
    assert (tmp_path / "cache" / "embeddings").is_dir()
    assert isinstance(build_kpe(None, {"top_n": 4, "use_cache": False}), KeyphraseEngine)


@pytest.fixture(scope="module")
def short_docs(abstracts: list[str]) -> list[str]:
    """The 10 shortest of the 20 abstracts (KeyBERT encodes every one of their ~250 n-grams each)."""
    return sorted(abstracts, key=len)[:10]


@pytest.fixture(scope="module")
def keybert_mode(engine: KeyphraseEngine, short_docs: list[str]) -> list[list[Keyphrase]]:
    """Our fast path in KeyBERT mode (KeyBERT's candidates, all encoded, fp32) on the short documents."""
    ranker = KeyBERTRanker(engine.encoder, ExtractionConfig.keybert(), cache=None)
    candidates = KeyBERTCandidates()(short_docs)
    return ranker.rank(short_docs, candidates)


def test_keybert_mode_reproduces_plain_keybert(engine: KeyphraseEngine, short_docs: list[str], keybert_mode) -> None:
    from keybert import KeyBERT

    ours = keybert_mode
    plain = KeyBERT(engine.encoder.model).extract_keywords(
        short_docs, keyphrase_ngram_range=(1, 3), stop_words="english", top_n=10
    )
    total = agree = 0
    for mine, theirs in zip(ours, plain):
        theirs_set = {p for p, _ in theirs}
        total += len(theirs_set)
        agree += len(theirs_set & {kp.phrase for kp in mine})
        # same scores (KeyBERT rounds to 4 decimals) for the shared phrases
        mine_scores = {kp.phrase: kp.score for kp in mine}
        for phrase, score in theirs:
            if phrase in mine_scores:
                assert mine_scores[phrase] == pytest.approx(score, abs=1e-3)
    assert total == 100
    assert agree / total >= 0.99


def test_our_phrases_occur_verbatim_unlike_keyberts(engine: KeyphraseEngine, short_docs: list[str], keybert_mode) -> None:
    """KeyBERT's n-grams skip removed stop words ("patients estimated glomerular"); ours occur verbatim."""
    ours = engine.extract(short_docs)
    verbatim_theirs = sum(bool(locate(t, kp.phrase)) for t, r in zip(short_docs, keybert_mode) for kp in r)
    verbatim_ours = sum(bool(locate(t, kp.phrase)) for t, r in zip(short_docs, ours) for kp in r)
    assert verbatim_ours == 100
    assert verbatim_theirs < 90


def test_mmr_and_maxsum_behave_on_real_embeddings(engine: KeyphraseEngine, abstracts: list[str]) -> None:
    text = abstracts[3]
    phrases = candidate_phrases(text)
    vectors = engine.encoder.encode(phrases)
    doc = engine.encoder.encode_documents([text])[0].embedding
    scores = cosine_scores(doc, vectors)
    plain = top_by_score(scores, 10)
    assert list(mmr(doc, vectors, 10, 0.0)) == list(plain)

    def mean_pairwise(idx: np.ndarray) -> float:
        v = normalize_rows(vectors[idx])
        sims = v @ v.T
        return float((sims.sum() - np.trace(sims)) / (len(idx) * (len(idx) - 1)))

    spread = [mean_pairwise(mmr(doc, vectors, 10, d)) for d in (0.0, 0.3, 0.7)]
    assert spread[0] > spread[1] > spread[2]
    chosen = mmr(doc, vectors, 10, 0.7)
    assert list(scores[chosen]) == sorted(scores[chosen], reverse=True)

    summed = max_sum(doc, vectors, 5, 12)
    pool = top_by_score(scores, 12)
    assert set(summed) <= set(pool) and len(summed) == 5
    sims = normalize_rows(vectors) @ normalize_rows(vectors).T
    brute = min(itertools.combinations(pool, 5), key=lambda c: sum(sims[i, j] for i, j in itertools.combinations(c, 2)))
    assert set(summed) == set(brute)
    assert mean_pairwise(summed) < mean_pairwise(plain[:5])

    # the same strategies through the ranker: diversity trades similarity to the document for spread
    cands = candidate_phrases(text)
    plain_kp = KeyBERTRanker(engine.encoder, ExtractionConfig(prefilter="none"), None).rank([text], [cands])[0]
    diverse = KeyBERTRanker(engine.encoder, ExtractionConfig(prefilter="none", diversity=0.7), None).rank([text], [cands])[0]
    summed_kp = KeyBERTRanker(engine.encoder, ExtractionConfig(prefilter="none", use_maxsum=True), None).rank([text], [cands])[0]
    assert len(diverse) == 10 and len(summed_kp) == 10
    assert len({kp.phrase for kp in plain_kp} & {phrases[i] for i in plain}) >= 9  # batching may swap a near-tie
    assert sum(kp.score for kp in diverse) < sum(kp.score for kp in plain_kp)
    assert {kp.phrase for kp in summed_kp} <= {phrases[i] for i in top_by_score(scores, 20)}


def test_cache_returns_identical_vectors_and_persists_across_engines(tmp_path: Path, abstracts: list[str]) -> None:
    docs = abstracts[:6]
    first = KeyphraseEngine(ExtractionConfig(threads=2), cache_dir=tmp_path)
    out_first = first.extract(docs)
    assert first.ranker.counts["encoded_phrases"] > 0
    assert first.cache is not None and len(first.cache) == first.ranker.counts["encoded_phrases"]
    keys = ["chronic kidney disease", first.encoder.key(out_first[0][0].phrase)]
    direct = first.encoder.encode(keys)
    first.close()

    second = KeyphraseEngine(ExtractionConfig(threads=2), cache_dir=tmp_path)
    out_second = second.extract(docs)
    assert second.ranker.counts["encoded_phrases"] == 0
    assert second.cache is not None and second.cache.stats.disk_hits > 0
    assert out_second == out_first
    cached = second.cache.get_many(keys)
    assert keys[1] in cached and "chronic kidney disease" not in cached
    # the same vector up to float noise (it was encoded in another batch, with other padding)
    assert np.allclose(cached[keys[1]], direct[1], atol=1e-5)
    second.cache.put_many({keys[0]: direct[0]})
    second.close()

    # a separate reader sees what the writer stored (same model + precision directory)
    directory = tmp_path / "embeddings" / f"{second.model_fingerprint}-fp32"
    with EmbeddingCache(directory, dimension=384) as reader:
        assert np.array_equal(reader.get_many([keys[0]])[keys[0]], direct[0])
    with pytest.raises(ValueError):
        EmbeddingCache(directory, dimension=128)
    # another precision is another cache
    assert not (tmp_path / "embeddings" / f"{second.model_fingerprint}-int8").exists()


def test_prefilter_sees_the_whole_text_of_long_abstracts(engine: KeyphraseEngine, abstracts: list[str], ranked) -> None:
    """Past the encoder's window the prefilter scores candidates from further windows instead of passing them all."""
    window = engine.encoder.max_length - 2
    long_docs = [d for d in abstracts if len(engine.encoder.tokenizer(d, add_special_tokens=False)["input_ids"]) > window]
    assert long_docs, "the sample has abstracts longer than one window"
    kept = {}
    for scope in ("all", "first"):
        ranker = KeyBERTRanker(engine.encoder, ExtractionConfig(prefilter_windows=scope), None)
        results = ranker.rank(long_docs, [candidate_phrases(d) for d in long_docs])
        kept[scope] = ranker.counts["kept"] / len(long_docs)
        assert all(len(r) == 10 for r in results)
    assert kept["all"] <= 30 < kept["first"]  # only the prefilter's best go on to the per-phrase pass
    assert ExtractionConfig().config_hash() != ExtractionConfig(prefilter_windows="first").config_hash()


def test_fast_setting_skips_the_phrase_pass_and_still_beats_plain_keybert(engine: KeyphraseEngine,
                                                                         shared_data: Path) -> None:
    """ExtractionConfig.fast: no per-phrase encoder pass, int8 on CPU; on Inspec dev its F1 stays above KeyBERT's."""
    from kpe.evaluate.benchmarks import load_jsonl, resolve_benchmark
    from kpe.evaluate.metrics import evaluate_predictions

    fast = ExtractionConfig.fast(device="cpu")
    assert fast.candidate_embedding == "contextual" and fast.precision == "int8"
    assert ExtractionConfig.fast(device="cuda").precision == "auto"  # int8 quantisation is CPU-only
    docs = load_jsonl(resolve_benchmark("inspec_dev", shared_data)[2], limit=60)
    texts, gold = [d.text for d in docs], [list(d.keyphrases) for d in docs]
    quick = build_extractor("kpe-fast", None, {"threads": 2})
    ranked = quick.extract(texts)
    assert quick.ranker.counts["encoded_phrases"] == 0 and all(len(r) == 10 for r in ranked)
    keybert = KeyBERTRanker(engine.encoder, ExtractionConfig.keybert(), cache=None)
    baseline = keybert.rank(texts, KeyBERTCandidates()(texts))

    def f1_at_5(results: list[list[Keyphrase]]) -> float:
        return evaluate_predictions([[kp.phrase for kp in r] for r in results], gold, texts)["macro"]["present"]["f1@5"]

    assert f1_at_5(ranked) > f1_at_5(baseline) + 0.03


def test_ranker_ranks_given_candidates(engine: KeyphraseEngine, abstracts: list[str]) -> None:
    text = abstracts[0]
    given = candidate_phrases(text)[:15] + ["a phrase that is not in the text"]
    out = engine.ranker.rank([text, text, ""], [given, [], given])
    assert out[1] == [] and out[2] == []
    assert {kp.phrase for kp in out[0]} <= set(given)
    assert len(out[0]) == 10


def test_a_copied_model_directory_works_the_same(tmp_path: Path, engine: KeyphraseEngine, abstracts: list[str], ranked) -> None:
    copy = tmp_path / "minilm-copy"
    shutil.copytree(resolve_encoder(None), copy)
    other = KeyphraseEngine(ExtractionConfig(threads=2), model_path=str(copy), cache_dir=tmp_path / "cache")
    assert other.model_path == str(copy.resolve())
    assert other.model_fingerprint == engine.model_fingerprint  # same files, same fingerprint
    # same phrases and scores up to float noise (a batch of 3 pads differently from a batch of 20, which can
    # swap near-ties at the 10th place)
    for mine, theirs in zip(other.extract(abstracts[:3]), ranked[:3], strict=True):
        a, b = {kp.phrase: kp.score for kp in mine}, {kp.phrase: kp.score for kp in theirs}
        assert len(a.keys() & b.keys()) >= 9
        assert all(abs(a[p] - b[p]) < 1e-4 for p in a.keys() & b.keys())


def test_a_plain_bert_directory_without_sentence_transformers_config_works(tmp_path: Path, abstracts: list[str]) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(None))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    model_dir = tmp_path / "tiny-bert"
    BertModel(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    eng = KeyphraseEngine(ExtractionConfig(threads=2), model_path=str(model_dir), cache_dir=tmp_path / "cache")
    assert eng.encoder.dimension == 32 and eng.encoder.max_length == 128
    out = eng.extract(abstracts[:4])  # abstracts longer than 128 word pieces: several windows
    assert all(len(r) == 10 for r in out)
    assert eng.model_fingerprint != model_fingerprint(resolve_encoder(None))
    assert (tmp_path / "cache" / "embeddings" / f"{eng.model_fingerprint}-fp32").is_dir()
