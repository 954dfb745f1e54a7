"""Candidate keyphrases: stop-word-bounded n-grams that never cross punctuation, and KeyBERT's own n-grams.

KeyBERT's default candidates come from ``CountVectorizer(stop_words="english")``, which deletes stop words
*before* forming n-grams, so "patients with an estimated glomerular filtration" yields "patients estimated
glomerular". Ours form n-grams on the text as written and keep an n-gram only when

* it lies inside one clause: no punctuation (``. , ; : ( ) [ ] ? !`` nor any other non-space symbol such as
  ``% = < / "``) between its words;
* it contains no stop word (sklearn's English list plus ``SCIENTIFIC_FILLERS``; ``inner_stop_words`` may allow
  some inside, e.g. "of" for "quality of life": measured worse on Inspec and PubMed, see the README);
* it does not start with a number and is not numbers only ("12 weeks", "2019" are dropped, "type 2" stays);
* a one-word candidate has at least two characters.

Candidates are deduplicated case-insensitively, keeping the surface form of the first occurrence (a
capitalised sentence-initial form gives way to a later lower-case one), in order of first occurrence.

Usage::

    candidate_phrases("Dapagliflozin in patients with chronic kidney disease. ...", ngram_range=(1, 3))
    PhraseCandidates(ngram_range=(1, 3))(docs)      # a CandidateSource: one list per document
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

#: Words of scientific prose that are never part of a keyphrase: section labels, reporting verbs, abbreviations
#: of Latin. Measured: +0.003 macro F1@5 on Inspec dev, +0.008 on PubMed silver (see the README).
SCIENTIFIC_FILLERS: frozenset[str] = frozenset(
    """et al e.g i.e vs respectively using based background objective objectives purpose aim aims conclusion
    conclusions methods results introduction study studies result paper approach proposed method significant
    significantly showed shown used use new present presented different including associated compared found
    performed obtained observed total""".split()
)
STOP_WORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS) | SCIENTIFIC_FILLERS

# A word: letters/digits with inner hyphens, apostrophes, periods or plus signs and an optional trailing plus
# ("IL-6", "Crohn's", "2.5", "CD4+"); a slash separates words ("and/or").
_WORD = re.compile(r"\w+(?:[-'\u2019.+]\w+)*\+?", re.UNICODE)
_NUMBER = re.compile(r"[\d.,]+%?")


@dataclass(slots=True)
class Candidate:
    """One distinct candidate of one document: its surface form and the character spans of its occurrences."""

    phrase: str
    spans: list[tuple[int, int]] = field(default_factory=list)


@runtime_checkable
class CandidateSource(Protocol):
    """Anything that proposes candidate phrases per document (our n-grams, KeyBERT's, a tagger's spans)."""

    def __call__(self, docs: list[str]) -> list[list[str]]:
        """Distinct candidate phrases for each document, in input order."""
        ...


def _is_number(word: str) -> bool:
    return bool(_NUMBER.fullmatch(word))


def ends_with_number(phrase: str) -> bool:
    """Whether the last word of a phrase is a number: a reference to a numbered item ("Definition 1.5", "Table 2",
    "Section 3") rather than a keyphrase (dropped from long documents' candidates)."""
    words = _WORD.findall(phrase or "")
    return bool(words) and _is_number(words[-1])


def _clauses(text: str) -> Iterable[list[tuple[str, int, int]]]:
    """Runs of words separated only by white space: ``[(word, start, end), ...]`` per clause."""
    run: list[tuple[str, int, int]] = []
    last_end = 0
    for match in _WORD.finditer(text):
        start, end = match.span()
        if run and text[last_end:start].strip():  # punctuation or a symbol between two words: a boundary
            yield run
            run = []
        run.append((match.group(), start, end))
        last_end = end
    if run:
        yield run


def _better_surface(current: str, new: str) -> bool:
    """Prefer a later lower-case form over a capitalised first occurrence ("Dapagliflozin" -> "dapagliflozin")."""
    return current[:1].isupper() and current[1:] == current[1:].lower() and new == new.lower()


def candidate_spans(
    text: str,
    ngram_range: tuple[int, int] = (1, 3),
    stop_words: frozenset[str] = STOP_WORDS,
    max_candidates: int | None = None,
    inner_stop_words: frozenset[str] | None = frozenset(),
) -> list[Candidate]:
    """Distinct candidates of one text with the character spans of every occurrence (see the module doc).

    ``inner_stop_words``: the stop words allowed inside a candidate (default none; None: any).
    """
    low, high = ngram_range
    if low < 1 or high < low:
        raise ValueError(f"ngram_range must be (low, high) with 1 <= low <= high, got {ngram_range}")
    found: dict[str, Candidate] = {}
    for run in _clauses(text or ""):
        words = [w for w, _, _ in run]
        lowered = [w.lower() for w in words]
        stop = [w in stop_words for w in lowered]
        number = [_is_number(w) for w in lowered]
        for i in range(len(run)):
            if stop[i] or number[i]:
                continue
            for n in range(low, high + 1):
                j = i + n - 1
                if j >= len(run):
                    break
                if stop[j]:
                    continue
                if n > 2 and inner_stop_words is not None and stop[j - 1] and lowered[j - 1] not in inner_stop_words:
                    break
                if n == 1 and len(lowered[i]) < 2:
                    continue
                start, end = run[i][1], run[j][2]
                surface = " ".join(words[i : j + 1])
                key = surface.lower()
                cand = found.get(key)
                if cand is None:
                    if max_candidates is not None and len(found) >= max_candidates:
                        continue
                    found[key] = cand = Candidate(surface)
                elif _better_surface(cand.phrase, surface):
                    cand.phrase = surface
                cand.spans.append((start, end))
    return list(found.values())


def candidate_phrases(
    text: str,
    ngram_range: tuple[int, int] = (1, 3),
    stop_words: frozenset[str] = STOP_WORDS,
    max_candidates: int | None = None,
    inner_stop_words: frozenset[str] | None = frozenset(),
) -> list[str]:
    """Distinct stop-word-free n-grams of ``text`` that do not cross punctuation, in order of first occurrence."""
    return [c.phrase for c in candidate_spans(text, ngram_range, stop_words, max_candidates, inner_stop_words)]


@dataclass(frozen=True, slots=True)
class PhraseCandidates:
    """Our candidate source: :func:`candidate_phrases` for every document."""

    ngram_range: tuple[int, int] = (1, 3)
    max_candidates: int | None = None

    def __call__(self, docs: list[str]) -> list[list[str]]:
        return [candidate_phrases(doc, self.ngram_range, max_candidates=self.max_candidates) for doc in docs]


@dataclass(frozen=True, slots=True)
class KeyBERTCandidates:
    """KeyBERT's own candidates: ``CountVectorizer(ngram_range, stop_words="english")`` n-grams of each document.

    KeyBERT fits the vectorizer on the whole batch and keeps, per document, the vocabulary entries that occur
    in it, in vocabulary (alphabetical) order; with ``min_df=1`` that is exactly the sorted set of the
    document's own analyzer n-grams, which this reproduces one document at a time.
    """

    ngram_range: tuple[int, int] = (1, 3)
    stop_words: str | list[str] | None = "english"

    def __call__(self, docs: list[str]) -> list[list[str]]:
        analyzer = CountVectorizer(ngram_range=self.ngram_range, stop_words=self.stop_words).build_analyzer()
        return [sorted(set(analyzer(doc or ""))) for doc in docs]
