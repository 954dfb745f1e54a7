"""Ranking candidates against their document: cosine similarity, MMR and Max Sum Distance (vectorised numpy),
and the long-document score.

The strategies follow KeyBERT's ``_mmr.py`` and ``_maxsum.py``; every function takes the document embedding
``(d,)`` and the candidate embeddings ``(n, d)`` and returns candidate indices, best first by similarity to
the document, with those similarities. Embeddings need not be normalised.

Long documents (full papers) are ranked by :func:`long_document_scores`: in a 50 kB paper thousands of
candidates compete and cosine alone puts generic words first ("approaches got", "described"); the score
multiplies the squared cosine with frequency and the position of the first occurrence (YAKE, PositionRank,
KP-Miner: keyphrases recur and appear early, in the title and abstract).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

#: Max Sum Distance enumerates every top_n-subset of its candidates up to this many subsets, then turns greedy.
MAX_SUM_EXACT_LIMIT = 2_000_000
_MAX_SUM_CHUNK = 20_000


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def cosine_scores(doc_embedding: np.ndarray, candidate_embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of each candidate to the document, shape ``(n,)``."""
    if len(candidate_embeddings) == 0:
        return np.zeros(0, dtype=np.float32)
    return normalize_rows(candidate_embeddings) @ normalize_rows(doc_embedding.reshape(1, -1))[0]


#: Long-document score: ``max(cos, 0) ** LONG_COSINE_POWER * ln(1 + occurrences) * (1 + first / LONG_POSITION_CHARS)
#: ** -LONG_POSITION_DECAY`` (``first``: character offset of the first occurrence). Chosen on 15 NUS papers
#: (nus_dev, docs 1-15; a plateau: powers 2-3, decays 0.3-0.7 and scales of 1,000-10,000 characters score within
#: 0.01 macro F1@5 of each other). On the first 25 papers, every candidate encoded, fp32: cosine alone 0.069,
#: frequency and position alone 0.077, this score 0.229 (0.244 on papers 16-25, not used to choose), YAKE 0.147.
LONG_COSINE_POWER = 2.0
LONG_POSITION_CHARS = 3000.0
LONG_POSITION_DECAY = 0.5


def is_long_document(text: str, long_document_chars: int | None) -> bool:
    """Whether a text is ranked as a long document: at least ``long_document_chars`` characters (None: never)."""
    return long_document_chars is not None and len(text) >= long_document_chars


def long_document_prior(occurrences: np.ndarray, first_start: np.ndarray) -> np.ndarray:
    """Frequency and position of each candidate of a long document: ``ln(1 + occurrences) * (1 + first /
    LONG_POSITION_CHARS) ** -LONG_POSITION_DECAY`` (also what the tagger's spans are weighted by in long texts)."""
    freq = np.log1p(np.maximum(np.asarray(occurrences, dtype=np.float64), 1.0))
    position = 1.0 + np.maximum(np.asarray(first_start, dtype=np.float64), 0.0) / LONG_POSITION_CHARS
    return freq * position ** -LONG_POSITION_DECAY


def long_document_scores(cosines: np.ndarray, occurrences: np.ndarray, first_start: np.ndarray) -> np.ndarray:
    """The long-document score of each candidate: ``max(cos, 0) ** LONG_COSINE_POWER`` times
    :func:`long_document_prior`."""
    cos = np.maximum(np.asarray(cosines, dtype=np.float64), 0.0) ** LONG_COSINE_POWER
    return (cos * long_document_prior(occurrences, first_start)).astype(np.float32)


def top_by_score(scores: np.ndarray, top_n: int, names: Sequence[str] | None = None) -> np.ndarray:
    """Indices of the ``top_n`` highest scores, best first (KeyBERT's ``argsort()[-top_n:][::-1]``); with ``names``,
    equal scores are ordered by name, so a tie never depends on the order the candidates came in."""
    if top_n <= 0:
        return np.zeros(0, dtype=np.int64)
    if names is None:
        return np.argsort(scores)[-top_n:][::-1]
    return ranked_by_score(scores, names)[:top_n]


def ranked_by_score(scores: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Every index, highest score first, equal scores by name (then by position)."""
    values = np.asarray(scores, dtype=np.float64)
    return np.asarray(sorted(range(len(values)), key=lambda i: (-values[i], names[i], i)), dtype=np.int64)


def mmr(doc_embedding: np.ndarray, candidate_embeddings: np.ndarray, top_n: int, diversity: float) -> np.ndarray:
    """Maximal Marginal Relevance: greedily add the candidate maximising
    ``(1 - diversity) * sim(doc) - diversity * max sim(already chosen)``; returned best first by ``sim(doc)``.

    ``diversity=0`` is the plain cosine ranking; 1 ignores the document after the first pick.
    """
    n = len(candidate_embeddings)
    if n == 0 or top_n <= 0:
        return np.zeros(0, dtype=np.int64)
    cands = normalize_rows(candidate_embeddings)
    doc_sim = cosine_scores(doc_embedding, cands)
    chosen = [int(np.argmax(doc_sim))]
    available = np.ones(n, dtype=bool)
    available[chosen[0]] = False
    max_sim_chosen = cands @ cands[chosen[0]]
    for _ in range(min(top_n, n) - 1):
        value = (1.0 - diversity) * doc_sim - diversity * max_sim_chosen
        value = np.where(available, value, -np.inf)
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        np.maximum(max_sim_chosen, cands @ cands[best], out=max_sim_chosen)
    chosen_arr = np.asarray(chosen, dtype=np.int64)
    return chosen_arr[np.argsort(-doc_sim[chosen_arr], kind="stable")]


def max_sum(doc_embedding: np.ndarray, candidate_embeddings: np.ndarray, top_n: int, nr_candidates: int) -> np.ndarray:
    """Max Sum Distance: among the ``nr_candidates`` candidates most similar to the document, the ``top_n``-subset
    with the smallest sum of pairwise similarities; returned best first by similarity to the document.

    Exact (every subset, vectorised in chunks) up to ``MAX_SUM_EXACT_LIMIT`` subsets (C(20, 10) = 184,756),
    greedy beyond.
    """
    n = len(candidate_embeddings)
    if n == 0 or top_n <= 0:
        return np.zeros(0, dtype=np.int64)
    cands = normalize_rows(candidate_embeddings)
    doc_sim = cosine_scores(doc_embedding, cands)
    pool = top_by_score(doc_sim, min(nr_candidates, n))
    k = min(top_n, len(pool))
    if k == len(pool):
        best = pool
    else:
        sims = cands[pool] @ cands[pool].T
        if math.comb(len(pool), k) <= MAX_SUM_EXACT_LIMIT:
            best = pool[_min_sum_subset_exact(sims, k)]
        else:
            best = pool[_min_sum_subset_greedy(sims, k)]
    return best[np.argsort(-doc_sim[best], kind="stable")]


def _min_sum_subset_exact(sims: np.ndarray, k: int) -> np.ndarray:
    """The k-subset (as indices) with the smallest sum of pairwise similarities, by enumeration."""
    m = len(sims)
    pairs = np.array(list(itertools.combinations(range(k), 2)), dtype=np.int64)
    combos_iter = itertools.combinations(range(m), k)
    best_value, best_combo = np.inf, None
    while True:
        chunk = np.fromiter(
            itertools.chain.from_iterable(itertools.islice(combos_iter, _MAX_SUM_CHUNK)), dtype=np.int64
        )
        if chunk.size == 0:
            break
        combos = chunk.reshape(-1, k)
        values = sims[combos[:, pairs[:, 0]], combos[:, pairs[:, 1]]].sum(axis=1)
        i = int(np.argmin(values))
        if values[i] < best_value:
            best_value, best_combo = values[i], combos[i]
    assert best_combo is not None
    return best_combo


def _min_sum_subset_greedy(sims: np.ndarray, k: int) -> np.ndarray:
    """Greedy k-subset with a small pairwise-similarity sum (start from the best candidate, add the least similar)."""
    chosen = [0]
    total = sims[0].copy()
    total[0] = np.inf
    for _ in range(k - 1):
        nxt = int(np.argmin(total))
        chosen.append(nxt)
        total += sims[nxt]
        total[chosen] = np.inf
    return np.asarray(chosen, dtype=np.int64)


def drop_subphrases(phrases: list[str], order: np.ndarray) -> np.ndarray:
    """``order`` without any phrase whose words appear contiguously inside a better-ranked kept phrase."""
    kept: list[int] = []
    kept_words: list[tuple[str, ...]] = []
    for idx in order:
        words = tuple(phrases[idx].lower().split())
        if any(_contains(longer, words) for longer in kept_words):
            continue
        kept.append(int(idx))
        kept_words.append(words)
    return np.asarray(kept, dtype=np.int64)


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    n = len(shorter)
    return n < len(longer) and any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))
