"""Baseline methods (KeyBERT, YAKE, TF-IDF, first phrases) on real Inspec abstracts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpe.datasets import load_jsonl
from kpe.evaluate.baselines import TfidfExtractor, distinct_candidates
from kpe.evaluate.harness import evaluate_extractor
from kpe.evaluate.metrics import occurs_in, phrase_key
from kpe.extract.methods import Keyphrase, build_extractor


@pytest.fixture(scope="module")
def inspec20(shared_data: Path):
    return load_jsonl(shared_data / "keyphrase" / "inspec_dev.jsonl", limit=20)


@pytest.mark.parametrize("method", ["yake", "tfidf", "first-phrases"])
def test_classic_baselines_rank_at_most_ten_phrases(method, inspec20):
    extractor = build_extractor(method)
    assert extractor.name == method
    texts = [d.text for d in inspec20]
    ranked = extractor.extract(texts)
    assert len(ranked) == len(texts)
    for text, phrases in zip(texts, ranked):
        assert 1 <= len(phrases) <= 10
        assert all(isinstance(kp, Keyphrase) and kp.phrase.strip() for kp in phrases)
        scores = [kp.score for kp in phrases]
        assert scores == sorted(scores, reverse=True), "best first: scores must not increase"
        if method != "yake":  # candidate-based methods only return phrases of the text, 1-3 words
            text_key = phrase_key(text)
            assert all(occurs_in(phrase_key(kp.phrase), text_key) for kp in phrases)
            assert all(1 <= len(kp.phrase.split()) <= 3 for kp in phrases)


def test_first_phrases_follow_text_order(inspec20):
    doc = inspec20[0]
    expected = [phrase for phrase, _ in distinct_candidates(doc.text)[:10]]
    assert [kp.phrase for kp in build_extractor("first-phrases").extract([doc.text])[0]] == expected
    keys = [key for _, key in distinct_candidates(doc.text)]
    assert len(keys) == len(set(keys))


def test_tfidf_idf_comes_from_the_corpus():
    # doc 1 candidates (all TF = 1): alpha, alpha beta, beta (df 2 each: also in doc 2), gamma, gamma delta,
    # delta (df 1). Higher IDF wins; ties go to the earlier phrase -> gamma, gamma delta, delta first.
    docs = ["Alpha beta. Gamma delta.", "Alpha beta. Epsilon."]
    top = [kp.phrase.lower() for kp in TfidfExtractor(top_n=3).extract(docs)[0]]
    assert top == ["gamma", "gamma delta", "delta"]
    # fitted on a corpus where "gamma" is everywhere, the ranking of the same document changes
    fitted = TfidfExtractor(top_n=1).fit_corpus(docs + ["gamma. gamma delta. delta", "delta gamma"])
    assert [kp.phrase.lower() for kp in fitted.extract(docs[:1])[0]] == ["alpha"]


def test_tfidf_harness_fits_on_the_whole_corpus_whatever_the_batch_size(inspec20):
    small = evaluate_extractor(build_extractor("tfidf"), inspec20, batch_size=3, progress=False)
    whole = evaluate_extractor(build_extractor("tfidf"), inspec20, batch_size=64, progress=False)
    assert small["predictions"] == whole["predictions"]


@pytest.mark.parametrize("method", ["yake", "tfidf", "first-phrases"])
def test_empty_documents_get_no_phrases(method):
    assert build_extractor(method).extract(["", "   "]) == [[], []]


def test_keybert_batch_single_and_empty_documents(inspec20):
    extractor = build_extractor("keybert")
    texts = [" ".join(d.text.split()[:60]) for d in inspec20[:2]]  # real text, shortened to keep it fast
    batch = extractor.extract([texts[0], "", texts[1]])
    assert batch[1] == []
    single = extractor.extract([texts[1]])
    assert len(single) == 1
    assert [kp.phrase for kp in single[0]] == [kp.phrase for kp in batch[2]]
    for text, phrases in ((texts[0], batch[0]), (texts[1], batch[2])):
        assert len(phrases) == 10
        assert all(1 <= len(kp.phrase.split()) <= 3 and kp.phrase == kp.phrase.lower() for kp in phrases)
        assert all(word in text.lower() for kp in phrases for word in kp.phrase.split())
        scores = [kp.score for kp in phrases]
        assert scores == sorted(scores, reverse=True)
    assert extractor.extract(["", " "]) == [[], []]
    # only stop words: KeyBERT finds no candidate at all and returns [] for the whole batch
    assert extractor.extract(["the and of", "it is"]) == [[], []]
