"""The extraction engine on real abstracts with the packaged all-MiniLM-L6-v2 (and other model directories).

Both CPU kinds: tests that compare numbers pin ``precision`` (fp32 unless said otherwise), since ``auto`` is bf16 on
a CPU with native bf16 and fp32 elsewhere; the bf16 path has its own tests, skipped where the CPU lacks it.
``KPE_NATIVE_BF16=yes|no`` runs the suite the way the other kind of machine does.
"""

from __future__ import annotations

import itertools
import shutil
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from support.cpu import needs_native_bf16

from kpe.encoders import resolve_encoder
from kpe.extract.candidates import STOP_WORDS, KeyBERTCandidates, candidate_phrases
from kpe.extract.config import ExtractionConfig
from kpe.extract.embedding_cache import EmbeddingCache
from kpe.extract.encoder import (
    ENCODING_VERSION,
    SentenceEncoder,
    cpu_has_amx,
    cpu_has_native_bf16,
    model_fingerprint,
    resolved_precision,
)
from kpe.extract.engine import KeyBERTRanker, KeyphraseEngine, build_kpe, cap_text, locate
from kpe.extract.methods import Keyphrase, build_extractor, describe_extractor, document_text
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
    """The default engine with a private embedding cache, pinned to fp32: its numbers are compared with plain
    KeyBERT's (fp32) and with other engines', on either kind of CPU."""
    eng = KeyphraseEngine(ExtractionConfig(threads=2, precision="fp32"), cache_dir=tmp_path_factory.mktemp("cache"))
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
        any(w in text.split(". ")[0].lower() for w in phrases[0].phrase.lower().split())
        for text, phrases in zip(abstracts, ranked)
    )
    assert titles_hit > len(abstracts) // 2
    assert engine.name == "kpe" and len(engine.config_hash) == 16 and len(engine.model_fingerprint) == 16


def test_registry_builds_the_engine_and_handles_empty_documents(
    tmp_path: Path, abstracts: list[str], monkeypatch
) -> None:
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
    """fp32 on both sides (the engine fixture pins it; KeyBERT's ``model.encode`` runs fp32): scores agree to 1e-3,
    KeyBERT's rounding. (bf16 against fp32 KeyBERT moves scores by ~2e-3: see the bf16 test below.)"""
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


def test_our_phrases_occur_verbatim_unlike_keyberts(
    engine: KeyphraseEngine, short_docs: list[str], keybert_mode
) -> None:
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
    diverse = KeyBERTRanker(engine.encoder, ExtractionConfig(prefilter="none", diversity=0.7), None).rank(
        [text], [cands]
    )[0]
    summed_kp = KeyBERTRanker(engine.encoder, ExtractionConfig(prefilter="none", use_maxsum=True), None).rank(
        [text], [cands]
    )[0]
    assert len(diverse) == 10 and len(summed_kp) == 10
    # the ranker encodes each phrase exactly as encode() did (batch-independent vectors): the same top 10
    assert {kp.phrase for kp in plain_kp} == {phrases[i] for i in plain}
    assert sum(kp.score for kp in diverse) < sum(kp.score for kp in plain_kp)
    assert {kp.phrase for kp in summed_kp} <= {phrases[i] for i in top_by_score(scores, 20)}


def test_cache_returns_identical_vectors_and_persists_across_engines(tmp_path: Path, abstracts: list[str]) -> None:
    docs = abstracts[:6]
    config = ExtractionConfig(threads=2, precision="fp32")  # pinned: the cache directory is named by precision
    first = KeyphraseEngine(config, cache_dir=tmp_path)
    out_first = first.extract(docs)
    assert first.ranker.counts["encoded_phrases"] > 0
    assert first.cache is not None and len(first.cache) == first.ranker.counts["encoded_phrases"]
    keys = ["chronic kidney disease", first.encoder.key(out_first[0][0].phrase)]
    direct = first.encoder.encode(keys)
    first.close()

    second = KeyphraseEngine(config, cache_dir=tmp_path)
    out_second = second.extract(docs)
    assert second.ranker.counts["encoded_phrases"] == 0
    assert second.cache is not None and second.cache.stats.disk_hits > 0
    assert out_second == out_first
    cached = second.cache.get_many(keys)
    assert keys[1] in cached and "chronic kidney disease" not in cached
    # the very vector a fresh encoding gives, although it was encoded in another batch: whoever computes it
    assert np.array_equal(cached[keys[1]], direct[1])
    second.cache.put_many({keys[0]: direct[0]})
    second.close()

    # a separate reader sees what the writer stored (same model + precision + encoding directory)
    directory = tmp_path / "embeddings" / f"{second.model_fingerprint}-fp32-{ENCODING_VERSION}"
    assert second.cache.directory == directory
    with EmbeddingCache(directory, dimension=384) as reader:
        assert np.array_equal(reader.get_many([keys[0]])[keys[0]], direct[0])
    with pytest.raises(ValueError):
        EmbeddingCache(directory, dimension=128)
    # another precision is another cache
    assert not (tmp_path / "embeddings" / f"{second.model_fingerprint}-int8").exists()


def test_prefilter_sees_the_whole_text_of_long_abstracts(engine: KeyphraseEngine, abstracts: list[str], ranked) -> None:
    """Past the encoder's window the prefilter scores candidates from further windows instead of passing them all."""
    window = engine.encoder.max_length - 2
    long_docs = [
        d for d in abstracts if len(engine.encoder.tokenizer(d, add_special_tokens=False)["input_ids"]) > window
    ]
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
    from kpe.datasets import load_jsonl, resolve_benchmark
    from kpe.evaluate.metrics import evaluate_predictions

    fast = ExtractionConfig.fast(device="cpu", precision="int8")
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


def test_a_copied_model_directory_works_the_same(
    tmp_path: Path, engine: KeyphraseEngine, abstracts: list[str], ranked
) -> None:
    copy = tmp_path / "minilm-copy"
    shutil.copytree(resolve_encoder(None), copy)
    other = KeyphraseEngine(
        ExtractionConfig(threads=2, precision="fp32"), model_path=str(copy), cache_dir=tmp_path / "cache"
    )
    assert other.model_path == str(copy.resolve())
    assert other.model_fingerprint == engine.model_fingerprint  # same files, same fingerprint
    # the same phrases in the same order, scores within 1e-4 (fp32; a batch of 3 against one of 20: results do
    # not depend on the batch)
    for mine, theirs in zip(other.extract(abstracts[:3]), ranked[:3], strict=True):
        assert [kp.phrase for kp in mine] == [kp.phrase for kp in theirs]
        assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(mine, theirs))


def test_a_plain_bert_directory_without_sentence_transformers_config_works(
    tmp_path: Path, abstracts: list[str]
) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(None))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    model_dir = tmp_path / "tiny-bert"
    BertModel(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    eng = KeyphraseEngine(
        ExtractionConfig(threads=2, precision="fp32"), model_path=str(model_dir), cache_dir=tmp_path / "cache"
    )
    assert eng.encoder.dimension == 32 and eng.encoder.max_length == 128
    out = eng.extract(abstracts[:4])  # abstracts longer than 128 word pieces: several windows
    assert all(len(r) == 10 for r in out)
    assert eng.model_fingerprint != model_fingerprint(resolve_encoder(None))
    assert (tmp_path / "cache" / "embeddings" / f"{eng.model_fingerprint}-fp32-{ENCODING_VERSION}").is_dir()


# --- precision: both CPU kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize("flags, forced, expected", [
    ({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "auto", "bf16"),  # AMX: bf16 matrices beat int8
    ({"avx512f", "avx512_bf16"}, "auto", "int8"),
    ({"avx2"}, "auto", "int8"),
    ({"avx512_bf16", "amx_bf16"}, "no", "int8"),
])
def test_the_fast_setting_runs_bf16_on_a_cpu_with_amx_and_int8_on_others(
        monkeypatch: pytest.MonkeyPatch, flags: set[str], forced: str, expected: str) -> None:
    from kpe.extract import encoder
    from kpe.settings import get_settings

    monkeypatch.setattr(encoder, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setenv("KPE_NATIVE_BF16", forced)
    get_settings.cache_clear()
    try:
        assert cpu_has_amx() is (expected == "bf16")
        assert ExtractionConfig.fast(device="cpu").precision == expected
        assert ExtractionConfig.fast(device="cpu", precision="fp32").precision == "fp32"  # asked for: kept
        assert ExtractionConfig.fast(device="cuda").precision == "auto"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("flags, precision, floor", [
    ({"avx512_bf16", "amx_bf16"}, "bf16", 512),
    ({"avx512_bf16", "amx_bf16"}, "fp32", 256),
    ({"avx512_bf16", "amx_bf16"}, "int8", 128),
    ({"avx512_bf16"}, "bf16", 128),
    ({"avx512_bf16"}, "fp32", 128),
])
def test_small_forward_passes_are_filled_up_to_the_rows_this_cpu_needs(monkeypatch: pytest.MonkeyPatch,
                                                                        flags: set[str], precision: str,
                                                                        floor: int) -> None:
    """oneDNN's AMX bf16 kernels change below 512 token rows, MKL's fp32 ones there below 256 (measured: the invariance
    tests above fail with 128 there); exact int8 products and other CPUs' kernels hold from 12 rows."""
    from kpe.extract import encoder

    monkeypatch.setattr(encoder, "cpu_flags", lambda: frozenset(flags))
    ids, mask = encoder.padded_batch([[101, 7, 102], [101, 8, 9, 102]], 6, 0, precision)
    assert ids.shape == (-(-floor // 6), 6) and ids[2:].tolist() == [[101, 7, 102, 0, 0, 0]] * (len(ids) - 2)
    assert mask[:2].sum().item() == 7 and mask.sum().item() == 7 + 3 * (len(ids) - 2)
    wide = encoder.padded_batch([[101, 7, 102]] * (floor // 4), 4, 0, precision)[0]
    assert len(wide) == floor // 4  # enough rows already: nothing added


@pytest.mark.parametrize("forced, expected", [("yes", "bf16"), ("no", "fp32")])
def test_native_bf16_setting_forces_the_cpu_kind(monkeypatch: pytest.MonkeyPatch, forced: str, expected: str) -> None:
    """KPE_NATIVE_BF16 overrides the CPU detection; the resolved precision is known before and after building."""
    from kpe.settings import get_settings

    monkeypatch.setenv("KPE_NATIVE_BF16", forced)
    get_settings.cache_clear()
    try:
        assert cpu_has_native_bf16() is (forced == "yes")
        assert resolved_precision(ExtractionConfig(device="cpu")) == expected
        assert resolved_precision(ExtractionConfig(device="cpu", precision="fp32")) == "fp32"
        fast = "bf16" if cpu_has_amx() else "int8"  # AMX: bf16 beats int8
        assert resolved_precision(ExtractionConfig.fast(device="cpu")) == fast
        extractor = build_extractor("kpe", None, ExtractionConfig(device="cpu", use_cache=False))
        described = describe_extractor(extractor)
        assert described["precision"] == extractor.precision == expected
        assert described["requested_precision"] == "auto" and described["native_bf16"] is (forced == "yes")
        assert described["config_hash"] == ExtractionConfig(device="cpu", precision=expected).config_hash()
    finally:
        get_settings.cache_clear()
    assert describe_extractor(build_extractor("yake")) == {"method": "yake", "precision": None}


@needs_native_bf16
def test_bf16_extraction_returns_the_top_phrases_of_fp32(engine: KeyphraseEngine, abstracts: list[str], ranked) -> None:
    """bf16 (what precision auto runs here) against fp32 on the 20 real abstracts: measured 19 of 20 documents with
    the same 10 phrases (the 20th: 9), the same top phrase everywhere, scores within 0.002."""
    bf16 = KeyphraseEngine(ExtractionConfig(threads=2, precision="bf16", use_cache=False))
    assert bf16.precision == "bf16" and bf16.config_hash != engine.config_hash
    got = bf16.extract(abstracts)
    shared = [len({kp.phrase for kp in a} & {kp.phrase for kp in b}) for a, b in zip(got, ranked, strict=True)]
    assert min(shared) >= 8 and sum(shared) >= 0.95 * 10 * len(abstracts), shared
    assert sum(a[0].phrase == b[0].phrase for a, b in zip(got, ranked)) >= len(abstracts) - 1
    for a, b in zip(got, ranked):
        fp32_scores = {kp.phrase: kp.score for kp in b}
        assert all(abs(kp.score - fp32_scores[kp.phrase]) < 0.01 for kp in a if kp.phrase in fp32_scores)


# --- a document's result does not depend on its batch --------------------------------------------------------


@pytest.fixture(scope="module")
def medline_72(shared_data: Path) -> list[str]:
    """The first 72 abstracts (title + abstract) of the MEDLINE samples, files in name order."""
    texts = []
    for path in sorted((shared_data / "pubmed" / "medline_samples").rglob("*.xml.gz")):
        texts += [document_text(r.title, r.abstract) for r in iter_medline(path)
                  if isinstance(r, SourceRecord) and r.abstract and r.abstract.strip()]
    assert len(texts) >= 72
    return texts[:72]


PRECISIONS = [
    pytest.param("fp32", id="fp32"),
    pytest.param("int8", id="int8"),
    pytest.param("bf16", id="bf16", marks=needs_native_bf16),
]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_text_is_encoded_the_same_whatever_shares_its_batch(abstracts: list[str], precision: str) -> None:
    """The encoder's invariant: a phrase's and a document's vectors are bitwise the same alone, among others, at any
    row, in any order (one unpadded shape per text; int8 activation scales per row; small batches filled up)."""
    encoder = SentenceEncoder(None, device="cpu", precision=precision, threads=2)
    phrases = sorted({p.lower() for text in abstracts[:8] for p in candidate_phrases(text)})
    together = encoder.encode(phrases)
    shuffled = list(range(len(phrases)))
    np.random.default_rng(0).shuffle(shuffled)
    for size, stop in ((1, 50), (3, 150), (50, 150)):  # 50 alone, 50 among 2 others, 3 among 49 others
        for start in range(0, stop, size):
            idx = shuffled[start : start + size]
            assert np.array_equal(encoder.encode([phrases[i] for i in idx]), together[idx]), (size, start)
    docs = encoder.encode_documents(abstracts, token_vectors=True, all_windows=True)
    for i in (0, 7, 13):
        alone = encoder.encode_documents([abstracts[i]], token_vectors=True, all_windows=True)[0]
        assert np.array_equal(alone.embedding, docs[i].embedding)
        assert np.array_equal(alone.token_vectors, docs[i].token_vectors)
    plain = encoder.encode_documents(abstracts[:3], all_windows=True)  # token vectors not copied off the device
    for i in range(3):
        assert np.array_equal(plain[i].embedding, docs[i].embedding) and plain[i].token_vectors is None


@pytest.mark.parametrize("setting", [
    pytest.param("default-fp32", id="default-fp32"),
    pytest.param("fast-int8", id="fast-int8"),
    pytest.param("default-bf16", id="default-bf16", marks=needs_native_bf16),
])
def test_keyphrases_do_not_depend_on_the_batching(medline_72: list[str], setting: str) -> None:
    """72 real abstracts in batches of 64 in order, then in batches of 7 in shuffled order (no embedding cache, so
    every phrase is encoded in both runs, among other phrases): the same phrases at the same ranks, scores within
    1e-4 (measured: bitwise equal in all three settings)."""
    config = {
        "default-fp32": ExtractionConfig(threads=2, precision="fp32", use_cache=False),
        "fast-int8": ExtractionConfig.fast(threads=2, device="cpu", precision="int8", use_cache=False),
        "default-bf16": ExtractionConfig(threads=2, precision="bf16", use_cache=False),
    }[setting]
    engine = KeyphraseEngine(config)
    assert engine.precision == setting.split("-")[1]

    def run(batch_size: int, order: list[int]) -> dict[int, list[Keyphrase]]:
        out: dict[int, list[Keyphrase]] = {}
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out.update(zip(idx, engine.extract([medline_72[i] for i in idx])))
        return out

    in_order = run(64, list(range(len(medline_72))))
    order = list(range(len(medline_72)))
    np.random.default_rng(7).shuffle(order)
    shuffled = run(7, order)
    for i, expected in in_order.items():
        assert len(expected) == 10
        assert [kp.phrase for kp in shuffled[i]] == [kp.phrase for kp in expected], i
        assert all(abs(a.score - b.score) <= 1e-4 for a, b in zip(shuffled[i], expected)), i


def test_equal_scores_are_ordered_by_phrase_text() -> None:
    """Ties never depend on the order candidates came in: equal scores rank by phrase text."""
    scores = np.array([0.5, 0.9, 0.5, 0.7, 0.5], dtype=np.float32)
    names = ["delta", "alpha", "bravo", "echo", "charlie"]
    assert list(top_by_score(scores, 4, names)) == [1, 3, 2, 4]
    reordered = [4, 2, 0, 3, 1]
    assert [names[reordered[i]] for i in top_by_score(scores[reordered], 4, [names[i] for i in reordered])] == [
        "alpha", "echo", "bravo", "charlie"]


# --- a pathological document --------------------------------------------------------------------------------


def test_a_5_mb_document_extracts_in_bounded_time_and_memory(shared_data: Path) -> None:
    """A 5 MB 'abstract' (real abstracts glued together): only the first max_text_chars characters are read, so it
    costs what a 100 kB text does (measured 2.5 s, ~84 encoder windows, +150 MB peak RSS) instead of ~4,000
    windows and ~1.7 GB of token vectors."""
    import resource
    import time

    path = shared_data / "pubmed" / "full_files" / "pubmed21n1298.xml.gz"
    parts, size = [], 0
    for r in iter_medline(path):
        if isinstance(r, SourceRecord) and r.abstract:
            parts.append(document_text(r.title, r.abstract))
            size += len(parts[-1]) + 1
            if size > 5_000_000:
                break
    text = " ".join(parts)[:5_000_000]
    config = ExtractionConfig(threads=2, precision="fp32", use_cache=False)
    assert config.max_text_chars == 100_000
    engine = KeyphraseEngine(config)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    (phrases,) = engine.extract([text])
    seconds = time.perf_counter() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(phrases) == 10 and all(locate(text[: config.max_text_chars], kp.phrase) for kp in phrases)
    assert engine.ranker.counts["windows"] <= config.max_text_chars // engine.encoder.max_length
    assert seconds < 60, seconds  # generous: a shared 2-core machine
    assert grown_mb < 1000, grown_mb
    # the cap cuts at a word boundary and is part of the config hash
    capped = cap_text(text, config.max_text_chars)
    assert len(capped) <= config.max_text_chars and text.startswith(capped) and text[len(capped)].isspace()
    assert cap_text("short text", 1000) == "short text" and cap_text(text, None) == text
    assert ExtractionConfig(max_text_chars=50_000).config_hash() != config.config_hash()
