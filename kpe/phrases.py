"""Phrase normalisation shared by extraction, evaluation and the warehouse: lowercase, tokens, Porter stems."""

from __future__ import annotations

import re
from functools import lru_cache

from nltk.stem.porter import PorterStemmer

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_STEMMER = PorterStemmer()


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens (letters/digits, inner hyphens and apostrophes kept)."""
    return _TOKEN.findall(text.lower())


@lru_cache(maxsize=500_000)
def stem(token: str) -> str:
    """Porter stem of one lowercase token (cached: corpora repeat tokens)."""
    return _STEMMER.stem(token)


def stem_tokens(text: str) -> tuple[str, ...]:
    """The stemmed token sequence of a text or phrase."""
    return tuple(stem(t) for t in tokenize(text))


def normalize_phrase(phrase: str) -> str:
    """Canonical form of a keyphrase: stemmed tokens joined by one space ("Neural Networks" -> "neural network")."""
    return " ".join(stem_tokens(phrase))
