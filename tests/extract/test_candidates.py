"""Candidate phrases on real MEDLINE and Inspec abstracts; the extraction config and its hash (no model needed)."""

from __future__ import annotations

import json
import re
from itertools import islice
from pathlib import Path

import pytest
from sklearn.feature_extraction.text import CountVectorizer

from kpe.extract.candidates import (
    STOP_WORDS,
    CandidateSource,
    KeyBERTCandidates,
    PhraseCandidates,
    candidate_phrases,
    candidate_spans,
)
from kpe.extract.config import RUNTIME_FIELDS, ExtractionConfig
from kpe.extract.methods import document_text
from kpe.records import SourceRecord
from kpe.sources.pubmed import iter_medline

# Characters that never occur inside a candidate ("." only inside a word such as "2.5" or "e.g").
_BOUNDARY = re.compile(r"[,;:()\[\]?!\"%=<>/]|\.(\s|$)")


def _medline_texts(shared_data: Path, n: int) -> list[str]:
    path = shared_data / "pubmed" / "full_files" / "pubmed21n1298.xml.gz"
    records = (r for r in iter_medline(path) if isinstance(r, SourceRecord) and r.abstract and r.abstract.strip())
    return [document_text(r.title, r.abstract) for r in islice(records, n)]


@pytest.fixture(scope="module")
def real_texts(shared_data: Path) -> list[str]:
    """40 real MEDLINE abstracts and 40 Inspec abstracts."""
    inspec = []
    with (shared_data / "keyphrase" / "inspec_dev.jsonl").open() as fh:
        for line in islice(fh, 40):
            obj = json.loads(line)
            inspec.append(document_text(obj["title"], obj["abstract"]))
    return _medline_texts(shared_data, 40) + inspec


def test_candidates_are_bounded_by_content_words_and_stay_inside_a_clause(real_texts: list[str]) -> None:
    n_checked = 0
    for text in real_texts:
        cands = candidate_spans(text)
        assert cands, "every real abstract has candidates"
        for cand in cands:
            words = cand.phrase.lower().split()
            assert 1 <= len(words) <= 3
            assert not STOP_WORDS & set(words), cand.phrase
            assert not re.fullmatch(r"[\d.,]+%?", words[0]), f"starts with a number: {cand.phrase!r}"
            assert cand.spans, cand.phrase
            for start, end in cand.spans:
                span = text[start:end]
                assert not _BOUNDARY.search(span), f"{cand.phrase!r} crosses punctuation in {span!r}"
                assert " ".join(span.split()).lower() == cand.phrase.lower()
            n_checked += 1
    assert n_checked > 5000


def test_candidates_are_distinct_ignoring_case_in_order_of_first_occurrence(real_texts: list[str]) -> None:
    for text in real_texts:
        phrases = candidate_phrases(text)
        lowered = [p.lower() for p in phrases]
        assert len(set(lowered)) == len(lowered)
        first_seen = [min(s for s, _ in c.spans) for c in candidate_spans(text)]
        # ordered by first occurrence (ties: the shorter n-gram at the same start comes first)
        assert first_seen == sorted(first_seen)


def test_candidates_on_a_sentence_with_every_boundary() -> None:
    text = (
        "Patients with type 2 diabetes (T2D) received 10 mg dapagliflozin; quality of life, "
        "renal function and HbA1c improved. Dapagliflozin reduced risk."
    )
    phrases = candidate_phrases(text)
    lowered = {p.lower() for p in phrases}
    assert {"type 2 diabetes", "t2d", "dapagliflozin", "quality", "life", "renal function", "hba1c"} <= lowered
    assert "quality of life" not in lowered  # no stop word inside by default...
    assert "quality of life" in {p.lower() for p in candidate_phrases(text, inner_stop_words=frozenset({"of"}))}
    assert "diabetes t2d" not in lowered  # crosses "("
    assert "10 mg" not in lowered and "10" not in lowered  # starts with / is a number
    assert "dapagliflozin quality" not in lowered  # crosses ";"
    assert not any(p.lower().startswith(("with ", "the ")) for p in phrases)
    # the lower-case later form replaces a sentence-initial capital; the first form is kept otherwise
    assert "dapagliflozin" in phrases and "Dapagliflozin" not in phrases
    assert "Patients" in phrases


def test_ngram_range_and_cap() -> None:
    text = "Deep convolutional neural networks classify chest radiographs."
    assert all(len(p.split()) == 1 for p in candidate_phrases(text, ngram_range=(1, 1)))
    assert all(2 <= len(p.split()) <= 2 for p in candidate_phrases(text, ngram_range=(2, 2)))
    assert len(candidate_phrases(text, max_candidates=3)) == 3
    with pytest.raises(ValueError):
        candidate_phrases(text, ngram_range=(2, 1))
    assert candidate_phrases("") == [] and candidate_phrases("; , ().") == []


def test_candidate_sources_follow_the_protocol(real_texts: list[str]) -> None:
    docs = real_texts[:10]
    ours = PhraseCandidates()
    theirs = KeyBERTCandidates()
    assert isinstance(ours, CandidateSource) and isinstance(theirs, CandidateSource)
    assert ours(docs) == [candidate_phrases(d) for d in docs]
    # KeyBERT's candidates: the batch-fitted CountVectorizer's vocabulary entries present in each document
    vectorizer = CountVectorizer(ngram_range=(1, 3), stop_words="english").fit(docs)
    words = vectorizer.get_feature_names_out()
    matrix = vectorizer.transform(docs)
    for row, cands in enumerate(theirs(docs)):
        assert set(cands) == {words[j] for j in matrix[row].nonzero()[1]}
    # KeyBERT's n-grams span removed stop words; ours do not
    assert sum(len(c) for c in theirs(docs)) > sum(len(c) for c in ours(docs))


def test_config_hash_is_stable_and_follows_every_result_setting() -> None:
    base = ExtractionConfig()
    assert base.config_hash() == ExtractionConfig().config_hash()
    assert re.fullmatch(r"[0-9a-f]{16}", base.config_hash())
    assert json.loads(base.to_json())["top_n"] == 10
    changed = {
        "top_n": 5, "ngram_range": (1, 2), "candidate_mode": "keybert", "max_candidates": 50, "diversity": 0.5,
        "drop_subphrases": True, "prefilter": "none", "prefilter_k": 40, "doc_embedding": "chunks",
        "candidate_embedding": "contextual", "precision": "fp32", "max_text_chars": 50_000,
    }
    hashes = {base.config_hash()}
    for field, value in changed.items():
        other = base.model_copy(update={field: value})
        assert other.config_hash() != base.config_hash(), field
        hashes.add(other.config_hash())
    assert len(hashes) == len(changed) + 1
    # settings that only change speed do not change the hash
    for field, value in {"batch_tokens": 1024, "use_cache": False, "threads": 1, "device": "cpu"}.items():
        assert field in RUNTIME_FIELDS
        assert base.model_copy(update={field: value}).config_hash() == base.config_hash(), field


def test_config_is_frozen_and_validated() -> None:
    config = ExtractionConfig()
    with pytest.raises(Exception):  # noqa: B017
        config.top_n = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        ExtractionConfig(ngram_range=(3, 1))
    with pytest.raises(ValueError):
        ExtractionConfig(diversity=0.5, use_maxsum=True)
    with pytest.raises(ValueError):
        ExtractionConfig(use_maxsum=True, nr_candidates=5, top_n=10)
    with pytest.raises(ValueError):
        ExtractionConfig(unknown_setting=1)
    keybert = ExtractionConfig.keybert()
    assert (keybert.candidate_mode, keybert.prefilter, keybert.precision) == ("keybert", "none", "fp32")
