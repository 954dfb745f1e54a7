"""The ``ranked`` method's span ranker on real documents: candidates and their features, labels from the gold, a fit
that learns from real labels, loading only what a span ranker is made of, and extraction (the first five kept, the
rest by the chosen probability, a long paper ranked as the tagger ranks it)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kpe.datasets import GoldDocument, load_benchmark
from kpe.evaluate.metrics import evaluate_predictions, phrase_key
from kpe.extract.methods import MethodUnavailable, build_extractor
from kpe.phrases import normalize_phrase, stem_tokens
from kpe.train import TrainConfig, train
from kpe.train.phrase_lexicon import LEXICON_FEATURES, LEXICON_FILE, build_phrase_lexicon
from kpe.train.span_ranker import (
    ALWAYS_KEEP,
    FEATURES,
    MIN_SCORES,
    RANKER_FILE,
    RANKER_SUMMARY,
    SpanCandidates,
    feature_names,
    fit_model_ranker,
    fit_span_ranker,
    load_span_ranker,
    present_gold_labels,
    ranked_keyphrases,
    span_candidates,
)
from kpe.train.tagger import TaggerExtractor, decode_spans, soft_spans

COLUMN = {name: i for i, name in enumerate(FEATURES)}


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_encoder: Path) -> Path:
    out = tmp_path_factory.mktemp("tagger")
    result = train(TrainConfig(kind="tagger", base=str(tiny_encoder), train_data=["inspec"], max_docs=8, max_steps=2,
                               output_dir=out, shared_data_dir=shared_data, max_length=128, stride=32, batch_size=4,
                               eval_batch_size=16, log_with="none", max_val_docs=4, tune_hybrid=False,
                               fit_span_ranker=False, num_threads=1, precision="fp32"))
    return result.model_dir  # fp32: the same tiny tagger on either CPU kind


@pytest.fixture(scope="module")
def inspec(shared_data: Path) -> tuple[list[GoldDocument], list[GoldDocument]]:
    """Real Inspec abstracts: 240 training documents to fit on, 120 dev documents to rank."""
    return load_benchmark("inspec", "train", shared_data)[:240], load_benchmark("inspec", "dev", shared_data)[:120]


def _candidates(tagger_dir: Path, docs: list[GoldDocument]) -> list[SpanCandidates]:
    tagger = TaggerExtractor(tagger_dir, precision="fp32")
    return [span_candidates(d.text, t.word_spans, t.word_probs, tagger.pooling)
            for d, t in zip(docs, tagger.tag([d.text for d in docs]))]


def test_candidates_hold_every_decoded_span_with_features_and_gold_labels(tagger_dir: Path, inspec):
    docs = inspec[1][:20]
    tagger = TaggerExtractor(tagger_dir, precision="fp32")
    labelled = 0
    for doc, tagged in zip(docs, tagger.tag([d.text for d in docs])):
        cands = span_candidates(doc.text, tagged.word_spans, tagged.word_probs, tagger.pooling)
        assert len(set(cands.keys)) == len(cands.keys) == len(cands.phrases) > 0
        assert cands.features.shape == (len(cands.keys), len(FEATURES)) and np.isfinite(cands.features).all()
        decoded = {normalize_phrase(s.phrase) for s in decode_spans(doc.text, tagged.word_spans, tagged.word_probs)}
        assert decoded - {""} <= set(cands.keys)
        for key, row in zip(cands.keys, cands.features):
            assert row[COLUMN["decoded"]] == float(key in decoded)
            assert row[COLUMN["words"]] == len(key.split())
        assert set(cands.features[:, COLUMN["in_first_sentence"]]) == {0.0, 1.0}  # the title's and the body's
        soft = soft_spans(doc.text, tagged.word_spans, tagged.word_probs, tagger.pooling)
        assert soft and all(s.key == normalize_phrase(s.phrase) for s in soft)  # keys composed from the words'
        for i, inner in enumerate(cands.keys):  # a longer candidate's score reaches the ones it contains
            for j, outer in enumerate(cands.keys):
                if i != j and f" {inner} " in f" {outer} ":
                    assert cands.features[i, COLUMN["longer_best"]] >= cands.features[j, COLUMN["best_score"]]
                    assert cands.features[j, COLUMN["shorter_best"]] >= cands.features[i, COLUMN["best_score"]]
        labels, n_present = present_gold_labels(cands, doc.text, doc.keyphrases)
        gold, text_key = {phrase_key(g) for g in doc.keyphrases}, f" {' '.join(phrase_key(doc.text))} "
        for phrase, label in zip(cands.phrases, labels):  # 1 exactly for a gold phrase that occurs in the text
            key = phrase_key(phrase)
            assert bool(label) == (key in gold and f" {' '.join(key)} " in text_key)
        assert int(labels.sum()) <= n_present
        labelled += int(labels.sum())
    assert labelled > 0  # real gold phrases are among the candidates


def test_the_ranker_learns_from_real_labels_to_beat_the_taggers_own_order(tagger_dir: Path, inspec):
    """Fitted on 240 Inspec training abstracts, it ranks 120 dev abstracts better than the (barely trained)
    tagger's scores do: position, the title, length and nesting carry what the tagger has not learned."""
    train_docs, dev_docs = inspec
    fit_on = _candidates(tagger_dir, train_docs)
    labels = [present_gold_labels(c, d.text, d.keyphrases)[0] for c, d in zip(fit_on, train_docs)]
    ranker = fit_span_ranker(fit_on, labels, [d.dataset for d in train_docs])
    dev = _candidates(tagger_dir, dev_docs)

    def f1_at_5(predictions: list[list[str]]) -> float:
        return evaluate_predictions(predictions, [list(d.keyphrases) for d in dev_docs],
                                    [d.text for d in dev_docs], ks=(5,))["macro"]["present"]["f1@5"]

    by_tagger = [[c.phrases[i] for i in np.argsort(-c.features[:, COLUMN["best_score"]], kind="stable")[:10]]
                 for c in dev]
    by_ranker = [[k.phrase for k in ranked] for ranked in ranked_keyphrases(ranker, dev, 10)]
    assert f1_at_5(by_ranker) > f1_at_5(by_tagger) + 0.025  # measured: 0.056 against 0.012


def test_a_span_ranker_loads_only_from_a_file_holding_one_and_fits_only_on_documents(tmp_path: Path):
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(MethodUnavailable, match="kpe models fit-ranker"):
        load_span_ranker(tmp_path)
    with pytest.raises(ValueError, match="no validation document"):
        fit_model_ranker(tmp_path, [GoldDocument("1", " ", ("x",), "inspec")])
    skops.io.dump(FunctionTransformer(func=os.system), tmp_path / RANKER_FILE)
    with pytest.raises(ValueError, match="holds types a span ranker does not"):
        load_span_ranker(tmp_path)
    rng = np.random.default_rng(0)
    skops.io.dump(LogisticRegression().fit(rng.random((20, 3)), np.arange(20) % 2), tmp_path / RANKER_FILE)
    with pytest.raises(ValueError, match="not a span ranker"):
        load_span_ranker(tmp_path)


def test_ranked_extraction_keeps_five_then_the_confident_and_ranks_long_papers_as_the_tagger(
        tagger_dir: Path, inspec, shared_data: Path, tmp_path: Path):
    model = tmp_path / "model"
    shutil.copytree(tagger_dir, model)
    summary = fit_model_ranker(model, inspec[0][:120])
    assert summary["docs"] == {"inspec": 120} and summary["min_score"] in MIN_SCORES
    assert set(summary["cross_fitted_f1@M_by_min_score"]) == set(MIN_SCORES)
    assert json.loads((model / "span_ranker.json").read_text())["features"] == list(FEATURES)

    with (shared_data / "keyphrase" / "nus_dev.jsonl").open() as fh:
        paper = json.loads(fh.readline())["text"]
    texts = [d.text for d in inspec[1][:6]]
    ranked = build_extractor("ranked", str(model), {"precision": "fp32"})
    out = ranked.extract([*texts, "", paper])
    for keyphrases in out[: len(texts)]:
        scores = [k.score for k in keyphrases]
        assert ALWAYS_KEEP <= len(keyphrases) <= 10 and scores == sorted(scores, reverse=True)
        assert all(s >= summary["min_score"] for s in scores[ALWAYS_KEEP:])
    assert out[len(texts)] == []
    tagger = TaggerExtractor(model, precision="fp32")
    assert [k.phrase for k in out[-1]] == [k.phrase for k in tagger.extract([paper])[0]][:10]

    only_five = build_extractor("ranked", str(model), {"precision": "fp32", "ranked_min_score": 1.01})
    assert [len(k) for k in only_five.extract(texts)] == [ALWAYS_KEEP] * len(texts)


def test_a_phrase_lexicon_adds_known_phrases_and_its_features_and_travels_with_the_ranker(
        tagger_dir: Path, inspec, tmp_path: Path):
    """Counted on training abstracts the ranker never fits on; a known phrase of the text joins the pool; the
    extractor loads the lexicon the ranker was fitted with and refuses to run without it."""
    train_docs, dev_docs = inspec
    lexicon = build_phrase_lexicon(train_docs[120:])
    tagger = TaggerExtractor(tagger_dir, precision="fp32")
    joined = 0
    for doc, tagged in zip(dev_docs[:20], tagger.tag([d.text for d in dev_docs[:20]])):
        plain = span_candidates(doc.text, tagged.word_spans, tagged.word_probs, tagger.pooling, pool=5)
        cands = span_candidates(doc.text, tagged.word_spans, tagged.word_probs, tagger.pooling, pool=5,
                                lexicon=lexicon)
        assert cands.keys[: len(plain.keys)] == plain.keys and cands.features.shape[1] == len(feature_names(True))
        nesting = [COLUMN["longer_best"], COLUMN["shorter_best"]]  # more candidates: more nested pairs
        same = [i for i in range(len(FEATURES)) if i not in nesting]
        np.testing.assert_array_equal(cands.features[: len(plain.keys), same], plain.features[:, same])
        assert (cands.features[: len(plain.keys), nesting] >= plain.features[:, nesting]).all()
        np.testing.assert_array_equal(cands.features[:, len(FEATURES):], lexicon.features(cands.keys))
        added = cands.keys[len(plain.keys):]
        text_words = f" {' '.join(stem_tokens(doc.text))} "
        assert all(lexicon.is_known(k) and f" {k} " in text_words for k in added)
        joined += len(added)
    assert joined > 0

    model = tmp_path / "model"
    shutil.copytree(tagger_dir, model)
    summary = fit_model_ranker(model, train_docs[:120], lexicon_docs=train_docs[120:])
    assert summary["lexicon"] == lexicon.summary() and (model / LEXICON_FILE).is_file()
    assert json.loads((model / RANKER_SUMMARY).read_text())["features"] == [*FEATURES, *LEXICON_FEATURES]
    ranked = build_extractor("ranked", str(model), {"precision": "fp32"})
    assert ranked.lexicon == lexicon
    out = ranked.extract([d.text for d in dev_docs[:4]])
    assert all(ALWAYS_KEEP <= len(k) <= 10 for k in out)
    (model / LEXICON_FILE).unlink()
    with pytest.raises(ValueError, match="phrase_lexicon.json.gz is missing"):
        build_extractor("ranked", str(model), {"precision": "fp32"})
    fit_model_ranker(model, train_docs[:120])  # refitted without one: no stale lexicon is left to be loaded
    assert not (model / LEXICON_FILE).exists() and build_extractor("ranked", str(model)).lexicon is None
    for broken in ("not json", '["a list"]', '{"features": ["best_score", "made_up"]}'):
        (model / RANKER_SUMMARY).write_text(broken)
        with pytest.raises(ValueError, match="span ranker summary|features this version does not compute"):
            build_extractor("ranked", str(model))
