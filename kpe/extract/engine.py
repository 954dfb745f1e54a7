"""The KeyBERT-style extraction engine: candidates -> (cheap first pass) -> phrase embeddings (cached) -> ranking.

Usage::

    engine = KeyphraseEngine(ExtractionConfig(top_n=10))
    ranked = engine.extract([document_text(title, abstract), ...])   # list[list[Keyphrase]], best first

    # candidates from elsewhere (e.g. a tagger's spans), ranked by the same encoder and strategy:
    ranker = engine.ranker
    ranked = ranker.rank(docs, [["heart failure", "dapagliflozin"], [...]])

How one batch of documents is processed (``KeyBERTRanker.rank``):

1. one encoder pass over each document gives its embedding (the first ``max_seq_length`` word pieces,
   as in KeyBERT; or the mean over windows with ``doc_embedding="chunks"``) and, for the contextual first
   pass, the last-layer vector of every word piece it saw;
2. the first pass scores every candidate that occurs in the encoded part by the cosine between the document
   embedding and the mean of its occurrences' token vectors, and keeps the ``prefilter_k`` best per document,
   plus every candidate the pass did not see; ``prefilter_windows="all"`` (default) encodes long documents'
   further windows for the first pass (the document embedding stays the first window's), ``"first"`` passes
   every candidate beyond the first window on; ``prefilter="none"`` keeps all (plain KeyBERT);
3. kept candidates are deduplicated over the batch, looked up in the embedding cache, and the misses are
   encoded on their own (KeyBERT's phrase embeddings) in batches of one canonical length each;
4. candidates are ranked by cosine to the document (equal scores by phrase text), or with MMR / Max Sum Distance.

**Long documents** (at least ``long_document_chars`` characters: full papers, not abstracts) are ranked, in the
first pass and in the final ranking, by ``kpe.extract.ranking.long_document_scores``: the squared cosine times
ln(1 + occurrences) times a decay of the first occurrence's position, and their candidates ending in a number
("Definition 1.5") are dropped. The document embedding stays the first window's: in a paper that is the title
and abstract, which ranked better than the mean over all windows on NUS (macro F1@5 0.229 against 0.208 on the
first 25 papers).
Cosine alone ranks generic words first there ("described", "approaches got"): the mean token vector of a word
that occurs everywhere is close to the mean of the document. Shorter texts are ranked as before.

A document's result does not depend on the batch it came in (which documents share it, in what order): the
encoder computes every text at one canonical shape with row-wise int8 (``kpe.extract.encoder``), every other
step works per document, and the cache holds the vectors a fresh encoding gives. Only the first
``max_text_chars`` characters of a document are read (``cap_text``).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

from kpe.extract.candidates import Candidate, KeyBERTCandidates, candidate_spans, ends_with_number
from kpe.extract.config import ENGINE_VERSION, ExtractionConfig
from kpe.extract.embedding_cache import EmbeddingCache
from kpe.extract.encoder import ENCODING_VERSION, DocumentEncoding, SentenceEncoder, cpu_has_native_bf16
from kpe.extract.methods import Keyphrase
from kpe.extract.ranking import (
    cosine_scores,
    drop_subphrases,
    is_long_document,
    long_document_scores,
    max_sum,
    mmr,
    ranked_by_score,
    top_by_score,
)

#: Documents per internal step (bounds the memory held by token vectors: ~0.4 MB per abstract for MiniLM) ...
DOC_STEP = 256
#: ... and characters per step: full papers hold ~0.4 MB of token vectors per 1,000 characters (20 MB for a 50 kB
#: paper), so a step of 256 of them would hold 5 GB; 2,000,000 characters bound a step to about 0.8 GB.
STEP_CHARS = 2_000_000


def cap_text(text: str, max_chars: int | None) -> str:
    """The first ``max_chars`` characters of ``text``, cut back to the last white space when that does not lose
    more than a tenth of them (a word is not split); the text itself when shorter or ``max_chars`` is None."""
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = max_chars
    if not text[cut].isspace():
        space = max(text.rfind(" ", 0, cut), text.rfind("\n", 0, cut))
        if space >= max_chars - max_chars // 10:
            cut = space
    return text[:cut]


def locate(text: str, phrase: str) -> list[tuple[int, int]]:
    """Character spans of every case-insensitive, whole-word occurrence of ``phrase`` in ``text``."""
    words = phrase.split()
    if not words:
        return []
    pattern = r"(?<!\w)" + r"\W+".join(re.escape(w) for w in words) + r"(?!\w)"
    return [m.span() for m in re.finditer(pattern, text, flags=re.IGNORECASE)]


def pooled_token_vectors(enc: DocumentEncoding, candidates: Sequence[Candidate]) -> tuple[np.ndarray, np.ndarray]:
    """Mean token vector over every occurrence of each candidate, and which candidates had any token."""
    assert enc.token_vectors is not None and enc.token_starts is not None and enc.token_ends is not None
    owner = np.asarray([ci for ci, cand in enumerate(candidates) for _ in cand.spans], dtype=np.int64)
    spans = np.asarray([span for cand in candidates for span in cand.spans], dtype=np.int64).reshape(-1, 2)
    # the tokens of a span: those ending after its start and starting before its end (one search for all spans)
    first = np.searchsorted(enc.token_ends, spans[:, 0], side="right")
    length = np.maximum(np.searchsorted(enc.token_starts, spans[:, 1], side="left") - first, 0)
    n, t = len(candidates), len(enc.token_vectors)
    if not length.sum():
        return np.zeros((n, enc.token_vectors.shape[1]), np.float32), np.zeros(n, dtype=bool)
    rows = np.repeat(owner, length)
    offsets = np.repeat(np.cumsum(length) - length, length)  # where each span's run of tokens starts in ``rows``
    cols = np.repeat(first, length) + np.arange(len(rows)) - offsets
    pool = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, t))
    counts = np.asarray(pool.sum(axis=1)).ravel()
    vectors = np.asarray(pool @ enc.token_vectors) / np.maximum(counts, 1)[:, None]
    return vectors.astype(np.float32), counts > 0


def doc_steps(indices: list[int], lengths: list[int]) -> list[list[int]]:
    """``indices`` cut into consecutive steps of at most ``DOC_STEP`` documents and ``STEP_CHARS`` characters
    (a longer document gets a step of its own)."""
    steps: list[list[int]] = []
    current: list[int] = []
    chars = 0
    for index, length in zip(indices, lengths):
        if current and (len(current) >= DOC_STEP or chars + length > STEP_CHARS):
            steps.append(current)
            current, chars = [], 0
        current.append(index)
        chars += length
    if current:
        steps.append(current)
    return steps


def occurrence_stats(candidates: Sequence[Candidate], text_length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(occurrences, first character offset)`` of each candidate; one never located counts once, at the end."""
    counts = np.asarray([max(len(c.spans), 1) for c in candidates], dtype=np.float64)
    first = np.asarray([min((s for s, _ in c.spans), default=text_length) for c in candidates], dtype=np.float64)
    return counts, first


class KeyBERTRanker:
    """Ranks given candidates of given documents with one encoder (see the module docstring)."""

    def __init__(self, encoder: SentenceEncoder, config: ExtractionConfig, cache: EmbeddingCache | None = None) -> None:
        self.encoder = encoder
        self.config = config
        self.cache = cache
        self.stage_seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def rank(
        self, docs: Sequence[str], candidates_per_doc: Sequence[Sequence[str | Candidate]],
        doc_embeddings: Sequence[np.ndarray] | None = None,
    ) -> list[list[Keyphrase]]:
        """Top ``config.top_n`` of each document's candidates, best first; documents without candidates get [].

        ``doc_embeddings``: the documents' embeddings when the caller already has them (the hybrid method takes
        them from its tagger's pass over the same first window): no document pass then. Only for a config whose
        ranking needs nothing else from that pass (:meth:`takes_doc_embeddings`).
        """
        if len(docs) != len(candidates_per_doc):
            raise ValueError(f"{len(docs)} documents but {len(candidates_per_doc)} candidate lists")
        if doc_embeddings is not None and (len(doc_embeddings) != len(docs) or not self.takes_doc_embeddings()):
            raise ValueError("doc_embeddings need one embedding per document and a config that ranks from the "
                             "first window's embedding alone (doc_embedding='truncate', no contextual vectors)")
        out: list[list[Keyphrase]] = [[] for _ in docs]
        docs = [cap_text(doc or "", self.config.max_text_chars) for doc in docs]
        todo = [i for i, (doc, cands) in enumerate(zip(docs, candidates_per_doc)) if doc and doc.strip() and cands]
        for step in doc_steps(todo, [len(docs[i]) for i in todo]):
            ranked = self._rank_step(
                [docs[i] for i in step],
                [self._as_candidates(docs[i], candidates_per_doc[i], self.is_long(docs[i])) for i in step],
                None if doc_embeddings is None else [doc_embeddings[i] for i in step],
            )
            for i, result in zip(step, ranked):
                out[i] = result
        return out

    def takes_doc_embeddings(self) -> bool:
        """Whether :meth:`rank` can use given document embeddings: the ranking needs the first window's embedding
        and nothing else from the document pass."""
        cfg = self.config
        return (cfg.doc_embedding == "truncate" and cfg.candidate_embedding == "phrase"
                and cfg.prefilter != "contextual")

    def is_long(self, doc: str) -> bool:
        """Whether a (capped) text is ranked as a long document (``config.long_document_chars``)."""
        return is_long_document(doc, self.config.long_document_chars)

    def _as_candidates(self, doc: str, cands: Sequence[str | Candidate], long: bool = False) -> list[Candidate]:
        """Candidates with their occurrences (located in the text when given as strings or without any, e.g.
        KeyBERT's candidates), one per encoder key; a long document's candidates ending in a number are left out."""
        need_spans = long or self.config.prefilter == "contextual" or self.config.candidate_embedding == "contextual"
        seen: dict[str, Candidate] = {}
        for cand in cands:
            phrase = cand if isinstance(cand, str) else cand.phrase
            if not phrase.strip() or (long and ends_with_number(phrase)):
                continue
            if isinstance(cand, str) or (need_spans and not cand.spans):
                cand = Candidate(phrase, locate(doc, phrase) if need_spans else [])
            key = self.encoder.key(cand.phrase)
            if key in seen:
                seen[key].spans.extend(cand.spans)
            else:
                seen[key] = Candidate(cand.phrase, list(cand.spans))
        return list(seen.values())

    def _tick(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.stage_seconds[stage] += now - since
        return now

    def _rank_step(self, docs: list[str], cands: list[list[Candidate]],
                   doc_embeddings: list[np.ndarray] | None = None) -> list[list[Keyphrase]]:
        cfg = self.config
        t = time.perf_counter()
        contextual = cfg.candidate_embedding == "contextual"
        need_tokens = contextual or cfg.prefilter == "contextual"
        whole_text = contextual or (cfg.prefilter == "contextual" and cfg.prefilter_windows == "all")
        if doc_embeddings is not None:
            encodings = [DocumentEncoding(np.asarray(e, dtype=np.float32)) for e in doc_embeddings]
        else:
            encodings = self.encoder.encode_documents(
                docs, chunks=cfg.doc_embedding == "chunks", token_vectors=need_tokens, all_windows=whole_text
            )
        t = self._tick("document_pass", t)
        self.counts["documents"] += len(docs)
        self.counts["windows"] += sum(enc.windows for enc in encodings)
        self.counts["candidates"] += sum(len(c) for c in cands)

        # First pass: which candidates get the full (phrase) encoder pass.
        vectors: list[np.ndarray | None] = [None] * len(docs)
        kept: list[list[Candidate]] = []
        static_docs = self.encoder.static_embeddings(docs) if cfg.prefilter == "static" and not contextual else None
        long = [self.is_long(doc) for doc in docs]
        stats = [occurrence_stats(doc_cands, len(doc)) if lg else None for doc, doc_cands, lg in zip(docs, cands, long)]
        for d, (enc, doc_cands) in enumerate(zip(encodings, cands)):
            if contextual:
                pooled, covered = pooled_token_vectors(enc, doc_cands)
                keep = np.flatnonzero(covered)
                vectors[d] = pooled[keep]
                kept.append([doc_cands[i] for i in keep])
            elif cfg.prefilter == "none" or len(doc_cands) <= max(cfg.prefilter_k, cfg.top_n):
                kept.append(doc_cands)
            elif cfg.prefilter == "contextual":
                pooled, covered = pooled_token_vectors(enc, doc_cands)
                scores = cosine_scores(enc.embedding, pooled)
                if long[d]:
                    scores = long_document_scores(scores, *stats[d])
                scores[~covered] = -np.inf
                names = [c.phrase for c in doc_cands]
                best = top_by_score(scores, min(max(cfg.prefilter_k, cfg.top_n), int(covered.sum())), names)
                unseen = np.flatnonzero(~covered)  # not located in the text: always passed on
                kept.append([doc_cands[i] for i in np.concatenate([best, unseen])])
            else:  # static
                static = self.encoder.static_embeddings([c.phrase for c in doc_cands])
                scores = cosine_scores(static_docs[d], static)
                if long[d]:
                    scores = long_document_scores(scores, *stats[d])
                names = [c.phrase for c in doc_cands]
                kept.append([doc_cands[i] for i in top_by_score(scores, max(cfg.prefilter_k, cfg.top_n), names)])
        t = self._tick("first_pass", t)
        self.counts["kept"] += sum(len(k) for k in kept)

        if not contextual:
            table = self._phrase_embeddings({self.encoder.key(c.phrase) for doc_kept in kept for c in doc_kept})
            for d, doc_kept in enumerate(kept):
                vectors[d] = (
                    np.stack([table[self.encoder.key(c.phrase)] for c in doc_kept])
                    if doc_kept
                    else np.zeros((0, self.encoder.dimension), np.float32)
                )
        t = time.perf_counter()
        results = [
            self._select(enc.embedding, doc_kept, vecs, len(doc) if lg else None)
            for enc, doc_kept, vecs, doc, lg in zip(encodings, kept, vectors, docs, long)
        ]
        self._tick("ranking", t)
        return results

    def _phrase_embeddings(self, keys: set[str]) -> dict[str, np.ndarray]:
        """Embeddings of unique phrase keys: from the cache where present, else encoded (and stored)."""
        t = time.perf_counter()
        keys_list = sorted(keys)
        table = self.cache.get_many(keys_list) if self.cache is not None else {}
        missing = [k for k in keys_list if k not in table]
        t = self._tick("cache_lookup", t)
        self.counts["unique_phrases"] += len(keys_list)
        self.counts["encoded_phrases"] += len(missing)
        if missing:
            encoded = self.encoder.encode(missing)
            fresh = dict(zip(missing, encoded))
            t = self._tick("phrase_pass", t)
            if self.cache is not None:
                self.cache.put_many(fresh)
                t = self._tick("cache_store", t)
            table.update(fresh)
        return table

    def _select(
        self, doc_embedding: np.ndarray, cands: list[Candidate], vectors: np.ndarray, long_text: int | None = None
    ) -> list[Keyphrase]:
        """The top ``top_n`` of a document's candidates; ``long_text``: the length of a long document (ranked by
        the long-document score; MMR / Max Sum then choose among its best ``3 x max(top_n, nr_candidates)``)."""
        cfg = self.config
        if not cands:
            return []
        scores = cosine_scores(doc_embedding, vectors)
        if long_text is not None:
            scores = long_document_scores(scores, *occurrence_stats(cands, long_text))
        phrases = [c.phrase for c in cands]
        if cfg.drop_subphrases or (long_text is not None and (cfg.diversity is not None or cfg.use_maxsum)):
            order = ranked_by_score(scores, phrases)
            if cfg.drop_subphrases:
                order = drop_subphrases(phrases, order)
            pool = order[: max(cfg.top_n, cfg.nr_candidates if cfg.use_maxsum else 0) * 3]
        else:
            pool = None
        if cfg.diversity is not None:
            idx = pool if pool is not None else np.arange(len(cands))
            chosen = idx[mmr(doc_embedding, vectors[idx], cfg.top_n, cfg.diversity)]
        elif cfg.use_maxsum:
            idx = pool if pool is not None else np.arange(len(cands))
            chosen = idx[max_sum(doc_embedding, vectors[idx], cfg.top_n, cfg.nr_candidates)]
        elif pool is not None:
            chosen = pool[: cfg.top_n]
        else:
            chosen = top_by_score(scores, cfg.top_n, phrases)
        if long_text is not None:  # MMR / Max Sum return their choice by cosine: list it by the score it carries
            chosen = sorted(chosen, key=lambda i: (-float(scores[i]), phrases[i]))
        return [Keyphrase(phrases[i], float(scores[i])) for i in chosen]


class KeyphraseEngine:
    """The ``kpe`` extraction method: our candidates (or KeyBERT's) ranked KeyBERT-style, fast.

    ``name`` is the registry name; ``model_fingerprint`` identifies the encoder's files; ``precision`` is the
    precision actually used (``auto`` resolved on this machine); ``config_hash`` identifies the settings with
    that precision (store them with every result; :meth:`describe` gives them all).
    """

    name = "kpe"

    def __init__(
        self, config: ExtractionConfig | None = None, model_path: str | None = None, cache_dir: Path | None = None
    ) -> None:
        self.config = config or ExtractionConfig()
        self.encoder = SentenceEncoder(
            model_path,
            device=self.config.device,
            precision=self.config.precision,
            threads=self.config.threads,
            batch_tokens=self.config.batch_tokens,
        )
        self.model_path = self.encoder.path
        self.model_fingerprint = self.encoder.fingerprint
        self.precision = self.encoder.precision
        self.resolved_config = self.config.model_copy(update={"precision": self.encoder.precision})
        self.config_hash = self.resolved_config.config_hash()
        self.cache: EmbeddingCache | None = None
        if self.config.use_cache and self.config.candidate_embedding == "phrase":
            if cache_dir is None:
                from kpe.settings import get_settings

                cache_dir = get_settings().cache_dir
            self.cache = EmbeddingCache.for_model(
                Path(cache_dir), self.model_fingerprint, self.encoder.precision, self.encoder.dimension,
                memory_items=self.config.cache_memory_items, encoding=ENCODING_VERSION, model_path=self.model_path,
            )
        self.ranker = KeyBERTRanker(self.encoder, self.resolved_config, self.cache)

    def describe(self) -> dict[str, object]:
        """What produced this engine's results (JSON-ready): method, model, the precision actually used, config."""
        return {
            "method": self.name, "model_path": self.model_path, "model_fingerprint": self.model_fingerprint,
            "precision": self.precision, "requested_precision": self.config.precision, "device": self.encoder.device,
            "native_bf16": cpu_has_native_bf16(), "config_hash": self.config_hash, "engine_version": ENGINE_VERSION,
            "encoding": ENCODING_VERSION,
        }

    def candidates(self, docs: Sequence[str]) -> list[list[Candidate]]:
        """The candidates of each document under ``config.candidate_mode`` (with occurrences where known)."""
        cfg = self.config
        docs = [cap_text(doc or "", cfg.max_text_chars) for doc in docs]
        if cfg.candidate_mode == "keybert":
            return [[Candidate(p) for p in cands] for cands in KeyBERTCandidates(cfg.ngram_range)(list(docs))]
        return [candidate_spans(doc or "", cfg.ngram_range, max_candidates=cfg.max_candidates) for doc in docs]

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Ranked keyphrases (best first, at most ``top_n``) for each document, in input order."""
        t = time.perf_counter()
        cands = self.candidates(docs)
        self.ranker.stage_seconds["candidates"] += time.perf_counter() - t
        return self.ranker.rank(docs, cands)

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Seconds spent per stage since the engine was built (candidates, document_pass, first_pass, ...)."""
        return dict(self.ranker.stage_seconds)

    def close(self) -> None:
        """Release the embedding cache's database connection."""
        if self.cache is not None:
            self.cache.close()


def build_kpe(model_path: str | None = None, config: ExtractionConfig | dict | None = None) -> KeyphraseEngine:
    """Registry factory (``kpe.extract.methods.METHODS["kpe"]``): defaults when ``config`` is None."""
    if isinstance(config, dict):
        config = ExtractionConfig(**config)
    return KeyphraseEngine(config or ExtractionConfig(), model_path=model_path)


def build_kpe_fast(model_path: str | None = None, config: ExtractionConfig | dict | None = None) -> KeyphraseEngine:
    """Registry factory (``METHODS["kpe-fast"]``): ``ExtractionConfig.fast`` with a ``config`` dict as overrides
    (a whole ``ExtractionConfig`` is used as given)."""
    if not isinstance(config, ExtractionConfig):
        config = ExtractionConfig.fast(**(config or {}))
    return KeyphraseEngine(config, model_path=model_path)
