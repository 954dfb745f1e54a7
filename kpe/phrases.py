"""When two keyphrases are "the same phrase": tokens, Porter stems, and the two keys built from them.

There are two keys, on purpose, and both live here:

* :func:`normalize_phrase` is the **identity** of a phrase in the pipeline: extraction deduplicates by it, the
  fine-tuned models deduplicate their spans by it, and the warehouse stores it (``keyphrases.normalized``).
  Inner hyphens stay part of a token ("anti-spam" and "anti spam" are different phrases), so a stored key
  never changes when the evaluation protocol is revisited.
* :func:`phrase_key` is the **evaluation protocol's** matching key (Meng et al. 2017; KP20K's tokenisation
  splits hyphens): hyphens become spaces first. Every published number we compare with uses it, so the
  metrics (``kpe.evaluate.metrics``), the silver benchmark and the joint model's labels use it too.

Changing either one changes numbers: stored phrases (and what nightly re-extracts) for the first, every
evaluation result for the second.
"""

from __future__ import annotations

import re
from functools import lru_cache

from nltk.stem.porter import PorterStemmer

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_STEMMER = PorterStemmer()

PhraseKey = tuple[str, ...]


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


@lru_cache(maxsize=200_000)
def normalize_phrase(phrase: str) -> str:
    """A phrase's identity in the pipeline: stemmed tokens joined by one space, inner hyphens kept
    ("Neural Networks" -> "neural network", "anti-spam" stays one token). Cached: a tagger's soft spans ask for
    about 800 phrases a document (a third of them already seen after 300 abstracts)."""
    return " ".join(stem_tokens(phrase))


def phrase_key(phrase: str) -> PhraseKey:
    """The evaluation protocol's key of a phrase or text: hyphens split, lowercase, Porter-stemmed tokens."""
    return stem_tokens(phrase.replace("-", " "))
