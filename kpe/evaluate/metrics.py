"""Keyphrase metrics: P, R, F1 at k and at M, over all and present gold, macro and micro averaged.

The protocol (the same one as the keyphrase generation literature: Meng et al. 2017, Chan et al. 2019,
One2Set; micro averaging as SIFRank / PromptRank):

* Matching: a phrase becomes its *key* (``kpe.phrases.phrase_key``): hyphens become spaces (the KP20K
  tokenisation splits on hyphens), then lowercase tokens, each Porter-stemmed. A prediction is correct when
  its key equals a gold key exactly.
* Predictions are deduplicated by key (the first occurrence, the best rank, is kept); predictions with
  an empty key are dropped. Gold is deduplicated by key too, and empty gold entries are dropped.
* Gold sets: ``all`` (every gold keyphrase) and ``present`` (gold whose key occurs contiguously in the
  key of the document text).
* At k (1, 3, 5, 10): ``P@k = TP@k / k`` even when fewer than k phrases were predicted (strict, the
  headline), and the ``mink`` variant ``P@k = TP@k / min(k, #predicted)``. ``R@k = TP@k / #gold``.
  At M (all predictions): ``P@M = TP / #predicted``. F1 is ``2PR / (P + R)``, 0 when P + R = 0.
* Macro: per-document P, R and F1, averaged over documents (F1 is the mean of the per-document F1s).
  Micro: TP, predicted and gold counts summed over the corpus, then P, R, F1 from the sums.
* A document whose gold set is empty (typically: no gold keyphrase is present in the text) is left out
  of both averages *of that gold set* and counted in ``n_docs_scored``; a document with no text has no
  present gold, and when nothing is predicted for it its ``all`` scores are zeros.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from kpe.phrases import PhraseKey, phrase_key

KS: tuple[int, ...] = (1, 3, 5, 10)
GOLD_SETS: tuple[str, ...] = ("all", "present")

__all__ = ["KS", "GOLD_SETS", "PhraseKey", "phrase_key", "unique_keys", "occurs_in", "DocumentMatch",
           "match_document", "prf", "document_f1", "aggregate", "evaluate_predictions"]


def unique_keys(phrases: Iterable[str]) -> list[PhraseKey]:
    """Keys of ``phrases`` in order, empty keys dropped, duplicates after stemming removed (first kept)."""
    seen: set[PhraseKey] = set()
    keys: list[PhraseKey] = []
    for phrase in phrases:
        key = phrase_key(phrase)
        if key and key not in seen:
            seen.add(key)
            keys.append(key)
    return keys


def occurs_in(key: PhraseKey, text_key: Sequence[str]) -> bool:
    """Whether the token sequence ``key`` occurs contiguously in ``text_key``."""
    n = len(key)
    if n == 0 or n > len(text_key):
        return False
    first = key[0]
    return any(text_key[i] == first and tuple(text_key[i : i + n]) == key for i in range(len(text_key) - n + 1))


@dataclass(frozen=True, slots=True)
class DocumentMatch:
    """Which ranked (deduplicated) predictions of one document are correct, against both gold sets."""

    doc_id: str
    n_pred: int
    correct: dict[str, tuple[bool, ...]]
    n_gold: dict[str, int]


def match_document(doc_id: str, predicted: Sequence[str], gold: Sequence[str], text: str) -> DocumentMatch:
    """Match ranked predictions of one document against its gold keyphrases (see the module docstring)."""
    pred_keys = unique_keys(predicted)
    gold_all = set(unique_keys(gold))
    text_key = phrase_key(text)
    gold_present = {key for key in gold_all if occurs_in(key, text_key)}
    golds = {"all": gold_all, "present": gold_present}
    return DocumentMatch(
        doc_id=doc_id,
        n_pred=len(pred_keys),
        correct={name: tuple(key in keys for key in pred_keys) for name, keys in golds.items()},
        n_gold={name: len(keys) for name, keys in golds.items()},
    )


def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (0 for an empty denominator)."""
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1


def _cutoffs(ks: Sequence[int]) -> list[str]:
    return [str(k) for k in ks] + ["M"]


def _counts(match: DocumentMatch, gold_set: str, cutoff: str, strict: bool) -> tuple[int, int, int]:
    """(TP, predicted denominator, gold) of one document at one cutoff."""
    correct = match.correct[gold_set]
    if cutoff == "M":
        return sum(correct), match.n_pred, match.n_gold[gold_set]
    k = int(cutoff)
    denominator = k if strict else min(k, match.n_pred)
    return sum(correct[:k]), denominator, match.n_gold[gold_set]


def document_f1(match: DocumentMatch, k: int | str = 5, gold_set: str = "present") -> float | None:
    """One document's F1 at ``k`` as the (strict) macro average counts it; ``None`` for a document the average
    leaves out (no gold of ``gold_set``)."""
    if match.n_gold[gold_set] == 0:
        return None
    return prf(*_counts(match, gold_set, str(k), strict=True))[2]


def _empty_block(ks: Sequence[int]) -> dict[str, float]:
    return {f"{m}@{c}": 0.0 for c in _cutoffs(ks) for m in ("p", "r", "f1")}


def _average(matches: Sequence[DocumentMatch], gold_set: str, ks: Sequence[int], strict: bool) -> tuple[dict, dict]:
    """Macro and micro metric blocks for one gold set and one precision convention."""
    scored = [m for m in matches if m.n_gold[gold_set] > 0]
    macro, micro = _empty_block(ks), _empty_block(ks)
    if not scored:
        return macro, micro
    for cutoff in _cutoffs(ks):
        sums = [0.0, 0.0, 0.0]
        tp_total = pred_total = gold_total = 0
        for match in scored:
            tp, n_pred, n_gold = _counts(match, gold_set, cutoff, strict)
            for i, value in enumerate(prf(tp, n_pred, n_gold)):
                sums[i] += value
            tp_total, pred_total, gold_total = tp_total + tp, pred_total + n_pred, gold_total + n_gold
        for name, value in zip(("p", "r", "f1"), sums):
            macro[f"{name}@{cutoff}"] = value / len(scored)
        for name, value in zip(("p", "r", "f1"), prf(tp_total, pred_total, gold_total)):
            micro[f"{name}@{cutoff}"] = value
    return macro, micro


Scores = dict[str, float]
"""One gold set's scores: ``p@k``, ``r@k``, ``f1@k`` for every k and ``M``."""


class ByGoldSet(TypedDict):
    """A number or the scores per gold set."""

    all: Any
    present: Any


class CorpusScores(TypedDict):
    """What :func:`aggregate` returns: counts, and the scores per averaging and gold set
    (``result["macro"]["present"]["f1@5"]``)."""

    n_docs: int
    n_pred: int
    n_gold: ByGoldSet
    n_docs_scored: ByGoldSet
    macro: ByGoldSet
    micro: ByGoldSet
    macro_mink: ByGoldSet
    micro_mink: ByGoldSet


def f1(scores: CorpusScores, k: int | str = 5, gold_set: str = "present", average: str = "macro") -> float:
    """One F1 of a result: by default the headline macro present F1@5 (the gate's metric)."""
    return float(scores[average][gold_set][f"f1@{k}"])


def aggregate(matches: Sequence[DocumentMatch], ks: Sequence[int] = KS) -> CorpusScores:
    """Corpus metrics with stable keys.

    Returns ``{"n_docs", "n_pred", "n_gold": {"all", "present"}, "n_docs_scored": {"all", "present"},
    "macro": {gold_set: {"p@1", "r@1", "f1@1", ..., "f1@M"}}, "micro": {...}, "macro_mink": {...},
    "micro_mink": {...}}``; ``macro``/``micro`` use the strict ``/k`` precision, ``*_mink`` the
    ``/min(k, #predicted)`` one.
    """
    result: Any = {
        "n_docs": len(matches),
        "n_pred": sum(m.n_pred for m in matches),
        "n_gold": {g: sum(m.n_gold[g] for m in matches) for g in GOLD_SETS},
        "n_docs_scored": {g: sum(1 for m in matches if m.n_gold[g] > 0) for g in GOLD_SETS},
    }
    for strict, suffix in ((True, ""), (False, "_mink")):
        result[f"macro{suffix}"], result[f"micro{suffix}"] = {}, {}
        for gold_set in GOLD_SETS:
            macro, micro = _average(matches, gold_set, ks, strict)
            result[f"macro{suffix}"][gold_set] = macro
            result[f"micro{suffix}"][gold_set] = micro
    return result


def evaluate_predictions(
    predictions: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], texts: Sequence[str],
    doc_ids: Sequence[str] | None = None, ks: Sequence[int] = KS,
) -> CorpusScores:
    """Match and aggregate in one call: ranked predictions, gold lists and texts, aligned by document."""
    if not len(predictions) == len(gold) == len(texts):
        raise ValueError(
            f"predictions ({len(predictions)}), gold ({len(gold)}) and texts ({len(texts)}) differ in length"
        )
    ids = list(doc_ids) if doc_ids is not None else [str(i) for i in range(len(texts))]
    matches = [match_document(i, p, g, t) for i, p, g, t in zip(ids, predictions, gold, texts)]
    return aggregate(matches, ks)
