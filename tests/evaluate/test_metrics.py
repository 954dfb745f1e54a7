"""Keyphrase metrics against hand-computed values (every expected number is worked out in a comment)."""

from __future__ import annotations

import pytest

from kpe.evaluate.metrics import aggregate, evaluate_predictions, match_document, phrase_key, unique_keys

approx = pytest.approx


def test_stemming_variants_and_hyphens_match():
    # "Neural Network" and "neural networks" share the stems (neural, network); hyphens split tokens.
    assert phrase_key("Neural Network") == phrase_key("neural networks")
    assert phrase_key("multi-agent systems") == phrase_key("Multi agent system")
    assert phrase_key("neural networks") != phrase_key("network neural")
    m = match_document("d", ["Neural Network"], ["neural networks"], "Neural networks are trained.")
    assert m.correct == {"all": (True,), "present": (True,)}


def test_predictions_deduplicated_after_stemming_keep_first_and_drop_empty():
    assert unique_keys(["Neural Networks", "", "  ", "---", "neural network", "deep learning"]) == [
        ("neural", "network"), ("deep", "learn")
    ]
    # gold is deduplicated too: 3 strings, 2 distinct keys
    m = match_document("d", ["neural networks", "Neural Network", "deep learning"],
                       ["deep learning", "neural networks", "Neural network"], "")
    assert m.n_pred == 2 and m.n_gold["all"] == 2
    scores = aggregate([m])
    # deduplicated predictions [nn, dl], both correct: P@1 = 1, P@3 strict = 2/3, P@3 min(k, n) = 2/2
    assert scores["macro"]["all"]["p@1"] == approx(1.0)
    assert scores["macro"]["all"]["p@3"] == approx(2 / 3)
    assert scores["macro_mink"]["all"]["p@3"] == approx(1.0)
    assert scores["macro"]["all"]["p@M"] == approx(1.0)


def test_fewer_predictions_than_k_both_conventions():
    # one correct prediction, two gold:
    #   strict: P@5 = 1/5 = 0.2, R@5 = 1/2, F1 = 2*0.2*0.5/0.7 = 0.285714...
    #   min(k, #pred): P@5 = 1/1, R@5 = 1/2, F1 = 2*1*0.5/1.5 = 0.666...
    text = "graph coloring and spectral clustering of sparse graphs"
    m = match_document("d", ["graph coloring"], ["graph colouring", "graph coloring", "spectral clustering"], text)
    assert m.n_gold == {"all": 3, "present": 2}  # "graph colouring" is a different stem, absent
    scores = evaluate_predictions([["graph coloring"]], [["graph coloring", "spectral clustering"]], [text])
    assert scores["macro"]["present"]["p@5"] == approx(0.2)
    assert scores["macro"]["present"]["r@5"] == approx(0.5)
    assert scores["macro"]["present"]["f1@5"] == approx(2 * 0.2 * 0.5 / 0.7)
    assert scores["macro_mink"]["present"]["p@5"] == approx(1.0)
    assert scores["macro_mink"]["present"]["f1@5"] == approx(2 / 3)
    # at M the denominator is the number predicted in both conventions
    assert scores["macro"]["present"]["f1@M"] == approx(2 / 3)
    assert scores["micro"]["present"]["p@10"] == approx(0.1)


def test_present_gold_needs_a_contiguous_stemmed_occurrence():
    text = "Networks of neural cells; the neural network is trained by deep-learning methods."
    m = match_document("d", [], ["neural networks", "cells network", "deep learning", "support vector machine"], text)
    # present: "neural networks" (stems neural network), "deep learning" (hyphen split); not "cells network"
    assert m.n_gold == {"all": 4, "present": 2}


def test_empty_gold_documents_are_excluded_from_that_gold_sets_averages():
    # doc a: gold "neural network" present, predicted first -> P@1 = R@1 = F1@1 = 1
    # doc b: its only gold is absent, so present gold is empty -> left out of the present averages;
    #        in the all-gold averages it counts with F1@1 = 0 (nothing correct)
    a = match_document("a", ["neural network"], ["neural network"], "a neural network")
    b = match_document("b", ["tree"], ["support vector machine"], "a decision tree")
    scores = aggregate([a, b])
    assert scores["n_docs"] == 2
    assert scores["n_docs_scored"] == {"all": 2, "present": 1}
    assert scores["n_gold"] == {"all": 2, "present": 1}
    assert scores["macro"]["present"]["f1@1"] == approx(1.0)
    assert scores["macro"]["all"]["f1@1"] == approx(0.5)
    # micro present: doc b excluded, TP = 1, pred = 1, gold = 1
    assert scores["micro"]["present"]["f1@1"] == approx(1.0)


def test_document_without_text_has_no_present_gold_and_scores_zero():
    m = match_document("empty", [], ["ship control", "matrix game"], "")
    assert m.n_pred == 0 and m.n_gold == {"all": 2, "present": 0}
    scores = aggregate([m])
    assert scores["n_docs_scored"] == {"all": 1, "present": 0}
    assert all(v == 0.0 for block in ("macro", "micro", "macro_mink") for v in scores[block]["all"].values())
    assert all(v == 0.0 for v in scores["macro"]["present"].values())


def test_micro_and_macro_differ_on_a_two_document_corpus():
    # doc A: 2 gold, predictions [g1, x, y, z, w]      -> TP@5 = 1: P = 1/5, R = 1/2, F1 = 0.2/0.7 = 0.285714
    # doc B: 4 gold, predictions [h1, h2, h3, q, r]    -> TP@5 = 3: P = 3/5, R = 3/4, F1 = 0.9/1.35 = 0.666667
    # macro F1@5 = (0.285714 + 0.666667) / 2 = 0.476190; macro P@5 = 0.4; macro R@5 = (0.5 + 0.75) / 2 = 0.625
    # micro: TP = 4, predicted = 10, gold = 6 -> P = 0.4, R = 0.666667, F1 = 2*0.4*0.666667/1.066667 = 0.5
    text_a = "alpha beta gamma delta epsilon zeta eta theta"
    text_b = "one two three four five six seven eight nine"
    preds = [["alpha", "gamma", "delta", "epsilon", "zeta"], ["one", "two", "three", "seven", "eight"]]
    gold = [["alpha", "beta"], ["one", "two", "three", "four"]]
    scores = evaluate_predictions(preds, gold, [text_a, text_b], doc_ids=["A", "B"])
    assert scores["macro"]["all"]["p@5"] == approx(0.4)
    assert scores["macro"]["all"]["r@5"] == approx(0.625)
    assert scores["macro"]["all"]["f1@5"] == approx((0.2 / 0.7 + 0.9 / 1.35) / 2)
    assert scores["micro"]["all"]["p@5"] == approx(0.4)
    assert scores["micro"]["all"]["r@5"] == approx(4 / 6)
    assert scores["micro"]["all"]["f1@5"] == approx(0.5)
    # at k = 1 both documents are right: P@1 = 1, R@1 = 1/2 and 1/4; micro R@1 = 2/6
    assert scores["macro"]["all"]["r@1"] == approx(0.375)
    assert scores["micro"]["all"]["r@1"] == approx(2 / 6)
    # every gold phrase is in its text, so present == all here
    assert scores["macro"]["present"] == scores["macro"]["all"]


def test_metric_keys_are_stable():
    scores = evaluate_predictions([["a b"]], [["a b"]], ["a b"])
    expected = {f"{m}@{k}" for k in ("1", "3", "5", "10", "M") for m in ("p", "r", "f1")}
    for block in ("macro", "micro", "macro_mink", "micro_mink"):
        assert set(scores[block]) == {"all", "present"}
        assert set(scores[block]["all"]) == expected
    with pytest.raises(ValueError, match="differ in length"):
        evaluate_predictions([["a"]], [], ["a"])
