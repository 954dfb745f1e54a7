"""Reference methods the engine is compared with: plain KeyBERT, YAKE, TF-IDF and the first phrases.

Each ``build_*`` is a factory of the registry in ``kpe.extract.methods`` with the signature
``(model_path, config) -> Extractor``. Every method returns at most ``top_n`` phrases (10 unless the
config has a ``top_n``), best first, with a score where higher is better. Usage::

    from kpe.extract.methods import build_extractor
    ranked = build_extractor("yake").extract(["Neural networks for ship control. ..."])[0]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from kpe.encoders import resolve_encoder
from kpe.evaluate.metrics import PhraseKey, phrase_key
from kpe.extract.candidates import candidate_phrases
from kpe.extract.methods import Keyphrase

DEFAULT_TOP_N = 10
NGRAM_RANGE = (1, 3)


def _top_n(config: Any, default: int = DEFAULT_TOP_N) -> int:
    """``top_n`` from a config object or mapping when it has one, else ``default``."""
    value = config.get("top_n") if isinstance(config, dict) else getattr(config, "top_n", None)
    return int(value) if value else default


# --- candidate phrases (kpe.extract.candidates: stop-word-bounded n-grams inside one clause) -----------


def distinct_candidates(text: str) -> list[tuple[str, PhraseKey]]:
    """Candidate phrases in text order, one per stemmed key (the first surface form kept)."""
    seen: set[PhraseKey] = set()
    out = []
    for phrase in candidate_phrases(text, ngram_range=NGRAM_RANGE):
        key = phrase_key(phrase)
        if key and key not in seen:
            seen.add(key)
            out.append((phrase, key))
    return out


def ngram_counts(text_key: Sequence[str], lengths: set[int]) -> Counter[PhraseKey]:
    """Occurrences of every n-gram of ``text_key`` for each n in ``lengths`` (one pass per length: counting each
    candidate by scanning the text took half an hour for 100 full papers)."""
    counts: Counter[PhraseKey] = Counter()
    tokens = tuple(text_key)
    for n in lengths:
        counts.update(tokens[i : i + n] for i in range(len(tokens) - n + 1))
    return counts


# --- extractors --------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _keybert_model(encoder_path: str) -> Any:
    """One ``KeyBERT`` per encoder directory and process (the flow evaluates it on several datasets)."""
    from keybert import KeyBERT
    from sentence_transformers import SentenceTransformer

    return KeyBERT(model=SentenceTransformer(encoder_path))


class KeyBERTExtractor:
    """Plain ``keybert.KeyBERT`` over a sentence-transformers encoder, one batched call per list."""

    name = "keybert"

    def __init__(self, model_path: str | None = None, top_n: int = DEFAULT_TOP_N) -> None:
        self.model_path = resolve_encoder(model_path)
        self.top_n = top_n
        self._model = _keybert_model(self.model_path)

    def _call(self, docs: list[str]) -> list[list[tuple[str, float]]]:
        result = self._model.extract_keywords(
            docs, keyphrase_ngram_range=NGRAM_RANGE, stop_words="english", top_n=self.top_n
        )
        if len(docs) == 1:  # KeyBERT returns a flat list for a single document
            return [list(result)]
        if not result:  # KeyBERT returns [] for the whole batch when no document has a candidate
            return [[] for _ in docs]
        return [list(r) for r in result]

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Top phrases per document; documents with no text get an empty list."""
        out: list[list[Keyphrase]] = [[] for _ in docs]
        positions = [i for i, doc in enumerate(docs) if doc and doc.strip()]
        if positions:
            for i, ranked in zip(positions, self._call([docs[i] for i in positions])):
                out[i] = [Keyphrase(phrase, float(score)) for phrase, score in ranked]
        return out


class YakeExtractor:
    """YAKE (``yake`` package), English, n-grams up to 3; YAKE's score (lower is better) becomes 1/(1+s)."""

    name = "yake"

    def __init__(self, top_n: int = DEFAULT_TOP_N) -> None:
        import yake

        self.top_n = top_n
        self._extractor = yake.KeywordExtractor(lan="en", n=3, top=top_n)

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Top phrases per document; documents with no text get an empty list."""
        out = []
        for doc in docs:
            ranked = self._extractor.extract_keywords(doc) if doc and doc.strip() else []
            ranked = sorted(ranked, key=lambda item: item[1])[: self.top_n]
            out.append([Keyphrase(phrase, 1.0 / (1.0 + float(score))) for phrase, score in ranked])
        return out


class TfidfExtractor:
    """TF-IDF over stop-word-bounded 1-3-gram candidates (stemmed), IDF fitted on the evaluated corpus.

    ``fit_corpus(docs)`` sets the document frequencies from a corpus (the harness calls it with every
    document it evaluates); without it, ``extract`` fits on the documents it is given. IDF is the smoothed
    ``ln((1 + N) / (1 + df)) + 1``; TF is the number of occurrences of the stemmed phrase in the
    stemmed text; ties go to the earlier phrase.
    """

    name = "tfidf"

    def __init__(self, top_n: int = DEFAULT_TOP_N) -> None:
        self.top_n = top_n
        self._df: Counter[PhraseKey] | None = None
        self._n_docs = 0

    def fit_corpus(self, docs: list[str]) -> TfidfExtractor:
        """Document frequencies of every candidate over ``docs``."""
        df: Counter[PhraseKey] = Counter()
        for doc in docs:
            df.update(key for _, key in distinct_candidates(doc or ""))
        self._df, self._n_docs = df, len(docs)
        return self

    def _idf(self, key: PhraseKey) -> float:
        assert self._df is not None
        return math.log((1 + self._n_docs) / (1 + self._df.get(key, 0))) + 1.0

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Top phrases per document by TF-IDF."""
        if self._df is None:
            self.fit_corpus(docs)
        out = []
        for doc in docs:
            candidates = distinct_candidates(doc or "")
            counts = ngram_counts(phrase_key(doc or ""), {len(key) for _, key in candidates})
            scored = [
                (max(1, counts[key]) * self._idf(key), -position, phrase)
                for position, (phrase, key) in enumerate(candidates)
            ]
            scored.sort(reverse=True)
            out.append([Keyphrase(phrase, score) for score, _, phrase in scored[: self.top_n]])
        return out


class FirstPhrasesExtractor:
    """The floor: the first ``top_n`` distinct candidate phrases in text order (score 1/rank)."""

    name = "first-phrases"

    def __init__(self, top_n: int = DEFAULT_TOP_N) -> None:
        self.top_n = top_n

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """The first phrases per document."""
        return [
            [
                Keyphrase(phrase, 1.0 / rank)
                for rank, (phrase, _) in enumerate(distinct_candidates(doc or "")[: self.top_n], 1)
            ]
            for doc in docs
        ]


# --- registry factories (kpe.extract.methods.METHODS) ------------------------------------------------


def build_keybert(model_path: str | None = None, config: Any = None) -> KeyBERTExtractor:
    """Plain KeyBERT: its defaults plus ``keyphrase_ngram_range=(1, 3)``, English stop words, top 10."""
    return KeyBERTExtractor(model_path, top_n=_top_n(config))


def build_yake(model_path: str | None = None, config: Any = None) -> YakeExtractor:
    """YAKE, English, n=3, top 10 (``model_path`` is ignored)."""
    return YakeExtractor(top_n=_top_n(config))


def build_tfidf(model_path: str | None = None, config: Any = None) -> TfidfExtractor:
    """TF-IDF over stop-word-bounded 1-3-grams, IDF from the evaluated corpus (``model_path`` ignored)."""
    return TfidfExtractor(top_n=_top_n(config))


def build_first_phrases(model_path: str | None = None, config: Any = None) -> FirstPhrasesExtractor:
    """The first 10 distinct candidate phrases in text order (``model_path`` ignored)."""
    return FirstPhrasesExtractor(top_n=_top_n(config))
