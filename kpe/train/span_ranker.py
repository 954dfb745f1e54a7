"""The ``ranked`` method: a tagger's candidate spans re-ranked by a learned span ranker.

A tagger scores each span by its words' tag probabilities alone. Whether an author would pick a phrase also shows in
where and how often it occurs (the title, the first sentences), its length, and how it compares with the document's
other spans. The span ranker is a gradient-boosted tree classifier (scikit-learn's ``HistGradientBoostingClassifier``)
over those features of each candidate: the 30 best soft spans and every decoded span of a document
(``kpe.train.tagger``), labelled 1 when the candidate is one of the document's present gold keyphrases (the
evaluation protocol's stemmed match). It is fitted on the training run's **validation slice**: documents of the
training sources the tagger never trained on, so their tag probabilities are what extraction will see. Each
source's documents weigh ``1 / sqrt(documents of that source)``, so that a large silver source does not drown the
benchmark sources out entirely. With a phrase lexicon of the training split (``kpe.train.phrase_lexicon``: how
many training documents list a phrase as a keyphrase, how often it is picked where it occurs, how common its words
are) each candidate also gets :data:`~kpe.train.phrase_lexicon.LEXICON_FEATURES`, and a phrase listed by several
training documents joins the candidates wherever the document holds it.

The ranker is saved beside the tagger as ``span_ranker.skops`` (``skops.io``: no pickle; loading trusts only the
tree type scikit-learn's model is made of), ``span_ranker.json`` (features, counts) and ``phrase_lexicon.json.gz``.
A long document (a full paper: ``kpe.extract.ranking.is_long_document``) is ranked as the ``tagger`` method ranks
it: the ranker was fitted on abstracts.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kpe.extract.methods import Keyphrase, MethodUnavailable
from kpe.phrases import normalize_phrase
from kpe.train.phrase_lexicon import (
    LEXICON_FEATURES,
    LEXICON_FILE,
    PhraseLexicon,
    build_phrase_lexicon,
    load_phrase_lexicon,
    save_phrase_lexicon,
)
from kpe.train.predict import DEFAULT_TOP_N, device_of, option
from kpe.train.tagger import TaggerExtractor, decode_spans, is_long_text, rank_keyphrases, soft_spans

log = logging.getLogger(__name__)

RANKER_FILE = "span_ranker.skops"
RANKER_SUMMARY = "span_ranker.json"
#: The soft spans (best first) each document offers the ranker, besides its decoded spans.
POOL = 30
FEATURES = (
    "best_score",         # the candidate's best soft-span score over its occurrences
    "second_score",       # its second best (0 with one occurrence)
    "decoded_score",      # its best decoded-span score (0 when argmax decoding left it out)
    "decoded",            # whether argmax decoding found it
    "log_occurrences",    # log of its number of occurrences
    "first_position",     # its first character offset / the text's length
    "in_first_sentence",  # it occurs before the first ". " (the title of a PubMed or Inspec text)
    "words",              # its number of words
    "inverse_rank",       # 1 / (1 + its rank by best_score in the document)
    "over_fifth",         # best_score - the document's fifth best best_score
    "log_chars",          # the document: log of its length in characters
    "log_decoded",        # log(1 + the document's decoded spans)
    "document_best",      # the document's best best_score
    "document_fifth",     # the document's fifth best best_score
    "longer_best",        # the best best_score of a candidate that contains it ("cancer" in "breast cancer")
    "shorter_best",       # the best best_score of a candidate it contains
)
#: What a span ranker file may contain besides the types ``skops`` trusts by default.
TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
#: Every document gets this many keyphrases; more (up to ``top_n``) only when the ranker's probability reaches the
#: model's ``min_score`` (chosen at fitting time, :func:`choose_min_score`): a list that stops where the model is
#: unsure.
ALWAYS_KEEP = 5
MIN_SCORES = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
#: Fixed hyper-parameters (no early stopping: the fit is deterministic).
RANKER_PARAMS = {"max_iter": 300, "learning_rate": 0.03, "max_leaf_nodes": 15, "min_samples_leaf": 50,
                 "l2_regularization": 1.0, "early_stopping": False, "random_state": 0}


@dataclass(slots=True)
class SpanCandidates:
    """One document's candidates: surface forms, ``normalize_phrase`` keys and their features (one row each)."""

    phrases: list[str]
    keys: list[str]
    features: np.ndarray  # (len(phrases), len(feature_names(...))) float32


def feature_names(lexicon: bool) -> tuple[str, ...]:
    """The ranker's features: :data:`FEATURES`, then the lexicon's when it has one."""
    return (*FEATURES, *LEXICON_FEATURES) if lexicon else FEATURES


def span_candidates(text: str, word_spans: dict[int, tuple[int, int]], word_probs: dict[int, np.ndarray],
                    pooling: str = "mean", pool: int = POOL, lexicon: PhraseLexicon | None = None) -> SpanCandidates:
    """The ``pool`` best soft spans and every decoded span of one tagged text, with their :data:`FEATURES`; with a
    ``lexicon``, also every soft span it knows (:meth:`PhraseLexicon.is_known`), and its features after them."""
    decoded: dict[str, tuple[float, str]] = {}  # best score and its surface form
    scores: dict[str, list[float]] = {}  # every soft-span occurrence's score
    surface: dict[str, tuple[float, str]] = {}
    first: dict[str, int] = {}  # first start: of its soft spans, or of its decoded ones when it has none
    decoded_first: dict[str, int] = {}
    for span in decode_spans(text, word_spans, word_probs, pooling):
        key = normalize_phrase(span.phrase)
        if key:
            decoded_first[key] = min(decoded_first.get(key, span.start), span.start)
            if key not in decoded or span.score > decoded[key][0]:
                decoded[key] = (span.score, span.phrase)
    for span in soft_spans(text, word_spans, word_probs, pooling):
        key = span.key  # normalize_phrase(span.phrase), composed from its words' keys
        if key:
            scores.setdefault(key, []).append(span.score)
            first[key] = min(first.get(key, span.start), span.start)
            if key not in surface or span.score > surface[key][0]:
                surface[key] = (span.score, span.phrase)
    by_best = sorted(scores, key=lambda k: -max(scores[k]))
    rank = {k: r for r, k in enumerate(by_best)}
    known = [k for k in by_best[pool:] if lexicon.is_known(k)] if lexicon is not None else []
    keys = list(dict.fromkeys([*by_best[:pool], *decoded, *known]))
    if not keys:
        return SpanCandidates([], [], np.zeros((0, len(feature_names(lexicon is not None))), dtype=np.float32))
    title_end = max(text.find(". "), 0)
    rows = []
    for key in keys:
        occurrences = sorted(scores.get(key) or [decoded[key][0]], reverse=True)
        start = first.get(key, decoded_first.get(key, 0))
        rows.append([occurrences[0], occurrences[1] if len(occurrences) > 1 else 0.0,
                     decoded[key][0] if key in decoded else 0.0, float(key in decoded),
                     math.log(len(occurrences)), start / max(len(text), 1), float(start < title_end),
                     len(key.split()), 1.0 / (1 + rank.get(key, len(rank)))])
    table = np.asarray(rows, dtype=np.float32)
    best = np.sort(table[:, 0])[::-1]
    fifth = float(best[min(4, len(best) - 1)])
    document = [math.log(len(text) + 1), math.log(1 + len(decoded)), float(best[0]), fifth]
    per_document = np.tile(np.asarray(document, dtype=np.float32), (len(table), 1))
    columns = [table, table[:, :1] - fifth, per_document, _nesting(keys, table[:, 0])]
    features = np.concatenate([*columns, *([lexicon.features(keys)] if lexicon is not None else [])], axis=1)
    phrases = [surface[k][1] if k in surface else decoded[k][1] for k in keys]
    return SpanCandidates(phrases, keys, features.astype(np.float32))


def _nesting(keys: Sequence[str], best: np.ndarray) -> np.ndarray:
    """Per candidate: the best score of a longer candidate containing it and of a shorter one it contains
    (whole stemmed words; 0 when none): which of two nested candidates the tagger prefers."""
    padded = [f" {k} " for k in keys]
    out = np.zeros((len(keys), 2), dtype=np.float32)
    for i, inner in enumerate(padded):
        for j, outer in enumerate(padded):
            if i != j and inner in outer:
                out[i, 0] = max(out[i, 0], best[j])
                out[j, 1] = max(out[j, 1], best[i])
    return out


def present_gold_labels(candidates: SpanCandidates, text: str, keyphrases: Sequence[str]) -> tuple[np.ndarray, int]:
    """1 for each candidate that is a present gold keyphrase of the document (the harness's stemmed match), and
    the number of present gold keyphrases (in the pool or not)."""
    from kpe.evaluate.metrics import occurs_in, phrase_key, unique_keys

    text_key = phrase_key(text)
    present = {key for key in unique_keys(keyphrases) if occurs_in(key, text_key)}
    return np.asarray([phrase_key(p) in present for p in candidates.phrases], dtype=np.int64), len(present)


def choose_min_score(candidates: Sequence[SpanCandidates], labels: Sequence[np.ndarray], n_gold: Sequence[int],
                     sources: Sequence[str], top_n: int = DEFAULT_TOP_N) -> tuple[float, dict[float, float]]:
    """The :data:`MIN_SCORES` value with the best macro F1@M (present gold, averaged over the sources), each half of
    the documents ranked by a ranker fitted on the other half (so the probabilities are out-of-sample ones). When a
    half cannot be fitted (too few documents: no gold candidate in it), 0: always ``top_n`` keyphrases."""
    halves = [list(range(0, len(candidates), 2)), list(range(1, len(candidates), 2))]
    probs: list[np.ndarray] = [np.zeros(0)] * len(candidates)
    for fit_on, score_on in (halves, halves[::-1]):
        try:
            model = fit_span_ranker([candidates[i] for i in fit_on], [labels[i] for i in fit_on],
                                    [sources[i] for i in fit_on])
        except ValueError as exc:
            log.warning("min_score not chosen (0: top_n keyphrases): %s", exc)
            return 0.0, {}
        for i in score_on:
            probs[i] = model.predict_proba(candidates[i].features)[:, 1] if candidates[i].phrases else np.zeros(0)
    by_score = {}
    for min_score in MIN_SCORES:
        f1_by_source: dict[str, list[float]] = {}
        for p, y, gold, source in zip(probs, labels, n_gold, sources):
            if not gold:  # the harness's macro average leaves such documents out
                continue
            order = _kept(p, top_n, min_score)
            hits = int(y[order].sum()) if order else 0
            f1_by_source.setdefault(source, []).append(2 * hits / (len(order) + gold))
        by_score[min_score] = float(np.mean([np.mean(v) for v in f1_by_source.values()]))
    return max(by_score, key=lambda t: (by_score[t], -t)), by_score


def fit_span_ranker(candidates: Sequence[SpanCandidates], labels: Sequence[np.ndarray],
                    sources: Sequence[str]) -> Any:
    """Fit the classifier on the candidates of several documents (``sources``: each document's dataset)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    per_source = Counter(sources)
    rows = [c.features for c in candidates]
    y = np.concatenate(list(labels)) if labels else np.zeros(0, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError("the span ranker needs candidates that are gold keyphrases and candidates that are not: "
                         f"{len(y)} candidates, {int(y.sum())} gold")
    weights = np.concatenate([np.full(len(c.phrases), per_source[s] ** -0.5) for c, s in zip(candidates, sources)])
    model = HistGradientBoostingClassifier(**RANKER_PARAMS)
    return model.fit(np.concatenate(rows), y, sample_weight=weights / weights.mean())


def save_span_ranker(model: Any, model_dir: Path | str, summary: dict[str, Any],
                     lexicon: PhraseLexicon | None = None) -> Path:
    """Write ``span_ranker.skops``, ``span_ranker.json`` (and the lexicon, if any) into a tagger's model dir."""
    import skops.io

    path = Path(model_dir) / RANKER_FILE
    if lexicon is not None:
        save_phrase_lexicon(lexicon, model_dir)
    else:
        (Path(model_dir) / LEXICON_FILE).unlink(missing_ok=True)
    skops.io.dump(model, path)
    features = list(feature_names(lexicon is not None))
    (Path(model_dir) / RANKER_SUMMARY).write_text(json.dumps({"features": features, **summary}, indent=1))
    return path


def read_ranker_summary(model_dir: Path | str) -> dict[str, Any]:
    """The model dir's ``span_ranker.json`` (``{}`` when it has none); a ``ValueError`` naming the file when it is
    not a JSON object or lists features this version does not compute."""
    path = Path(model_dir) / RANKER_SUMMARY
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text())
        features = summary.get("features", FEATURES)
    except (ValueError, AttributeError) as exc:  # not JSON, or not an object
        raise ValueError(f"{path} is not a span ranker summary: {type(exc).__name__}: {exc}") from exc
    if not isinstance(features, list | tuple) or tuple(features) not in (FEATURES, feature_names(True)):
        raise ValueError(f"{path} lists features this version does not compute: {features}")
    return summary


def uses_lexicon(summary: dict[str, Any]) -> bool:
    """Whether a ranker with this summary (:func:`read_ranker_summary`) was fitted with a phrase lexicon."""
    return tuple(summary.get("features", FEATURES)) == feature_names(True)


def load_span_ranker(model_dir: Path | str, summary: dict[str, Any] | None = None) -> Any:
    """The span ranker of a tagger's model dir; ``MethodUnavailable`` when it has none, a ``ValueError`` when the file
    holds anything but a scikit-learn gradient-boosted classifier over the features its summary (read when not
    given) lists."""
    import skops.io
    from sklearn.ensemble import HistGradientBoostingClassifier

    path = Path(model_dir) / RANKER_FILE
    if not path.is_file():
        raise MethodUnavailable(f"{model_dir} has no span ranker ({RANKER_FILE}): a tagger trained by `kpe train` "
                                "gets one; for an older tagger run `kpe models fit-ranker VERSION`")
    untrusted = [t for t in skops.io.get_untrusted_types(file=path) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ValueError(f"{path} holds types a span ranker does not: {untrusted}; not loaded")
    model = skops.io.load(path, trusted=TRUSTED_TYPES)
    summary = read_ranker_summary(model_dir) if summary is None else summary
    n_features = len(feature_names(uses_lexicon(summary)))
    if not isinstance(model, HistGradientBoostingClassifier) or model.n_features_in_ != n_features:
        raise ValueError(f"{path} is not a span ranker over {n_features} features: {type(model).__name__}")
    return model


def ranked_keyphrases(ranker: Any, candidates: Sequence[SpanCandidates], top_n: int,
                      min_score: float = 0.0) -> list[list[Keyphrase]]:
    """Each document's candidates, best first by the ranker's probability (one batched prediction): the first
    :data:`ALWAYS_KEEP`, then those whose probability reaches ``min_score``, ``top_n`` at most."""
    from threadpoolctl import threadpool_limits

    rows = [c.features for c in candidates if c.phrases]
    with threadpool_limits(1, "openmp"):  # a few hundred rows: one thread, no second OpenMP pool beside torch's
        probs = ranker.predict_proba(np.concatenate(rows))[:, 1] if rows else np.zeros(0)
    out, at = [], 0
    for c in candidates:
        p = probs[at: at + len(c.phrases)]
        at += len(c.phrases)
        out.append([Keyphrase(c.phrases[i], float(p[i])) for i in _kept(p, top_n, min_score)])
    return out


def _kept(probs: np.ndarray, top_n: int, min_score: float) -> list[int]:
    """Indices of the candidates a document keeps, best first (see :func:`ranked_keyphrases`)."""
    order = np.argsort(-probs, kind="stable")[:top_n]
    return [i for r, i in enumerate(order) if r < ALWAYS_KEEP or probs[i] >= min_score]


class RankedExtractor:
    """The ``ranked`` method: the tagger's pass, then its candidates ranked by the model dir's span ranker."""

    name = "ranked"

    def __init__(self, model_path: str | Path, top_n: int = DEFAULT_TOP_N, device: torch.device | str = "cpu",
                 precision: str = "auto", batch_tokens: int | None = None, min_score: float | None = None):
        self.tagger = TaggerExtractor(model_path, top_n=top_n, device=device, precision=precision,
                                      batch_tokens=batch_tokens)
        summary = read_ranker_summary(self.tagger.model_path)
        self.ranker = load_span_ranker(self.tagger.model_path, summary)
        self.lexicon = load_phrase_lexicon(self.tagger.model_path) if uses_lexicon(summary) else None
        self.top_n = top_n
        # the min_score chosen when the ranker was fitted (0: always top_n keyphrases)
        self.min_score = float(summary.get("min_score", 0.0)) if min_score is None else float(min_score)

    def describe(self) -> dict[str, Any]:
        """Method, model and the precision actually used (``kpe.extract.methods.describe_extractor``)."""
        return {**self.tagger.describe(), "method": self.name}

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Top ``top_n`` candidates by the ranker (a long document: the tagger's own ranking)."""
        out: list[list[Keyphrase]] = [[] for _ in docs]
        keep = [i for i, d in enumerate(docs) if d and d.strip()]
        short: list[tuple[int, SpanCandidates]] = []
        for i, tagged in zip(keep, self.tagger.tag([docs[i] for i in keep])):
            if is_long_text(docs[i]):
                out[i] = rank_keyphrases(docs[i], tagged.word_spans, tagged.word_probs, self.tagger.pooling,
                                         self.top_n)[: self.top_n]
            else:
                short.append((i, span_candidates(docs[i], tagged.word_spans, tagged.word_probs,
                                                 self.tagger.pooling, lexicon=self.lexicon)))
        for (i, _), ranked in zip(short, ranked_keyphrases(self.ranker, [c for _, c in short], self.top_n,
                                                           self.min_score)):
            out[i] = ranked
        return out


def build_ranked(model_path: str | None, config: Any = None) -> RankedExtractor:
    """The ``ranked`` method: a tagger model dir with its span ranker."""
    return RankedExtractor(model_path, top_n=int(option(config, "top_n", DEFAULT_TOP_N)), device=device_of(config),
                           precision=str(option(config, "precision", "auto")),
                           batch_tokens=option(config, "batch_tokens", None),
                           min_score=option(config, "ranked_min_score", None))


@dataclass(slots=True)
class OutOfFold:
    """Training documents tagged by fold taggers that never saw them (``kpe.train.ranker_folds``): more documents
    for the ranker to learn from, with the probabilities a new document gets."""

    docs: list[Any]
    candidates: list[SpanCandidates]
    summary: dict[str, Any]


def short_texts(docs: Sequence[Any]) -> list[Any]:
    """The documents a span ranker learns from: text, and not a full paper (those are ranked as the tagger ranks)."""
    return [d for d in docs if d.text and d.text.strip() and not is_long_text(d.text)]


def tag_candidates(tagger: TaggerExtractor, docs: Sequence[Any], lexicon: PhraseLexicon | None, desc: str,
                   batch: int = 64) -> list[SpanCandidates]:
    """Each document's candidates (:func:`span_candidates`) from one pass of ``tagger``, with a progress bar."""
    from tqdm.auto import tqdm

    candidates: list[SpanCandidates] = []
    with tqdm(total=len(docs), desc=desc, unit="doc", mininterval=2.0) as bar:
        for at in range(0, len(docs), batch):
            part = docs[at: at + batch]
            for doc, tagged in zip(part, tagger.tag([d.text for d in part])):
                candidates.append(span_candidates(doc.text, tagged.word_spans, tagged.word_probs, tagger.pooling,
                                                  lexicon=lexicon))
            bar.update(len(part))
    return candidates


def fit_model_ranker(model_dir: Path | str, docs: Sequence[Any], batch: int = 64,
                     lexicon_docs: Sequence[Any] = (), out_of_fold: OutOfFold | None = None) -> dict[str, Any]:
    """Tag ``docs`` (``.text``, ``.keyphrases``, ``.dataset``: a validation slice, never a benchmark's dev set) with
    the model dir's tagger, fit its span ranker and save it; returns the summary stored beside it. With
    ``lexicon_docs`` (the training split: never ``docs`` themselves) the ranker gets a phrase lexicon of them; with
    ``out_of_fold`` it also learns from those training documents, tagged by taggers that never saw them."""
    started = time.perf_counter()
    short = short_texts(docs)
    if not short:
        raise ValueError(f"no validation document with text to fit a span ranker on ({len(docs)} given, full papers "
                         "left out)")
    lexicon = build_phrase_lexicon(lexicon_docs) if lexicon_docs else None
    tagger = TaggerExtractor(model_dir)
    candidates = tag_candidates(tagger, short, lexicon, "span ranker: tag the validation slice", batch)
    fitted_on, per_source = "validation slice of the training data", dict(Counter(d.dataset for d in short))
    if out_of_fold is not None:
        short, candidates = [*short, *out_of_fold.docs], [*candidates, *out_of_fold.candidates]
        fitted_on += f" and its training split, tagged out of fold ({out_of_fold.summary['folds']} fold taggers)"
    labels, n_gold = zip(*(present_gold_labels(c, d.text, d.keyphrases) for c, d in zip(candidates, short)))
    sources = [d.dataset for d in short]
    min_score, f1_by_min_score = choose_min_score(candidates, labels, n_gold, sources)
    model = fit_span_ranker(candidates, labels, sources)
    summary = {"fitted_on": fitted_on, "docs": per_source,
               "candidates": int(sum(len(c.phrases) for c in candidates)),
               "gold_candidates": int(sum(int(y.sum()) for y in labels)), "pool": POOL,
               "lexicon": lexicon.summary() if lexicon is not None else None,
               "out_of_fold": out_of_fold.summary if out_of_fold is not None else None,
               "min_score": min_score, "cross_fitted_f1@M_by_min_score": f1_by_min_score, "params": RANKER_PARAMS,
               "precision": tagger.precision, "seconds": round(time.perf_counter() - started, 1)}
    save_span_ranker(model, model_dir, summary, lexicon)
    log.info("span ranker fitted on %s validation documents%s (%d candidates) in %.0f s", per_source,
             f" and {out_of_fold.summary['docs']} out of fold" if out_of_fold is not None else "",
             summary["candidates"], summary["seconds"])
    return summary
