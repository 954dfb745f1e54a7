"""The span ranker's phrase lexicon on real Inspec training abstracts: counts that match a recount of the documents,
features that follow them, a file that comes back equal, and a clear error for a missing or damaged one."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from kpe.datasets import load_benchmark
from kpe.phrases import normalize_phrase, stem_tokens
from kpe.train.phrase_lexicon import (
    LEXICON_FEATURES,
    LEXICON_FILE,
    MIN_GOLD_DOCS,
    build_phrase_lexicon,
    load_phrase_lexicon,
    save_phrase_lexicon,
)

COLUMN = {name: i for i, name in enumerate(LEXICON_FEATURES)}


def test_the_lexicon_counts_what_real_training_documents_hold(shared_data: Path, tmp_path: Path):
    docs = load_benchmark("inspec", "train", shared_data)[:300]
    lexicon = build_phrase_lexicon(docs)
    gold_sets = [{normalize_phrase(k) for k in d.keyphrases} - {""} for d in docs]
    texts = [f" {' '.join(stem_tokens(d.text))} " for d in docs]
    assert lexicon.documents == 300 and lexicon.summary()["gold_phrases"] == len(set().union(*gold_sets))
    repeated = [k for k, n in lexicon.gold_docs.items() if n >= MIN_GOLD_DOCS]
    assert len(repeated) == lexicon.summary()["known_phrases"] > 20  # Inspec's authors reuse phrases
    for key in sorted(repeated, key=lambda k: (-lexicon.gold_docs[k], k))[:15]:  # a recount, document by document
        assert lexicon.gold_docs[key] == sum(key in g for g in gold_sets)
        assert lexicon.text_docs.get(key, 0) == sum(f" {key} " in t for t in texts)
        assert lexicon.is_known(key)
    for word in ("network", "the", "fuzzi"):
        assert lexicon.word_docs[word] == sum(f" {word} " in t for t in texts)

    common, rare = sorted(repeated, key=lambda k: -lexicon.gold_docs[k])[0], "unseen phrase zzqx"
    rows = lexicon.features([common, rare, "the"])
    assert rows.shape == (3, len(LEXICON_FEATURES)) and np.isfinite(rows).all()
    assert rows[0, COLUMN["log_gold_docs"]] == pytest.approx(math.log1p(lexicon.gold_docs[common]))
    assert 0 < rows[0, COLUMN["keyphraseness"]] <= 1
    assert rows[1, COLUMN["log_gold_docs"]] == rows[1, COLUMN["keyphraseness"]] == 0 and not lexicon.is_known(rare)
    assert rows[1, COLUMN["max_idf"]] == pytest.approx(math.log(300))  # an unseen word is the rarest there is
    assert rows[2, COLUMN["mean_idf"]] < 0.1 < rows[0, COLUMN["min_idf"]] <= rows[0, COLUMN["max_idf"]]

    save_phrase_lexicon(lexicon, tmp_path)
    assert load_phrase_lexicon(tmp_path) == lexicon


def test_a_missing_or_damaged_lexicon_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="fit-ranker"):
        load_phrase_lexicon(tmp_path)
    (tmp_path / LEXICON_FILE).write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a phrase lexicon"):
        load_phrase_lexicon(tmp_path)
    with gzip.open(tmp_path / LEXICON_FILE, "wt") as fh:
        fh.write('{"documents": 3, "word_docs": [], "gold_docs": {}, "text_docs": {}}')
    with pytest.raises(ValueError, match="not a phrase lexicon"):
        load_phrase_lexicon(tmp_path)
    with pytest.raises(ValueError, match="needs training documents"):
        build_phrase_lexicon([])
